//! Events: what happened to an entity, a task, an exemption or an initiative, in the one shape
//! that routes select on and channels render.
//!
//! An [`Event`] is plain data built by the planner ([`super::plan`]); it never performs I/O.
//! Its `id` is a stable hash of what the event is about and of the transition that caused it
//! (a rule's `changed_at`, a task's id and status, an exemption's history length, ...), so a
//! replayed evaluation produces the same id, hence the same outbox idempotency keys, and the
//! store drops the duplicate enqueue. Ids read `<kind>:<32 hex digits>`: the kind prefix lets the
//! delivery worker name the event in `X-Readyd-Event` without another field in the outbox record.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::{Entity, RuleStatus, Tier, Timestamp};

/// Every kind of event readyd emits; the dotted names are what `routes[].events` lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventKind {
    /// A rule that counted as passed now fails or errors.
    #[serde(rename = "rule.failed")]
    RuleFailed,
    /// A rule that failed or errored counts as passed again.
    #[serde(rename = "rule.passed")]
    RulePassed,
    /// The entity reached a higher level on a scorecard.
    #[serde(rename = "level.improved")]
    LevelImproved,
    /// The entity dropped to a lower level on a scorecard.
    #[serde(rename = "level.degraded")]
    LevelDegraded,
    /// The entity fell below what its tier requires (alerted once until it recovers).
    #[serde(rename = "entity.degraded")]
    EntityDegraded,
    /// A degraded entity meets its tier's requirement again.
    #[serde(rename = "entity.recovered")]
    EntityRecovered,
    #[serde(rename = "task.created")]
    TaskCreated,
    #[serde(rename = "task.done")]
    TaskDone,
    #[serde(rename = "task.overdue")]
    TaskOverdue,
    /// Reminder sent once per task shortly before its due date.
    #[serde(rename = "task.due_soon")]
    TaskDueSoon,
    #[serde(rename = "exemption.requested")]
    ExemptionRequested,
    #[serde(rename = "exemption.approved")]
    ExemptionApproved,
    #[serde(rename = "exemption.denied")]
    ExemptionDenied,
    #[serde(rename = "exemption.revoked")]
    ExemptionRevoked,
    /// Reminder sent once per exemption shortly before it ends.
    #[serde(rename = "exemption.expiring_soon")]
    ExemptionExpiringSoon,
    #[serde(rename = "exemption.expired")]
    ExemptionExpired,
    /// A tier change request was approved or denied.
    #[serde(rename = "tier_request.decided")]
    TierRequestDecided,
    /// Sent once per initiative (and deadline) shortly before its deadline while not done.
    #[serde(rename = "initiative.deadline_approaching")]
    InitiativeDeadlineApproaching,
    /// Someone asked readyd to remind the owners what the entity misses.
    #[serde(rename = "entity.nudge")]
    EntityNudge,
}

impl EventKind {
    /// Every kind, in documentation order.
    pub const ALL: [EventKind; 19] = [
        EventKind::RuleFailed,
        EventKind::RulePassed,
        EventKind::LevelImproved,
        EventKind::LevelDegraded,
        EventKind::EntityDegraded,
        EventKind::EntityRecovered,
        EventKind::TaskCreated,
        EventKind::TaskDone,
        EventKind::TaskOverdue,
        EventKind::TaskDueSoon,
        EventKind::ExemptionRequested,
        EventKind::ExemptionApproved,
        EventKind::ExemptionDenied,
        EventKind::ExemptionRevoked,
        EventKind::ExemptionExpiringSoon,
        EventKind::ExemptionExpired,
        EventKind::TierRequestDecided,
        EventKind::InitiativeDeadlineApproaching,
        EventKind::EntityNudge,
    ];

    /// The dotted name (`entity.degraded`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::RuleFailed => "rule.failed",
            EventKind::RulePassed => "rule.passed",
            EventKind::LevelImproved => "level.improved",
            EventKind::LevelDegraded => "level.degraded",
            EventKind::EntityDegraded => "entity.degraded",
            EventKind::EntityRecovered => "entity.recovered",
            EventKind::TaskCreated => "task.created",
            EventKind::TaskDone => "task.done",
            EventKind::TaskOverdue => "task.overdue",
            EventKind::TaskDueSoon => "task.due_soon",
            EventKind::ExemptionRequested => "exemption.requested",
            EventKind::ExemptionApproved => "exemption.approved",
            EventKind::ExemptionDenied => "exemption.denied",
            EventKind::ExemptionRevoked => "exemption.revoked",
            EventKind::ExemptionExpiringSoon => "exemption.expiring_soon",
            EventKind::ExemptionExpired => "exemption.expired",
            EventKind::TierRequestDecided => "tier_request.decided",
            EventKind::InitiativeDeadlineApproaching => "initiative.deadline_approaching",
            EventKind::EntityNudge => "entity.nudge",
        }
    }

    /// A short human title (`Service degraded`), used as the header of chat messages.
    pub fn title(self) -> &'static str {
        match self {
            EventKind::RuleFailed => "Rule failing",
            EventKind::RulePassed => "Rule passing again",
            EventKind::LevelImproved => "Level improved",
            EventKind::LevelDegraded => "Level dropped",
            EventKind::EntityDegraded => "Below tier requirement",
            EventKind::EntityRecovered => "Tier requirement met again",
            EventKind::TaskCreated => "New task",
            EventKind::TaskDone => "Task done",
            EventKind::TaskOverdue => "Task overdue",
            EventKind::TaskDueSoon => "Task due soon",
            EventKind::ExemptionRequested => "Exemption requested",
            EventKind::ExemptionApproved => "Exemption approved",
            EventKind::ExemptionDenied => "Exemption denied",
            EventKind::ExemptionRevoked => "Exemption revoked",
            EventKind::ExemptionExpiringSoon => "Exemption expiring soon",
            EventKind::ExemptionExpired => "Exemption expired",
            EventKind::TierRequestDecided => "Tier change decided",
            EventKind::InitiativeDeadlineApproaching => "Initiative deadline approaching",
            EventKind::EntityNudge => "Readiness reminder",
        }
    }

    /// Whether this kind reports something getting worse (rendered with a warning style).
    pub fn is_bad_news(self) -> bool {
        matches!(
            self,
            EventKind::RuleFailed
                | EventKind::LevelDegraded
                | EventKind::EntityDegraded
                | EventKind::TaskOverdue
                | EventKind::ExemptionExpired
                | EventKind::InitiativeDeadlineApproaching
        )
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not an event kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event kind `{0}` (expected one of: {list})", list = kind_list())]
pub struct UnknownEventKind(pub String);

fn kind_list() -> String {
    EventKind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl FromStr for EventKind {
    type Err = UnknownEventKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownEventKind(s.to_owned()))
    }
}

/// The entity an event is about, as notifications show it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EntitySummary {
    pub identifier: String,
    pub title: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<Tier>,
}

impl EntitySummary {
    /// The summary of `entity` (whose `tier` must already be the effective tier).
    pub fn of(entity: &Entity) -> EntitySummary {
        EntitySummary {
            identifier: entity.identifier.clone(),
            title: entity.title.clone(),
            kind: entity.kind.clone(),
            team: entity.team.clone(),
            tier: entity.tier,
        }
    }

    /// `payments-api (Tier 1, team payments)`: how every message names the entity.
    pub fn describe(&self) -> String {
        describe_entity(&self.identifier, self.tier, self.team.as_deref()).to_string()
    }
}

/// How every message names an entity (`payments-api (Tier 1, team payments)`), written only
/// when a message is formatted: planning runs for every evaluated entity and most make none.
pub struct Who<'a>(pub &'a Entity);

impl std::fmt::Display for Who<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        describe_entity(&self.0.identifier, self.0.tier, self.0.team.as_deref()).fmt(f)
    }
}

fn describe_entity<'a>(
    identifier: &'a str,
    tier: Option<Tier>,
    team: Option<&'a str>,
) -> impl std::fmt::Display + 'a {
    struct Described<'a>(&'a str, Option<Tier>, Option<&'a str>);
    impl std::fmt::Display for Described<'_> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{} (", self.0)?;
            match self.1 {
                Some(t) => write!(f, "Tier {t}")?,
                None => f.write_str("untiered")?,
            }
            match self.2 {
                Some(t) => write!(f, ", team {t})"),
                None => f.write_str(", no owning team)"),
            }
        }
    }
    Described(identifier, tier, team)
}

/// A rule that keeps an entity from a level it needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlockingRule {
    pub scorecard: String,
    pub rule: String,
    /// The rule's title from the scorecard (the identifier when the scorecard is gone).
    pub title: String,
    pub status: RuleStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl BlockingRule {
    /// `has-oncall (facts.oncall.oncall_count is 0, required > 0)`; an `error` says so, because a
    /// broken plugin must not read as the owner's fault.
    pub fn describe(&self) -> String {
        let why = match (&self.message, self.status) {
            (Some(m), RuleStatus::Error) => format!("check error: {m}"),
            (None, RuleStatus::Error) => "check error".to_owned(),
            (Some(m), _) => m.clone(),
            (None, status) => status.as_str().to_owned(),
        };
        format!("{} ({why})", self.rule)
    }
}

/// Something that happened, ready to be routed and rendered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// `<kind>:<32 hex>`, stable for the same transition (see the module docs).
    pub id: String,
    pub kind: EventKind,
    /// When it happened (the evaluation's or the decision's time).
    pub at: Timestamp,
    /// The entity concerned; none for initiative events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<EntitySummary>,
    /// The team concerned: the entity's owner, a task's team, or an initiative's owner. Routes'
    /// `teams` selector and `team_channel` read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scorecard: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_level: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_level: Option<String>,
    /// The rules that block what the entity needs, with their messages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocking: Vec<BlockingRule>,
    /// One readable sentence: what changed and why.
    pub message: String,
    /// The dashboard page of the subject.
    pub link: String,
    /// Kind-specific details (the task, the exemption, the misses, the progress, ...).
    #[serde(default)]
    pub data: serde_json::Value,
}

impl Event {
    /// Every scorecard the event concerns (its own and those of its blocking rules), for the
    /// routes' `scorecards` selector.
    pub fn scorecards(&self) -> impl Iterator<Item = &str> {
        self.scorecard
            .as_deref()
            .into_iter()
            .chain(self.blocking.iter().map(|b| b.scorecard.as_str()))
    }

    /// The kind named by an event id (`<kind>:<hash>`), as the delivery worker reads it back.
    pub fn kind_of_id(id: &str) -> Option<EventKind> {
        id.split_once(':').and_then(|(kind, _)| kind.parse().ok())
    }
}

/// The stable id of an event: its kind and a hash of the kind, the subject and the transition
/// key. `parts` must identify the transition (e.g. entity, scorecard, rule, `changed_at`).
pub fn event_id(kind: EventKind, parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    hash.update(kind.as_str().as_bytes());
    for part in parts {
        // A separator that cannot occur in identifiers keeps ("ab","c") apart from ("a","bc").
        hash.update([0u8]);
        hash.update(part.as_bytes());
    }
    let digest = hash.finalize();
    format!("{}:{}", kind.as_str(), hex::encode(&digest[..16]))
}

/// The outbox idempotency key of one event on one channel: hex(sha256(event id + channel)).
pub fn idempotency_key(event_id: &str, channel: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(event_id.as_bytes());
    hash.update([0u8]);
    hash.update(channel.as_bytes());
    hex::encode(hash.finalize())
}

/// The dashboard page of an entity: `<public_url>/#/entities/<id>`.
pub fn entity_link(public_url: &str, entity: &str) -> String {
    format!("{}/#/entities/{entity}", public_url.trim_end_matches('/'))
}

/// The dashboard page of an initiative: `<public_url>/#/initiatives/<id>`.
pub fn initiative_link(public_url: &str, initiative: &str) -> String {
    format!(
        "{}/#/initiatives/{initiative}",
        public_url.trim_end_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_dotted_names() {
        for kind in EventKind::ALL {
            assert_eq!(kind.as_str().parse::<EventKind>(), Ok(kind));
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(serde_json::from_str::<EventKind>(&json).unwrap(), kind);
        }
        let err = "entity.exploded".parse::<EventKind>().unwrap_err();
        assert!(err.to_string().contains("entity.degraded"), "{err}");
    }

    #[test]
    fn ids_are_stable_and_separate_their_parts() {
        let a = event_id(EventKind::RuleFailed, &["pay", "prod", "r1", "t"]);
        assert_eq!(
            a,
            event_id(EventKind::RuleFailed, &["pay", "prod", "r1", "t"])
        );
        assert_ne!(
            a,
            event_id(EventKind::RuleFailed, &["pa", "yprod", "r1", "t"])
        );
        assert_ne!(
            a,
            event_id(EventKind::RulePassed, &["pay", "prod", "r1", "t"])
        );
        assert!(a.starts_with("rule.failed:"));
        assert_eq!(a.len(), "rule.failed:".len() + 32);
        assert_eq!(Event::kind_of_id(&a), Some(EventKind::RuleFailed));
        assert_eq!(Event::kind_of_id("nonsense"), None);
    }

    #[test]
    fn idempotency_keys_differ_per_channel_and_match_an_independent_sha256() {
        let k = idempotency_key("rule.failed:abc", "sre-slack");
        assert_eq!(k, idempotency_key("rule.failed:abc", "sre-slack"));
        assert_ne!(k, idempotency_key("rule.failed:abc", "tracker"));
        let expected = hex::encode(Sha256::digest(b"rule.failed:abc\0sre-slack"));
        assert_eq!(k, expected);
    }

    #[test]
    fn entities_and_blocking_rules_read_well() {
        let e = EntitySummary {
            identifier: "payments-api".into(),
            title: "Payments API".into(),
            kind: "service".into(),
            team: Some("payments".into()),
            tier: Some(1),
        };
        assert_eq!(e.describe(), "payments-api (Tier 1, team payments)");
        let b = BlockingRule {
            scorecard: "prod".into(),
            rule: "slo".into(),
            title: "SLO".into(),
            status: RuleStatus::Error,
            message: Some("plugin timed out".into()),
        };
        assert_eq!(b.describe(), "slo (check error: plugin timed out)");
        assert_eq!(
            entity_link("http://h:1/", "payments-api"),
            "http://h:1/#/entities/payments-api"
        );
    }
}
