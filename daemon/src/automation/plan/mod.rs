//! Planning: the pure functions that decide, from a change, which events happen, which tasks
//! open, change or close, which alert state to keep, and which notifications to queue.
//!
//! The engine calls [`plan_evaluation`] after every evaluation of an entity, [`plan_tick`] on its
//! periodic tick, [`plan_decision`] after an exemption or tier-request transition and
//! [`plan_nudge`] on `POST /v1/entities/{id}/nudge`; it writes the resulting [`Plan`] into the
//! same write batch as the change itself ([`Plan::apply_to`]), so a notification is committed in
//! the same transaction as its cause (both or neither survive a crash), then wakes the delivery
//! worker. Planning never reads the clock, the store or the network: everything comes in through
//! its arguments, so the same inputs always give the same plan.
//!
//! Files: `evaluation.rs` ([`plan_evaluation`]), `tick.rs` ([`plan_tick`]), `decision.rs`
//! ([`plan_decision`], [`plan_nudge`]); this file holds [`Plan`], the alert-state keys and the
//! wording the planners share.
//!
//! Decisions:
//! - The first evaluation of a scorecard for an entity is a baseline: no `rule.*` or `level.*`
//!   events (a daemon starting on an existing catalog must not flood every channel). Tasks and
//!   the tier alert *are* planned on a baseline, since they describe the current state.
//! - `rule.failed`: a rule that was not failing (pass, warn, exempt, not_applicable) now fails or
//!   errors. `rule.passed`: a failing rule now counts as passed (pass, warn, exempt). A rule that
//!   stops applying is neither.
//! - Tasks exist only for rules the entity's tier requires: rules of a required scorecard, at the
//!   required level or below, that fail or error. One task per (entity, scorecard, rule) that is
//!   not done; its message and team follow the latest evaluation. Due date: now + the rule's
//!   `due_days`, else the tier's `task_due_days` (30 when the tier sets none). A task is done when
//!   the rule passes, is exempt, no longer applies, or is no longer required (tier lowered,
//!   scorecard or rule removed).
//! - The tier alert is edge-triggered with state: `entity.degraded` once when the entity falls
//!   below any requirement of its tier, `entity.recovered` once when it meets them all again. The
//!   state lives in the store's alert-state table under [`degraded_key`], so a service that stays
//!   degraded, a re-evaluation, or a restart never alerts again.
//! - Reminders fire once: `task.due_soon` within [`DUE_SOON`] of the due date (the task's
//!   `reminded` flag), `exemption.expiring_soon` within [`EXPIRING_SOON`] of `until` (marker
//!   [`exemption_reminder_key`]), `initiative.deadline_approaching` within
//!   [`DEADLINE_APPROACHING`] of the deadline while not done (marker
//!   [`initiative_reminder_key`], per deadline, so a moved deadline is announced again).
//! - Event ids hash the transition (a rule's `changed_at`, a task's id and step, an exemption's
//!   history length), so a replayed plan yields the same idempotency keys and the outbox drops the
//!   repeat.

use std::collections::{BTreeMap, BTreeSet};

use chrono::Duration;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::events::{
    BlockingRule, EntitySummary, Event, EventKind, entity_link, event_id, idempotency_key,
    initiative_link,
};
use super::initiatives::{InitiativeProgress, InitiativeState};
use super::render;
use super::routing;
use crate::config::{ChannelKind, Config};
use crate::eval::{self, TierMiss};
use crate::model::{
    AuditEntry, Entity, Exemption, ExemptionStatus, RuleResult, RuleStatus, ScorecardResult, Task,
    TaskStatus, TierRequest, TierRequestStatus, Timestamp,
};
use crate::standards::{Standards, TierSpec};
use crate::store::{OutboxMessage, WriteBatch};

/// How long before its due date a task gets its one reminder.
pub const DUE_SOON: Duration = Duration::days(2);
/// How long before `until` an approved exemption gets its one reminder.
pub const EXPIRING_SOON: Duration = Duration::days(3);
/// How long before its deadline an unfinished initiative is announced (once).
pub const DEADLINE_APPROACHING: Duration = Duration::days(14);
/// The actor recorded for transitions readyd makes itself.
pub const SYSTEM_ACTOR: &str = "readyd";

/// What planning reads besides the change itself.
#[derive(Clone, Copy, Debug)]
pub struct PlanContext<'a> {
    /// Routes, channels, teams and `public_url`.
    pub config: &'a Config,
    /// Scorecards (rule titles, levels, `due_days`) and the tier policy.
    pub standards: &'a Standards,
}

impl PlanContext<'_> {
    fn public_url(&self) -> &str {
        &self.config.public_url
    }
}

mod decision;
mod evaluation;
mod tick;

pub use decision::{Decision, plan_decision, plan_nudge};
pub use evaluation::{EvaluationChange, plan_evaluation};
pub use tick::{TickInput, plan_tick};

/// The stored tier alert of a degraded entity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DegradedAlert {
    /// When the `entity.degraded` alert went out.
    pub since: Timestamp,
    /// Its event id.
    pub event_id: String,
    /// The scorecards that were below their requirement then.
    pub scorecards: Vec<String>,
}

/// A stored "reminder sent" marker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reminder {
    pub at: Timestamp,
    pub event_id: String,
}

/// The alert-state key of an entity's tier alert. It starts with the entity id, so deleting the
/// entity deletes it.
pub fn degraded_key(entity: &str) -> [&str; 2] {
    [entity, "degraded"]
}

/// The alert-state key of an exemption's expiry reminder. `#` cannot start an entity id, so these
/// keys never fall in an entity's range.
pub fn exemption_reminder_key(exemption: &str) -> [&str; 3] {
    ["#exemption", exemption, "expiring_soon"]
}

/// The alert-state key of an initiative's deadline reminder (`deadline` as `YYYY-MM-DD`).
pub fn initiative_reminder_key<'a>(initiative: &'a str, deadline: &'a str) -> [&'a str; 3] {
    ["#initiative", initiative, deadline]
}

/// A change to the alert-state table.
#[derive(Clone, Debug, PartialEq)]
pub enum AlertChange {
    Degraded {
        entity: String,
        alert: DegradedAlert,
    },
    Recovered {
        entity: String,
    },
    Reminded {
        key: Vec<String>,
        reminder: Reminder,
    },
    Forget {
        key: Vec<String>,
    },
}

/// Everything one change leads to. Apply it with [`Plan::apply_to`] in the batch of the change.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// What happened, in order (also those no route sends anywhere).
    pub events: Vec<Event>,
    /// Tasks to create or update (a done task is one to update).
    pub tasks: Vec<Task>,
    /// Exemptions whose status readyd changed (expired), with their history entry appended.
    pub exemptions: Vec<Exemption>,
    /// Audit lines: (record kind, record id, entry).
    pub audit: Vec<(String, String, AuditEntry)>,
    /// Alert state to keep or forget.
    pub alert_changes: Vec<AlertChange>,
    /// One per (event, channel), rendered.
    pub notifications: Vec<OutboxMessage>,
}

impl Plan {
    /// Whether the plan changes nothing.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
            && self.tasks.is_empty()
            && self.exemptions.is_empty()
            && self.audit.is_empty()
            && self.alert_changes.is_empty()
            && self.notifications.is_empty()
    }

    /// Append `other`.
    pub fn extend(&mut self, other: Plan) {
        self.events.extend(other.events);
        self.tasks.extend(other.tasks);
        self.exemptions.extend(other.exemptions);
        self.audit.extend(other.audit);
        self.alert_changes.extend(other.alert_changes);
        self.notifications.extend(other.notifications);
    }

    /// The exemptions this plan expired (the engine re-evaluates their entities).
    pub fn expired_exemptions(&self) -> impl Iterator<Item = &Exemption> {
        self.exemptions
            .iter()
            .filter(|e| e.status == ExemptionStatus::Expired)
    }

    /// Add the plan's writes to `batch` (tasks, exemptions, audit lines, alert state, outbox).
    pub fn apply_to(&self, batch: &mut WriteBatch) {
        for task in &self.tasks {
            batch.put_task(task);
        }
        for exemption in &self.exemptions {
            batch.put_exemption(exemption);
        }
        for (kind, id, entry) in &self.audit {
            batch.append_audit(kind, id, entry);
        }
        for change in &self.alert_changes {
            match change {
                AlertChange::Degraded { entity, alert } => {
                    batch.put_alert_state(&degraded_key(entity), alert);
                }
                AlertChange::Recovered { entity } => {
                    batch.delete_alert_state(&degraded_key(entity));
                }
                AlertChange::Reminded { key, reminder } => {
                    let key: Vec<&str> = key.iter().map(String::as_str).collect();
                    batch.put_alert_state(&key, reminder);
                }
                AlertChange::Forget { key } => {
                    let key: Vec<&str> = key.iter().map(String::as_str).collect();
                    batch.delete_alert_state(&key);
                }
            }
        }
        for message in &self.notifications {
            batch.enqueue_outbox(message);
        }
    }

    /// Route `event`, render it for each channel, and record both.
    fn emit(&mut self, ctx: &PlanContext<'_>, event: Event, tier_alert: &[String]) {
        let channels = routing::channels_for(&event, ctx.config, tier_alert);
        self.queue(ctx, &event, &channels);
        self.events.push(event);
    }

    fn queue(&mut self, ctx: &PlanContext<'_>, event: &Event, channels: &[String]) {
        for name in channels {
            if let Some(channel) = ctx.config.channels.get(name) {
                self.notifications
                    .push(outbox_message(event, name, channel.kind, event.at));
            }
        }
    }
}

/// The outbox message of `event` for one channel: idempotency key
/// `hex(sha256(event.id ␀ channel))` and the payload rendered for the channel's kind.
pub fn outbox_message(
    event: &Event,
    channel: &str,
    kind: ChannelKind,
    created_at: Timestamp,
) -> OutboxMessage {
    let key = idempotency_key(&event.id, channel);
    OutboxMessage {
        id: event.id.clone(),
        payload: render::render(event, kind, channel, &key, created_at),
        idempotency_key: key,
        channel: channel.to_owned(),
        created_at,
    }
}

/// Whether a status is a failure the owner should act on (a check error included).
fn failing(status: RuleStatus) -> bool {
    matches!(status, RuleStatus::Fail | RuleStatus::Error)
}

/// The blocking rules of an evaluator miss, with their titles.
fn miss_blocking(standards: &Standards, miss: &TierMiss) -> Vec<BlockingRule> {
    miss.blocking_rules
        .iter()
        .map(|(rule, status, message)| BlockingRule {
            scorecard: miss.scorecard.clone(),
            rule: rule.clone(),
            title: rule_title(standards, &miss.scorecard, rule),
            status: *status,
            message: message.clone(),
        })
        .collect()
}

/// The misses as JSON for `Event::data`.
fn misses_data(standards: &Standards, misses: &[TierMiss]) -> serde_json::Value {
    misses
        .iter()
        .map(|m| {
            json!({
                "scorecard": m.scorecard,
                "required_level": m.required_level,
                "reached_level": m.reached_level,
                "blocking": miss_blocking(standards, m),
            })
        })
        .collect()
}

/// Rules of `result` at level `up_to` or below that do not count as passed.
fn blocking_rules(
    standards: &Standards,
    result: &ScorecardResult,
    up_to: usize,
) -> Vec<BlockingRule> {
    let scorecard = standards.scorecard(&result.scorecard);
    result
        .rules
        .iter()
        .filter(|r| r.status.is_applicable() && !r.status.counts_as_passed())
        .filter(|r| {
            scorecard
                .and_then(|s| s.level_index(&r.level))
                .is_none_or(|i| i <= up_to)
        })
        .map(|r| blocking_rule(standards, &result.scorecard, r))
        .collect()
}

fn blocking_rule(standards: &Standards, scorecard: &str, r: &RuleResult) -> BlockingRule {
    BlockingRule {
        scorecard: scorecard.to_owned(),
        rule: r.rule.to_string(),
        title: rule_title(standards, scorecard, &r.rule),
        status: r.status,
        message: r.message.clone(),
    }
}

fn rule_title(standards: &Standards, scorecard: &str, rule: &str) -> String {
    standards
        .scorecard(scorecard)
        .and_then(|s| s.rule(rule))
        .map(|r| r.title.clone())
        .unwrap_or_else(|| rule.to_owned())
}

fn describe_blocking(blocking: &[BlockingRule]) -> String {
    if blocking.is_empty() {
        return "no rule failing (a rule is missing a result)".to_owned();
    }
    blocking
        .iter()
        .map(BlockingRule::describe)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `below Gold on production-readiness: blocking has-oncall (…); below Silver on …`
fn describe_misses(standards: &Standards, misses: &[TierMiss]) -> String {
    misses
        .iter()
        .map(|m| {
            format!(
                "below {} on {}: blocking {}",
                m.required_level,
                m.scorecard,
                describe_blocking(&miss_blocking(standards, m))
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// An event about `entity` with every optional field empty.
fn entity_event(
    ctx: &PlanContext<'_>,
    kind: EventKind,
    entity: &Entity,
    at: Timestamp,
    id_parts: &[&str],
    message: String,
) -> Event {
    let mut parts = vec![entity.identifier.as_str()];
    parts.extend_from_slice(id_parts);
    Event {
        id: event_id(kind, &parts),
        kind,
        at,
        entity: Some(EntitySummary::of(entity)),
        team: entity.team.clone(),
        scorecard: None,
        rule: None,
        from_level: None,
        to_level: None,
        blocking: Vec::new(),
        message,
        link: entity_link(ctx.public_url(), &entity.identifier),
        data: json!({}),
    }
}

/// The task's id: derived from what it is about and when it opened, so a replayed plan creates
/// the same task.
fn task_id(entity: &str, scorecard: &str, rule: &str, created_at: Timestamp) -> String {
    let id = event_id(
        EventKind::TaskCreated,
        &[entity, scorecard, rule, &created_at.to_rfc3339()],
    );
    // "task.created:<32 hex>" → "t-<16 hex>": short enough for URLs and chat.
    format!("t-{}", &id["task.created:".len()..][..16])
}

fn task_data(task: &Task) -> serde_json::Value {
    json!({ "task": task })
}

fn task_subject(task: &Task) -> String {
    format!("\"{}\" ({}/{})", task.title, task.scorecard, task.rule)
}

fn exemption_event(
    ctx: &PlanContext<'_>,
    kind: EventKind,
    exemption: &Exemption,
    entity: &Entity,
    now: Timestamp,
) -> Event {
    let who = EntitySummary::of(entity).describe();
    let what = match &exemption.rule {
        Some(rule) => format!("{}/{rule}", exemption.scorecard),
        None => format!("all rules of {}", exemption.scorecard),
    };
    let last = exemption.history.last();
    let by = last
        .map(|h| h.actor.as_str())
        .unwrap_or(&exemption.requested_by);
    let note = last
        .and_then(|h| h.note.as_deref())
        .map(|n| format!(": {n}"))
        .unwrap_or_default();
    let until = exemption.until.format("%Y-%m-%d");
    let message = match kind {
        EventKind::ExemptionRequested => format!(
            "{who}: {} asks for an exemption from {what} until {until}: {}",
            exemption.requested_by, exemption.reason
        ),
        EventKind::ExemptionApproved => {
            format!("{who}: exemption from {what} approved by {by} until {until}{note}")
        }
        EventKind::ExemptionDenied => {
            format!("{who}: exemption from {what} denied by {by}{note}")
        }
        EventKind::ExemptionRevoked => {
            format!("{who}: exemption from {what} revoked by {by}{note}")
        }
        EventKind::ExemptionExpiringSoon => format!(
            "{who}: exemption from {what} ends {}; the rule counts again after that",
            exemption.until.format("%Y-%m-%d %H:%M UTC")
        ),
        _ => format!("{who}: exemption from {what} expired on {until}; the rule counts again"),
    };
    let history = exemption.history.len().to_string();
    let status = serde_json::to_value(exemption.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let parts: Vec<&str> = match kind {
        // Once per exemption and `until`, whatever its history.
        EventKind::ExemptionExpiringSoon => vec![&exemption.id, "expiring_soon"],
        _ => vec![&exemption.id, &status, &history],
    };
    let mut event = entity_event(ctx, kind, entity, now, &parts, message);
    event.scorecard = Some(exemption.scorecard.clone());
    event.rule = exemption.rule.clone();
    event.data = json!({ "exemption": exemption });
    event
}
