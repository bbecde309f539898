//! [`plan_evaluation`]: rule and level transitions, the tier alert, and the entity's tasks after
//! one evaluation.

use super::*;
use crate::automation::events::Who;

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
    pub open_tasks: &'a [&'a Task],
    /// Its stored tier alert (`store.alert_state(&degraded_key(id))`): set while degraded.
    pub degraded: Option<&'a DegradedAlert>,
    /// The evaluation's time.
    pub now: Timestamp,
}

/// Plan what follows from one entity's evaluation (see the module docs for the rules).
pub fn plan_evaluation(input: &EvaluationChange<'_>, ctx: &PlanContext<'_>) -> Plan {
    let entity = input.entity;
    let now = input.now;
    let standards = ctx.standards;
    let spec = standards.tiers.for_tier(entity.tier);
    let who = Who(entity);
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
            event.rule = Some(rule.rule.to_string());
            event.to_level = Some(current.level.to_string());
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
            event.from_level = Some(previous.level.to_string());
            event.to_level = Some(current.level.to_string());
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
    let who = Who(entity);

    // (scorecard, rule) → (rule result, deadline in days) for every required rule that fails.
    let mut needed: BTreeMap<(String, String), (&RuleResult, u32, String)> = BTreeMap::new();
    for (scorecard_id, level) in &spec.require {
        let Some(scorecard) = standards.scorecard(scorecard_id) else {
            continue;
        };
        let Some(required) = scorecard.level_index(level) else {
            continue;
        };
        let Some(result) = input.current.iter().find(|r| r.scorecard == scorecard_id) else {
            continue;
        };
        for r in result.rules.iter().filter(|r| failing(r.status)) {
            let Some(rule) = scorecard.rule(&r.rule) else {
                continue;
            };
            if rule.level_index <= required {
                let days = rule.due_days.unwrap_or(spec.task_due_days);
                needed.insert(
                    (scorecard_id.clone(), r.rule.to_string()),
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
                    let mut updated = (*task).clone();
                    updated.message = result.message.clone();
                    updated.team = entity.team.clone();
                    updated.title = title.clone();
                    plan.tasks.push(updated);
                }
            }
            None => {
                let mut done = (*task).clone();
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
    let rule = result.and_then(|r| r.rules.iter().find(|x| *x.rule == *task.rule));
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
