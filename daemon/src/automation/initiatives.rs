//! Initiative progress: how far the entities an initiative covers are from its targets, overall
//! and per team, and which entities still miss them and why.
//!
//! Rules (pure; no I/O):
//! - Scope: the entities that match the initiative's filter (all when it has none).
//! - A target is met by an entity when its level on the target scorecard is at least the target
//!   level, and every listed rule counts as passed (pass, warn, exempt) or does not apply. A
//!   target whose scorecard does not apply to the entity (no result) is met: there is nothing to
//!   do. An entity meets the initiative when it meets every target.
//! - `percent` = meeting / total × 100 (100 when no entity is in scope), rounded to 0.1.
//! - The deadline is a date; it ends at the end of that day, UTC ([`InitiativeProgress::deadline_at`]).
//! - State: `done` at 100 %; otherwise `overdue` past the deadline; otherwise `at_risk` when less
//!   than [`AT_RISK_WINDOW_DAYS`] days remain and fewer than [`AT_RISK_PERCENT`] % of the entities
//!   meet the targets; otherwise `on_track`. Initiatives carry no start date, so "expected linear
//!   progress" cannot be computed; this rule is deliberately simple and predictable.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{Duration, NaiveTime};
use serde::Serialize;

use crate::model::{
    Entity, Exemption, ExemptionStatus, RuleStatus, ScorecardResult, Task, TaskStatus, Timestamp,
};
use crate::standards::{Initiative, Standards, Target};

/// Days before the deadline from which a lagging initiative is `at_risk`.
pub const AT_RISK_WINDOW_DAYS: i64 = 30;
/// Below this percentage, an initiative inside the window is `at_risk`.
pub const AT_RISK_PERCENT: f64 = 80.0;

/// Where an initiative stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InitiativeState {
    OnTrack,
    AtRisk,
    Overdue,
    Done,
}

impl InitiativeState {
    pub fn as_str(self) -> &'static str {
        match self {
            InitiativeState::OnTrack => "on_track",
            InitiativeState::AtRisk => "at_risk",
            InitiativeState::Overdue => "overdue",
            InitiativeState::Done => "done",
        }
    }
}

/// meeting / total.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Tally {
    pub meeting: usize,
    pub total: usize,
    pub percent: f64,
}

impl Tally {
    fn new(meeting: usize, total: usize) -> Tally {
        let percent = if total == 0 {
            100.0
        } else {
            (meeting as f64 * 1000.0 / total as f64).round() / 10.0
        };
        Tally {
            meeting,
            total,
            percent,
        }
    }
}

/// One team's tally.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TeamTally {
    /// None: entities without an owning team.
    pub team: Option<String>,
    #[serde(flatten)]
    pub tally: Tally,
}

/// A rule that keeps an entity from a target.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FailingRule {
    pub scorecard: String,
    pub rule: String,
    pub status: RuleStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// An exemption that is pending or in force for the entity, on a target scorecard.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExemptionRef {
    pub id: String,
    pub scorecard: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    pub status: ExemptionStatus,
    pub until: Timestamp,
}

/// A task that is not done, on a target scorecard.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TaskRef {
    pub id: String,
    pub scorecard: String,
    pub rule: String,
    pub status: TaskStatus,
    pub due: Timestamp,
}

/// An entity that does not meet the targets yet.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NonCompliant {
    pub entity: String,
    pub title: String,
    pub team: Option<String>,
    pub failing: Vec<FailingRule>,
    pub open_exemptions: Vec<ExemptionRef>,
    pub open_tasks: Vec<TaskRef>,
}

/// Progress of one initiative (the body of `GET /v1/initiatives/{id}`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InitiativeProgress {
    pub identifier: String,
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub owner: String,
    pub deadline: chrono::NaiveDate,
    pub state: InitiativeState,
    pub overall: Tally,
    /// By team, teams in name order, entities without a team last.
    pub teams: Vec<TeamTally>,
    pub non_compliant: Vec<NonCompliant>,
    pub evaluated_at: Timestamp,
}

impl InitiativeProgress {
    /// The instant the deadline passes: the end of the deadline's day, UTC.
    pub fn deadline_at(&self) -> Timestamp {
        deadline_at(self.deadline)
    }
}

fn deadline_at(date: chrono::NaiveDate) -> Timestamp {
    (date.and_time(NaiveTime::MIN) + Duration::days(1)).and_utc()
}

/// Progress of `initiative` at `now`. `in_scope` says whether an entity matches the
/// initiative's filter (the evaluator's job: filters read properties and facts); `results` holds
/// every entity's latest results; `exemptions` and `tasks` may cover any entity.
#[allow(clippy::too_many_arguments)] // reason: each input is a distinct slice of state
pub fn progress<'e>(
    initiative: &Initiative,
    standards: &Standards,
    entities: impl IntoIterator<Item = &'e Entity>,
    in_scope: &dyn Fn(&Entity) -> bool,
    results: &HashMap<String, Arc<Vec<ScorecardResult>>>,
    exemptions: &[Exemption],
    tasks: &[Task],
    now: Timestamp,
) -> InitiativeProgress {
    // Indexed once: a scan of every exemption and task per entity is quadratic on a large
    // organisation, and this runs on every tick.
    let mut exemptions_of: HashMap<&str, Vec<&Exemption>> = HashMap::new();
    for e in exemptions {
        exemptions_of.entry(e.entity.as_str()).or_default().push(e);
    }
    let mut tasks_of: HashMap<&str, Vec<&Task>> = HashMap::new();
    for t in tasks {
        tasks_of.entry(t.entity.as_str()).or_default().push(t);
    }
    let mut meeting_by_team: BTreeMap<Option<String>, (usize, usize)> = BTreeMap::new();
    let mut non_compliant = Vec::new();
    let mut total = 0;
    let mut meeting = 0;
    let no_results = Arc::new(Vec::new());
    for entity in entities.into_iter().filter(|e| in_scope(e)) {
        let entity_results = results.get(&entity.identifier).unwrap_or(&no_results);
        let failing: Vec<FailingRule> = initiative
            .targets
            .iter()
            .flat_map(|t| target_misses(t, standards, entity_results))
            .collect();
        let meets = failing.is_empty()
            && initiative
                .targets
                .iter()
                .all(|t| level_met(t, standards, entity_results));
        total += 1;
        let team = meeting_by_team.entry(entity.team.clone()).or_default();
        team.1 += 1;
        if meets {
            meeting += 1;
            team.0 += 1;
            continue;
        }
        let on_target =
            |scorecard: &str| initiative.targets.iter().any(|t| t.scorecard == scorecard);
        non_compliant.push(NonCompliant {
            entity: entity.identifier.clone(),
            title: entity.title.clone(),
            team: entity.team.clone(),
            failing,
            open_exemptions: exemptions_of
                .get(entity.identifier.as_str())
                .into_iter()
                .flatten()
                .filter(|e| on_target(&e.scorecard))
                .filter(|e| {
                    e.status == ExemptionStatus::Pending
                        || (e.status == ExemptionStatus::Approved && e.is_in_force(now))
                })
                .map(|e| ExemptionRef {
                    id: e.id.clone(),
                    scorecard: e.scorecard.clone(),
                    rule: e.rule.clone(),
                    status: e.status,
                    until: e.until,
                })
                .collect(),
            open_tasks: tasks_of
                .get(entity.identifier.as_str())
                .into_iter()
                .flatten()
                .filter(|t| t.status != TaskStatus::Done)
                .filter(|t| on_target(&t.scorecard))
                .map(|t| TaskRef {
                    id: t.id.clone(),
                    scorecard: t.scorecard.clone(),
                    rule: t.rule.clone(),
                    status: t.status,
                    due: t.due,
                })
                .collect(),
        });
    }
    let overall = Tally::new(meeting, total);
    let deadline = deadline_at(initiative.deadline);
    let state = if overall.percent >= 100.0 {
        InitiativeState::Done
    } else if now >= deadline {
        InitiativeState::Overdue
    } else if deadline - now < Duration::days(AT_RISK_WINDOW_DAYS)
        && overall.percent < AT_RISK_PERCENT
    {
        InitiativeState::AtRisk
    } else {
        InitiativeState::OnTrack
    };
    // BTreeMap orders None first; unowned entities read better last.
    let mut teams: Vec<TeamTally> = meeting_by_team
        .into_iter()
        .map(|(team, (m, t))| TeamTally {
            team,
            tally: Tally::new(m, t),
        })
        .collect();
    let unowned_first = teams.first().is_some_and(|t| t.team.is_none());
    teams.rotate_left(usize::from(unowned_first));
    InitiativeProgress {
        identifier: initiative.identifier.clone(),
        title: initiative.title.clone(),
        description: initiative.description.clone(),
        owner: initiative.owner.clone(),
        deadline: initiative.deadline,
        state,
        overall,
        teams,
        non_compliant,
        evaluated_at: now,
    }
}

/// Whether the level part of `target` is met (true when it names no level or does not apply).
fn level_met(target: &Target, standards: &Standards, results: &[ScorecardResult]) -> bool {
    let Some(level) = &target.level else {
        return true;
    };
    let Some(result) = results.iter().find(|r| r.scorecard == target.scorecard) else {
        return true;
    };
    let required = standards
        .scorecard(&target.scorecard)
        .and_then(|s| s.level_index(level));
    required.is_none_or(|required| result.level_index >= required)
}

/// The rules that keep the entity from `target`: for a level, the applicable rules at that level
/// or below that do not count as passed; for listed rules, those that do not.
fn target_misses(
    target: &Target,
    standards: &Standards,
    results: &[ScorecardResult],
) -> Vec<FailingRule> {
    let Some(result) = results.iter().find(|r| r.scorecard == target.scorecard) else {
        return Vec::new();
    };
    let scorecard = standards.scorecard(&target.scorecard);
    let required = target
        .level
        .as_deref()
        .and_then(|l| scorecard.and_then(|s| s.level_index(l)));
    let mut out: Vec<FailingRule> = Vec::new();
    for r in &result.rules {
        if !r.status.is_applicable() || r.status.counts_as_passed() {
            continue;
        }
        let by_level = required.is_some_and(|required| {
            scorecard
                .and_then(|s| s.level_index(&r.level))
                .is_some_and(|i| i <= required)
        });
        let by_list = target
            .rules
            .as_ref()
            .is_some_and(|rules| rules.iter().any(|x| **x == *r.rule));
        if by_level || by_list {
            out.push(FailingRule {
                scorecard: result.scorecard.to_string(),
                rule: r.rule.to_string(),
                status: r.status,
                message: r.message.clone(),
            });
        }
    }
    out
}
