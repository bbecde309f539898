//! `WriteBatch`: the operations of one logical change, applied in one redb write transaction.
//!
//! Builder methods encode values at once, on the caller's thread, so the single writer only moves
//! bytes; a value that cannot be encoded or a key that cannot exist makes the whole batch fail at
//! commit, before anything is written. `apply` runs inside a write transaction and returns the
//! first error, after which the caller aborts the transaction: a batch is all or nothing.

use redb::{ReadableTable, Table, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::Context;
use super::records::{
    AuditRecord, CommitStats, DailySnapshot, DeadLetter, EntityOrigin, EntityRecord, FirstRound,
    OutboxEntry, OutboxMessage, SentRecord, TierOverride,
};
use super::tables::{self, *};
use super::{StoreError, decode_value};
use crate::model::{
    AuditEntry, Entity, Exemption, FactRecord, LevelChange, Lock, ScorecardResult, Task,
    TaskStatus, TierRequest, Timestamp,
};

/// The operations of one change, committed together or not at all.
///
/// ```
/// use readyd::model::{Lock, Timestamp};
/// use readyd::store::{Durability, Store, WriteBatch};
///
/// let store = Store::in_memory()?;
/// let lock = Lock {
///     entity: "payments".into(),
///     reason: "incident 42".into(),
///     locked_by: "alice".into(),
///     locked_at: Timestamp::UNIX_EPOCH,
/// };
/// let mut batch = WriteBatch::new();
/// batch.put_lock(&lock).put_meta("standards.revision", "3f2a");
/// // In the daemon: `writer.commit(batch, Durability::Immediate).await?`.
/// store.commit(batch, Durability::Immediate)?;
/// assert_eq!(store.lock("payments")?, Some(lock));
/// # Ok::<(), readyd::store::StoreError>(())
/// ```
#[derive(Default)]
pub struct WriteBatch {
    ops: Vec<Op>,
    /// The first builder error; the batch is refused at commit.
    invalid: Option<StoreError>,
    /// Whether an op holds state kill -9 must not lose.
    immediate: bool,
}

impl std::fmt::Debug for WriteBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteBatch")
            .field("ops", &self.ops.len())
            .field("invalid", &self.invalid)
            .field("immediate", &self.immediate)
            .finish()
    }
}

enum Op {
    PutEntity {
        id: String,
        bytes: Vec<u8>,
    },
    DeleteEntity {
        id: String,
        at: Timestamp,
    },
    SetTierOverride {
        entity: String,
        bytes: Option<Vec<u8>>,
    },
    PutFacts {
        /// entity␀source: the key of the latest facts and the prefix of their history.
        series: String,
        history_key: String,
        bytes: Vec<u8>,
    },
    DeleteFacts {
        series: String,
    },
    PutResult {
        key: String,
        bytes: Vec<u8>,
    },
    DeleteResult {
        key: String,
    },
    AppendLevelChange {
        key: String,
        bytes: Vec<u8>,
    },
    PutSnapshot {
        key: String,
        bytes: Vec<u8>,
    },
    PutExemption {
        id: String,
        bytes: Vec<u8>,
    },
    PutTierRequest {
        id: String,
        bytes: Vec<u8>,
    },
    PutLock {
        entity: String,
        bytes: Vec<u8>,
    },
    DeleteLock {
        entity: String,
    },
    PutTask {
        id: String,
        index_key: String,
        done: bool,
        bytes: Vec<u8>,
    },
    EnqueueOutbox {
        idempotency_key: String,
        bytes: Vec<u8>,
    },
    MarkOutboxSent {
        seq: u64,
        idempotency_key: String,
        sent_at: Timestamp,
    },
    RescheduleOutbox {
        seq: u64,
        attempts: u32,
        next_attempt_at: Timestamp,
        error: String,
    },
    DeadLetter {
        seq: u64,
        reason: String,
        at: Timestamp,
    },
    RequeueDeadLetter {
        seq: u64,
        at: Timestamp,
    },
    PruneOutboxSent {
        before: Timestamp,
    },
    AppendAudit {
        subject: String,
        bytes: Vec<u8>,
    },
    PutMeta {
        key: String,
        bytes: Vec<u8>,
    },
    PutStandards {
        bytes: Vec<u8>,
    },
    PutAlertState {
        key: String,
        bytes: Vec<u8>,
    },
    DeleteAlertState {
        key: String,
    },
    PutFirstRound {
        key: String,
        bytes: Vec<u8>,
    },
}

/// Table names for error messages.
fn name<K: redb::Key + 'static, V: redb::Value + 'static>(
    def: redb::TableDefinition<'static, K, V>,
) -> String {
    redb::TableHandle::name(&def).to_owned()
}

pub(super) fn encode<T: Serialize + ?Sized>(
    table: &str,
    key: &str,
    value: &T,
) -> Result<Vec<u8>, StoreError> {
    rmp_serde::to_vec_named(value).map_err(|source| StoreError::Encode {
        table: table.to_owned(),
        key: key.to_owned(),
        source: Box::new(source),
    })
}

impl WriteBatch {
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves every operation of `other` after those of `self` (a pass may build parts of its
    /// batch on several threads, then join them).
    pub fn append(&mut self, mut other: WriteBatch) -> &mut Self {
        self.ops.append(&mut other.ops);
        if self.invalid.is_none() {
            self.invalid = other.invalid.take();
        }
        self.immediate |= other.immediate;
        self
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Whether the batch holds a person-made record, a task, an audit line, an outbox change or
    /// alert state: the store then commits it with `Durability::Immediate` even when asked for
    /// `Eventual` (DESIGN.md section 11: kill -9 loses no committed exemption, approval, task or
    /// outbox entry).
    pub fn requires_immediate(&self) -> bool {
        self.immediate
    }

    /// The builder error that will make the commit fail, if any.
    pub fn error(&self) -> Option<&StoreError> {
        self.invalid.as_ref()
    }

    pub(super) fn take_error(&mut self) -> Option<StoreError> {
        self.invalid.take()
    }

    fn push(&mut self, op: Result<Op, StoreError>, immediate: bool) -> &mut Self {
        match op {
            Ok(op) => self.ops.push(op),
            Err(e) => {
                if self.invalid.is_none() {
                    self.invalid = Some(e);
                }
            }
        }
        self.immediate |= immediate;
        self
    }

    /// Creates or replaces an entity. An approved tier override is kept (see [`TierOverride`]).
    /// Unchanged entities are not rewritten. Entities from the API are person-made: immediate.
    pub fn put_entity(&mut self, entity: &Entity, origin: EntityOrigin) -> &mut Self {
        let op = (|| {
            let table = name(ENTITIES);
            let id = compose(&table, &[&entity.identifier])?;
            let record = EntityRecord {
                entity: entity.clone(),
                origin,
            };
            let bytes = encode(&table, &id, &record)?;
            Ok(Op::PutEntity { id, bytes })
        })();
        self.push(op, origin == EntityOrigin::Api)
    }

    /// Removes an entity and everything derived from it: its tier override, latest facts and
    /// fact history, results, level history, lock, alert state keyed under it; its open tasks
    /// are closed (`done` at `at`) and leave the open-task index. Kept for the record:
    /// exemptions, tier requests, tasks (closed), the audit log, the outbox and the daily
    /// snapshots (past trends stay true).
    pub fn delete_entity(&mut self, id: &str, at: Timestamp) -> &mut Self {
        let op = compose(&name(ENTITIES), &[id]).map(|id| Op::DeleteEntity { id, at });
        self.push(op, true)
    }

    /// Sets (Some) or clears (None) the approved tier of an entity.
    pub fn set_tier_override(
        &mut self,
        entity: &str,
        tier_override: Option<&TierOverride>,
    ) -> &mut Self {
        let op = (|| {
            let table = name(TIER_OVERRIDES);
            let entity = compose(&table, &[entity])?;
            let bytes = tier_override
                .map(|o| encode(&table, &entity, o))
                .transpose()?;
            Ok(Op::SetTierOverride { entity, bytes })
        })();
        self.push(op, true)
    }

    /// Stores the latest facts of `entity` from `record.source` and appends them to its history
    /// (keyed by `collected_at`: putting the same collection again, e.g. to mark it stale,
    /// replaces that history entry instead of adding one), trimmed to the configured bound.
    pub fn put_facts(&mut self, entity: &str, record: &FactRecord) -> &mut Self {
        let op = (|| {
            let table = name(FACTS_LATEST);
            let latest_key = compose(&table, &[entity, &record.source])?;
            let history_key = format!("{latest_key}{SEP}{}", time_part(record.collected_at));
            let bytes = encode(&table, &latest_key, record)?;
            Ok(Op::PutFacts {
                series: latest_key,
                history_key,
                bytes,
            })
        })();
        self.push(op, false)
    }

    /// Removes the latest facts and the history of one (entity, source).
    pub fn delete_facts(&mut self, entity: &str, source: &str) -> &mut Self {
        let op = compose(&name(FACTS_LATEST), &[entity, source])
            .map(|series| Op::DeleteFacts { series });
        self.push(op, false)
    }

    /// Stores a result unless its encoding equals the stored one (then it is counted in
    /// `CommitStats::results_unchanged` and not rewritten). The comparison is exact: a result
    /// whose only change is `evaluated_at` is a change.
    pub fn put_result(&mut self, result: &ScorecardResult) -> &mut Self {
        let op = (|| {
            let table = name(RESULTS);
            let key = compose(&table, &[&result.entity, &result.scorecard])?;
            let bytes = super::codec::encode_result(&key, result)?;
            Ok(Op::PutResult { key, bytes })
        })();
        self.push(op, false)
    }

    /// [`put_result`](Self::put_result) for each result.
    pub fn put_results<'a>(
        &mut self,
        results: impl IntoIterator<Item = &'a ScorecardResult>,
    ) -> &mut Self {
        let results = results.into_iter();
        self.ops.reserve(results.size_hint().0);
        for result in results {
            self.put_result(result);
        }
        self
    }

    /// Removes the result of one (entity, scorecard), e.g. after the scorecard was removed.
    pub fn delete_result(&mut self, entity: &str, scorecard: &str) -> &mut Self {
        let op = compose(&name(RESULTS), &[entity, scorecard]).map(|key| Op::DeleteResult { key });
        self.push(op, false)
    }

    /// Appends a level change (keyed by entity, scorecard and `at`; the same change appended
    /// twice is kept once).
    pub fn append_level_change(&mut self, change: &LevelChange) -> &mut Self {
        let op = (|| {
            let table = name(LEVEL_HISTORY);
            let key = compose(
                &table,
                &[&change.entity, &change.scorecard, &time_part(change.at)],
            )?;
            let bytes = encode(&table, &key, change)?;
            Ok(Op::AppendLevelChange { key, bytes })
        })();
        self.push(op, false)
    }

    /// Stores the snapshot of one scorecard for one day, replacing an earlier one of that day.
    pub fn put_snapshot(&mut self, snapshot: &DailySnapshot) -> &mut Self {
        let op = (|| {
            let table = name(DAILY_SNAPSHOTS);
            let date = snapshot.date.format("%Y-%m-%d").to_string();
            let key = compose(&table, &[&snapshot.scorecard, &date])?;
            let bytes = encode(&table, &key, snapshot)?;
            Ok(Op::PutSnapshot { key, bytes })
        })();
        self.push(op, false)
    }

    pub fn put_exemption(&mut self, exemption: &Exemption) -> &mut Self {
        let op = (|| {
            let table = name(EXEMPTIONS);
            let id = compose(&table, &[&exemption.id])?;
            let bytes = encode(&table, &id, exemption)?;
            Ok(Op::PutExemption { id, bytes })
        })();
        self.push(op, true)
    }

    pub fn put_tier_request(&mut self, request: &TierRequest) -> &mut Self {
        let op = (|| {
            let table = name(TIER_REQUESTS);
            let id = compose(&table, &[&request.id])?;
            let bytes = encode(&table, &id, request)?;
            Ok(Op::PutTierRequest { id, bytes })
        })();
        self.push(op, true)
    }

    pub fn put_lock(&mut self, lock: &Lock) -> &mut Self {
        let op = (|| {
            let table = name(LOCKS);
            let entity = compose(&table, &[&lock.entity])?;
            let bytes = encode(&table, &entity, lock)?;
            Ok(Op::PutLock { entity, bytes })
        })();
        self.push(op, true)
    }

    /// Removes the lock of an entity (nothing happens when there is none).
    pub fn delete_lock(&mut self, entity: &str) -> &mut Self {
        let op = compose(&name(LOCKS), &[entity]).map(|entity| Op::DeleteLock { entity });
        self.push(op, true)
    }

    /// Creates or updates a task and keeps the open-task index: a task that is not done is
    /// indexed under (entity, scorecard, rule); a second such task with another id is refused
    /// with [`StoreError::Conflict`]; a done task leaves the index.
    pub fn put_task(&mut self, task: &Task) -> &mut Self {
        let op = (|| {
            let table = name(TASKS);
            let id = compose(&table, &[&task.id])?;
            let index_key = compose(
                &name(OPEN_TASKS),
                &[&task.entity, &task.scorecard, &task.rule],
            )?;
            let bytes = encode(&table, &id, task)?;
            Ok(Op::PutTask {
                id,
                index_key,
                done: task.status == TaskStatus::Done,
                bytes,
            })
        })();
        self.push(op, true)
    }

    /// Queues a notification; its sequence number is reported in
    /// `CommitStats::outbox_enqueued`. Skipped (and counted in `outbox_duplicates`) when its
    /// idempotency key is already queued, dead-lettered or sent.
    pub fn enqueue_outbox(&mut self, message: &OutboxMessage) -> &mut Self {
        let op = (|| {
            let table = name(OUTBOX);
            check_part(&name(OUTBOX_KEYS), &message.idempotency_key)?;
            let entry = OutboxEntry {
                seq: 0,
                message: message.clone(),
                attempts: 0,
                next_attempt_at: message.created_at,
                last_error: None,
            };
            let bytes = encode(&table, &message.idempotency_key, &entry)?;
            Ok(Op::EnqueueOutbox {
                idempotency_key: message.idempotency_key.clone(),
                bytes,
            })
        })();
        self.push(op, true)
    }

    /// Records that entry `seq` was delivered: it leaves the outbox and its key is remembered.
    /// Refused with [`StoreError::AlreadySent`] if the key was already sent, with
    /// [`StoreError::NotFound`] if `seq` is not queued.
    pub fn mark_outbox_sent(
        &mut self,
        seq: u64,
        idempotency_key: &str,
        sent_at: Timestamp,
    ) -> &mut Self {
        let op = check_part(&name(OUTBOX_SENT), idempotency_key).map(|()| Op::MarkOutboxSent {
            seq,
            idempotency_key: idempotency_key.to_owned(),
            sent_at,
        });
        self.push(op, true)
    }

    /// Records a failed attempt: the entry is not due before `next_attempt_at`.
    pub fn reschedule_outbox(
        &mut self,
        seq: u64,
        attempts: u32,
        next_attempt_at: Timestamp,
        error: &str,
    ) -> &mut Self {
        self.push(
            Ok(Op::RescheduleOutbox {
                seq,
                attempts,
                next_attempt_at,
                error: error.to_owned(),
            }),
            true,
        )
    }

    /// Moves entry `seq` from the outbox to the dead letters. Its key stays reserved, so the same
    /// event is not queued again.
    pub fn dead_letter(&mut self, seq: u64, reason: &str, at: Timestamp) -> &mut Self {
        self.push(
            Ok(Op::DeadLetter {
                seq,
                reason: reason.to_owned(),
                at,
            }),
            true,
        )
    }

    /// Moves dead letter `seq` back to the outbox, due at `at`, with its attempts reset.
    pub fn requeue_dead_letter(&mut self, seq: u64, at: Timestamp) -> &mut Self {
        self.push(Ok(Op::RequeueDeadLetter { seq, at }), true)
    }

    /// Forgets sent keys older than `before`, to bound `outbox_sent`. An event re-emitted after
    /// that would be sent again: keep `before` well past any replay window.
    pub fn prune_outbox_sent(&mut self, before: Timestamp) -> &mut Self {
        self.push(Ok(Op::PruneOutboxSent { before }), true)
    }

    /// Appends to the audit log; the sequence number is reported in
    /// `CommitStats::audit_appended`.
    pub fn append_audit(&mut self, kind: &str, id: &str, entry: &AuditEntry) -> &mut Self {
        let op = (|| {
            let table = name(AUDIT);
            let subject = compose(&name(AUDIT_BY_SUBJECT), &[kind, id])?;
            let record = AuditRecord {
                seq: 0,
                kind: kind.to_owned(),
                id: id.to_owned(),
                entry: entry.clone(),
            };
            let bytes = encode(&table, &subject, &record)?;
            Ok(Op::AppendAudit { subject, bytes })
        })();
        self.push(op, true)
    }

    /// Sets a free meta key (`schema_version` and `seq.*` are the store's own and refused).
    pub fn put_meta<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> &mut Self {
        let op = (|| {
            let table = name(META);
            check_part(&table, key)?;
            if is_reserved_meta_key(key) {
                return Err(StoreError::ReservedMetaKey {
                    key: key.to_owned(),
                });
            }
            let bytes = encode(&table, key, value)?;
            Ok(Op::PutMeta {
                key: key.to_owned(),
                bytes,
            })
        })();
        self.push(op, true)
    }

    /// Keeps `set` as the last standards set that loaded (replacing the previous one).
    pub fn put_last_good_standards(&mut self, set: &super::StoredStandards) -> &mut Self {
        let op = encode(&name(STANDARDS_SETS), STANDARDS_LAST_GOOD, set)
            .map(|bytes| Op::PutStandards { bytes });
        self.push(op, true)
    }

    /// Sets a small piece of automation state under a composite key. Start the key with the
    /// entity id when the state is about an entity: `delete_entity` then removes it.
    pub fn put_alert_state<T: Serialize + ?Sized>(&mut self, key: &[&str], value: &T) -> &mut Self {
        let op = (|| {
            let table = name(ALERT_STATE);
            let key = compose(&table, key)?;
            let bytes = encode(&table, &key, value)?;
            Ok(Op::PutAlertState { key, bytes })
        })();
        self.push(op, true)
    }

    pub fn delete_alert_state(&mut self, key: &[&str]) -> &mut Self {
        let op = compose(&name(ALERT_STATE), key).map(|key| Op::DeleteAlertState { key });
        self.push(op, true)
    }

    /// Records that `source` finished (or failed, or timed out) its first round for `entity`.
    /// Not immediate: a record lost to a crash only makes that entity quiet again until the
    /// source's next round (or the timeout).
    pub fn put_first_round(&mut self, entity: &str, source: &str, round: &FirstRound) -> &mut Self {
        let op = (|| {
            let table = name(FIRST_ROUNDS);
            let key = compose(&table, &[entity, source])?;
            let bytes = encode(&table, &key, round)?;
            Ok(Op::PutFirstRound { key, bytes })
        })();
        self.push(op, false)
    }
}

type StrTable<'txn> = Table<'txn, &'static str, &'static [u8]>;

/// Fact history entries stored per series (`entity␀source`), kept by the writer between
/// transactions (see [`Tables::note_fact_history`]).
pub(super) type HistoryCounts = std::collections::HashMap<String, usize>;
type SeqTable<'txn> = Table<'txn, u64, &'static [u8]>;

/// Every table, opened once per write transaction, and the sequence counters of the transaction.
pub(super) struct Tables<'txn> {
    file: &'txn str,
    fact_history_limit: usize,
    history_counts: &'txn mut HistoryCounts,
    meta: StrTable<'txn>,
    entities: StrTable<'txn>,
    tier_overrides: StrTable<'txn>,
    facts_latest: StrTable<'txn>,
    facts_history: StrTable<'txn>,
    results: StrTable<'txn>,
    level_history: StrTable<'txn>,
    daily_snapshots: StrTable<'txn>,
    exemptions: StrTable<'txn>,
    tier_requests: StrTable<'txn>,
    locks: StrTable<'txn>,
    tasks: StrTable<'txn>,
    open_tasks: Table<'txn, &'static str, &'static str>,
    outbox: SeqTable<'txn>,
    outbox_keys: Table<'txn, &'static str, u64>,
    outbox_sent: StrTable<'txn>,
    dead_letters: SeqTable<'txn>,
    audit: SeqTable<'txn>,
    audit_by_subject: Table<'txn, &'static str, u64>,
    alert_state: StrTable<'txn>,
    first_rounds: StrTable<'txn>,
    standards_sets: StrTable<'txn>,
    /// Last outbox / audit sequence numbers, loaded on first use and written back by `finish`.
    outbox_seq: Option<u64>,
    audit_seq: Option<u64>,
}

macro_rules! open {
    ($txn:expr, $file:expr, $def:expr) => {
        $txn.open_table($def)
            .map_err(|e| StoreError::storage($file, &name($def), "open_table", e))?
    };
}

impl<'txn> Tables<'txn> {
    pub(super) fn open(
        txn: &'txn WriteTransaction,
        file: &'txn str,
        fact_history_limit: usize,
        history_counts: &'txn mut HistoryCounts,
    ) -> Result<Self, StoreError> {
        Ok(Tables {
            file,
            fact_history_limit,
            history_counts,
            meta: open!(txn, file, META),
            entities: open!(txn, file, ENTITIES),
            tier_overrides: open!(txn, file, TIER_OVERRIDES),
            facts_latest: open!(txn, file, FACTS_LATEST),
            facts_history: open!(txn, file, FACTS_HISTORY),
            results: open!(txn, file, RESULTS),
            level_history: open!(txn, file, LEVEL_HISTORY),
            daily_snapshots: open!(txn, file, DAILY_SNAPSHOTS),
            exemptions: open!(txn, file, EXEMPTIONS),
            tier_requests: open!(txn, file, TIER_REQUESTS),
            locks: open!(txn, file, LOCKS),
            tasks: open!(txn, file, TASKS),
            open_tasks: open!(txn, file, OPEN_TASKS),
            outbox: open!(txn, file, OUTBOX),
            outbox_keys: open!(txn, file, OUTBOX_KEYS),
            outbox_sent: open!(txn, file, OUTBOX_SENT),
            dead_letters: open!(txn, file, DEAD_LETTERS),
            audit: open!(txn, file, AUDIT),
            audit_by_subject: open!(txn, file, AUDIT_BY_SUBJECT),
            alert_state: open!(txn, file, ALERT_STATE),
            first_rounds: open!(txn, file, FIRST_ROUNDS),
            standards_sets: open!(txn, file, STANDARDS_SETS),
            outbox_seq: None,
            audit_seq: None,
        })
    }

    /// Applies every operation of `batch`; on error the caller must abort the transaction.
    pub(super) fn apply(&mut self, batch: &WriteBatch) -> Result<CommitStats, StoreError> {
        let mut stats = CommitStats {
            ops: batch.ops.len(),
            ..CommitStats::default()
        };
        for op in &batch.ops {
            self.apply_op(op, &mut stats)?;
        }
        self.write_counters()?;
        Ok(stats)
    }

    fn decode<T: DeserializeOwned>(
        &self,
        table: &str,
        key: &str,
        bytes: &[u8],
    ) -> Result<T, StoreError> {
        decode_value(self.file, table, key, bytes)
    }

    fn apply_op(&mut self, op: &Op, stats: &mut CommitStats) -> Result<(), StoreError> {
        let file = self.file;
        match op {
            Op::PutEntity { id, bytes } => {
                if put_if_changed(&mut self.entities, file, "entities", id, bytes)? {
                    stats.entities_written += 1;
                } else {
                    stats.entities_unchanged += 1;
                }
            }
            Op::DeleteEntity { id, at } => self.delete_entity(id, *at, stats)?,
            Op::SetTierOverride { entity, bytes } => match bytes {
                Some(bytes) => {
                    self.tier_overrides
                        .insert(entity.as_str(), bytes.as_slice())
                        .ctx(file, "tier_overrides", "insert")?;
                }
                None => {
                    self.tier_overrides.remove(entity.as_str()).ctx(
                        file,
                        "tier_overrides",
                        "remove",
                    )?;
                }
            },
            Op::PutFacts {
                series,
                history_key,
                bytes,
            } => {
                self.facts_latest
                    .insert(series.as_str(), bytes.as_slice())
                    .ctx(file, "facts_latest", "insert")?;
                let replaced = self
                    .facts_history
                    .insert(history_key.as_str(), bytes.as_slice())
                    .ctx(file, "facts_history", "insert")?
                    .is_some();
                stats.facts_written += 1;
                stats.facts_history_trimmed += self.note_fact_history(series, replaced)?;
            }
            Op::DeleteFacts { series } => {
                self.facts_latest
                    .remove(series.as_str())
                    .ctx(file, "facts_latest", "remove")?;
                remove_prefix(&mut self.facts_history, file, "facts_history", series)?;
                self.history_counts.remove(series.as_str());
            }
            Op::PutResult { key, bytes } => {
                if put_if_changed(&mut self.results, file, "results", key, bytes)? {
                    stats.results_written += 1;
                } else {
                    stats.results_unchanged += 1;
                }
            }
            Op::DeleteResult { key } => {
                if self
                    .results
                    .remove(key.as_str())
                    .ctx(file, "results", "remove")?
                    .is_some()
                {
                    stats.results_deleted += 1;
                }
            }
            Op::AppendLevelChange { key, bytes } => {
                self.level_history
                    .insert(key.as_str(), bytes.as_slice())
                    .ctx(file, "level_history", "insert")?;
            }
            Op::PutSnapshot { key, bytes } => {
                self.daily_snapshots
                    .insert(key.as_str(), bytes.as_slice())
                    .ctx(file, "daily_snapshots", "insert")?;
            }
            Op::PutExemption { id, bytes } => {
                self.exemptions.insert(id.as_str(), bytes.as_slice()).ctx(
                    file,
                    "exemptions",
                    "insert",
                )?;
            }
            Op::PutTierRequest { id, bytes } => {
                self.tier_requests
                    .insert(id.as_str(), bytes.as_slice())
                    .ctx(file, "tier_requests", "insert")?;
            }
            Op::PutLock { entity, bytes } => {
                self.locks
                    .insert(entity.as_str(), bytes.as_slice())
                    .ctx(file, "locks", "insert")?;
            }
            Op::DeleteLock { entity } => {
                self.locks
                    .remove(entity.as_str())
                    .ctx(file, "locks", "remove")?;
            }
            Op::PutTask {
                id,
                index_key,
                done,
                bytes,
            } => self.put_task(id, index_key, *done, bytes)?,
            Op::EnqueueOutbox {
                idempotency_key,
                bytes,
            } => {
                let key = idempotency_key.as_str();
                let sent = self
                    .outbox_sent
                    .get(key)
                    .ctx(file, "outbox_sent", "get")?
                    .is_some();
                let queued = self
                    .outbox_keys
                    .get(key)
                    .ctx(file, "outbox_keys", "get")?
                    .is_some();
                if sent || queued {
                    stats.outbox_duplicates += 1;
                } else {
                    let seq = self.next_outbox_seq()?;
                    self.outbox
                        .insert(seq, bytes.as_slice())
                        .ctx(file, "outbox", "insert")?;
                    self.outbox_keys
                        .insert(key, seq)
                        .ctx(file, "outbox_keys", "insert")?;
                    stats.outbox_enqueued.push(seq);
                }
            }
            Op::MarkOutboxSent {
                seq,
                idempotency_key,
                sent_at,
            } => self.mark_outbox_sent(*seq, idempotency_key, *sent_at)?,
            Op::RescheduleOutbox {
                seq,
                attempts,
                next_attempt_at,
                error,
            } => {
                let mut entry: OutboxEntry = self.outbox_entry(*seq)?;
                entry.attempts = *attempts;
                entry.next_attempt_at = *next_attempt_at;
                entry.last_error = Some(error.clone());
                let bytes = encode("outbox", &seq.to_string(), &entry)?;
                self.outbox
                    .insert(*seq, bytes.as_slice())
                    .ctx(file, "outbox", "insert")?;
            }
            Op::DeadLetter { seq, reason, at } => {
                let entry = self.outbox_entry(*seq)?;
                self.outbox.remove(*seq).ctx(file, "outbox", "remove")?;
                let letter = DeadLetter {
                    seq: *seq,
                    entry,
                    reason: reason.clone(),
                    at: *at,
                };
                let bytes = encode("dead_letters", &seq.to_string(), &letter)?;
                self.dead_letters.insert(*seq, bytes.as_slice()).ctx(
                    file,
                    "dead_letters",
                    "insert",
                )?;
            }
            Op::RequeueDeadLetter { seq, at } => {
                let letter: DeadLetter = {
                    let guard = self
                        .dead_letters
                        .remove(*seq)
                        .ctx(file, "dead_letters", "remove")?
                        .ok_or_else(|| not_found("dead_letters", seq))?;
                    decode_value(file, "dead_letters", &seq.to_string(), guard.value())?
                };
                let mut entry = letter.entry;
                entry.attempts = 0;
                entry.next_attempt_at = *at;
                let bytes = encode("outbox", &seq.to_string(), &entry)?;
                self.outbox
                    .insert(*seq, bytes.as_slice())
                    .ctx(file, "outbox", "insert")?;
            }
            Op::PruneOutboxSent { before } => {
                let before = *before;
                self.outbox_sent
                    .retain(|_, bytes| {
                        // An undecodable record is kept: forgetting it could send twice.
                        rmp_serde::from_slice::<SentRecord>(bytes)
                            .map_or(true, |r| r.sent_at >= before)
                    })
                    .ctx(file, "outbox_sent", "retain")?;
            }
            Op::AppendAudit { subject, bytes } => {
                let seq = self.next_audit_seq()?;
                self.audit
                    .insert(seq, bytes.as_slice())
                    .ctx(file, "audit", "insert")?;
                let index_key = format!("{subject}{SEP}{}", seq_part(seq));
                self.audit_by_subject.insert(index_key.as_str(), seq).ctx(
                    file,
                    "audit_by_subject",
                    "insert",
                )?;
                stats.audit_appended.push(seq);
            }
            Op::PutMeta { key, bytes } => {
                self.meta
                    .insert(key.as_str(), bytes.as_slice())
                    .ctx(file, "meta", "insert")?;
            }
            Op::PutStandards { bytes } => {
                self.standards_sets
                    .insert(STANDARDS_LAST_GOOD, bytes.as_slice())
                    .ctx(file, "standards_sets", "insert")?;
            }
            Op::PutAlertState { key, bytes } => {
                self.alert_state
                    .insert(key.as_str(), bytes.as_slice())
                    .ctx(file, "alert_state", "insert")?;
            }
            Op::DeleteAlertState { key } => {
                self.alert_state
                    .remove(key.as_str())
                    .ctx(file, "alert_state", "remove")?;
            }
            Op::PutFirstRound { key, bytes } => {
                self.first_rounds
                    .insert(key.as_str(), bytes.as_slice())
                    .ctx(file, "first_rounds", "insert")?;
            }
        }
        Ok(())
    }

    fn delete_entity(
        &mut self,
        id: &str,
        at: Timestamp,
        stats: &mut CommitStats,
    ) -> Result<(), StoreError> {
        let file = self.file;
        if self
            .entities
            .remove(id)
            .ctx(file, "entities", "remove")?
            .is_some()
        {
            stats.entities_deleted += 1;
        }
        self.tier_overrides
            .remove(id)
            .ctx(file, "tier_overrides", "remove")?;
        self.locks.remove(id).ctx(file, "locks", "remove")?;
        remove_prefix(&mut self.facts_latest, file, "facts_latest", id)?;
        remove_prefix(&mut self.facts_history, file, "facts_history", id)?;
        // Deletions are rare: forget every count rather than search the entity's series.
        self.history_counts.clear();
        remove_prefix(&mut self.results, file, "results", id)?;
        remove_prefix(&mut self.level_history, file, "level_history", id)?;
        remove_prefix(&mut self.alert_state, file, "alert_state", id)?;
        self.alert_state
            .remove(id)
            .ctx(file, "alert_state", "remove")?;
        remove_prefix(&mut self.first_rounds, file, "first_rounds", id)?;

        let (lo, hi) = prefix_range(id);
        let open: Vec<(String, String)> = self
            .open_tasks
            .range::<&str>(lo.as_str()..hi.as_str())
            .ctx(file, "open_tasks", "range")?
            .map(|item| item.map(|(k, v)| (k.value().to_owned(), v.value().to_owned())))
            .collect::<Result<_, _>>()
            .ctx(file, "open_tasks", "range")?;
        for (index_key, task_id) in open {
            self.open_tasks
                .remove(index_key.as_str())
                .ctx(file, "open_tasks", "remove")?;
            let task: Option<Task> =
                match self.tasks.get(task_id.as_str()).ctx(file, "tasks", "get")? {
                    Some(guard) => Some(self.decode("tasks", &task_id, guard.value())?),
                    None => None,
                };
            if let Some(mut task) = task {
                task.status = TaskStatus::Done;
                task.closed_at = Some(at);
                let bytes = encode("tasks", &task_id, &task)?;
                self.tasks
                    .insert(task_id.as_str(), bytes.as_slice())
                    .ctx(file, "tasks", "insert")?;
                stats.tasks_closed += 1;
            }
        }
        Ok(())
    }

    /// Counts a new history entry of `series` and trims the series when it holds more than
    /// `fact_history_limit` plus half as many again: then only the newest
    /// `fact_history_limit` stay. Returns how many entries were removed.
    ///
    /// Why not trim on every put: removing an entry from a redb tree costs about twice as much
    /// as inserting one (rebalancing), and the count needs a range scan. Trimming half a
    /// limit's worth at once, with the count kept in memory, makes a data-source round over
    /// 10,000 entities about 0.15 s faster. Reads return only the newest
    /// `fact_history_limit` ([`Store::fact_history`](super::Store::fact_history)).
    fn note_fact_history(&mut self, series: &str, replaced: bool) -> Result<usize, StoreError> {
        let limit = self.fact_history_limit.max(1);
        let count = match self.history_counts.get_mut(series) {
            Some(count) => {
                if !replaced {
                    *count += 1;
                }
                *count
            }
            None => {
                let count = self.count_fact_history(series)?;
                self.history_counts.insert(series.to_owned(), count);
                count
            }
        };
        if count <= limit + limit.div_ceil(2) {
            return Ok(0);
        }
        let removed = self.trim_fact_history(series, count - limit)?;
        self.history_counts
            .insert(series.to_owned(), count - removed);
        Ok(removed)
    }

    fn count_fact_history(&self, series: &str) -> Result<usize, StoreError> {
        let (lo, hi) = prefix_range(series);
        Ok(self
            .facts_history
            .range::<&str>(lo.as_str()..hi.as_str())
            .ctx(self.file, "facts_history", "range")?
            .count())
    }

    /// Removes the `excess` oldest entries of `series` (keys are time-ordered); returns how
    /// many there were to remove.
    fn trim_fact_history(&mut self, series: &str, excess: usize) -> Result<usize, StoreError> {
        let file = self.file;
        let (lo, hi) = prefix_range(series);
        let oldest: Vec<String> = self
            .facts_history
            .range::<&str>(lo.as_str()..hi.as_str())
            .ctx(file, "facts_history", "range")?
            .take(excess)
            .map(|item| item.map(|(k, _)| k.value().to_owned()))
            .collect::<Result<_, _>>()
            .ctx(file, "facts_history", "range")?;
        for key in &oldest {
            self.facts_history
                .remove(key.as_str())
                .ctx(file, "facts_history", "remove")?;
        }
        Ok(oldest.len())
    }

    fn put_task(
        &mut self,
        id: &str,
        index_key: &str,
        done: bool,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        let file = self.file;
        // The (entity, scorecard, rule) of a task should not change, but if a caller changes it
        // the old index entry must not keep pointing at this task.
        let previous: Option<Task> = match self.tasks.get(id).ctx(file, "tasks", "get")? {
            Some(guard) => Some(self.decode("tasks", id, guard.value())?),
            None => None,
        };
        if let Some(previous) = previous {
            let old_key = tables::compose(
                "open_tasks",
                &[&previous.entity, &previous.scorecard, &previous.rule],
            )?;
            if old_key != index_key {
                self.unindex_task(&old_key, id)?;
            }
        }
        if done {
            self.unindex_task(index_key, id)?;
        } else {
            let holder = self
                .open_tasks
                .get(index_key)
                .ctx(file, "open_tasks", "get")?
                .map(|g| g.value().to_owned());
            if let Some(holder) = holder
                && holder != id
            {
                return Err(StoreError::Conflict {
                    table: "open_tasks".into(),
                    key: index_key.replace(SEP, "/"),
                    reason: format!(
                        "task {holder} is already open for this entity, scorecard and rule"
                    ),
                });
            }
            self.open_tasks
                .insert(index_key, id)
                .ctx(file, "open_tasks", "insert")?;
        }
        self.tasks.insert(id, bytes).ctx(file, "tasks", "insert")?;
        Ok(())
    }

    fn unindex_task(&mut self, index_key: &str, id: &str) -> Result<(), StoreError> {
        let file = self.file;
        let points_here = self
            .open_tasks
            .get(index_key)
            .ctx(file, "open_tasks", "get")?
            .is_some_and(|g| g.value() == id);
        if points_here {
            self.open_tasks
                .remove(index_key)
                .ctx(file, "open_tasks", "remove")?;
        }
        Ok(())
    }

    fn mark_outbox_sent(
        &mut self,
        seq: u64,
        key: &str,
        sent_at: Timestamp,
    ) -> Result<(), StoreError> {
        let file = self.file;
        let already: Option<SentRecord> =
            match self.outbox_sent.get(key).ctx(file, "outbox_sent", "get")? {
                Some(guard) => Some(self.decode("outbox_sent", key, guard.value())?),
                None => None,
            };
        if let Some(record) = already {
            return Err(StoreError::AlreadySent {
                idempotency_key: key.to_owned(),
                sent_at: record.sent_at,
            });
        }
        let entry = self.outbox_entry(seq)?;
        if entry.message.idempotency_key != key {
            return Err(StoreError::Conflict {
                table: "outbox".into(),
                key: seq.to_string(),
                reason: format!(
                    "entry has idempotency key {:?}, not {key:?}",
                    entry.message.idempotency_key
                ),
            });
        }
        self.outbox.remove(seq).ctx(file, "outbox", "remove")?;
        self.outbox_keys
            .remove(key)
            .ctx(file, "outbox_keys", "remove")?;
        let record = SentRecord {
            seq,
            event_id: entry.message.id,
            sent_at,
        };
        let bytes = encode("outbox_sent", key, &record)?;
        self.outbox_sent
            .insert(key, bytes.as_slice())
            .ctx(file, "outbox_sent", "insert")?;
        Ok(())
    }

    fn outbox_entry(&self, seq: u64) -> Result<OutboxEntry, StoreError> {
        let guard = self
            .outbox
            .get(seq)
            .ctx(self.file, "outbox", "get")?
            .ok_or_else(|| not_found("outbox", &seq))?;
        let mut entry: OutboxEntry = self.decode("outbox", &seq.to_string(), guard.value())?;
        entry.seq = seq;
        Ok(entry)
    }

    fn next_outbox_seq(&mut self) -> Result<u64, StoreError> {
        let current = match self.outbox_seq {
            Some(seq) => seq,
            None => self.read_counter(OUTBOX_SEQ_KEY)?,
        };
        self.outbox_seq = Some(current + 1);
        Ok(current + 1)
    }

    fn next_audit_seq(&mut self) -> Result<u64, StoreError> {
        let current = match self.audit_seq {
            Some(seq) => seq,
            None => self.read_counter(AUDIT_SEQ_KEY)?,
        };
        self.audit_seq = Some(current + 1);
        Ok(current + 1)
    }

    fn read_counter(&self, key: &str) -> Result<u64, StoreError> {
        match self.meta.get(key).ctx(self.file, "meta", "get")? {
            Some(guard) => self.decode("meta", key, guard.value()),
            None => Ok(0),
        }
    }

    fn write_counters(&mut self) -> Result<(), StoreError> {
        for (key, value) in [
            (OUTBOX_SEQ_KEY, self.outbox_seq),
            (AUDIT_SEQ_KEY, self.audit_seq),
        ] {
            if let Some(value) = value {
                let bytes = encode("meta", key, &value)?;
                self.meta
                    .insert(key, bytes.as_slice())
                    .ctx(self.file, "meta", "insert")?;
            }
        }
        Ok(())
    }
}

fn not_found(table: &str, key: &dyn std::fmt::Display) -> StoreError {
    StoreError::NotFound {
        table: table.to_owned(),
        key: key.to_string(),
    }
}

/// Inserts unless the stored bytes are equal; returns whether it wrote.
fn put_if_changed(
    table: &mut StrTable<'_>,
    file: &str,
    name: &str,
    key: &str,
    bytes: &[u8],
) -> Result<bool, StoreError> {
    if let Some(stored) = table.get(key).ctx(file, name, "get")?
        && stored.value() == bytes
    {
        return Ok(false);
    }
    table.insert(key, bytes).ctx(file, name, "insert")?;
    Ok(true)
}

/// Removes every key made of `prefix` followed by more parts.
fn remove_prefix<V: redb::Value + 'static>(
    table: &mut Table<'_, &'static str, V>,
    file: &str,
    name: &str,
    prefix: &str,
) -> Result<(), StoreError> {
    let (lo, hi) = prefix_range(prefix);
    table
        .retain_in::<&str, _>(lo.as_str()..hi.as_str(), |_, _| false)
        .ctx(file, name, "retain_in")
}
