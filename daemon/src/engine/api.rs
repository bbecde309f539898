//! The engine's public surface as the HTTP API, the CLI and the dashboard use it: request and
//! answer types (all serde) and the error type whose variants map to HTTP status codes in
//! exactly one place (`http::error_response`).

use serde::{Deserialize, Serialize};

use crate::model::{Entity, JsonObject, Lock, ScorecardResult, Tier, Timestamp};

/// Why an engine operation was refused. Each variant is one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// 400: the request is malformed or names something that does not exist in it
    /// (an unknown rule, an `until` in the past).
    #[error("{0}")]
    BadRequest(String),
    /// 403: the caller's role does not allow this.
    #[error("{0}")]
    Forbidden(String),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 409: the request conflicts with the current state (approving a denied exemption).
    #[error("{0}")]
    Conflict(String),
    /// 503: the daemon cannot serve this right now (store unavailable, shutting down).
    #[error("{0}")]
    Unavailable(String),
    /// 503 `not_ready`: no standards set is in force, or its first evaluation is not
    /// committed yet; the gate must not answer then (fail closed).
    #[error("{0}")]
    NotReady(String),
    /// 500: a bug or an I/O failure; logged with context.
    #[error("{0}")]
    Internal(String),
}

impl EngineError {
    /// Stable machine-readable code for the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::BadRequest(_) => "bad_request",
            EngineError::Forbidden(_) => "forbidden",
            EngineError::NotFound(_) => "not_found",
            EngineError::Conflict(_) => "conflict",
            EngineError::Unavailable(_) => "unavailable",
            EngineError::NotReady(_) => "not_ready",
            EngineError::Internal(_) => "internal",
        }
    }
}

/// Who is asking: the token's name and role, resolved by the HTTP layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    /// Recorded in audit logs.
    pub name: String,
    pub role: crate::config::Role,
}

/// Filter of `GET /v1/entities`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct EntityFilter {
    pub kind: Option<String>,
    pub team: Option<String>,
    pub tier: Option<Tier>,
}

/// An entity as the API shows it.
#[derive(Clone, Debug, Serialize)]
pub struct EntityView {
    #[serde(flatten)]
    pub entity: Entity,
    /// `catalog` (from a file) or `api` (created through the API).
    pub origin: String,
    /// Tier written in the catalog file, whenever the file has one (`tier` is the effective
    /// one); `null` beside an approved override of an entity whose source has no tier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catalog_tier: Option<Option<Tier>>,
    /// Whether the entity is below its tier's requirement on any scorecard.
    pub degraded: bool,
    /// Since when (first evaluation that found it below its tier's requirement).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub degraded_since: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock: Option<Lock>,
}

/// Body of `PUT /v1/entities/{id}`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntityInput {
    pub kind: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub team: Option<String>,
    #[serde(default)]
    pub tier: Option<Tier>,
    #[serde(default)]
    pub properties: JsonObject,
    #[serde(default)]
    pub relations: std::collections::BTreeMap<String, Vec<String>>,
}

/// Answer of `GET /v1/gate/{id}`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct GateAnswer {
    pub entity: String,
    pub allowed: bool,
    /// Each reason in plain words: a required scorecard below its level and the rules that block
    /// it, or the lock and its reason.
    pub reasons: Vec<String>,
    pub evaluated_at: Option<Timestamp>,
}

/// Filter of `GET /v1/scores`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ScoreFilter {
    pub scorecard: Option<String>,
    pub team: Option<String>,
    pub tier: Option<Tier>,
    /// Only entities below this level (title) on the scorecard.
    pub below: Option<String>,
}

/// A scorecard with its level distribution (`GET /v1/scorecards/{id}`).
#[derive(Clone, Debug, Serialize)]
pub struct ScorecardView {
    pub identifier: String,
    pub title: String,
    pub description: Option<String>,
    pub levels: Vec<String>,
    /// Number of entities at each level, in ladder order.
    pub distribution: Vec<LevelCount>,
    pub entities: usize,
    pub rules: Vec<RuleView>,
    /// The scorecard as its file defines it, presentational fields included (Port's level
    /// `color`, rule descriptions, relation conditions as written), for the dashboard and for
    /// round trips of Port's JSON.
    pub definition: std::sync::Arc<crate::standards::Scorecard>,
}

/// One bar of a distribution.
#[derive(Clone, Debug, Serialize)]
pub struct LevelCount {
    pub level: String,
    pub count: usize,
    /// The level's `color` (Port's scorecards), when it has one.
    pub color: Option<String>,
}

/// A rule as listed with its scorecard.
#[derive(Clone, Debug, Serialize)]
pub struct RuleView {
    pub identifier: String,
    pub title: String,
    pub level: String,
    pub description: Option<String>,
    pub weight: f64,
    /// `query` or the check plugin's name.
    pub kind: String,
    /// Entities passing / applicable.
    pub passing: usize,
    pub applicable: usize,
}

/// Body of `POST /v1/exemptions`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExemptionInput {
    pub entity: String,
    pub scorecard: String,
    #[serde(default)]
    pub rule: Option<String>,
    pub reason: String,
    pub until: Timestamp,
}

/// Body of approve / deny / revoke / lock / unlock.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionInput {
    #[serde(default)]
    pub note: Option<String>,
}

/// Body of `POST /v1/tier-requests`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierRequestInput {
    pub entity: String,
    /// The tier asked for; `null` removes the tier.
    pub to: Option<Tier>,
    pub reason: String,
}

/// Body of `POST /v1/entities/{id}/lock`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockInput {
    pub reason: String,
}

/// Answer of refresh: the entity's new scores.
#[derive(Clone, Debug, Serialize)]
pub struct RefreshAnswer {
    pub entity: String,
    /// Data sources asked and what happened.
    pub sources: Vec<SourceOutcome>,
    pub scores: Vec<ScorecardResult>,
}

/// What one data source did during a refresh.
#[derive(Clone, Debug, Serialize)]
pub struct SourceOutcome {
    pub source: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
