//! The tier policy (`tiers.yaml`) and initiatives (`initiatives/*.yaml`): parsed, and checked
//! against the scorecards they name.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::query::{self, Query, RawQuery};
use super::{Locator, Scorecard, StandardsError, Subject, parse_typed};
use crate::model::{Tier, is_valid_identifier};

/// Task deadline of a tier that does not set `task_due_days`.
pub const DEFAULT_TASK_DUE_DAYS: u32 = 30;

/// Per tier: which scorecards must reach which level, the default task deadline, and where
/// degradation alerts go.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TierPolicy {
    /// By tier (1..=3).
    pub tiers: BTreeMap<Tier, TierSpec>,
    /// For entities without a tier, or whose tier has no entry in `tiers`.
    pub untiered: TierSpec,
}

impl Default for TierPolicy {
    fn default() -> TierPolicy {
        TierPolicy {
            tiers: BTreeMap::new(),
            untiered: TierSpec::named("Untiered"),
        }
    }
}

impl TierPolicy {
    /// The policy for an entity of `tier`: its tier's entry, else the untiered one.
    pub fn for_tier(&self, tier: Option<Tier>) -> &TierSpec {
        tier.and_then(|t| self.tiers.get(&t))
            .unwrap_or(&self.untiered)
    }
}

/// What one tier requires.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TierSpec {
    pub name: String,
    /// Scorecard identifier → title of the level it must reach.
    pub require: BTreeMap<String, String>,
    /// Deadline in days of tasks for failing rules (a rule's `due_days` wins).
    pub task_due_days: u32,
    /// Notification channels for degradation alerts.
    pub alert: Vec<String>,
}

impl TierSpec {
    fn named(name: &str) -> TierSpec {
        TierSpec {
            name: name.to_owned(),
            require: BTreeMap::new(),
            task_due_days: DEFAULT_TASK_DUE_DAYS,
            alert: Vec::new(),
        }
    }
}

/// A campaign: targets that entities (optionally filtered) should meet by a deadline.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Initiative {
    pub identifier: String,
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub owner: String,
    pub deadline: NaiveDate,
    pub targets: Vec<Target>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<Query>,
}

/// One target of an initiative: a scorecard level to reach, or rules to pass.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub scorecard: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTierPolicy {
    #[serde(default, deserialize_with = "unique_tiers")]
    tiers: BTreeMap<TierKey, RawTierSpec>,
    #[serde(default)]
    untiered: Option<RawTierSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTierSpec {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    require: BTreeMap<String, String>,
    #[serde(default)]
    task_due_days: Option<u32>,
    #[serde(default)]
    alert: Vec<String>,
}

/// A key of `tiers`: `1`, `"2"`, `tier-3`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct TierKey(Tier);

impl<'de> Deserialize<'de> for TierKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<TierKey, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        match crate::catalog::parse_tier(&value) {
            Ok(Some(t)) => Ok(TierKey(t)),
            Ok(None) => Err(serde::de::Error::custom("a tier key must be 1, 2 or 3")),
            Err(m) => Err(serde::de::Error::custom(m)),
        }
    }
}

/// The `tiers` map, each tier at most once: `1`, `"1"` and `tier-1` are the same tier, and
/// writing two of them must not let one silently replace the other.
fn unique_tiers<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<TierKey, RawTierSpec>, D::Error> {
    struct Tiers;
    impl<'de> serde::de::Visitor<'de> for Tiers {
        type Value = BTreeMap<TierKey, RawTierSpec>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a map from tier (1, 2, 3) to its policy")
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut tiers = BTreeMap::new();
            while let Some((key, spec)) = map.next_entry::<TierKey, RawTierSpec>()? {
                if tiers.insert(key, spec).is_some() {
                    return Err(serde::de::Error::custom(format!(
                        "tier {} is given twice (1, \"1\" and tier-1 are the same tier)",
                        key.0
                    )));
                }
            }
            Ok(tiers)
        }
    }
    d.deserialize_map(Tiers)
}

pub(super) fn parse_tiers(
    path: &Path,
    text: &str,
    scorecards: &BTreeMap<&str, &Scorecard>,
    broken: &BTreeSet<String>,
) -> Result<TierPolicy, Vec<StandardsError>> {
    let raw: RawTierPolicy = parse_typed(path, text).map_err(|e| vec![e])?;
    let at = Locator { text };
    let mut errors = Vec::new();
    let spec = |tier: Option<Tier>, raw: RawTierSpec, errors: &mut Vec<StandardsError>| {
        let from = match tier {
            Some(t) => at
                .key(1, &t.to_string())
                .or_else(|| at.key(1, &format!("tier-{t}"))),
            None => at.key(1, "untiered"),
        };
        let mut fault = |line: Option<usize>, fault: String| {
            errors.push(StandardsError::Invalid {
                file: path.to_owned(),
                line,
                subject: Subject::Tier { tier },
                fault,
            })
        };
        for (scorecard, level) in &raw.require {
            let line = at.key(from.unwrap_or(1), scorecard).or(from);
            match scorecards.get(scorecard.as_str()) {
                Some(card) if card.level_index(level).is_none() => fault(
                    line,
                    format!(
                        "scorecard `{scorecard}` has no level `{level}` (levels: {})",
                        titles(card)
                    ),
                ),
                Some(_) => {}
                None if broken.contains(scorecard) => {}
                None => fault(line, format!("unknown scorecard `{scorecard}`")),
            }
        }
        if raw.task_due_days == Some(0) {
            fault(from, "task_due_days must be at least 1".to_owned());
        }
        TierSpec {
            name: raw.name.unwrap_or_else(|| match tier {
                Some(t) => format!("Tier {t}"),
                None => "Untiered".to_owned(),
            }),
            require: raw.require,
            task_due_days: raw.task_due_days.unwrap_or(DEFAULT_TASK_DUE_DAYS),
            alert: raw.alert,
        }
    };
    let mut policy = TierPolicy::default();
    for (TierKey(t), raw_spec) in raw.tiers {
        let s = spec(Some(t), raw_spec, &mut errors);
        policy.tiers.insert(t, s);
    }
    if let Some(raw_spec) = raw.untiered {
        policy.untiered = spec(None, raw_spec, &mut errors);
    }
    if errors.is_empty() {
        Ok(policy)
    } else {
        Err(errors)
    }
}

fn titles(card: &Scorecard) -> String {
    card.levels
        .iter()
        .map(|l| l.title.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInitiative {
    identifier: String,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    description: Option<String>,
    owner: String,
    deadline: String,
    targets: Vec<Target>,
    #[serde(default)]
    filter: Option<RawQuery>,
}

pub(super) fn parse_initiative(
    path: &Path,
    text: &str,
    scorecards: &BTreeMap<&str, &Scorecard>,
    broken: &BTreeSet<String>,
) -> Result<Initiative, Vec<StandardsError>> {
    let raw: RawInitiative = parse_typed(path, text).map_err(|e| vec![e])?;
    let at = Locator { text };
    let mut errors = Vec::new();
    let mut fault = |line: Option<usize>, fault: String| {
        errors.push(StandardsError::Invalid {
            file: path.to_owned(),
            line,
            subject: Subject::Initiative {
                initiative: raw.identifier.clone(),
            },
            fault,
        })
    };
    if !is_valid_identifier(&raw.identifier) {
        fault(
            at.value(1, "identifier", &raw.identifier),
            format!("identifier `{}` is not valid", raw.identifier),
        );
    }
    if raw.owner.trim().is_empty() {
        fault(at.key(1, "owner"), "owner must not be empty".to_owned());
    }
    let deadline = parse_deadline(&raw.deadline);
    if deadline.is_none() {
        fault(
            at.key(1, "deadline"),
            format!("deadline `{}` is not a date (YYYY-MM-DD)", raw.deadline),
        );
    }
    let targets_line = at.key(1, "targets");
    if raw.targets.is_empty() {
        fault(
            targets_line,
            "an initiative needs at least one target".to_owned(),
        );
    }
    let mut cursor = targets_line.unwrap_or(1);
    for target in &raw.targets {
        let found = at.value(cursor, "scorecard", &target.scorecard);
        cursor = found.map_or(cursor, |l| l + 1);
        let line = found.or(targets_line);
        let Some(card) = scorecards.get(target.scorecard.as_str()) else {
            if !broken.contains(&target.scorecard) {
                fault(line, format!("unknown scorecard `{}`", target.scorecard));
            }
            continue;
        };
        match (&target.level, &target.rules) {
            (Some(_), Some(_)) | (None, None) => fault(
                line,
                format!(
                    "target `{}` needs exactly one of `level` and `rules`",
                    target.scorecard
                ),
            ),
            (Some(level), None) if card.level_index(level).is_none() => fault(
                line,
                format!(
                    "scorecard `{}` has no level `{level}` (levels: {})",
                    target.scorecard,
                    titles(card)
                ),
            ),
            (None, Some(rules)) => {
                if rules.is_empty() {
                    fault(
                        line,
                        format!("target `{}` lists no rules", target.scorecard),
                    );
                }
                for rule in rules.iter().filter(|r| card.rule(r).is_none()) {
                    fault(
                        line,
                        format!("scorecard `{}` has no rule `{rule}`", target.scorecard),
                    );
                }
            }
            _ => {}
        }
    }
    let filter = raw
        .filter
        .as_ref()
        .and_then(|f| match query::compile(f, "filter") {
            Ok(q) => Some(q),
            Err(faults) => {
                let from = at.key(1, "filter");
                for f in faults {
                    fault(at.query_fault(from, &f), f.to_string());
                }
                None
            }
        });
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Initiative {
        title: raw.title.unwrap_or_else(|| raw.identifier.clone()),
        identifier: raw.identifier,
        description: raw.description,
        owner: raw.owner,
        deadline: deadline.unwrap_or_default(),
        targets: raw.targets,
        filter,
    })
}

/// `YYYY-MM-DD`, or a date-time whose date is taken (UTC).
fn parse_deadline(s: &str) -> Option<NaiveDate> {
    query::parse_date(s.trim()).map(|(t, _)| t.date_naive())
}
