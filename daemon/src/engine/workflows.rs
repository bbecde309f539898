//! What people do: catalog writes through the API, locks, exemptions and tier changes.
//!
//! Every operation here checks the actor's right to act on the entity (an owner only on its
//! team's entities; a requester never decides its own request), validates the transition,
//! evaluates the consequence, and commits the record, its audit line, the new results and the
//! notifications in ONE immediate-durability transaction before answering.

use chrono::Utc;

use crate::config::Role;
use crate::model::{
    AuditEntry, Entity, Exemption, ExemptionStatus, Lock, TierRequest, TierRequestStatus,
    is_valid_identifier,
};
use crate::store::{Durability, EntityOrigin, StoredEntity, TierOverride, WriteBatch};

use super::pass::Inputs;
use super::{
    Actor, DecisionInput, Engine, EngineError, EntityInput, EntityView, ExemptionInput, LockInput,
    Result, TierRequestInput,
};

/// A new random id with a readable prefix (`ex-3f9a…`).
fn new_id(prefix: &str) -> String {
    use rand::Rng as _;
    let n: u64 = rand::rng().random();
    format!("{prefix}-{n:016x}")
}

fn audit(actor: &Actor, action: &str, note: Option<String>) -> AuditEntry {
    AuditEntry {
        actor: actor.name.clone(),
        action: action.to_owned(),
        at: Utc::now(),
        note,
    }
}

impl Engine {
    /// Whether `actor` may act as the owner of `entity` (its team's owner, or an admin).
    fn ensure_owner(&self, actor: &Actor, entity: &Entity) -> Result<()> {
        match &actor.role {
            Role::Admin => Ok(()),
            Role::Owner(team) if entity.team.as_ref() == Some(team) => Ok(()),
            Role::Owner(team) => Err(EngineError::Forbidden(format!(
                "{} belongs to team {}, not {team}",
                entity.identifier,
                entity.team.as_deref().unwrap_or("(none)")
            ))),
            _ => Err(EngineError::Forbidden(
                "only the owning team or an admin may do this".into(),
            )),
        }
    }

    fn ensure_approver(actor: &Actor, requested_by: &str) -> Result<()> {
        if !matches!(actor.role, Role::Approver | Role::Admin) {
            return Err(EngineError::Forbidden(
                "only an approver or an admin may decide".into(),
            ));
        }
        if actor.name == requested_by {
            return Err(EngineError::Forbidden(
                "a requester cannot decide their own request".into(),
            ));
        }
        Ok(())
    }

    fn effective_entity(&self, id: &str) -> Result<std::sync::Arc<Entity>> {
        self.read()
            .effective
            .get(id)
            .cloned()
            .ok_or_else(|| EngineError::NotFound(format!("no entity `{id}`")))
    }

    // ---- catalog writes

    /// `PUT /v1/entities/{id}`: create or replace an entity defined through the API. Entities
    /// defined in catalog files belong to their files and are refused (409).
    pub async fn put_entity(
        &self,
        actor: &Actor,
        id: &str,
        input: EntityInput,
    ) -> Result<EntityView> {
        if actor.role != Role::Admin {
            return Err(EngineError::Forbidden(
                "only an admin may edit the catalog".into(),
            ));
        }
        if !is_valid_identifier(id) {
            return Err(EngineError::BadRequest(format!(
                "`{id}` is not a valid identifier ([a-z0-9][a-z0-9._-]*)"
            )));
        }
        if input.kind.trim().is_empty() {
            return Err(EngineError::BadRequest("`kind` must not be empty".into()));
        }
        if let Some(tier) = input.tier
            && !(1..=3).contains(&tier)
        {
            return Err(EngineError::BadRequest(format!(
                "tier {tier} is not 1, 2 or 3"
            )));
        }
        let _guard = self.inner.ops.lock().await;
        let existing = self.read().entities.get(id).cloned();
        if let Some(e) = &existing
            && e.origin == EntityOrigin::CatalogFile
        {
            return Err(EngineError::Conflict(format!(
                "{id} is defined in a catalog file; change it there"
            )));
        }
        let entity = Entity {
            identifier: id.to_owned(),
            kind: input.kind,
            title: input.title.unwrap_or_else(|| id.to_owned()),
            team: input.team,
            tier: input.tier,
            properties: input.properties,
            relations: input.relations,
        };
        // The catalog files' rules (relation targets, too): an API entity is no laxer.
        if let Err(faults) = crate::catalog::validate_entity(&entity) {
            return Err(EngineError::BadRequest(faults.join("; ")));
        }
        let created = existing.is_none();
        let stored = StoredEntity {
            entity: std::sync::Arc::new(entity.clone()),
            origin: EntityOrigin::Api,
            tier_override: existing.and_then(|e| e.tier_override),
        };
        let mut batch = WriteBatch::new();
        batch.put_entity(&entity, EntityOrigin::Api);
        batch.append_audit("entity", id, &audit(actor, "put", None));
        let outcome = {
            let effective = stored.effective();
            self.evaluate_ids_with(&[id.to_owned()], |state, _| {
                let mut inputs = Inputs::gather(state, id).unwrap_or(Inputs {
                    entity: effective.clone(),
                    facts: Default::default(),
                    exemptions: Vec::new(),
                    previous: Default::default(),
                });
                inputs.entity = effective.clone();
                Some(inputs)
            })
            .await
        };
        let now = self.now();
        let plan = self.plan_for(&outcome, now);
        super::pass::write_all(&outcome, &mut batch);
        plan.apply_to(&mut batch);
        self.commit(batch, Durability::Immediate).await?;
        {
            let mut state = self.write();
            state.put_entity(stored);
            super::actions::apply_to_state(&plan, &mut state);
            Self::apply_outcome(&mut state, outcome);
            crate::metrics::metrics()
                .entities
                .set(state.entities.len() as i64);
        }
        self.inner.delivery.wake();
        if created {
            // Quiet until its first rounds: collect them now rather than at the next interval.
            self.collect_new_entities(vec![id.to_owned()]);
        }
        self.entity(id)
    }

    /// `DELETE /v1/entities/{id}`: remove an API-defined entity with its facts and results.
    pub async fn delete_entity(&self, actor: &Actor, id: &str) -> Result<()> {
        if actor.role != Role::Admin {
            return Err(EngineError::Forbidden(
                "only an admin may edit the catalog".into(),
            ));
        }
        let _guard = self.inner.ops.lock().await;
        let existing = self
            .read()
            .entities
            .get(id)
            .cloned()
            .ok_or_else(|| EngineError::NotFound(format!("no entity `{id}`")))?;
        if existing.origin == EntityOrigin::CatalogFile {
            return Err(EngineError::Conflict(format!(
                "{id} is defined in a catalog file; remove it there"
            )));
        }
        let mut batch = WriteBatch::new();
        batch.delete_entity(id, self.now());
        batch.append_audit("entity", id, &audit(actor, "deleted", None));
        let closing = self.close_tasks_of(id, &mut batch);
        self.commit(batch, Durability::Immediate).await?;
        let mut state = self.write();
        state.remove_entity(id);
        for task in closing {
            state.put_task(task);
        }
        crate::metrics::metrics()
            .entities
            .set(state.entities.len() as i64);
        Ok(())
    }

    /// Mark the open tasks of a removed entity done (in `batch`); returns them.
    pub(super) fn close_tasks_of(
        &self,
        id: &str,
        batch: &mut WriteBatch,
    ) -> Vec<crate::model::Task> {
        let now = self.now();
        let mut closed = Vec::new();
        let open: Vec<crate::model::Task> =
            self.read().open_tasks_of(id).into_iter().cloned().collect();
        for mut task in open {
            task.status = crate::model::TaskStatus::Done;
            task.closed_at = Some(now);
            batch.put_task(&task);
            closed.push(task);
        }
        closed
    }

    // ---- locks

    /// `POST /v1/entities/{id}/lock`.
    pub async fn lock(&self, actor: &Actor, id: &str, input: LockInput) -> Result<Lock> {
        let entity = self.effective_entity(id)?;
        self.ensure_owner(actor, &entity)?;
        if input.reason.trim().is_empty() {
            return Err(EngineError::BadRequest("a lock needs a reason".into()));
        }
        let _guard = self.inner.ops.lock().await;
        if let Some(lock) = self.read().locks.get(id) {
            return Err(EngineError::Conflict(format!(
                "{id} is already locked by {}: {}",
                lock.locked_by, lock.reason
            )));
        }
        let lock = Lock {
            entity: id.to_owned(),
            reason: input.reason.clone(),
            locked_by: actor.name.clone(),
            locked_at: self.now(),
        };
        let mut batch = WriteBatch::new();
        batch.put_lock(&lock);
        batch.append_audit("lock", id, &audit(actor, "locked", Some(input.reason)));
        self.commit(batch, Durability::Immediate).await?;
        self.write().locks.insert(id.to_owned(), lock.clone());
        Ok(lock)
    }

    /// `POST /v1/entities/{id}/unlock`.
    pub async fn unlock(&self, actor: &Actor, id: &str, input: DecisionInput) -> Result<()> {
        let entity = self.effective_entity(id)?;
        self.ensure_owner(actor, &entity)?;
        let _guard = self.inner.ops.lock().await;
        if !self.read().locks.contains_key(id) {
            return Err(EngineError::Conflict(format!("{id} is not locked")));
        }
        let mut batch = WriteBatch::new();
        batch.delete_lock(id);
        batch.append_audit("lock", id, &audit(actor, "unlocked", input.note));
        self.commit(batch, Durability::Immediate).await?;
        self.write().locks.remove(id);
        Ok(())
    }

    // ---- exemptions

    /// `POST /v1/exemptions`.
    pub async fn request_exemption(
        &self,
        actor: &Actor,
        input: ExemptionInput,
    ) -> Result<Exemption> {
        let entity = self.effective_entity(&input.entity)?;
        self.ensure_owner(actor, &entity)?;
        if input.reason.trim().is_empty() {
            return Err(EngineError::BadRequest(
                "an exemption needs a reason".into(),
            ));
        }
        let now = self.now();
        if input.until <= now {
            return Err(EngineError::BadRequest(format!(
                "`until` ({}) is not in the future",
                input.until
            )));
        }
        check_until_bound(input.until, now, self.inner.config.exemptions.max_days)
            .map_err(EngineError::BadRequest)?;
        {
            let state = self.read();
            let card = state.standards.scorecard(&input.scorecard).ok_or_else(|| {
                EngineError::BadRequest(format!("no scorecard `{}`", input.scorecard))
            })?;
            if let Some(rule) = &input.rule
                && !card.rules.iter().any(|r| *r.identifier == **rule)
            {
                return Err(EngineError::BadRequest(format!(
                    "scorecard `{}` has no rule `{rule}`",
                    input.scorecard
                )));
            }
        }
        let _guard = self.inner.ops.lock().await;
        let entry = audit(actor, "requested", Some(input.reason.clone()));
        let exemption = Exemption {
            id: new_id("ex"),
            entity: input.entity,
            scorecard: input.scorecard,
            rule: input.rule,
            reason: input.reason,
            until: input.until,
            requested_by: actor.name.clone(),
            requested_at: now,
            status: ExemptionStatus::Pending,
            history: vec![entry.clone()],
        };
        let mut batch = WriteBatch::new();
        batch.put_exemption(&exemption);
        batch.append_audit("exemption", &exemption.id, &entry);
        let plan = {
            let state = self.read();
            super::actions::plan_exemption(
                &self.automation_context(&state),
                &state,
                &exemption,
                "exemption.requested",
                now,
            )
        };
        plan.apply_to(&mut batch);
        self.commit(batch, Durability::Immediate).await?;
        {
            let mut state = self.write();
            state.put_exemption(exemption.clone());
            super::actions::apply_to_state(&plan, &mut state);
        }
        self.inner.delivery.wake();
        Ok(exemption)
    }

    /// `POST /v1/exemptions/{id}/approve`: the covered results turn `exempt` at once.
    pub async fn approve_exemption(
        &self,
        actor: &Actor,
        id: &str,
        input: DecisionInput,
    ) -> Result<Exemption> {
        self.decide_exemption(actor, id, input, ExemptionStatus::Approved)
            .await
    }

    /// `POST /v1/exemptions/{id}/deny`.
    pub async fn deny_exemption(
        &self,
        actor: &Actor,
        id: &str,
        input: DecisionInput,
    ) -> Result<Exemption> {
        self.decide_exemption(actor, id, input, ExemptionStatus::Denied)
            .await
    }

    /// `POST /v1/exemptions/{id}/revoke`: the covered results return at once.
    pub async fn revoke_exemption(
        &self,
        actor: &Actor,
        id: &str,
        input: DecisionInput,
    ) -> Result<Exemption> {
        self.decide_exemption(actor, id, input, ExemptionStatus::Revoked)
            .await
    }

    async fn decide_exemption(
        &self,
        actor: &Actor,
        id: &str,
        input: DecisionInput,
        to: ExemptionStatus,
    ) -> Result<Exemption> {
        let _guard = self.inner.ops.lock().await;
        let now = self.now();
        let mut exemption = self.exemption(id)?;
        Self::ensure_approver(actor, &exemption.requested_by)?;
        let (allowed_from, action, event) = match to {
            ExemptionStatus::Approved => {
                (ExemptionStatus::Pending, "approved", "exemption.approved")
            }
            ExemptionStatus::Denied => (ExemptionStatus::Pending, "denied", "exemption.denied"),
            ExemptionStatus::Revoked => (ExemptionStatus::Approved, "revoked", "exemption.revoked"),
            _ => return Err(EngineError::Internal("not a decision".into())),
        };
        if exemption.status != allowed_from {
            return Err(EngineError::Conflict(format!(
                "exemption {id} is {}; only a {} exemption can be {action}",
                status_word(exemption.status),
                status_word(allowed_from)
            )));
        }
        if to == ExemptionStatus::Approved && exemption.until <= now {
            return Err(EngineError::Conflict(format!(
                "exemption {id} ran until {}, which has passed; request a new one",
                exemption.until
            )));
        }
        if to == ExemptionStatus::Approved {
            // The bound may have been lowered since the request.
            check_until_bound(exemption.until, now, self.inner.config.exemptions.max_days)
                .map_err(|m| EngineError::Conflict(format!("exemption {id}: {m}")))?;
        }
        let entry = audit(actor, action, input.note);
        exemption.status = to;
        exemption.history.push(entry.clone());
        let mut batch = WriteBatch::new();
        batch.put_exemption(&exemption);
        batch.append_audit("exemption", id, &entry);
        let outcome = if to == ExemptionStatus::Denied {
            Vec::new()
        } else {
            let e = exemption.clone();
            self.evaluate_ids_with(&[exemption.entity.clone()], move |state, eid| {
                Inputs::gather(state, eid).map(|i| i.with_exemption(&e))
            })
            .await
        };
        let mut plan = self.plan_for(&outcome, now);
        {
            let state = self.read();
            plan.extend(super::actions::plan_exemption(
                &self.automation_context(&state),
                &state,
                &exemption,
                event,
                now,
            ));
        }
        super::pass::write_all(&outcome, &mut batch);
        plan.apply_to(&mut batch);
        self.commit(batch, Durability::Immediate).await?;
        {
            let mut state = self.write();
            state.put_exemption(exemption.clone());
            super::actions::apply_to_state(&plan, &mut state);
            Self::apply_outcome(&mut state, outcome);
        }
        self.inner.delivery.wake();
        Ok(exemption)
    }

    // ---- tier changes

    /// `POST /v1/tier-requests`. Every tier change goes through approval (see README).
    pub async fn request_tier_change(
        &self,
        actor: &Actor,
        input: TierRequestInput,
    ) -> Result<TierRequest> {
        let entity = self.effective_entity(&input.entity)?;
        self.ensure_owner(actor, &entity)?;
        if let Some(t) = input.to
            && !(1..=3).contains(&t)
        {
            return Err(EngineError::BadRequest(format!(
                "tier {t} is not 1, 2 or 3"
            )));
        }
        if input.to == entity.tier {
            return Err(EngineError::BadRequest(format!(
                "{} is already {}",
                entity.identifier,
                tier_word(entity.tier)
            )));
        }
        if input.reason.trim().is_empty() {
            return Err(EngineError::BadRequest(
                "a tier change needs a reason".into(),
            ));
        }
        let _guard = self.inner.ops.lock().await;
        if let Some(pending) = self
            .read()
            .tier_requests
            .values()
            .find(|r| r.entity == entity.identifier && r.status == TierRequestStatus::Pending)
        {
            return Err(EngineError::Conflict(format!(
                "{} already has a pending tier request ({})",
                entity.identifier, pending.id
            )));
        }
        let now = self.now();
        let entry = audit(actor, "requested", Some(input.reason.clone()));
        let request = TierRequest {
            id: new_id("tr"),
            entity: entity.identifier.clone(),
            from: entity.tier,
            to: input.to,
            reason: input.reason,
            requested_by: actor.name.clone(),
            requested_at: now,
            status: TierRequestStatus::Pending,
            history: vec![entry.clone()],
        };
        let mut batch = WriteBatch::new();
        batch.put_tier_request(&request);
        batch.append_audit("tier_request", &request.id, &entry);
        self.commit(batch, Durability::Immediate).await?;
        self.write()
            .tier_requests
            .insert(request.id.clone(), request.clone());
        Ok(request)
    }

    /// `POST /v1/tier-requests/{id}/approve`: the new tier applies at once.
    pub async fn approve_tier_request(
        &self,
        actor: &Actor,
        id: &str,
        input: DecisionInput,
    ) -> Result<TierRequest> {
        self.decide_tier_request(actor, id, input, true).await
    }

    /// `POST /v1/tier-requests/{id}/deny`.
    pub async fn deny_tier_request(
        &self,
        actor: &Actor,
        id: &str,
        input: DecisionInput,
    ) -> Result<TierRequest> {
        self.decide_tier_request(actor, id, input, false).await
    }

    async fn decide_tier_request(
        &self,
        actor: &Actor,
        id: &str,
        input: DecisionInput,
        approve: bool,
    ) -> Result<TierRequest> {
        let _guard = self.inner.ops.lock().await;
        let now = self.now();
        let mut request = self.tier_request(id)?;
        Self::ensure_approver(actor, &request.requested_by)?;
        if request.status != TierRequestStatus::Pending {
            return Err(EngineError::Conflict(format!(
                "tier request {id} is already {}",
                if request.status == TierRequestStatus::Approved {
                    "approved"
                } else {
                    "denied"
                }
            )));
        }
        let stored = self
            .read()
            .entities
            .get(&request.entity)
            .cloned()
            .ok_or_else(|| EngineError::Conflict(format!("{} no longer exists", request.entity)))?;
        let entry = audit(
            actor,
            if approve { "approved" } else { "denied" },
            input.note,
        );
        request.status = if approve {
            TierRequestStatus::Approved
        } else {
            TierRequestStatus::Denied
        };
        request.history.push(entry.clone());
        let mut batch = WriteBatch::new();
        batch.put_tier_request(&request);
        batch.append_audit("tier_request", id, &entry);
        let mut updated = stored.clone();
        let outcome = if approve {
            let o = TierOverride {
                tier: request.to,
                request_id: request.id.clone(),
                approved_at: now,
            };
            batch.set_tier_override(&request.entity, Some(&o));
            updated.tier_override = Some(o);
            let effective = updated.effective();
            self.evaluate_ids_with(&[request.entity.clone()], move |state, eid| {
                Inputs::gather(state, eid).map(|mut i| {
                    i.entity = effective.clone();
                    i
                })
            })
            .await
        } else {
            Vec::new()
        };
        // Tasks and alerts follow the new tier: the evaluated entity carries it.
        let mut plan = self.plan_for(&outcome, now);
        {
            let state = self.read();
            plan.extend(super::actions::plan_tier_decision(
                &self.automation_context(&state),
                &state,
                &request,
                now,
            ));
        }
        super::pass::write_all(&outcome, &mut batch);
        plan.apply_to(&mut batch);
        self.commit(batch, Durability::Immediate).await?;
        {
            let mut state = self.write();
            state
                .tier_requests
                .insert(request.id.clone(), request.clone());
            if approve {
                state.put_entity(updated);
            }
            super::actions::apply_to_state(&plan, &mut state);
            Self::apply_outcome(&mut state, outcome);
        }
        self.inner.delivery.wake();
        Ok(request)
    }
}

/// An exemption's `until` must be at most `max_days` ahead (config `exemptions.max_days`) and
/// printable as RFC 3339, which has four-digit years only: chrono reads `+10000-01-01` and
/// would print it back the same, which no RFC 3339 client parses.
fn check_until_bound(
    until: crate::model::Timestamp,
    now: crate::model::Timestamp,
    max_days: u32,
) -> std::result::Result<(), String> {
    use chrono::Datelike as _;
    if !(0..=9999).contains(&until.year()) {
        return Err(format!(
            "`until`: year {} cannot be written as RFC 3339 (years 0000-9999)",
            until.year()
        ));
    }
    // A bound past what chrono can represent bounds nothing.
    let latest = chrono::Duration::try_days(i64::from(max_days))
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(crate::model::Timestamp::MAX_UTC);
    if until > latest {
        return Err(format!(
            "`until` ({}) is more than {max_days} days ahead (exemptions.max_days); the latest \
             allowed now is {}",
            until.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            latest.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ));
    }
    Ok(())
}

fn status_word(s: ExemptionStatus) -> &'static str {
    match s {
        ExemptionStatus::Pending => "pending",
        ExemptionStatus::Approved => "approved",
        ExemptionStatus::Denied => "denied",
        ExemptionStatus::Revoked => "revoked",
        ExemptionStatus::Expired => "expired",
    }
}

fn tier_word(t: Option<u8>) -> String {
    t.map_or_else(|| "untiered".to_owned(), |t| format!("tier {t}"))
}

impl Engine {
    /// `GET /v1/initiatives`: progress of every initiative, overall and per team.
    pub fn initiatives(&self) -> Vec<serde_json::Value> {
        let state = self.read();
        super::actions::initiative_progress(&state.standards, &state, self.now())
            .into_iter()
            .filter_map(|p| serde_json::to_value(p).ok())
            .collect()
    }

    /// `GET /v1/initiatives/{id}`.
    pub fn initiative(&self, id: &str) -> Result<serde_json::Value> {
        self.initiatives()
            .into_iter()
            .find(|p| p["identifier"] == id)
            .ok_or_else(|| EngineError::NotFound(format!("no initiative `{id}`")))
    }

    /// `POST /v1/entities/{id}/nudge`: send the owner's channel a summary of what the entity
    /// misses. Answers the notifications queued.
    pub async fn nudge(&self, actor: &Actor, id: &str) -> Result<serde_json::Value> {
        let entity = self.effective_entity(id)?;
        self.ensure_owner(actor, &entity)?;
        let _guard = self.inner.ops.lock().await;
        let now = self.now();
        let plan = {
            let state = self.read();
            super::actions::plan_nudge(&self.automation_context(&state), &state, id, now)
        };
        let channels: Vec<String> = plan
            .notifications
            .iter()
            .map(|n| n.channel.clone())
            .collect();
        let message = plan.events.first().map(|e| e.message.clone());
        let mut batch = WriteBatch::new();
        plan.apply_to(&mut batch);
        batch.append_audit("entity", id, &audit(actor, "nudged", None));
        self.commit(batch, Durability::Immediate).await?;
        self.inner.delivery.wake();
        Ok(serde_json::json!({
            "entity": id,
            "channels": channels,
            "message": message,
        }))
    }
}
