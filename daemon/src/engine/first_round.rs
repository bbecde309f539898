//! The quiet first start: results computed before the data sources they read have finished
//! their first round for an entity act on nothing (DESIGN.md section 12, "First round").
//!
//! [`FirstRounds`] (part of the engine's `State`) knows, per entity, which data sources have
//! finished, failed or timed out a first round for it (the store's `first_rounds` table, read
//! back at restart), and which entities' live results are *quiet*: evaluated while a source
//! they read was still pending. A quiet result is shown by the API like any other, but it is not
//! written to the store, writes no level history, plans no task, event or alert, and does not
//! mark the entity degraded. What the next evaluation that acts is compared with is the entity's
//! last results that acted ([`Quiet::settled`]): none for a new entity (so its first acting
//! evaluation is a baseline and its level history starts at the settled level), the previous
//! ones for an entity that a newly loaded data source silenced.
//!
//! Which sources a result reads ([`SourcesRead`]): every `facts.<source>` path of the standards'
//! scorecard filters, rule filters and rule queries, and, for a standards set with a check rule,
//! every data source (a check plugin is handed all of the entity's facts, so any of them may
//! decide it). The decision is per entity, not per scorecard: an entity is quiet while any of
//! those sources that is loaded has no first round for it. Bounded by `first_round_timeout`,
//! counted from the entity's first quiet evaluation.
//!
//! Never: this module decides nothing about readiness or the gate, and it never makes a result
//! act early; when it cannot tell, the entity stays quiet until the timeout.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::model::{ScorecardResult, Timestamp};
use crate::standards::Standards;
use crate::standards::query::{Query, QueryNode};

use super::pass::Evaluated;

/// The data sources the results of a standards set read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourcesRead {
    /// A check rule exists: its plugin may read any source.
    pub every: bool,
    /// Sources named by `facts.<source>` paths.
    pub named: BTreeSet<String>,
}

impl SourcesRead {
    /// What `standards` reads (walks every scorecard filter, rule filter and query once).
    pub fn of(standards: &Standards) -> SourcesRead {
        let mut read = SourcesRead::default();
        for scorecard in &standards.scorecards {
            if let Some(filter) = &scorecard.filter {
                read.add_query(filter);
            }
            for rule in &scorecard.rules {
                if rule.check.is_some() {
                    read.every = true;
                }
                if let Some(query) = &rule.query {
                    read.add_query(query);
                }
                if let Some(filter) = &rule.filter {
                    read.add_query(filter);
                }
            }
        }
        read
    }

    fn add_query(&mut self, query: &Query) {
        for node in &query.conditions {
            match node {
                QueryNode::Condition(condition) => {
                    if let Some(source) = condition.property.fact_source()
                        && !self.named.contains(source)
                    {
                        self.named.insert(source.to_owned());
                    }
                }
                QueryNode::Query(nested) => self.add_query(nested),
            }
        }
    }

    /// Of the loaded data sources `active`, those an entity's results wait for.
    pub fn waiting(&self, active: impl IntoIterator<Item = String>) -> Vec<String> {
        active
            .into_iter()
            .filter(|source| self.every || self.named.contains(source))
            .collect()
    }
}

/// Why an entity's live results are quiet.
#[derive(Clone, Debug)]
pub struct Quiet {
    /// Its first quiet evaluation: `first_round_timeout` counts from here.
    pub since: Timestamp,
    /// Its last results that acted (empty when none did): what the next acting evaluation is
    /// compared with, so that no transition is planned against a quiet result.
    pub settled: Arc<Vec<ScorecardResult>>,
}

/// First rounds per entity, and the entities whose live results are quiet.
#[derive(Debug, Default)]
pub struct FirstRounds {
    /// entity → the data sources whose first round for it is recorded (a handful: a list).
    done: HashMap<String, Vec<String>>,
    /// entity → why its live results are quiet.
    pub quiet: HashMap<String, Quiet>,
}

/// First rounds a change records, entity → sources (the change's batch commits them).
pub type NewRounds = HashMap<String, Vec<String>>;

impl FirstRounds {
    /// Whether `source` has a recorded first round for `entity`.
    pub fn is_done(&self, entity: &str, source: &str) -> bool {
        self.done
            .get(entity)
            .is_some_and(|sources| sources.iter().any(|s| s == source))
    }

    /// Record a first round (after its commit).
    pub fn record(&mut self, entity: &str, source: &str) {
        if self.is_done(entity, source) {
            return;
        }
        match self.done.get_mut(entity) {
            Some(sources) => sources.push(source.to_owned()),
            None => {
                self.done.insert(entity.to_owned(), vec![source.to_owned()]);
            }
        }
    }

    /// Forget a deleted entity.
    pub fn remove_entity(&mut self, entity: &str) {
        self.done.remove(entity);
        self.quiet.remove(entity);
    }

    /// Whether an entity evaluated now is quiet: some source in `waiting` has no first round
    /// for it, neither recorded nor in `new` (the rounds the same batch records).
    pub fn is_pending(&self, entity: &str, waiting: &[String], new: &NewRounds) -> bool {
        if waiting.is_empty() {
            return false;
        }
        let done = self.done.get(entity);
        let added = new.get(entity);
        waiting.iter().any(|source| {
            !done.is_some_and(|d| d.iter().any(|s| s == source))
                && !added.is_some_and(|a| a.iter().any(|s| s == source))
        })
    }

    /// The sources in `waiting` still pending for `entity`.
    pub fn pending_sources<'a>(&self, entity: &str, waiting: &'a [String]) -> Vec<&'a String> {
        waiting
            .iter()
            .filter(|source| !self.is_done(entity, source))
            .collect()
    }
}

/// Mark the evaluations of quiet entities: they keep their results (what the API shows) but
/// drop what would be written or acted on (changed results, level changes, removals).
pub fn mark_quiet(
    rounds: &FirstRounds,
    waiting: &[String],
    new: &NewRounds,
    outcome: &mut [Evaluated],
) {
    if waiting.is_empty() {
        return;
    }
    for evaluated in outcome {
        if rounds.is_pending(&evaluated.entity.identifier, waiting, new) {
            evaluated.quiet = true;
            evaluated.changed.clear();
            evaluated.level_changes.clear();
            evaluated.removed.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standards(yaml: &str) -> Standards {
        struct Plugins;
        impl crate::standards::PluginLookup for Plugins {
            fn kind_of(&self, name: &str) -> Option<crate::standards::PluginKind> {
                (name == "slo-budget").then_some(crate::standards::PluginKind::Check)
            }
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("scorecards")).unwrap();
        std::fs::write(dir.path().join("scorecards/card.yaml"), yaml).unwrap();
        crate::standards::load_dir(dir.path(), &Plugins).unwrap()
    }

    const QUERIES: &str = r#"
identifier: card
title: Card
filter: { combinator: and, conditions: [ { property: facts.catalog-extra.kind, operator: isNotEmpty } ] }
levels: [ { title: Basic }, { title: Gold } ]
rules:
  - identifier: oncall
    title: On call
    level: Gold
    filter: { combinator: and, conditions: [ { property: $tier, operator: "<=", value: 2 } ] }
    query:
      combinator: or
      conditions:
        - { property: facts.oncall.count, operator: ">", value: 0 }
        - { combinator: and, conditions: [ { property: facts.prometheus.up, operator: "=", value: 1 } ] }
  - identifier: owner
    title: Owner
    level: Gold
    query: { combinator: and, conditions: [ { property: $team, operator: isNotEmpty } ] }
"#;

    #[test]
    fn the_sources_read_are_the_fact_paths_of_filters_and_queries() {
        let read = SourcesRead::of(&standards(QUERIES));
        assert!(!read.every);
        assert_eq!(
            read.named.iter().map(String::as_str).collect::<Vec<_>>(),
            ["catalog-extra", "oncall", "prometheus"]
        );
        // A loaded source no rule reads is not waited for.
        let active = ["oncall", "repo-scan", "prometheus"].map(String::from);
        assert_eq!(read.waiting(active), ["oncall", "prometheus"]);
    }

    #[test]
    fn a_check_rule_reads_every_source() {
        let read = SourcesRead::of(&standards(
            r#"
identifier: card
title: Card
levels: [ { title: Basic }, { title: Gold } ]
rules:
  - identifier: budget
    title: Budget
    level: Gold
    check: { plugin: slo-budget, params: {} }
"#,
        ));
        assert!(read.every);
        let active = ["oncall", "repo-scan"].map(String::from);
        assert_eq!(read.waiting(active), ["oncall", "repo-scan"]);
    }

    #[test]
    fn an_entity_is_pending_until_every_waited_source_has_a_round() {
        let waiting = vec!["oncall".to_owned(), "prometheus".to_owned()];
        let mut rounds = FirstRounds::default();
        let none = NewRounds::new();
        assert!(rounds.is_pending("api", &waiting, &none));
        rounds.record("api", "oncall");
        rounds.record("api", "oncall");
        assert!(rounds.is_pending("api", &waiting, &none));
        assert_eq!(rounds.pending_sources("api", &waiting), [&waiting[1]]);
        // A round the same batch records counts.
        let new: NewRounds = [("api".to_owned(), vec!["prometheus".to_owned()])].into();
        assert!(!rounds.is_pending("api", &waiting, &new));
        rounds.record("api", "prometheus");
        assert!(!rounds.is_pending("api", &waiting, &none));
        // Another entity is not settled by this one's rounds; no waited source, nothing pending.
        assert!(rounds.is_pending("web", &waiting, &none));
        assert!(!rounds.is_pending("web", &[], &none));
        rounds.remove_entity("api");
        assert!(rounds.is_pending("api", &waiting, &none));
    }
}
