//! Automation: readiness standards that drive action (DESIGN.md section 9).
//!
//! After every evaluation, on a periodic tick, and after each exemption or tier-request decision,
//! the engine asks this module what follows — events, tasks, tier alerts, reminders and
//! notifications — and commits the answer in the same write transaction as the change that
//! caused it. A separate worker then delivers the queued notifications from the durable outbox.
//!
//! - [`events`]: [`Event`] and the [`EventKind`]s (`rule.failed`, `entity.degraded`, ...), stable
//!   event ids and idempotency keys.
//! - [`plan`]: the pure planners [`plan_evaluation`], [`plan_tick`], [`plan_decision`],
//!   [`plan_nudge`] and their [`Plan`], which [`Plan::apply_to`] writes into a `WriteBatch`.
//! - [`routing`]: which channels receive an event (routes, team channels, tier alerts).
//! - [`render`]: Slack Block Kit, Teams Adaptive Card and generic webhook payloads.
//! - [`delivery`]: [`run_delivery`], the worker that POSTs outbox entries with retries, signatures
//!   and dead letters; [`DeliveryHandle`] wakes it.
//! - [`initiatives`]: [`progress`] of an initiative, overall and per team.
//!
//! Planning, routing, rendering and initiative progress never perform I/O and never read the
//! clock: they are functions of their arguments, unit-tested without a store or a network. Only
//! [`delivery`] talks to the network, and it reaches redb only through the store's API.

pub mod delivery;
pub mod events;
pub mod initiatives;
pub mod plan;
pub mod render;
pub mod routing;

#[cfg(test)]
mod tests;

pub use delivery::{DeliveryConfig, DeliveryHandle, run_delivery};
pub use events::{BlockingRule, EntitySummary, Event, EventKind};
pub use initiatives::{InitiativeProgress, InitiativeState, progress};
pub use plan::{
    AlertChange, Decision, DegradedAlert, EvaluationChange, Plan, PlanContext, Reminder, TickInput,
    degraded_key, outbox_message, plan_decision, plan_evaluation, plan_nudge, plan_tick,
};
