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

/// One entity's evaluation, as [`plan_evaluation`] needs it.
#[derive(Clone, Copy, Debug)]
pub struct EvaluationChange<'a> {
    /// The entity, with its effective tier (an approved tier change applied).
    pub entity: &'a Entity,
    /// Its results before this evaluation (empty on the first one).
    pub previous: &'a [ScorecardResult],
    /// Its complete results now: every scorecard that applies to it.
    pub current: &'a [ScorecardResult],
    /// Its tasks that are not done (open or overdue).
    pub open_tasks: &'a [Task],
    /// Its stored tier alert (`store.alert_state(&degraded_key(id))`): set while degraded.
    pub degraded: Option<&'a DegradedAlert>,
    /// The evaluation's time.
    pub now: Timestamp,
}

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
        rule: r.rule.clone(),
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

/// Plan what follows from one entity's evaluation (see the module docs for the rules).
pub fn plan_evaluation(input: &EvaluationChange<'_>, ctx: &PlanContext<'_>) -> Plan {
    let entity = input.entity;
    let now = input.now;
    let standards = ctx.standards;
    let spec = standards.tiers.for_tier(entity.tier);
    let who = EntitySummary::of(entity).describe();
    let mut plan = Plan::default();

    // Rule and level transitions against the previous results.
    for current in input.current {
        let Some(previous) = input
            .previous
            .iter()
            .find(|p| p.scorecard == current.scorecard)
        else {
            continue;
        };
        let scorecard = current.scorecard.as_str();
        for rule in &current.rules {
            let Some(before) = previous.rules.iter().find(|r| r.rule == rule.rule) else {
                continue;
            };
            let kind = if !failing(before.status) && failing(rule.status) {
                EventKind::RuleFailed
            } else if failing(before.status) && rule.status.counts_as_passed() {
                EventKind::RulePassed
            } else {
                continue;
            };
            let blocking = blocking_rule(standards, scorecard, rule);
            let message = match kind {
                EventKind::RuleFailed => {
                    format!("{who} now fails {} on {scorecard}", blocking.describe())
                }
                _ => format!(
                    "{who} passes {} on {scorecard} again ({})",
                    rule.rule,
                    rule.status.as_str()
                ),
            };
            let mut event = entity_event(
                ctx,
                kind,
                entity,
                now,
                &[scorecard, &rule.rule, &rule.changed_at.to_rfc3339()],
                message,
            );
            event.scorecard = Some(scorecard.to_owned());
            event.rule = Some(rule.rule.clone());
            event.to_level = Some(current.level.clone());
            event.data = json!({
                "from_status": before.status,
                "to_status": rule.status,
                "rule_title": blocking.title,
            });
            if kind == EventKind::RuleFailed {
                event.blocking = vec![blocking];
            }
            plan.emit(ctx, event, &[]);
        }
        if previous.level_index != current.level_index {
            let improved = current.level_index > previous.level_index;
            let kind = if improved {
                EventKind::LevelImproved
            } else {
                EventKind::LevelDegraded
            };
            let blocking = if improved {
                Vec::new()
            } else {
                blocking_rules(standards, current, previous.level_index)
            };
            let mut message = format!(
                "{who} {} from {} to {} on {scorecard}",
                if improved { "rose" } else { "dropped" },
                previous.level,
                current.level
            );
            if !improved {
                message.push_str(&format!(": blocking {}", describe_blocking(&blocking)));
            }
            let mut event = entity_event(
                ctx,
                kind,
                entity,
                now,
                &[
                    scorecard,
                    &previous.level_index.to_string(),
                    &current.level_index.to_string(),
                    &current.evaluated_at.to_rfc3339(),
                ],
                message,
            );
            event.scorecard = Some(scorecard.to_owned());
            event.from_level = Some(previous.level.clone());
            event.to_level = Some(current.level.clone());
            event.blocking = blocking;
            event.data =
                json!({ "percent": current.percent, "previous_percent": previous.percent });
            plan.emit(ctx, event, &[]);
        }
    }

    // The tier alert, edge-triggered on the stored state.
    let misses = eval::tier_misses(entity, input.current, standards);
    match (misses.is_empty(), input.degraded) {
        (false, None) => {
            let scorecards: Vec<String> = misses.iter().map(|m| m.scorecard.clone()).collect();
            let message = format!("{who} fell {}", describe_misses(standards, &misses));
            let mut event = entity_event(
                ctx,
                EventKind::EntityDegraded,
                entity,
                now,
                &[&now.to_rfc3339()],
                message,
            );
            event.scorecard = scorecards.first().cloned();
            event.from_level = misses.first().map(|m| m.required_level.clone());
            event.to_level = misses.first().map(|m| m.reached_level.clone());
            event.blocking = misses
                .iter()
                .flat_map(|m| miss_blocking(standards, m))
                .collect();
            event.data =
                json!({ "tier_name": spec.name, "misses": misses_data(standards, &misses) });
            plan.alert_changes.push(AlertChange::Degraded {
                entity: entity.identifier.clone(),
                alert: DegradedAlert {
                    since: now,
                    event_id: event.id.clone(),
                    scorecards,
                },
            });
            plan.emit(ctx, event, &spec.alert);
        }
        (true, Some(alert)) => {
            let message = format!(
                "{who} meets its tier requirement again ({}), degraded since {}",
                describe_requirement(spec),
                alert.since.format("%Y-%m-%d %H:%M UTC")
            );
            let mut event = entity_event(
                ctx,
                EventKind::EntityRecovered,
                entity,
                now,
                &[&alert.event_id],
                message,
            );
            event.scorecard = alert.scorecards.first().cloned();
            event.data = json!({
                "tier_name": spec.name,
                "degraded_since": alert.since,
                "require": spec.require,
            });
            plan.alert_changes.push(AlertChange::Recovered {
                entity: entity.identifier.clone(),
            });
            plan.emit(ctx, event, &spec.alert);
        }
        _ => {}
    }

    plan_tasks(input, ctx, spec, &mut plan);
    plan
}

fn describe_requirement(spec: &TierSpec) -> String {
    if spec.require.is_empty() {
        return "nothing required".to_owned();
    }
    spec.require
        .iter()
        .map(|(scorecard, level)| format!("{scorecard} {level}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Open, update and close the entity's tasks.
fn plan_tasks(
    input: &EvaluationChange<'_>,
    ctx: &PlanContext<'_>,
    spec: &TierSpec,
    plan: &mut Plan,
) {
    let entity = input.entity;
    let now = input.now;
    let standards = ctx.standards;
    let who = EntitySummary::of(entity).describe();

    // (scorecard, rule) → (rule result, deadline in days) for every required rule that fails.
    let mut needed: BTreeMap<(String, String), (&RuleResult, u32, String)> = BTreeMap::new();
    for (scorecard_id, level) in &spec.require {
        let Some(scorecard) = standards.scorecard(scorecard_id) else {
            continue;
        };
        let Some(required) = scorecard.level_index(level) else {
            continue;
        };
        let Some(result) = input.current.iter().find(|r| &r.scorecard == scorecard_id) else {
            continue;
        };
        for r in result.rules.iter().filter(|r| failing(r.status)) {
            let Some(rule) = scorecard.rule(&r.rule) else {
                continue;
            };
            if rule.level_index <= required {
                let days = rule.due_days.unwrap_or(spec.task_due_days);
                needed.insert(
                    (scorecard_id.clone(), r.rule.clone()),
                    (r, days, rule.title.clone()),
                );
            }
        }
    }

    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    for task in input
        .open_tasks
        .iter()
        .filter(|t| t.status != TaskStatus::Done)
    {
        let key = (task.scorecard.clone(), task.rule.clone());
        if !seen.insert(key.clone()) {
            // The store keeps one open task per rule; a second one here is stale input.
            continue;
        }
        match needed.get(&key) {
            Some((result, _, title)) => {
                if task.message != result.message
                    || task.team != entity.team
                    || &task.title != title
                {
                    let mut updated = task.clone();
                    updated.message = result.message.clone();
                    updated.team = entity.team.clone();
                    updated.title = title.clone();
                    plan.tasks.push(updated);
                }
            }
            None => {
                let mut done = task.clone();
                done.status = TaskStatus::Done;
                done.closed_at = Some(now);
                done.team = entity.team.clone();
                let reason = done_reason(input.current, standards, spec, task);
                let mut event = entity_event(
                    ctx,
                    EventKind::TaskDone,
                    entity,
                    now,
                    &[&task.id, "done"],
                    format!("{who}: task {} is done: {reason}", task_subject(task)),
                );
                event.scorecard = Some(task.scorecard.clone());
                event.rule = Some(task.rule.clone());
                event.data = json!({ "task": done, "reason": reason });
                plan.tasks.push(done);
                plan.emit(ctx, event, &[]);
            }
        }
    }

    for ((scorecard, rule), (result, days, title)) in needed {
        if seen.contains(&(scorecard.clone(), rule.clone())) {
            continue;
        }
        let task = Task {
            id: task_id(&entity.identifier, &scorecard, &rule, now),
            entity: entity.identifier.clone(),
            team: entity.team.clone(),
            scorecard: scorecard.clone(),
            rule: rule.clone(),
            title,
            message: result.message.clone(),
            created_at: now,
            due: now + Duration::days(i64::from(days)),
            status: TaskStatus::Open,
            closed_at: None,
            reminded: false,
        };
        let blocking = blocking_rule(standards, &scorecard, result);
        let mut event = entity_event(
            ctx,
            EventKind::TaskCreated,
            entity,
            now,
            &[&task.id],
            format!(
                "{who}: new task {}, due {}: {}",
                task_subject(&task),
                task.due.format("%Y-%m-%d"),
                blocking.describe()
            ),
        );
        event.scorecard = Some(scorecard);
        event.rule = Some(rule);
        event.blocking = vec![blocking];
        event.data = task_data(&task);
        plan.tasks.push(task);
        plan.emit(ctx, event, &[]);
    }
}

/// Why an open task is no longer needed, in words.
fn done_reason(
    current: &[ScorecardResult],
    standards: &Standards,
    spec: &TierSpec,
    task: &Task,
) -> String {
    let result = current.iter().find(|r| r.scorecard == task.scorecard);
    let rule = result.and_then(|r| r.rules.iter().find(|x| x.rule == task.rule));
    match rule.map(|r| r.status) {
        Some(RuleStatus::Pass | RuleStatus::Warn) => "the rule passes".to_owned(),
        Some(RuleStatus::Exempt) => "the rule is exempt".to_owned(),
        Some(RuleStatus::NotApplicable) => "the rule no longer applies".to_owned(),
        _ if standards.scorecard(&task.scorecard).is_none() => "the scorecard was removed".into(),
        _ if !spec.require.contains_key(&task.scorecard) => {
            "the tier no longer requires this scorecard".into()
        }
        None if result.is_none() => "the scorecard no longer applies".to_owned(),
        None => "the rule was removed".to_owned(),
        Some(_) => "the tier no longer requires this rule's level".to_owned(),
    }
}

/// What [`plan_tick`] reads.
pub struct TickInput<'a> {
    pub now: Timestamp,
    /// Tasks that are not done.
    pub tasks: &'a [Task],
    /// Exemptions; only approved ones matter.
    pub exemptions: &'a [Exemption],
    /// Progress of every initiative at `now`.
    pub initiatives: &'a [InitiativeProgress],
    /// The entity with this id (effective tier), if it exists.
    pub entity: &'a dyn Fn(&str) -> Option<Entity>,
    /// Whether the alert-state marker at this key exists (`store.alert_state::<Reminder>`).
    pub reminded: &'a dyn Fn(&[&str]) -> bool,
}

impl std::fmt::Debug for TickInput<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TickInput")
            .field("now", &self.now)
            .field("tasks", &self.tasks.len())
            .field("exemptions", &self.exemptions.len())
            .field("initiatives", &self.initiatives.len())
            .finish_non_exhaustive()
    }
}

/// Plan the time-based transitions at `input.now`: overdue tasks and due-soon reminders,
/// exemption reminders and expiry, initiative deadline reminders. Expired exemptions come back
/// in `plan.exemptions` (status `expired`, audit line appended): the engine commits them and
/// re-evaluates their entities.
pub fn plan_tick(input: &TickInput<'_>, ctx: &PlanContext<'_>) -> Plan {
    let now = input.now;
    let mut plan = Plan::default();
    let unknown = |id: &str| Entity {
        identifier: id.to_owned(),
        kind: "unknown".into(),
        title: id.to_owned(),
        team: None,
        tier: None,
        properties: Default::default(),
        relations: Default::default(),
    };

    for task in input.tasks {
        let entity = (input.entity)(&task.entity).unwrap_or_else(|| unknown(&task.entity));
        let who = EntitySummary::of(&entity).describe();
        let (kind, step) = match task.status {
            TaskStatus::Open if now >= task.due => (EventKind::TaskOverdue, "overdue"),
            TaskStatus::Open if !task.reminded && task.due - now <= DUE_SOON => {
                (EventKind::TaskDueSoon, "due_soon")
            }
            _ => continue,
        };
        let mut updated = task.clone();
        // A task that turns overdue without a reminder needs none any more.
        updated.reminded = true;
        let message = if kind == EventKind::TaskOverdue {
            updated.status = TaskStatus::Overdue;
            format!(
                "{who}: task {} is overdue (due {}){}",
                task_subject(task),
                task.due.format("%Y-%m-%d"),
                task.message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            )
        } else {
            format!(
                "{who}: task {} is due {}{}",
                task_subject(task),
                task.due.format("%Y-%m-%d %H:%M UTC"),
                task.message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            )
        };
        let mut event = entity_event(ctx, kind, &entity, now, &[&task.id, step], message);
        event.team = task.team.clone().or(entity.team.clone());
        event.scorecard = Some(task.scorecard.clone());
        event.rule = Some(task.rule.clone());
        event.data = task_data(&updated);
        plan.tasks.push(updated);
        plan.emit(ctx, event, &[]);
    }

    for exemption in input
        .exemptions
        .iter()
        .filter(|e| e.status == ExemptionStatus::Approved)
    {
        let entity =
            (input.entity)(&exemption.entity).unwrap_or_else(|| unknown(&exemption.entity));
        let marker = exemption_reminder_key(&exemption.id);
        if now >= exemption.until {
            let mut expired = exemption.clone();
            expired.status = ExemptionStatus::Expired;
            let entry = AuditEntry {
                actor: SYSTEM_ACTOR.to_owned(),
                action: "expired".to_owned(),
                at: now,
                note: None,
            };
            expired.history.push(entry.clone());
            plan.audit
                .push(("exemption".to_owned(), exemption.id.clone(), entry));
            plan.alert_changes.push(AlertChange::Forget {
                key: marker.iter().map(|s| (*s).to_owned()).collect(),
            });
            let event = exemption_event(ctx, EventKind::ExemptionExpired, &expired, &entity, now);
            plan.exemptions.push(expired);
            plan.emit(ctx, event, &[]);
        } else if exemption.until - now <= EXPIRING_SOON && !(input.reminded)(&marker) {
            let event = exemption_event(
                ctx,
                EventKind::ExemptionExpiringSoon,
                exemption,
                &entity,
                now,
            );
            plan.alert_changes.push(AlertChange::Reminded {
                key: marker.iter().map(|s| (*s).to_owned()).collect(),
                reminder: Reminder {
                    at: now,
                    event_id: event.id.clone(),
                },
            });
            plan.emit(ctx, event, &[]);
        }
    }

    for progress in input.initiatives {
        if progress.state == InitiativeState::Done {
            continue;
        }
        let deadline = progress.deadline_at();
        let date = progress.deadline.to_string();
        let marker = initiative_reminder_key(&progress.identifier, &date);
        if now >= deadline || deadline - now > DEADLINE_APPROACHING || (input.reminded)(&marker) {
            continue;
        }
        let days = (deadline - now).num_days();
        let message = format!(
            "Initiative \"{}\" ({}) is due {date} ({days} days left): {} of {} entities meet its \
             targets ({:.0}%), {}",
            progress.title,
            progress.identifier,
            progress.overall.meeting,
            progress.overall.total,
            progress.overall.percent,
            progress.state.as_str().replace('_', " ")
        );
        let event = Event {
            id: event_id(
                EventKind::InitiativeDeadlineApproaching,
                &[&progress.identifier, &date],
            ),
            kind: EventKind::InitiativeDeadlineApproaching,
            at: now,
            entity: None,
            team: Some(progress.owner.clone()),
            scorecard: None,
            rule: None,
            from_level: None,
            to_level: None,
            blocking: Vec::new(),
            message,
            link: initiative_link(ctx.public_url(), &progress.identifier),
            data: json!({
                "initiative": {
                    "identifier": progress.identifier,
                    "title": progress.title,
                    "owner": progress.owner,
                    "deadline": progress.deadline,
                    "state": progress.state,
                    "overall": progress.overall,
                    "teams": progress.teams,
                }
            }),
        };
        plan.alert_changes.push(AlertChange::Reminded {
            key: marker.iter().map(|s| (*s).to_owned()).collect(),
            reminder: Reminder {
                at: now,
                event_id: event.id.clone(),
            },
        });
        plan.emit(ctx, event, &[]);
    }
    plan
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

/// A person's decision (or request) that automation announces.
#[derive(Clone, Copy, Debug)]
pub enum Decision<'a> {
    /// An exemption after the transition; `kind` is one of `exemption.requested`,
    /// `exemption.approved`, `exemption.denied`, `exemption.revoked`.
    Exemption {
        exemption: &'a Exemption,
        kind: EventKind,
    },
    /// A tier request after its approval or denial.
    TierRequest { request: &'a TierRequest },
}

/// Plan the events of a request or decision about `entity` (effective tier) at `now`.
pub fn plan_decision(
    decision: Decision<'_>,
    entity: &Entity,
    ctx: &PlanContext<'_>,
    now: Timestamp,
) -> Plan {
    let mut plan = Plan::default();
    let event = match decision {
        Decision::Exemption { exemption, kind } => {
            exemption_event(ctx, kind, exemption, entity, now)
        }
        Decision::TierRequest { request } => {
            let who = EntitySummary::of(entity).describe();
            let tier = |t: Option<u8>| t.map_or("untiered".to_owned(), |t| format!("Tier {t}"));
            let last = request.history.last();
            let by = last.map(|h| h.actor.as_str()).unwrap_or("?");
            let note = last
                .and_then(|h| h.note.as_deref())
                .map(|n| format!(": {n}"))
                .unwrap_or_default();
            let verdict = match request.status {
                TierRequestStatus::Approved => "approved",
                TierRequestStatus::Denied => "denied",
                TierRequestStatus::Pending => "pending",
            };
            let message = format!(
                "{who}: tier change from {} to {} {verdict} by {by}{note} (asked by {}: {})",
                tier(request.from),
                tier(request.to),
                request.requested_by,
                request.reason
            );
            let history = request.history.len().to_string();
            let mut event = entity_event(
                ctx,
                EventKind::TierRequestDecided,
                entity,
                now,
                &[&request.id, verdict, &history],
                message,
            );
            event.data = json!({ "tier_request": request, "decision": verdict });
            event
        }
    };
    plan.emit(ctx, event, &[]);
    plan
}

/// Plan a nudge: one `entity.nudge` event summarising what `entity` misses for its tier
/// (`eval::tier_misses` of its current results) and its open tasks, sent to the owning team's channel (`teams.<team>.channel`) and to every route that
/// selects `entity.nudge`. Each nudge is a new event (its id includes `now`).
pub fn plan_nudge(
    entity: &Entity,
    misses: &[TierMiss],
    open_tasks: &[Task],
    ctx: &PlanContext<'_>,
    now: Timestamp,
) -> Plan {
    let who = EntitySummary::of(entity).describe();
    let open: Vec<&Task> = open_tasks
        .iter()
        .filter(|t| t.status != TaskStatus::Done && t.entity == entity.identifier)
        .collect();
    let overdue = open
        .iter()
        .filter(|t| t.status == TaskStatus::Overdue)
        .count();
    let mut message = if misses.is_empty() {
        format!("{who} meets its tier requirement")
    } else {
        format!("{who} is {}", describe_misses(ctx.standards, misses))
    };
    if !open.is_empty() {
        let next_due = open.iter().map(|t| t.due).min().unwrap_or(now);
        message.push_str(&format!(
            ". {} open task{} ({overdue} overdue), next due {}",
            open.len(),
            if open.len() == 1 { "" } else { "s" },
            next_due.format("%Y-%m-%d")
        ));
    }
    let mut event = entity_event(
        ctx,
        EventKind::EntityNudge,
        entity,
        now,
        &[&now.to_rfc3339()],
        message,
    );
    event.scorecard = misses.first().map(|m| m.scorecard.clone());
    event.blocking = misses
        .iter()
        .flat_map(|m| miss_blocking(ctx.standards, m))
        .collect();
    event.data = json!({ "misses": misses_data(ctx.standards, misses), "open_tasks": open });
    let mut channels: Vec<String> = routing::team_channel(ctx.config, &event)
        .map(str::to_owned)
        .into_iter()
        .collect();
    for channel in routing::channels_for(&event, ctx.config, &[]) {
        if !channels.contains(&channel) {
            channels.push(channel);
        }
    }
    let mut plan = Plan::default();
    plan.queue(ctx, &event, &channels);
    plan.events.push(event);
    plan
}
