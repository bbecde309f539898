//! The redb tables, declared once, and the composite keys that address them.
//!
//! Composite keys join identifiers with [`SEP`] (`'\0'`): it sorts below every other character,
//! so all keys of one entity form one contiguous range (`"pay\0…"` sorts before `"pay-x\0…"`),
//! and it cannot appear in an identifier, a file-defined name or JSON text a person typed.
//! Timestamps inside keys are fixed-width decimal microseconds, so that they sort in time order.
//! Values are MessagePack (`rmp_serde::to_vec_named`, fields by name, so fields can be added).

use redb::TableDefinition;

use super::StoreError;
use crate::model::Timestamp;

/// `schema_version`, the store's counters (`seq.*`) and free keys of other modules.
pub(super) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// entity id → `EntityRecord` (the entity and where it came from).
pub(super) const ENTITIES: TableDefinition<&str, &[u8]> = TableDefinition::new("entities");
/// entity id → `TierOverride` (an approved tier change; survives catalog reloads).
pub(super) const TIER_OVERRIDES: TableDefinition<&str, &[u8]> =
    TableDefinition::new("tier_overrides");
/// entity␀source → `FactRecord`, the latest facts (the ones evaluation reads).
pub(super) const FACTS_LATEST: TableDefinition<&str, &[u8]> = TableDefinition::new("facts_latest");
/// entity␀source␀collected_at → `FactRecord`, bounded per (entity, source).
pub(super) const FACTS_HISTORY: TableDefinition<&str, &[u8]> =
    TableDefinition::new("facts_history");
/// entity␀scorecard → `ScorecardResult`.
pub(super) const RESULTS: TableDefinition<&str, &[u8]> = TableDefinition::new("results");
/// entity␀scorecard␀at → `LevelChange`.
pub(super) const LEVEL_HISTORY: TableDefinition<&str, &[u8]> =
    TableDefinition::new("level_history");
/// scorecard␀date → `DailySnapshot` (scorecard first: trends read one scorecard over a date range).
pub(super) const DAILY_SNAPSHOTS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("daily_snapshots");
/// exemption id → `Exemption`.
pub(super) const EXEMPTIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("exemptions");
/// tier request id → `TierRequest`.
pub(super) const TIER_REQUESTS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("tier_requests");
/// entity id → `Lock`.
pub(super) const LOCKS: TableDefinition<&str, &[u8]> = TableDefinition::new("locks");
/// task id → `Task`.
pub(super) const TASKS: TableDefinition<&str, &[u8]> = TableDefinition::new("tasks");
/// entity␀scorecard␀rule → task id, for every task that is not done (open or overdue).
pub(super) const OPEN_TASKS: TableDefinition<&str, &str> = TableDefinition::new("open_tasks");
/// seq → `OutboxEntry` waiting for delivery.
pub(super) const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");
/// idempotency key → seq of the queued or dead-lettered entry: an event enqueued twice is kept once.
pub(super) const OUTBOX_KEYS: TableDefinition<&str, u64> = TableDefinition::new("outbox_keys");
/// idempotency key → `SentRecord`: delivered, never again.
pub(super) const OUTBOX_SENT: TableDefinition<&str, &[u8]> = TableDefinition::new("outbox_sent");
/// seq → `DeadLetter`: entries delivery gave up on.
pub(super) const DEAD_LETTERS: TableDefinition<u64, &[u8]> = TableDefinition::new("dead_letters");
/// seq → `AuditRecord`, in the order things happened.
pub(super) const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
/// kind␀id␀seq → seq: the audit trail of one record without scanning the whole log.
pub(super) const AUDIT_BY_SUBJECT: TableDefinition<&str, u64> =
    TableDefinition::new("audit_by_subject");
/// [`STANDARDS_LAST_GOOD`] → `StoredStandards`: the last standards set that loaded from its
/// files, served when the files are refused at a later start. Added after schema version 1
/// without a bump: the table is created at open like every other, so a file written before it
/// opens with the table empty, and an older readyd never opens it.
pub(super) const STANDARDS_SETS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("standards_sets");
/// The one key of [`STANDARDS_SETS`] (a table rather than a meta key so that a later version
/// may keep more than one set, e.g. for a rollback).
pub(super) const STANDARDS_LAST_GOOD: &str = "last_good";
/// free key (entity␀… by convention) → small MessagePack value: "degraded alert already sent", ...
pub(super) const ALERT_STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("alert_state");

/// entity␀source → `FirstRound`: the data source's first round for the entity has finished,
/// failed or timed out (the engine's quiet first start reads it back at restart).
pub(super) const FIRST_ROUNDS: TableDefinition<&str, &[u8]> = TableDefinition::new("first_rounds");

/// Separator of composite keys.
pub(super) const SEP: char = '\0';

/// Meta key of the schema version.
pub(super) const SCHEMA_VERSION_KEY: &str = "schema_version";
/// Meta key of the last outbox sequence number handed out.
pub(super) const OUTBOX_SEQ_KEY: &str = "seq.outbox";
/// Meta key of the last audit sequence number handed out.
pub(super) const AUDIT_SEQ_KEY: &str = "seq.audit";

/// Whether `put_meta` must refuse `key`.
pub(super) fn is_reserved_meta_key(key: &str) -> bool {
    key == SCHEMA_VERSION_KEY || key.starts_with("seq.")
}

/// Checks that `part` can be one component of a composite key.
pub(super) fn check_part(table: &str, part: &str) -> Result<(), StoreError> {
    let reason = if part.is_empty() {
        "empty"
    } else if part.contains(SEP) {
        "contains the NUL character"
    } else {
        return Ok(());
    };
    Err(StoreError::InvalidKey {
        table: table.to_owned(),
        part: part.to_owned(),
        reason,
    })
}

/// Joins validated parts into one composite key.
pub(super) fn compose(table: &str, parts: &[&str]) -> Result<String, StoreError> {
    let mut key = String::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (i, part) in parts.iter().enumerate() {
        check_part(table, part)?;
        if i > 0 {
            key.push(SEP);
        }
        key.push_str(part);
    }
    Ok(key)
}

/// The half-open range of every key that starts with the parts of `prefix` followed by more parts.
pub(super) fn prefix_range(prefix: &str) -> (String, String) {
    (format!("{prefix}{SEP}"), format!("{prefix}\u{1}"))
}

/// A timestamp as a fixed-width, order-preserving key part (microseconds since the epoch with the
/// sign bit flipped, 20 decimal digits).
pub(super) fn time_part(at: Timestamp) -> String {
    // Reinterpreting the two's-complement bits and flipping the sign bit maps i64 order onto u64
    // order, so times before 1970 still sort first.
    let ordered = (at.timestamp_micros() as u64) ^ (1 << 63);
    format!("{ordered:020}")
}

/// The last component of a composite key.
pub(super) fn last_part(key: &str) -> &str {
    key.rsplit(SEP).next().unwrap_or(key)
}

/// A sequence number as a fixed-width key part.
pub(super) fn seq_part(seq: u64) -> String {
    format!("{seq:020}")
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    #[test]
    fn time_parts_are_fixed_width_and_sort_in_time_order() {
        let times = [
            Utc.with_ymd_and_hms(1960, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 1).unwrap(),
        ];
        let parts: Vec<String> = times.iter().map(|t| time_part(*t)).collect();
        let mut sorted = parts.clone();
        sorted.sort();
        assert_eq!(parts, sorted);
        assert!(parts.iter().all(|p| p.len() == 20));
    }

    #[test]
    fn prefix_range_holds_exactly_one_entity() {
        let (lo, hi) = prefix_range("pay");
        let inside = compose("t", &["pay", "prod"]).unwrap();
        let other = compose("t", &["pay-x", "prod"]).unwrap();
        assert!(lo.as_str() <= inside.as_str() && inside.as_str() < hi.as_str());
        assert!(!(lo.as_str() <= other.as_str() && other.as_str() < hi.as_str()));
        assert!(!(lo.as_str() <= "pay" && "pay" < hi.as_str()));
    }

    #[test]
    fn bad_parts_are_refused() {
        assert!(matches!(
            compose("t", &["a", ""]),
            Err(StoreError::InvalidKey {
                reason: "empty",
                ..
            })
        ));
        assert!(compose("t", &["a\0b"]).is_err());
        assert_eq!(last_part(&compose("t", &["a", "b", "c"]).unwrap()), "c");
    }
}
