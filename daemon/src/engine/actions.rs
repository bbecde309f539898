//! The seam between evaluation and automation: the engine hands automation's pure planners what
//! they read from the live state, and gets back an [`automation::Plan`] that it writes into the
//! same batch as the change that caused it, then reflects in the live state after the commit.

use std::sync::Arc;

use crate::automation::{self, AlertChange, Decision, EventKind, Plan, PlanContext};
use crate::clock::Clock;
use crate::config::Config;
use crate::model::{Exemption, TaskStatus, TierRequest, Timestamp};
use crate::standards::Standards;
use crate::store::{Store, WriterHandle};

use super::pass::Evaluated;
use super::state::State;

/// What automation needs to know besides the state.
pub struct Context<'a> {
    pub config: &'a Config,
    pub standards: &'a Arc<Standards>,
}

impl Context<'_> {
    fn plan_context(&self) -> PlanContext<'_> {
        PlanContext {
            config: self.config,
            standards: self.standards,
        }
    }
}

/// Tasks, events, alert state and notifications that follow from one entity's evaluation.
pub fn plan_evaluation(
    ctx: &Context<'_>,
    state: &State,
    evaluated: &Evaluated,
    now: Timestamp,
) -> Plan {
    let open_tasks = state.open_tasks_of(&evaluated.entity.identifier);
    let degraded = state.degraded_alerts.get(&evaluated.entity.identifier);
    automation::plan_evaluation(
        &automation::EvaluationChange {
            entity: &evaluated.entity,
            previous: &evaluated.previous,
            current: &evaluated.results,
            open_tasks: &open_tasks,
            degraded,
            now,
        },
        &ctx.plan_context(),
    )
}

/// Time-based transitions: overdue tasks, reminders, exemption expiry, initiative deadlines.
pub fn plan_tick(ctx: &Context<'_>, state: &State, store: &Store, now: Timestamp) -> Plan {
    let tasks: Vec<_> = state
        .tasks
        .values()
        .filter(|t| t.status != TaskStatus::Done)
        .cloned()
        .collect();
    let exemptions: Vec<Exemption> = state.exemptions.values().cloned().collect();
    let initiatives = initiative_progress(ctx.standards, state, now);
    let entity = |id: &str| state.effective.get(id).map(|e| (**e).clone());
    let reminded = |key: &[&str]| {
        store
            .alert_state::<serde_json::Value>(key)
            .ok()
            .flatten()
            .is_some()
    };
    automation::plan_tick(
        &automation::TickInput {
            now,
            tasks: &tasks,
            exemptions: &exemptions,
            initiatives: &initiatives,
            entity: &entity,
            reminded: &reminded,
        },
        &ctx.plan_context(),
    )
}

/// The event of an exemption request or decision.
pub fn plan_exemption(
    ctx: &Context<'_>,
    state: &State,
    exemption: &Exemption,
    kind: &str,
    now: Timestamp,
) -> Plan {
    let Some(entity) = state.effective.get(&exemption.entity) else {
        return Plan::default();
    };
    let kind = match kind {
        "exemption.requested" => EventKind::ExemptionRequested,
        "exemption.approved" => EventKind::ExemptionApproved,
        "exemption.denied" => EventKind::ExemptionDenied,
        _ => EventKind::ExemptionRevoked,
    };
    automation::plan_decision(
        Decision::Exemption { exemption, kind },
        entity,
        &ctx.plan_context(),
        now,
    )
}

/// The event of a tier request decision.
pub fn plan_tier_decision(
    ctx: &Context<'_>,
    state: &State,
    request: &TierRequest,
    now: Timestamp,
) -> Plan {
    let Some(entity) = state.effective.get(&request.entity) else {
        return Plan::default();
    };
    automation::plan_decision(
        Decision::TierRequest { request },
        entity,
        &ctx.plan_context(),
        now,
    )
}

/// A summary of what the entity misses, to its owner's channel.
pub fn plan_nudge(ctx: &Context<'_>, state: &State, id: &str, now: Timestamp) -> Plan {
    let Some(entity) = state.effective.get(id) else {
        return Plan::default();
    };
    let results = state.results.get(id).cloned().unwrap_or_default();
    let misses = crate::eval::tier_misses(entity, &results, ctx.standards);
    let open = state.open_tasks_of(id);
    let open: Vec<_> = open.into_iter().cloned().collect();
    automation::plan_nudge(entity, &misses, &open, &ctx.plan_context(), now)
}

/// Progress of every initiative.
pub fn initiative_progress(
    standards: &Standards,
    state: &State,
    now: Timestamp,
) -> Vec<automation::InitiativeProgress> {
    if standards.initiatives.is_empty() {
        return Vec::new();
    }
    let exemptions: Vec<Exemption> = state.exemptions.values().cloned().collect();
    let tasks: Vec<_> = state.tasks.values().cloned().collect();
    standards
        .initiatives
        .iter()
        .map(|initiative| {
            let in_scope = |e: &crate::model::Entity| {
                let facts: &crate::model::EntityFacts = state
                    .facts
                    .get(&e.identifier)
                    .map_or(&super::state::NO_FACTS, |f| f);
                crate::eval::initiative_applies(initiative, e, facts, now)
            };
            automation::progress(
                initiative,
                standards,
                state.effective.values().map(|e| e.as_ref()),
                &in_scope,
                &state.results,
                &exemptions,
                &tasks,
                now,
            )
        })
        .collect()
}

/// Reflect a committed plan in the live state.
pub fn apply_to_state(plan: &Plan, state: &mut State) {
    for task in &plan.tasks {
        state.put_task(task.clone());
    }
    for exemption in &plan.exemptions {
        state.put_exemption(exemption.clone());
    }
    for change in &plan.alert_changes {
        match change {
            AlertChange::Degraded { entity, alert } => {
                state.degraded_alerts.insert(entity.clone(), alert.clone());
            }
            AlertChange::Recovered { entity } => {
                state.degraded_alerts.remove(entity);
            }
            AlertChange::Reminded { .. } | AlertChange::Forget { .. } => {}
        }
    }
}

/// Start the outbox delivery worker.
pub fn spawn_delivery(
    store: Store,
    writer: WriterHandle,
    config: Config,
    net: crate::net::Net,
    clock: Clock,
    handle: automation::DeliveryHandle,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let delivery = automation::DeliveryConfig::from_config(&config, net);
    tokio::spawn(async move {
        let shutdown = async move {
            while !*stop.borrow() {
                if stop.changed().await.is_err() {
                    return;
                }
            }
        };
        automation::run_delivery(store, writer, delivery, clock, handle, shutdown).await;
    })
}
