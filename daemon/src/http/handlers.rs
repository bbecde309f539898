//! What each endpoint does: one arm per [`Endpoint`], each a thin translation between the
//! request (path parameters, validated query, JSON body) and one [`Engine`] call.
//!
//! Handlers never choose an error status (they return [`ApiError`]) and never check permissions
//! (the pipeline in `http` did, from the route table). [`Reply`] is the successful answer before
//! it becomes a hyper response.

use bytes::Bytes;
use http::StatusCode;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::dashboard;
use super::errors::ApiError;
use super::query::Query;
use super::router::{Endpoint, PathParams};
use crate::engine::{
    Actor, DecisionInput, Engine, EntityFilter, EntityInput, ExemptionInput, LockInput,
    ScoreFilter, TaskFilter, TierRequestInput,
};
use crate::model::{ExemptionStatus, TierRequestStatus};

/// A successful answer.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub body: Bytes,
    /// Extra headers (the dashboard's security policy, caching).
    pub headers: Vec<(&'static str, &'static str)>,
}

impl Reply {
    /// `value` as JSON with `status`.
    pub fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Result<Reply, ApiError> {
        let body = serde_json::to_vec(value)
            .map_err(|e| ApiError::Internal(format!("cannot encode the answer: {e}")))?;
        Ok(Reply {
            status,
            content_type: "application/json",
            body: Bytes::from(body),
            headers: Vec::new(),
        })
    }

    fn ok<T: Serialize + ?Sized>(value: &T) -> Result<Reply, ApiError> {
        Reply::json(StatusCode::OK, value)
    }

    fn no_content() -> Reply {
        Reply {
            status: StatusCode::NO_CONTENT,
            content_type: "application/json",
            body: Bytes::new(),
            headers: Vec::new(),
        }
    }

    /// Static or rendered bytes of another media type.
    pub fn media(content_type: &'static str, body: impl Into<Bytes>) -> Reply {
        Reply {
            status: StatusCode::OK,
            content_type,
            body: body.into(),
            headers: Vec::new(),
        }
    }
}

/// Everything a handler gets.
#[derive(Debug)]
pub struct Context<'a> {
    pub engine: &'a Engine,
    /// The served certificate pair, when the daemon serves HTTPS (shown in `/v1/status`).
    pub tls: Option<&'a super::tls::TlsFiles>,
    pub actor: Actor,
    pub params: PathParams,
    pub query: Query,
    /// The whole body, already size- and time-limited, checked to be JSON when non-empty.
    pub body: Bytes,
}

impl Context<'_> {
    fn id(&self) -> Result<&str, ApiError> {
        self.params.get("id")
    }

    /// The body as `T`; an empty body is refused.
    fn body<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        if self.body.is_empty() {
            return Err(ApiError::InvalidBody(
                "this endpoint needs a JSON body".into(),
            ));
        }
        serde_json::from_slice(&self.body).map_err(|e| ApiError::InvalidJson(e.to_string()))
    }

    /// The body as `T`; an empty body means `T::default()`.
    fn optional_body<T: DeserializeOwned + Default>(&self) -> Result<T, ApiError> {
        if self.body.is_empty() {
            Ok(T::default())
        } else {
            self.body()
        }
    }
}

/// An answer that aggregates over every entity (tens of milliseconds at 10,000 entities),
/// built and encoded on a blocking thread so that the runtime's workers keep answering the
/// cheap requests (gate, one entity's scores) meanwhile.
async fn off_worker(
    engine: &Engine,
    answer: impl FnOnce(&Engine) -> Result<Reply, ApiError> + Send + 'static,
) -> Result<Reply, ApiError> {
    let engine = engine.clone();
    tokio::task::spawn_blocking(move || answer(&engine))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// Carry out `endpoint`.
pub async fn dispatch(endpoint: Endpoint, cx: Context<'_>) -> Result<Reply, ApiError> {
    let engine = cx.engine;
    let actor = &cx.actor;
    let q = &cx.query;
    match endpoint {
        // ---- catalog
        Endpoint::ListEntities => {
            let filter = EntityFilter {
                kind: q.text("kind"),
                team: q.text("team"),
                tier: q.tier("tier")?,
            };
            off_worker(engine, move |engine| Reply::ok(&engine.entities(&filter))).await
        }
        Endpoint::GetEntity => Reply::ok(&engine.entity(cx.id()?)?),
        Endpoint::PutEntity => {
            let input: EntityInput = cx.body()?;
            Reply::ok(&engine.put_entity(actor, cx.id()?, input).await?)
        }
        Endpoint::DeleteEntity => {
            engine.delete_entity(actor, cx.id()?).await?;
            Ok(Reply::no_content())
        }
        Endpoint::EntityScores => Reply::ok(&engine.entity_scores(cx.id()?)?),
        Endpoint::EntityFacts => Reply::ok(&engine.entity_facts(cx.id()?)?),
        Endpoint::EntityHistory => {
            Reply::ok(&engine.history(cx.id()?, q.text("scorecard").as_deref())?)
        }
        Endpoint::Refresh => Reply::ok(&engine.refresh(actor, cx.id()?).await?),
        Endpoint::Nudge => Reply::ok(&engine.nudge(actor, cx.id()?).await?),
        Endpoint::Lock => {
            let input: LockInput = cx.body()?;
            Reply::ok(&engine.lock(actor, cx.id()?, input).await?)
        }
        Endpoint::Unlock => {
            let input: DecisionInput = cx.optional_body()?;
            engine.unlock(actor, cx.id()?, input).await?;
            Ok(Reply::no_content())
        }
        // ---- scores
        Endpoint::ListScorecards => {
            off_worker(engine, |engine| Reply::ok(&engine.scorecards())).await
        }
        Endpoint::GetScorecard => {
            let id = cx.id()?.to_owned();
            off_worker(engine, move |engine| Reply::ok(&engine.scorecard(&id)?)).await
        }
        Endpoint::Scores => {
            let filter = ScoreFilter {
                scorecard: q.text("scorecard"),
                team: q.text("team"),
                tier: q.tier("tier")?,
                below: q.text("below"),
            };
            off_worker(engine, move |engine| Reply::ok(&engine.scores(&filter)?)).await
        }
        Endpoint::Gate => Reply::ok(&engine.gate(cx.id()?)?),
        // ---- exemptions
        Endpoint::RequestExemption => {
            let input: ExemptionInput = cx.body()?;
            Reply::json(
                StatusCode::CREATED,
                &engine.request_exemption(actor, input).await?,
            )
        }
        Endpoint::ListExemptions => {
            Reply::ok(&engine.exemptions(q.choice::<ExemptionStatus>("status")?))
        }
        Endpoint::GetExemption => Reply::ok(&engine.exemption(cx.id()?)?),
        Endpoint::ApproveExemption => {
            let input: DecisionInput = cx.optional_body()?;
            Reply::ok(&engine.approve_exemption(actor, cx.id()?, input).await?)
        }
        Endpoint::DenyExemption => {
            let input: DecisionInput = cx.optional_body()?;
            Reply::ok(&engine.deny_exemption(actor, cx.id()?, input).await?)
        }
        Endpoint::RevokeExemption => {
            let input: DecisionInput = cx.optional_body()?;
            Reply::ok(&engine.revoke_exemption(actor, cx.id()?, input).await?)
        }
        // ---- tier requests
        Endpoint::RequestTierChange => {
            let input: TierRequestInput = cx.body()?;
            Reply::json(
                StatusCode::CREATED,
                &engine.request_tier_change(actor, input).await?,
            )
        }
        Endpoint::ListTierRequests => {
            Reply::ok(&engine.tier_requests(q.choice::<TierRequestStatus>("status")?))
        }
        Endpoint::ApproveTierRequest => {
            let input: DecisionInput = cx.optional_body()?;
            Reply::ok(&engine.approve_tier_request(actor, cx.id()?, input).await?)
        }
        Endpoint::DenyTierRequest => {
            let input: DecisionInput = cx.optional_body()?;
            Reply::ok(&engine.deny_tier_request(actor, cx.id()?, input).await?)
        }
        // ---- work
        Endpoint::ListTasks => Reply::ok(&engine.tasks(&TaskFilter {
            team: q.text("team"),
            entity: q.text("entity"),
            status: q.choice("status")?,
        })),
        Endpoint::ListInitiatives => Reply::ok(&engine.initiatives()),
        Endpoint::GetInitiative => Reply::ok(&engine.initiative(cx.id()?)?),
        // ---- operations
        Endpoint::DeadLetters => Reply::ok(&engine.dead_letters()),
        Endpoint::Status => {
            let mut status = engine.status();
            if let Some(tls) = cx.tls {
                status["tls"] = tls.status();
            }
            Reply::ok(&status)
        }
        Endpoint::Reload => Reply::ok(&engine.reload(actor).await?),
        Endpoint::Livez => Reply::ok(&serde_json::json!({ "status": "ok" })),
        Endpoint::Readyz => {
            engine.readiness()?;
            Reply::ok(&serde_json::json!({ "ready": true }))
        }
        Endpoint::Metrics => Ok(Reply::media(
            super::OPENMETRICS_CONTENT_TYPE,
            crate::metrics::metrics().render(),
        )),
        Endpoint::OpenApi => Ok(Reply::media(
            "application/json",
            super::openapi::document_bytes(),
        )),
        Endpoint::Dashboard => Ok(dashboard::page()),
        Endpoint::Asset => {
            let file = cx.params.get("file")?;
            dashboard::asset(file).ok_or_else(|| ApiError::NotFound(format!("/assets/{file}")))
        }
    }
}
