//! The domain model shared by every part of readyd (DESIGN.md section 3).
//!
//! Plain data: entities, facts, rule results, scores, and the records people create (exemptions,
//! tier requests, locks, tasks). Every type here is serde-serializable, so the same value is
//! stored in redb (MessagePack), served by the API (JSON) and printed by `readyd eval`.
//! This module must never do I/O.

use std::collections::BTreeMap;
use std::sync::Arc;

/// An interned name (rule identifiers, level titles): `Copy`, compared and hashed as its text,
/// kept for the life of the process. The set of names is the standards' vocabulary, so it stays
/// small however many results point at it.
pub type Name = ustr::Ustr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A point in time. readyd keeps all times in UTC.
pub type Timestamp = DateTime<Utc>;

/// A JSON object (`properties`, facts, details).
pub type JsonObject = serde_json::Map<String, serde_json::Value>;

/// Tier of an entity: 1 (most critical) to 3.
pub type Tier = u8;

/// A software asset in the catalog.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entity {
    /// Unique identifier, `[a-z0-9][a-z0-9._-]*`.
    pub identifier: String,
    /// `service`, `api`, `library`, `website`, ...
    pub kind: String,
    /// Human-readable name; defaults to the identifier.
    pub title: String,
    /// Owning team.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// 1..=3, or none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<Tier>,
    /// Free-form properties (a JSON object).
    #[serde(default)]
    pub properties: JsonObject,
    /// Named relations to other entities' identifiers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub relations: BTreeMap<String, Vec<String>>,
}

/// Whether an identifier is well formed: `[a-z0-9][a-z0-9._-]*`.
pub fn is_valid_identifier(id: &str) -> bool {
    let mut chars = id.chars();
    match chars.next() {
        Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit() => {}
        _ => return false,
    }
    id.len() <= 253
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
}

/// The facts one data source collected about one entity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FactRecord {
    /// The data source (plugin) name; standards read these facts as `facts.<source>`.
    pub source: String,
    /// The facts, a JSON object.
    pub facts: JsonObject,
    /// When they were collected.
    pub collected_at: Timestamp,
    /// Version hash of the plugin that produced them.
    pub plugin_version: String,
    /// Set when the latest collection attempt failed and these facts are older than they should
    /// be; the reason of that failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_reason: Option<String>,
}

/// Latest facts of an entity, by source.
pub type EntityFacts = BTreeMap<String, FactRecord>;

/// The status of one rule for one entity (DESIGN.md section 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleStatus {
    /// The rule is met.
    Pass,
    /// The rule is not met.
    Fail,
    /// A plugin reported a problem that must not block the level (counts as passed).
    Warn,
    /// The plugin failed, timed out or returned garbage (counts as not passed).
    Error,
    /// The rule's own filter excludes this entity (ignored for levels and percentages).
    NotApplicable,
    /// An approved, unexpired exemption covers it (counts as passed).
    Exempt,
}

impl RuleStatus {
    /// Whether the status counts as passed for levels and percentages.
    pub fn counts_as_passed(self) -> bool {
        matches!(
            self,
            RuleStatus::Pass | RuleStatus::Warn | RuleStatus::Exempt
        )
    }

    /// Whether the rule counts at all for levels and percentages.
    pub fn is_applicable(self) -> bool {
        self != RuleStatus::NotApplicable
    }

    /// The snake_case name used in JSON and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleStatus::Pass => "pass",
            RuleStatus::Fail => "fail",
            RuleStatus::Warn => "warn",
            RuleStatus::Error => "error",
            RuleStatus::NotApplicable => "not_applicable",
            RuleStatus::Exempt => "exempt",
        }
    }
}

/// The result of one rule for one entity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuleResult {
    /// Rule identifier (unique within its scorecard). Interned: shared with the rule's definition
    /// and every other result of the rule, so a pass copies a pointer, not the text.
    pub rule: Name,
    /// The level the rule belongs to (shared the same way).
    pub level: Name,
    pub status: RuleStatus,
    /// Why, in plain words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Structured details from a check plugin (behind a pointer: a JSON value is 80 bytes
    /// inline and most results have none; shared, so a result takes the plugin's details
    /// without copying them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Arc<serde_json::Value>>,
    /// Weight of the rule in `score`.
    pub weight: f64,
    /// When it was evaluated.
    pub evaluated_at: Timestamp,
    /// When its status last changed (equal to `evaluated_at` on the first evaluation).
    pub changed_at: Timestamp,
}

/// An entity's standing on one scorecard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScorecardResult {
    pub entity: String,
    /// Interned, like [`RuleResult::rule`]: shared with the scorecard's definition.
    pub scorecard: Name,
    /// Title of the level reached (the first level at least), interned the same way.
    pub level: Name,
    /// Index of `level` in the scorecard's ladder (0 = first level).
    pub level_index: usize,
    /// Passed rules / applicable rules × 100 (100 when no rule applies).
    pub percent: f64,
    /// Weighted version of `percent`.
    pub score: f64,
    /// Every rule's result, in the scorecard's order.
    pub rules: Vec<RuleResult>,
    pub evaluated_at: Timestamp,
}

/// A level change, kept in the level history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LevelChange {
    pub entity: String,
    pub scorecard: String,
    /// Previous level (none on the first evaluation).
    pub from: Option<String>,
    pub to: String,
    pub from_index: Option<usize>,
    pub to_index: usize,
    pub percent: f64,
    pub at: Timestamp,
}

/// What a check plugin said about one rule for one entity, as the evaluator consumes it.
/// The plugin host produces it (a plugin failure becomes `status: Error` with the reason);
/// the evaluator turns it into a [`RuleResult`] (exemptions still apply on top).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckOutcome {
    /// One of `Pass`, `Fail`, `Warn`, `NotApplicable`, `Error`.
    pub status: RuleStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Structured details (shared with the results made from this outcome).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Arc<serde_json::Value>>,
}

/// Lifecycle of an exemption.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExemptionStatus {
    Pending,
    Approved,
    Denied,
    Revoked,
    Expired,
}

/// One transition of a person-made record, for the audit log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Who did it (the token's name).
    pub actor: String,
    /// What happened: `requested`, `approved`, `denied`, `revoked`, `expired`, `locked`, ...
    pub action: String,
    pub at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A request to treat a rule (or a whole scorecard) as passed for one entity until a date.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Exemption {
    pub id: String,
    pub entity: String,
    pub scorecard: String,
    /// None: the whole scorecard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    pub reason: String,
    pub until: Timestamp,
    pub requested_by: String,
    pub requested_at: Timestamp,
    pub status: ExemptionStatus,
    #[serde(default)]
    pub history: Vec<AuditEntry>,
}

impl Exemption {
    /// Whether it changes results at `now`: approved and not yet expired.
    pub fn is_in_force(&self, now: Timestamp) -> bool {
        self.status == ExemptionStatus::Approved && now < self.until
    }

    /// Whether it covers `rule` of `scorecard` for `entity`.
    pub fn covers(&self, entity: &str, scorecard: &str, rule: &str) -> bool {
        self.entity == entity
            && self.scorecard == scorecard
            && self.rule.as_deref().is_none_or(|r| r == rule)
    }
}

/// Lifecycle of a tier change request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TierRequestStatus {
    Pending,
    Approved,
    Denied,
}

/// A request to move an entity to another tier.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TierRequest {
    pub id: String,
    pub entity: String,
    pub from: Option<Tier>,
    pub to: Option<Tier>,
    pub reason: String,
    pub requested_by: String,
    pub requested_at: Timestamp,
    pub status: TierRequestStatus,
    #[serde(default)]
    pub history: Vec<AuditEntry>,
}

/// A manual deploy lock.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Lock {
    pub entity: String,
    pub reason: String,
    pub locked_by: String,
    pub locked_at: Timestamp,
}

/// Lifecycle of a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Open,
    Overdue,
    Done,
}

/// Work for a team: a rule its entity's tier requires is failing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: String,
    pub entity: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    pub scorecard: String,
    pub rule: String,
    /// What to do: the rule's title/description.
    pub title: String,
    /// The failure message when the task was opened (kept current while open).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub created_at: Timestamp,
    pub due: Timestamp,
    pub status: TaskStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<Timestamp>,
    /// Whether the due-soon reminder was sent.
    #[serde(default)]
    pub reminded: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert!(is_valid_identifier("payments"));
        assert!(is_valid_identifier("0day.svc_a-b"));
        assert!(!is_valid_identifier(""));
        assert!(!is_valid_identifier("Payments"));
        assert!(!is_valid_identifier("-x"));
        assert!(!is_valid_identifier("a b"));
        assert!(!is_valid_identifier("a/b"));
    }

    #[test]
    fn status_semantics() {
        assert!(RuleStatus::Warn.counts_as_passed());
        assert!(RuleStatus::Exempt.counts_as_passed());
        assert!(!RuleStatus::Error.counts_as_passed());
        assert!(!RuleStatus::NotApplicable.is_applicable());
        assert_eq!(
            serde_json::to_string(&RuleStatus::NotApplicable).unwrap(),
            "\"not_applicable\""
        );
    }

    #[test]
    fn exemption_cover_and_force() {
        let now = Utc::now();
        let mut e = Exemption {
            id: "x".into(),
            entity: "pay".into(),
            scorecard: "prod".into(),
            rule: None,
            reason: "r".into(),
            until: now + chrono::Duration::days(1),
            requested_by: "a".into(),
            requested_at: now,
            status: ExemptionStatus::Pending,
            history: vec![],
        };
        assert!(e.covers("pay", "prod", "any"));
        assert!(!e.is_in_force(now));
        e.status = ExemptionStatus::Approved;
        assert!(e.is_in_force(now));
        assert!(!e.is_in_force(now + chrono::Duration::days(2)));
        e.rule = Some("r1".into());
        assert!(!e.covers("pay", "prod", "r2"));
    }
}
