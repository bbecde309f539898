//! The engine (being wired): signatures are final, bodies land from the lead's work tree.

pub mod api;

pub use api::*;

use std::sync::Arc;

use crate::config::Config;
use crate::model::{
    EntityFacts, Exemption, ExemptionStatus, LevelChange, Lock, ScorecardResult, Task, TaskStatus,
    TierRequest, TierRequestStatus,
};

/// Filter of `GET /v1/tasks`.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskFilter {
    pub team: Option<String>,
    pub entity: Option<String>,
    pub status: Option<TaskStatus>,
}

/// The running engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Engine")
    }
}

type Result<T> = std::result::Result<T, EngineError>;

fn pending<T>() -> Result<T> {
    Err(EngineError::Unavailable("engine is starting".into()))
}

#[allow(unused_variables, clippy::unused_async)] // reason: signatures fixed first, bodies land next
impl Engine {
    pub async fn start(config: Config) -> anyhow::Result<Engine> {
        Ok(Engine { inner: Arc::new(Inner { config }) })
    }
    pub fn config(&self) -> &Config {
        &self.inner.config
    }
    pub async fn shutdown(&self) {}
    pub fn is_ready(&self) -> bool {
        false
    }
    pub fn entities(&self, filter: &EntityFilter) -> Vec<EntityView> {
        Vec::new()
    }
    pub fn entity(&self, id: &str) -> Result<EntityView> {
        pending()
    }
    pub async fn put_entity(&self, actor: &Actor, id: &str, input: EntityInput) -> Result<EntityView> {
        pending()
    }
    pub async fn delete_entity(&self, actor: &Actor, id: &str) -> Result<()> {
        pending()
    }
    pub fn entity_facts(&self, id: &str) -> Result<EntityFacts> {
        pending()
    }
    pub fn entity_scores(&self, id: &str) -> Result<Vec<ScorecardResult>> {
        pending()
    }
    pub fn scorecards(&self) -> Vec<ScorecardView> {
        Vec::new()
    }
    pub fn scorecard(&self, id: &str) -> Result<ScorecardView> {
        pending()
    }
    pub fn scores(&self, filter: &ScoreFilter) -> Result<Vec<ScorecardResult>> {
        pending()
    }
    pub fn history(&self, id: &str, scorecard: Option<&str>) -> Result<Vec<LevelChange>> {
        pending()
    }
    pub fn gate(&self, id: &str) -> Result<GateAnswer> {
        pending()
    }
    pub async fn lock(&self, actor: &Actor, id: &str, input: LockInput) -> Result<Lock> {
        pending()
    }
    pub async fn unlock(&self, actor: &Actor, id: &str, input: DecisionInput) -> Result<()> {
        pending()
    }
    pub async fn request_exemption(&self, actor: &Actor, input: ExemptionInput) -> Result<Exemption> {
        pending()
    }
    pub fn exemptions(&self, status: Option<ExemptionStatus>) -> Vec<Exemption> {
        Vec::new()
    }
    pub fn exemption(&self, id: &str) -> Result<Exemption> {
        pending()
    }
    pub async fn approve_exemption(&self, actor: &Actor, id: &str, input: DecisionInput) -> Result<Exemption> {
        pending()
    }
    pub async fn deny_exemption(&self, actor: &Actor, id: &str, input: DecisionInput) -> Result<Exemption> {
        pending()
    }
    pub async fn revoke_exemption(&self, actor: &Actor, id: &str, input: DecisionInput) -> Result<Exemption> {
        pending()
    }
    pub async fn request_tier_change(&self, actor: &Actor, input: TierRequestInput) -> Result<TierRequest> {
        pending()
    }
    pub fn tier_requests(&self, status: Option<TierRequestStatus>) -> Vec<TierRequest> {
        Vec::new()
    }
    pub fn tier_request(&self, id: &str) -> Result<TierRequest> {
        pending()
    }
    pub async fn approve_tier_request(&self, actor: &Actor, id: &str, input: DecisionInput) -> Result<TierRequest> {
        pending()
    }
    pub async fn deny_tier_request(&self, actor: &Actor, id: &str, input: DecisionInput) -> Result<TierRequest> {
        pending()
    }
    pub fn tasks(&self, filter: &TaskFilter) -> Vec<Task> {
        Vec::new()
    }
    pub fn initiatives(&self) -> Vec<serde_json::Value> {
        Vec::new()
    }
    pub fn initiative(&self, id: &str) -> Result<serde_json::Value> {
        pending()
    }
    pub async fn refresh(&self, actor: &Actor, id: &str) -> Result<RefreshAnswer> {
        pending()
    }
    pub async fn nudge(&self, actor: &Actor, id: &str) -> Result<serde_json::Value> {
        pending()
    }
    pub fn status(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
    pub async fn reload(&self, actor: &Actor) -> Result<serde_json::Value> {
        pending()
    }
    pub fn dead_letters(&self) -> Vec<serde_json::Value> {
        Vec::new()
    }
    /// The audit trail of a person-made record (`exemption`, `tier_request`, `lock`, `entity`).
    pub fn audit(&self, kind: &str, id: &str) -> Vec<crate::model::AuditEntry> {
        Vec::new()
    }
}
