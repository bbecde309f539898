//! What changed between two versions of the standards, so that hot reload re-evaluates only the
//! entities a change can affect and logs it in plain words ("scorecard security: rule r3 added").

use std::collections::BTreeMap;
use std::fmt;

use super::{Scorecard, Standards};

/// The difference between two [`Standards`]. Lists are sorted by identifier.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StandardsDiff {
    pub scorecards_added: Vec<String>,
    pub scorecards_removed: Vec<String>,
    pub scorecards_changed: Vec<ScorecardChange>,
    /// The tier policy changed: gates, degradation and task deadlines of every entity may change.
    pub tiers_changed: bool,
    pub initiatives_added: Vec<String>,
    pub initiatives_removed: Vec<String>,
    pub initiatives_changed: Vec<String>,
}

/// How one scorecard present in both versions changed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScorecardChange {
    pub identifier: String,
    pub rules_added: Vec<String>,
    pub rules_removed: Vec<String>,
    pub rules_changed: Vec<String>,
    /// Title, description, filter, levels or the order of the rules changed.
    pub definition_changed: bool,
}

impl StandardsDiff {
    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.scorecards_added.is_empty()
            && self.scorecards_removed.is_empty()
            && self.scorecards_changed.is_empty()
            && !self.tiers_changed
            && self.initiatives_added.is_empty()
            && self.initiatives_removed.is_empty()
            && self.initiatives_changed.is_empty()
    }

    /// Scorecards whose results may differ: added, removed or changed. An entity needs
    /// re-evaluation when one of these applies to it under the old or the new standards.
    pub fn affected_scorecards(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .scorecards_added
            .iter()
            .chain(&self.scorecards_removed)
            .cloned()
            .chain(self.scorecards_changed.iter().map(|c| c.identifier.clone()))
            .collect();
        ids.sort();
        ids
    }

    /// One line per change, for the log: `scorecard security: rule r3 added`.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for id in &self.scorecards_added {
            lines.push(format!("scorecard {id} added"));
        }
        for id in &self.scorecards_removed {
            lines.push(format!("scorecard {id} removed"));
        }
        for change in &self.scorecards_changed {
            let id = &change.identifier;
            if change.definition_changed {
                lines.push(format!("scorecard {id}: definition changed"));
            }
            for (rules, what) in [
                (&change.rules_added, "added"),
                (&change.rules_removed, "removed"),
                (&change.rules_changed, "changed"),
            ] {
                for rule in rules {
                    lines.push(format!("scorecard {id}: rule {rule} {what}"));
                }
            }
        }
        if self.tiers_changed {
            lines.push("tier policy changed".to_owned());
        }
        for (ids, what) in [
            (&self.initiatives_added, "added"),
            (&self.initiatives_removed, "removed"),
            (&self.initiatives_changed, "changed"),
        ] {
            for id in ids {
                lines.push(format!("initiative {id} {what}"));
            }
        }
        lines
    }
}

impl fmt::Display for StandardsDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines = self.describe();
        if lines.is_empty() {
            f.write_str("no change")
        } else {
            f.write_str(&lines.join("; "))
        }
    }
}

pub(super) fn diff(old: &Standards, new: &Standards) -> StandardsDiff {
    let mut out = StandardsDiff::default();
    let old_cards: BTreeMap<&str, &Scorecard> = old
        .scorecards
        .iter()
        .map(|s| (s.identifier.as_str(), s.as_ref()))
        .collect();
    let new_cards: BTreeMap<&str, &Scorecard> = new
        .scorecards
        .iter()
        .map(|s| (s.identifier.as_str(), s.as_ref()))
        .collect();
    for (id, card) in &new_cards {
        match old_cards.get(id) {
            None => out.scorecards_added.push((*id).to_owned()),
            Some(before) => {
                let change = scorecard_change(before, card);
                if change != ScorecardChange::default() {
                    out.scorecards_changed.push(ScorecardChange {
                        identifier: (*id).to_owned(),
                        ..change
                    });
                }
            }
        }
    }
    out.scorecards_removed = old_cards
        .keys()
        .filter(|id| !new_cards.contains_key(*id))
        .map(|id| (*id).to_owned())
        .collect();
    out.tiers_changed = old.tiers != new.tiers;
    for initiative in &new.initiatives {
        match old.initiative(&initiative.identifier) {
            None => out.initiatives_added.push(initiative.identifier.clone()),
            Some(before) if before != initiative => {
                out.initiatives_changed.push(initiative.identifier.clone())
            }
            Some(_) => {}
        }
    }
    out.initiatives_removed = old
        .initiatives
        .iter()
        .filter(|i| new.initiative(&i.identifier).is_none())
        .map(|i| i.identifier.clone())
        .collect();
    out
}

/// The change of one scorecard, identifier left empty; the default value when unchanged.
fn scorecard_change(old: &Scorecard, new: &Scorecard) -> ScorecardChange {
    let mut change = ScorecardChange::default();
    for rule in &new.rules {
        match old.rule(&rule.identifier) {
            None => change.rules_added.push(rule.identifier.to_string()),
            Some(before) if before != rule => {
                change.rules_changed.push(rule.identifier.to_string())
            }
            Some(_) => {}
        }
    }
    change.rules_removed = old
        .rules
        .iter()
        .filter(|r| new.rule(&r.identifier).is_none())
        .map(|r| r.identifier.to_string())
        .collect();
    for list in [
        &mut change.rules_added,
        &mut change.rules_removed,
        &mut change.rules_changed,
    ] {
        list.sort();
    }
    let order = |card: &Scorecard| card.rules.iter().map(|r| r.identifier).collect::<Vec<_>>();
    // The file a scorecard lives in is not part of its definition: moving it changes nothing.
    change.definition_changed = old.title != new.title
        || old.description != new.description
        || old.filter != new.filter
        || old.levels != new.levels
        || (change.rules_added.is_empty()
            && change.rules_removed.is_empty()
            && order(old) != order(new));
    change
}
