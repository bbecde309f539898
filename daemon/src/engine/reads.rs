//! Answers to reads, from the in-memory state (and the store for history).

use std::sync::Arc;

use crate::model::{
    EntityFacts, Exemption, ExemptionStatus, LevelChange, ScorecardResult, Task, TierRequest,
    TierRequestStatus,
};
use crate::standards::Standards;
use crate::store::EntityOrigin;

use super::state::State;
use super::{
    Engine, EngineError, EntityFilter, EntityView, GateAnswer, LevelCount, Result, RuleView,
    ScoreFilter, ScorecardView, TaskFilter,
};

impl Engine {
    /// `GET /v1/entities`.
    pub fn entities(&self, filter: &EntityFilter) -> Vec<EntityView> {
        let state = self.read();
        state
            .effective
            .values()
            .filter(|e| filter.kind.as_ref().is_none_or(|k| &e.kind == k))
            .filter(|e| {
                filter
                    .team
                    .as_ref()
                    .is_none_or(|t| e.team.as_ref() == Some(t))
            })
            .filter(|e| filter.tier.is_none_or(|t| e.tier == Some(t)))
            .filter_map(|e| entity_view(&state, &e.identifier))
            .collect()
    }

    /// `GET /v1/entities/{id}`.
    pub fn entity(&self, id: &str) -> Result<EntityView> {
        entity_view(&self.read(), id).ok_or_else(|| not_found(id))
    }

    /// Latest facts of an entity, by source.
    pub fn entity_facts(&self, id: &str) -> Result<EntityFacts> {
        let state = self.read();
        if !state.entities.contains_key(id) {
            return Err(not_found(id));
        }
        Ok(state
            .facts
            .get(id)
            .map(|f| f.as_ref().clone())
            .unwrap_or_default())
    }

    /// `GET /v1/entities/{id}/scores`.
    pub fn entity_scores(&self, id: &str) -> Result<Vec<ScorecardResult>> {
        let state = self.read();
        if !state.entities.contains_key(id) {
            return Err(not_found(id));
        }
        Ok(state
            .results
            .get(id)
            .map(|r| r.as_ref().clone())
            .unwrap_or_default())
    }

    /// `GET /v1/scorecards`.
    pub fn scorecards(&self) -> Vec<ScorecardView> {
        self.scorecard_views().as_ref().clone()
    }

    /// `GET /v1/scorecards/{id}`.
    pub fn scorecard(&self, id: &str) -> Result<ScorecardView> {
        self.scorecard_views()
            .iter()
            .find(|v| v.identifier == id)
            .cloned()
            .ok_or_else(|| EngineError::NotFound(format!("no scorecard `{id}`")))
    }

    /// Every scorecard's view, aggregated over every entity's results once per state: the
    /// views are kept with the standards and the results revision they were built from, and
    /// rebuilt only when either has moved since. Aggregating 10,000 entities takes tens of
    /// milliseconds; between passes every request is answered from the kept views.
    ///
    /// A rebuild works on a snapshot of the results taken under the state's read lock in about
    /// a millisecond (pointers, not copies) and aggregates without the lock, so a writer never
    /// waits for it. Requests that find the views stale while one rebuilds wait for that
    /// rebuild instead of aggregating too.
    fn scorecard_views(&self) -> Arc<Vec<ScorecardView>> {
        let mut kept = self
            .inner
            .scorecard_views
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let (standards, revision, results) = {
            let state = self.read();
            if let Some(views) = kept.as_ref()
                && Arc::ptr_eq(&views.standards, &state.standards)
                && views.revision == state.results.revision()
            {
                return views.views.clone();
            }
            (
                state.standards.clone(),
                state.results.revision(),
                state.results.values().cloned().collect::<Vec<_>>(),
            )
        };
        let views: Arc<Vec<ScorecardView>> = Arc::new(
            standards
                .scorecards
                .iter()
                .map(|s| {
                    scorecard_view(&standards, &results, &s.identifier)
                        .expect("listed scorecard exists")
                })
                .collect(),
        );
        *kept = Some(ScorecardViews {
            standards,
            revision,
            views: views.clone(),
        });
        views
    }

    /// `GET /v1/scores`.
    pub fn scores(&self, filter: &ScoreFilter) -> Result<Vec<ScorecardResult>> {
        let state = self.read();
        let below = match (&filter.below, &filter.scorecard) {
            (Some(level), Some(scorecard)) => {
                let card = state.standards.scorecard(scorecard).ok_or_else(|| {
                    EngineError::BadRequest(format!("no scorecard `{scorecard}`"))
                })?;
                let index = card
                    .levels
                    .iter()
                    .position(|l| l.title == level)
                    .ok_or_else(|| {
                        EngineError::BadRequest(format!(
                            "scorecard `{scorecard}` has no level `{level}`"
                        ))
                    })?;
                Some(index)
            }
            (Some(_), None) => {
                return Err(EngineError::BadRequest("`below` needs `scorecard`".into()));
            }
            _ => None,
        };
        if let Some(scorecard) = &filter.scorecard
            && state.standards.scorecard(scorecard).is_none()
        {
            return Err(EngineError::NotFound(format!("no scorecard `{scorecard}`")));
        }
        let mut out = Vec::new();
        for (id, entity) in &state.effective {
            if filter
                .team
                .as_ref()
                .is_some_and(|t| entity.team.as_ref() != Some(t))
            {
                continue;
            }
            if filter.tier.is_some_and(|t| entity.tier != Some(t)) {
                continue;
            }
            for result in state.results.get(id).into_iter().flat_map(|r| r.iter()) {
                if filter
                    .scorecard
                    .as_ref()
                    .is_some_and(|s| result.scorecard != s)
                {
                    continue;
                }
                if below.is_some_and(|b| result.level_index >= b) {
                    continue;
                }
                out.push(result.clone());
            }
        }
        Ok(out)
    }

    /// `GET /v1/entities/{id}/history`: level changes, oldest first.
    pub fn history(&self, id: &str, scorecard: Option<&str>) -> Result<Vec<LevelChange>> {
        if !self.read().entities.contains_key(id) {
            return Err(not_found(id));
        }
        self.inner
            .store
            .level_history(id, scorecard, None)
            .map_err(|e| EngineError::Internal(e.to_string()))
    }

    /// `GET /v1/gate/{id}`: whether the entity may ship, and why not.
    pub fn gate(&self, id: &str) -> Result<GateAnswer> {
        self.readiness()?;
        let state = self.read();
        let entity = state.effective.get(id).ok_or_else(|| not_found(id))?;
        let results = state.results.get(id).map_or(&[][..], |r| r.as_slice());
        let mut reasons = Vec::new();
        if let Some(lock) = state.locks.get(id) {
            reasons.push(format!(
                "locked by {} since {}: {}",
                lock.locked_by,
                lock.locked_at.format("%Y-%m-%d %H:%M UTC"),
                lock.reason
            ));
        }
        for miss in crate::eval::tier_misses(entity, results, &state.standards) {
            let blocking: Vec<String> = miss
                .blocking_rules
                .iter()
                .map(|(rule, status, message)| match message {
                    Some(m) => format!("{rule} ({}: {m})", status.as_str()),
                    None => format!("{rule} ({})", status.as_str()),
                })
                .collect();
            reasons.push(format!(
                "{} is at {}, tier {} requires {}; blocking: {}",
                miss.scorecard,
                miss.reached_level,
                entity
                    .tier
                    .map_or_else(|| "none".to_owned(), |t| t.to_string()),
                miss.required_level,
                if blocking.is_empty() {
                    "no rule result yet".to_owned()
                } else {
                    blocking.join("; ")
                }
            ));
        }
        Ok(GateAnswer {
            entity: id.to_owned(),
            allowed: reasons.is_empty(),
            reasons,
            evaluated_at: results.iter().map(|r| r.evaluated_at).max(),
        })
    }

    /// `GET /v1/exemptions`.
    pub fn exemptions(&self, status: Option<ExemptionStatus>) -> Vec<Exemption> {
        self.read()
            .exemptions
            .values()
            .filter(|e| status.is_none_or(|s| e.status == s))
            .cloned()
            .collect()
    }

    /// `GET /v1/exemptions/{id}`.
    pub fn exemption(&self, id: &str) -> Result<Exemption> {
        self.read()
            .exemptions
            .get(id)
            .cloned()
            .ok_or_else(|| EngineError::NotFound(format!("no exemption `{id}`")))
    }

    /// `GET /v1/tier-requests`.
    pub fn tier_requests(&self, status: Option<TierRequestStatus>) -> Vec<TierRequest> {
        self.read()
            .tier_requests
            .values()
            .filter(|r| status.is_none_or(|s| r.status == s))
            .cloned()
            .collect()
    }

    /// `GET /v1/tier-requests/{id}`.
    pub fn tier_request(&self, id: &str) -> Result<TierRequest> {
        self.read()
            .tier_requests
            .get(id)
            .cloned()
            .ok_or_else(|| EngineError::NotFound(format!("no tier request `{id}`")))
    }

    /// `GET /v1/tasks`.
    pub fn tasks(&self, filter: &TaskFilter) -> Vec<Task> {
        let state = self.read();
        let mut tasks: Vec<Task> = state
            .tasks
            .values()
            .filter(|t| {
                filter
                    .team
                    .as_ref()
                    .is_none_or(|x| t.team.as_ref() == Some(x))
            })
            .filter(|t| filter.entity.as_ref().is_none_or(|x| &t.entity == x))
            .filter(|t| filter.status.is_none_or(|x| t.status == x))
            .cloned()
            .collect();
        tasks.sort_by(|a, b| a.due.cmp(&b.due).then_with(|| a.id.cmp(&b.id)));
        tasks
    }

    /// Notifications that could not be delivered.
    pub fn dead_letters(&self) -> Vec<serde_json::Value> {
        match self.inner.store.dead_letters() {
            Ok(list) => list
                .into_iter()
                .map(|d| {
                    serde_json::json!({
                        "seq": d.seq,
                        "event_id": d.entry.message.id,
                        "channel": d.entry.message.channel,
                        "attempts": d.entry.attempts,
                        // Reasons stored before redaction existed may hold a channel's full
                        // URL (a chat hook's credential): shown as scheme + host only.
                        "reason": crate::net::redact_text(&d.reason),
                        "at": d.at,
                        "payload": d.entry.message.payload,
                    })
                })
                .collect(),
            Err(err) => {
                tracing::error!(error = %err, "reading dead letters");
                Vec::new()
            }
        }
    }

    /// The audit trail of a person-made record (`exemption`, `tier_request`, `lock`, `entity`).
    pub fn audit(&self, kind: &str, id: &str) -> Vec<crate::model::AuditEntry> {
        self.inner
            .store
            .audit(kind, id)
            .map(|records| records.into_iter().map(|r| r.entry).collect())
            .unwrap_or_default()
    }

    /// `/v1/status`: plugins, standards and catalog revisions, last errors.
    pub fn status(&self) -> serde_json::Value {
        let state = self.read();
        let plugins = self.inner.plugins.status();
        serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "ready": self.is_ready(),
            "now": self.now(),
            "entities": state.entities.len(),
            "scorecards": state.standards.scorecards.len(),
            "catalog": {
                "revision": state.catalog.revision,
                "loaded_at": state.catalog.loaded_at,
                "last_error": state.catalog.last_error,
                "last_error_at": state.catalog.last_error_at,
                "errors": state.catalog_errors,
            },
            "standards": {
                "revision": state.standards_status.revision,
                "loaded_at": state.standards_status.loaded_at,
                "last_error": state.standards_status.last_error,
                "last_error_at": state.standards_status.last_error_at,
                "errors": state.standards_errors,
                "serving": state.standards_serving,
            },
            "plugins": plugins,
            "plugin_errors": state.plugins_status.last_error,
            // A chat hook's URL is its credential: scheme and host only.
            "channels": self.inner.config.channels.iter().map(|(name, c)| {
                (name.clone(), serde_json::json!({
                    "type": format!("{:?}", c.kind).to_ascii_lowercase(),
                    "url": crate::net::redact(&c.url),
                }))
            }).collect::<serde_json::Map<String, serde_json::Value>>(),
            "plugin_load_errors": state.plugin_load_errors,
            "degraded": state.degraded_since.len(),
            "open_tasks": state.tasks.values().filter(|t| t.status != crate::model::TaskStatus::Done).count(),
            "pending_exemptions": state.exemptions.values().filter(|e| e.status == ExemptionStatus::Pending).count(),
            "pending_tier_requests": state.tier_requests.values().filter(|r| r.status == TierRequestStatus::Pending).count(),
            "store": {
                "path": self.inner.config.data,
                "bytes": std::fs::metadata(&self.inner.config.data).map(|m| m.len()).ok(),
            },
        })
    }
}

fn not_found(id: &str) -> EngineError {
    EngineError::NotFound(format!("no entity `{id}`"))
}

fn entity_view(state: &State, id: &str) -> Option<EntityView> {
    let stored = state.entities.get(id)?;
    let effective = state.effective.get(id)?;
    Some(EntityView {
        entity: (**effective).clone(),
        origin: match stored.origin {
            EntityOrigin::CatalogFile => "catalog",
            EntityOrigin::Api => "api",
        }
        .to_owned(),
        // The tier written in the catalog file whenever the file has one (and `null` when the
        // file has none but an approved change set one); for an API entity only beside an
        // override, since it has no file.
        catalog_tier: match stored.origin {
            EntityOrigin::CatalogFile if stored.entity.tier.is_some() => Some(stored.entity.tier),
            _ => stored.tier_override.as_ref().map(|_| stored.entity.tier),
        },
        degraded: state.degraded_since.contains_key(id),
        degraded_since: state.degraded_since.get(id).copied(),
        lock: state.locks.get(id).cloned(),
    })
}

/// Every scorecard's view as built for one standards set and one revision of the results.
pub(super) struct ScorecardViews {
    /// Kept alive, so that a new standards set can never reuse its address.
    standards: Arc<Standards>,
    revision: u64,
    views: Arc<Vec<ScorecardView>>,
}

fn scorecard_view(
    standards: &Standards,
    results: &[Arc<Vec<ScorecardResult>>],
    id: &str,
) -> Option<ScorecardView> {
    let card = standards.scorecard(id)?;
    let mut counts = vec![0usize; card.levels.len()];
    let mut passing = vec![0usize; card.rules.len()];
    let mut applicable = vec![0usize; card.rules.len()];
    let mut entities = 0;
    for result in results.iter().flat_map(|r| r.iter()) {
        if result.scorecard != card.identifier {
            continue;
        }
        entities += 1;
        if let Some(c) = counts.get_mut(result.level_index) {
            *c += 1;
        }
        for (i, rule) in card.rules.iter().enumerate() {
            if let Some(r) = result.rules.iter().find(|r| r.rule == rule.identifier)
                && r.status.is_applicable()
            {
                applicable[i] += 1;
                if r.status.counts_as_passed() {
                    passing[i] += 1;
                }
            }
        }
    }
    Some(ScorecardView {
        identifier: card.identifier.to_string(),
        title: card.title.clone(),
        description: card.description.clone(),
        levels: card.levels.iter().map(|l| l.title.to_string()).collect(),
        distribution: card
            .levels
            .iter()
            .zip(&counts)
            .map(|(l, c)| LevelCount {
                level: l.title.to_string(),
                count: *c,
                color: l.color.clone(),
            })
            .collect(),
        entities,
        rules: card
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| RuleView {
                identifier: r.identifier.to_string(),
                title: r.title.clone(),
                level: r.level.to_string(),
                description: r.description.clone(),
                weight: r.weight,
                kind: r
                    .check
                    .as_ref()
                    .map_or_else(|| "query".to_owned(), |c| format!("plugin:{}", c.plugin)),
                passing: passing[i],
                applicable: applicable[i],
            })
            .collect(),
        definition: card.clone(),
    })
}
