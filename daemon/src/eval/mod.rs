//! The pure evaluator: (entity, facts, standards, exemptions, check outcomes, clock) → results.
//!
//! Main entry points: [`evaluate_scorecard`] (one scorecard for one entity), [`evaluate_entity`]
//! (every scorecard), [`applies`] and [`checks_needed`] (what the engine must run first), and
//! [`tier_misses`] (what the deploy gate and `readyd eval --check-tiers` report).
//!
//! This module must never do I/O, read the clock, call a plugin or log: `now` and the check
//! plugins' outcomes are inputs, so that `readyd eval` and the daemon give the same results for
//! the same inputs (DESIGN.md §2). It is also the hot path of every pass: passing rules allocate
//! nothing but their [`RuleResult`], and messages are built only for rules that do not pass.
//!
//! Semantics (DESIGN.md §3):
//! - Levels are cumulative. The first level holds no rules and is reached by every entity the
//!   scorecard applies to; level L is reached when every applicable rule of L and of every level
//!   below counts as passed; a level with no rules is reached as soon as every level below is.
//! - `pass`, `warn` and `exempt` count as passed; `fail` and `error` do not; `not_applicable`
//!   (the rule's own filter excludes the entity) is ignored.
//! - `percent` = passed / applicable × 100, `score` = the same weighted by `weight`; both are
//!   100 when no rule applies.
//! - Missing data fails every condition except `isEmpty` (see [`condition`]).
//!
//! Decisions where DESIGN.md is silent:
//! - Exemptions: an in-force exemption (approved, `now` before `until`) that covers the rule turns
//!   a `fail` or `error` into `exempt`, with a message saying until when and what the result would
//!   be without it. A rule that counts as passed anyway (`pass`, `warn`) keeps its own status, so
//!   the exemption never hides a warning or claims credit for a passing rule; `not_applicable`
//!   stays too.
//! - A check rule whose outcome is not among the [`CheckResults`] is an `error` ("not run"), so a
//!   missing plugin is never blamed on the service owner as a `fail`. A plugin that answers
//!   `exempt` (only exemptions may) is an `error` too.
//! - `changed_at` is carried from the previous result of the same (entity, scorecard, rule) when
//!   its status is unchanged, else it is `now`.
//! - [`tier_misses`]: a scorecard the tier requires but which does not apply to the entity (no
//!   result for it) is not a miss; an entity whose tier has no entry in the policy uses the
//!   untiered policy.

mod condition;
pub mod prefetch;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::{
    CheckOutcome, Entity, EntityFacts, Exemption, RuleResult, RuleStatus, ScorecardResult,
    Timestamp,
};
use crate::standards::{Initiative, Query, Rule, Scorecard, Standards};
use condition::Subject;
pub(crate) use condition::requirement;

/// Everything one evaluation reads. `now` is the evaluation clock: presets such as `lastWeek`,
/// exemption expiry and the result times all use it.
pub struct EvalInput<'a> {
    pub entity: &'a Entity,
    pub facts: &'a EntityFacts,
    /// Exemptions of this entity (others are ignored by [`Exemption::covers`]).
    pub exemptions: &'a [Exemption],
    pub now: Timestamp,
    /// Outcomes of the check plugins for this entity.
    pub checks: &'a dyn CheckResults,
    /// The previous result of the scorecard being evaluated, to carry `changed_at`. Ignored when it
    /// belongs to another entity or scorecard.
    pub previous: Option<&'a ScorecardResult>,
}

/// Outcomes of check plugins for one entity, by (scorecard, rule).
pub trait CheckResults {
    fn get(&self, scorecard: &str, rule: &str) -> Option<&CheckOutcome>;
}

/// No check was run.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoChecks;

impl CheckResults for NoChecks {
    fn get(&self, _scorecard: &str, _rule: &str) -> Option<&CheckOutcome> {
        None
    }
}

/// Scorecard → rule → outcome.
impl CheckResults for BTreeMap<String, BTreeMap<String, CheckOutcome>> {
    fn get(&self, scorecard: &str, rule: &str) -> Option<&CheckOutcome> {
        self.get(scorecard)?.get(rule)
    }
}

/// Why an entity falls short of what its tier requires on one scorecard.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TierMiss {
    pub scorecard: String,
    /// Title of the level the tier requires.
    pub required_level: String,
    pub required_index: usize,
    /// Title of the level reached.
    pub reached_level: String,
    pub reached_index: usize,
    /// The applicable rules at or below the required level that do not count as passed:
    /// (rule, status, message).
    pub blocking_rules: Vec<(String, RuleStatus, Option<String>)>,
}

fn subject<'a>(entity: &'a Entity, facts: &'a EntityFacts, now: Timestamp) -> Subject<'a> {
    Subject { entity, facts, now }
}

/// Whether the scorecard applies to the entity (its filter holds, or it has none).
pub fn applies(
    scorecard: &Scorecard,
    entity: &Entity,
    facts: &EntityFacts,
    now: Timestamp,
) -> bool {
    scorecard.takes_kind(&entity.kind)
        && scorecard
            .filter
            .as_ref()
            .is_none_or(|f| condition::holds(f, &subject(entity, facts, now)))
}

/// Whether an initiative covers the entity (its filter holds, or it has none).
pub fn initiative_applies(
    initiative: &Initiative,
    entity: &Entity,
    facts: &EntityFacts,
    now: Timestamp,
) -> bool {
    initiative
        .filter
        .as_ref()
        .is_none_or(|f| condition::holds(f, &subject(entity, facts, now)))
}

/// Whether a query holds for the entity.
pub fn query_holds(query: &Query, entity: &Entity, facts: &EntityFacts, now: Timestamp) -> bool {
    condition::holds(query, &subject(entity, facts, now))
}

/// Why a query does not hold for the entity, in plain words; `None` when it holds.
pub fn explain_query(
    query: &Query,
    entity: &Entity,
    facts: &EntityFacts,
    now: Timestamp,
) -> Option<String> {
    condition::verdict(query, &subject(entity, facts, now))
}

/// The check rules the engine must run a plugin for before evaluating: those of a scorecard that
/// applies to the entity whose own filter holds.
pub fn checks_needed<'s>(
    entity: &Entity,
    facts: &EntityFacts,
    scorecard: &'s Scorecard,
    now: Timestamp,
) -> Vec<&'s Rule> {
    let s = subject(entity, facts, now);
    if scorecard
        .filter
        .as_ref()
        .is_some_and(|f| !condition::holds(f, &s))
    {
        return Vec::new();
    }
    scorecard
        .rules
        .iter()
        .filter(|r| r.check.is_some())
        .filter(|r| r.filter.as_ref().is_none_or(|f| condition::holds(f, &s)))
        .collect()
}

/// Evaluates one scorecard for one entity; `None` when the scorecard's filter excludes it.
pub fn evaluate_scorecard(input: &EvalInput<'_>, scorecard: &Scorecard) -> Option<ScorecardResult> {
    let s = subject(input.entity, input.facts, input.now);
    if !scorecard.takes_kind(&input.entity.kind) {
        return None;
    }
    if let Some(filter) = &scorecard.filter
        && !condition::holds(filter, &s)
    {
        return None;
    }
    let previous = input
        .previous
        .filter(|p| p.scorecard == scorecard.identifier && p.entity == input.entity.identifier);

    let mut rules = Vec::with_capacity(scorecard.rules.len());
    // The lowest level holding an applicable rule that does not count as passed.
    let mut first_blocked = scorecard.levels.len();
    let (mut passed, mut applicable) = (0usize, 0usize);
    let (mut weight_passed, mut weight_applicable) = (0f64, 0f64);
    for (i, rule) in scorecard.rules.iter().enumerate() {
        let (mut status, mut message, details) = rule_status(input, &s, scorecard, rule);
        if status.is_applicable()
            && !status.counts_as_passed()
            && let Some(ex) = covering_exemption(input, scorecard, rule)
        {
            message = Some(exempt_message(ex, status, message.as_deref()));
            status = RuleStatus::Exempt;
        }
        if status.is_applicable() {
            applicable += 1;
            weight_applicable += rule.weight;
            if status.counts_as_passed() {
                passed += 1;
                weight_passed += rule.weight;
            } else {
                first_blocked = first_blocked.min(rule.level_index);
            }
        }
        let changed_at = previous
            .and_then(|p| previous_rule(p, i, &rule.identifier))
            .filter(|r| r.status == status)
            .map_or(input.now, |r| r.changed_at);
        rules.push(RuleResult {
            rule: rule.identifier,
            level: rule.level,
            status,
            message,
            details,
            weight: rule.weight,
            evaluated_at: input.now,
            changed_at,
        });
    }
    let level_index = first_blocked.saturating_sub(1);
    Some(ScorecardResult {
        entity: input.entity.identifier.clone(),
        scorecard: scorecard.identifier,
        level: scorecard
            .levels
            .get(level_index)
            .map(|l| l.title)
            .unwrap_or_default(),
        level_index,
        percent: ratio(passed as f64, applicable as f64),
        score: ratio(weight_passed, weight_applicable),
        rules,
        evaluated_at: input.now,
    })
}

fn ratio(passed: f64, applicable: f64) -> f64 {
    if applicable > 0.0 {
        passed / applicable * 100.0
    } else {
        100.0
    }
}

/// The previous result of the rule: usually at the same position, else searched by identifier.
fn previous_rule<'p>(
    previous: &'p ScorecardResult,
    i: usize,
    rule: &str,
) -> Option<&'p RuleResult> {
    match previous.rules.get(i) {
        Some(r) if *r.rule == *rule => Some(r),
        _ => previous.rules.iter().find(|r| *r.rule == *rule),
    }
}

/// A rule's status, message and details before exemptions.
fn rule_status(
    input: &EvalInput<'_>,
    s: &Subject<'_>,
    scorecard: &Scorecard,
    rule: &Rule,
) -> (
    RuleStatus,
    Option<String>,
    Option<std::sync::Arc<serde_json::Value>>,
) {
    if let Some(filter) = &rule.filter
        && !condition::holds(filter, s)
    {
        return (RuleStatus::NotApplicable, None, None);
    }
    if let Some(query) = &rule.query {
        return match condition::verdict(query, s) {
            None => (RuleStatus::Pass, None, None),
            Some(why) => (RuleStatus::Fail, Some(why), None),
        };
    }
    let Some(check) = &rule.check else {
        // Validation guarantees a query or a check; a hand-built rule may lack both.
        return (
            RuleStatus::Error,
            Some("the rule has neither a query nor a check".to_owned()),
            None,
        );
    };
    match input.checks.get(&scorecard.identifier, &rule.identifier) {
        Some(outcome) if outcome.status == RuleStatus::Exempt => (
            RuleStatus::Error,
            Some(format!(
                "check plugin `{}` answered `exempt`, which only an approved exemption can give",
                check.plugin
            )),
            outcome.details.clone(),
        ),
        Some(outcome) => {
            // A plugin that reports a problem without saying why still gets a message: the
            // result must say who judged it.
            let message = outcome.message.clone().or_else(|| {
                matches!(
                    outcome.status,
                    RuleStatus::Fail | RuleStatus::Warn | RuleStatus::Error
                )
                .then(|| {
                    format!(
                        "check plugin `{}` reported {} without a message",
                        check.plugin,
                        outcome.status.as_str()
                    )
                })
            });
            (outcome.status, message, outcome.details.clone())
        }
        None => (
            RuleStatus::Error,
            Some(format!(
                "check plugin `{}` was not run (plugin not loaded, or not called for this entity)",
                check.plugin
            )),
            None,
        ),
    }
}

fn covering_exemption<'e>(
    input: &EvalInput<'e>,
    scorecard: &Scorecard,
    rule: &Rule,
) -> Option<&'e Exemption> {
    input.exemptions.iter().find(|e| {
        e.is_in_force(input.now)
            && e.covers(
                &input.entity.identifier,
                &scorecard.identifier,
                &rule.identifier,
            )
    })
}

fn exempt_message(ex: &Exemption, status: RuleStatus, message: Option<&str>) -> String {
    let scope = if ex.rule.is_some() {
        "exemption"
    } else {
        "scorecard exemption"
    };
    let mut out = format!(
        "exempt until {} ({scope} {}: {}); otherwise {}",
        ex.until.format("%Y-%m-%d %H:%M UTC"),
        ex.id,
        ex.reason,
        status.as_str()
    );
    if let Some(m) = message {
        out.push_str(": ");
        out.push_str(m);
    }
    out
}

/// Evaluates every scorecard of `standards` that applies to the entity, in scorecard order.
/// `input.previous` is used for the scorecard it belongs to; see
/// [`evaluate_entity_with_history`] to carry `changed_at` for all of them.
pub fn evaluate_entity(input: &EvalInput<'_>, standards: &Standards) -> Vec<ScorecardResult> {
    evaluate_entity_with_history(
        input,
        standards,
        input.previous.map(std::slice::from_ref).unwrap_or(&[]),
    )
}

/// Like [`evaluate_entity`], with the entity's previous results of every scorecard.
pub fn evaluate_entity_with_history(
    input: &EvalInput<'_>,
    standards: &Standards,
    previous: &[ScorecardResult],
) -> Vec<ScorecardResult> {
    standards
        .scorecards
        .iter()
        .filter_map(|card| {
            let input = EvalInput {
                previous: previous.iter().find(|p| p.scorecard == card.identifier),
                ..*input
            };
            evaluate_scorecard(&input, card)
        })
        .collect()
}

/// Where the entity falls short of its tier's requirements, given its current results: one
/// [`TierMiss`] per required scorecard whose reached level is below the required one. A required
/// scorecard without a result (it does not apply to the entity) is not a miss.
pub fn tier_misses(
    entity: &Entity,
    results: &[ScorecardResult],
    standards: &Standards,
) -> Vec<TierMiss> {
    let policy = standards.tiers.for_tier(entity.tier);
    let mut misses = Vec::new();
    for (scorecard_id, level) in &policy.require {
        let Some(card) = standards.scorecard(scorecard_id) else {
            continue;
        };
        let Some(required_index) = card.level_index(level) else {
            continue;
        };
        let Some(result) = results.iter().find(|r| r.scorecard == *scorecard_id) else {
            continue;
        };
        if result.level_index >= required_index {
            continue;
        }
        let blocking_rules = result
            .rules
            .iter()
            .filter(|r| r.status.is_applicable() && !r.status.counts_as_passed())
            .filter(|r| {
                card.level_index(&r.level)
                    .is_some_and(|i| i <= required_index)
            })
            .map(|r| (r.rule.to_string(), r.status, r.message.clone()))
            .collect();
        misses.push(TierMiss {
            scorecard: scorecard_id.clone(),
            required_level: level.clone(),
            required_index,
            reached_level: result.level.to_string(),
            reached_index: result.level_index,
            blocking_rules,
        });
    }
    misses
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod proptests;
