//! The readiness state store: the only code in readyd that knows redb (DESIGN.md section 6).
//!
//! One redb file holds the catalog's entities, the facts data sources collected (latest and a
//! bounded history), scorecard results, level history and daily snapshots, and everything people
//! and automation create: exemptions, tier requests, locks, tasks, the notification outbox, the
//! audit log. The tables are declared once, as typed constants, in `tables.rs`; values are
//! MessagePack (`codec.rs` holds the compact form of results).
//!
//! Main types: [`Store`] (open, schema check, MVCC reads, direct commits), [`WriteBatch`] (the
//! operations of one change), [`Writer`] / [`WriterHandle`] (the single writer thread with group
//! commit), [`Durability`], [`StoreError`].
//!
//! Durability: a batch carrying a person-made record, a task, an outbox change or an audit line
//! is always committed with redb's `Durability::Immediate` (fsync before success), so kill -9
//! loses none of them. Derived data (facts, results, level history, snapshots) may be committed
//! `Eventual` (redb's `Durability::None`): visible at once, durable with the next immediate commit,
//! which the writer issues within its flush interval; a crash loses at most that interval of
//! derived data, which the next evaluation recomputes.
//!
//! This module must never evaluate, notify or decide a workflow transition: it stores what the
//! other modules decided, keeps its indexes consistent and refuses writes that would break an
//! invariant it owns (one open task per rule, a notification sent at most once). The one
//! transition it makes itself: deleting an entity closes its open tasks, which would otherwise be
//! orphaned.

mod batch;
mod codec;
mod error;
mod records;
mod tables;
mod writer;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::NaiveDate;
use redb::{
    Database, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable,
    ReadableTableMetadata, TableDefinition, TableError, TableHandle,
};
use serde::de::DeserializeOwned;

pub use batch::WriteBatch;
pub use error::StoreError;
pub use records::{
    AuditRecord, CommitStats, DailySnapshot, DeadLetter, Durability, EntityOrigin, FirstRound,
    FirstRoundOutcome, OutboxEntry, OutboxMessage, SentRecord, StoreCounts, StoreOptions,
    StoredEntity, StoredStandards, StoredStandardsFile, TaskFilter, TierOverride, WriterOptions,
};
pub use writer::{Writer, WriterHandle};

use crate::model::{
    EntityFacts, Exemption, ExemptionStatus, FactRecord, LevelChange, Lock, ScorecardResult, Task,
    TierRequest, TierRequestStatus, Timestamp,
};
use error::Context;
use records::EntityRecord;
use tables::*;

/// The schema version this readyd writes and understands.
pub const SCHEMA_VERSION: u32 = 1;

/// Every table, for creation at open and for counts.
const STR_TABLES: [TableDefinition<&str, &[u8]>; 16] = [
    META,
    ENTITIES,
    TIER_OVERRIDES,
    FACTS_LATEST,
    FACTS_HISTORY,
    RESULTS,
    LEVEL_HISTORY,
    DAILY_SNAPSHOTS,
    EXEMPTIONS,
    TIER_REQUESTS,
    LOCKS,
    TASKS,
    OUTBOX_SENT,
    ALERT_STATE,
    FIRST_ROUNDS,
    STANDARDS_SETS,
];

/// The readiness state. Cheap to clone; every clone shares one redb database.
///
/// Reads are plain methods, each in its own MVCC read transaction (a consistent snapshot that
/// never waits for the writer). Writes go through [`Store::commit`] or, in the daemon, through
/// the [`Writer`] thread.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    /// The file's path for messages, or `<memory>`.
    label: String,
    path: Option<PathBuf>,
    options: StoreOptions,
    /// Fact history entries stored per series (entity and source), as the single writer
    /// counted them: lets a put skip counting the series in the file (see
    /// `Tables::note_fact_history`). Emptied whenever a transaction fails or history is
    /// deleted; a series missing here is counted from the file on its next put.
    history_counts: std::sync::Mutex<batch::HistoryCounts>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("file", &self.inner.label)
            .finish_non_exhaustive()
    }
}

pub(crate) fn decode_value<T: DeserializeOwned>(
    file: &str,
    table: &str,
    key: &str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    rmp_serde::from_slice(bytes).map_err(|source| StoreError::Decode {
        file: file.to_owned(),
        table: table.to_owned(),
        key: key.replace(SEP, "/"),
        source: Box::new(source),
    })
}

impl Store {
    /// Opens the state file at `path`, creating it if absent. A new file is initialised with
    /// every table and [`SCHEMA_VERSION`]; a file with another schema version, or one readyd did
    /// not write, is refused before anything is written to it.
    pub fn open(path: impl AsRef<Path>, options: StoreOptions) -> Result<Store, StoreError> {
        let path = path.as_ref();
        let label = path.display().to_string();
        let mut builder = Database::builder();
        builder.set_cache_size(options.cache_size_bytes);
        // redb writes to a file as soon as it opens it for writing (its header, a repair): a
        // file this readyd will refuse is checked read-only first and left byte for byte as
        // it was.
        check_before_writing(&builder, path, &label)?;
        let db = builder.create(path).map_err(|source| StoreError::Open {
            file: label.clone(),
            source,
        })?;
        Self::init(db, label, Some(path.to_path_buf()), options)
    }

    /// A store on redb's in-memory backend (tests, `readyd eval`).
    pub fn in_memory() -> Result<Store, StoreError> {
        Self::in_memory_with(StoreOptions::default())
    }

    /// [`Store::in_memory`] with options.
    pub fn in_memory_with(options: StoreOptions) -> Result<Store, StoreError> {
        let label = "<memory>".to_owned();
        let mut builder = Database::builder();
        builder.set_cache_size(options.cache_size_bytes);
        let db = builder
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|source| StoreError::Open {
                file: label.clone(),
                source,
            })?;
        Self::init(db, label, None, options)
    }

    /// Rewrites the file at `path` to release free pages; returns whether it changed anything.
    /// The file must not be open (the daemon stopped): redb needs sole access.
    pub fn compact_file(
        path: impl AsRef<Path>,
        options: &StoreOptions,
    ) -> Result<bool, StoreError> {
        let path = path.as_ref();
        let label = path.display().to_string();
        let mut builder = Database::builder();
        builder.set_cache_size(options.cache_size_bytes);
        let mut db = builder.open(path).map_err(|source| StoreError::Open {
            file: label.clone(),
            source,
        })?;
        if check_schema(&db, &label)? == Schema::Fresh {
            return Err(StoreError::Foreign {
                file: label,
                reason: "it holds no readyd state".into(),
            });
        }
        db.compact().ctx(&label, "*", "compact")
    }

    fn init(
        db: Database,
        label: String,
        path: Option<PathBuf>,
        options: StoreOptions,
    ) -> Result<Store, StoreError> {
        check_schema(&db, &label)?;
        // Creating every table up front lets reads open them without a "does not exist" case.
        let txn = db.begin_write().ctx(&label, "*", "begin_write")?;
        {
            for def in STR_TABLES {
                txn.open_table(def).ctx(&label, def.name(), "open_table")?;
            }
            txn.open_table(OPEN_TASKS)
                .ctx(&label, "open_tasks", "open_table")?;
            txn.open_table(OUTBOX).ctx(&label, "outbox", "open_table")?;
            txn.open_table(OUTBOX_KEYS)
                .ctx(&label, "outbox_keys", "open_table")?;
            txn.open_table(DEAD_LETTERS)
                .ctx(&label, "dead_letters", "open_table")?;
            txn.open_table(AUDIT).ctx(&label, "audit", "open_table")?;
            txn.open_table(AUDIT_BY_SUBJECT)
                .ctx(&label, "audit_by_subject", "open_table")?;
            let mut meta = txn.open_table(META).ctx(&label, "meta", "open_table")?;
            let versioned = meta
                .get(SCHEMA_VERSION_KEY)
                .ctx(&label, "meta", "get")?
                .is_some();
            if !versioned {
                let bytes = batch::encode("meta", SCHEMA_VERSION_KEY, &SCHEMA_VERSION)?;
                meta.insert(SCHEMA_VERSION_KEY, bytes.as_slice())
                    .ctx(&label, "meta", "insert")?;
            }
        }
        txn.commit().ctx(&label, "*", "commit")?;
        Ok(Store {
            inner: Arc::new(Inner {
                db,
                label,
                path,
                options,
                history_counts: Default::default(),
            }),
        })
    }

    /// The file's path (`None` in memory).
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &StoreOptions {
        &self.inner.options
    }

    /// Size of the redb file in bytes (`None` in memory).
    pub fn file_size(&self) -> Result<Option<u64>, StoreError> {
        let Some(path) = &self.inner.path else {
            return Ok(None);
        };
        let metadata = std::fs::metadata(path)
            .map_err(|e| StoreError::storage(&self.inner.label, "*", "metadata", e))?;
        Ok(Some(metadata.len()))
    }

    // ---- writes ----

    /// Applies `batch` in one write transaction, all or nothing, and returns what changed.
    /// Blocks for the fsync when the effective durability is `Immediate`. In the daemon, commit
    /// through the [`Writer`] instead, which groups concurrent batches.
    pub fn commit(
        &self,
        mut batch: WriteBatch,
        durability: Durability,
    ) -> Result<CommitStats, StoreError> {
        if let Some(error) = batch.take_error() {
            return Err(error);
        }
        let durability = self.effective_durability(&batch, durability);
        let mut stats = self.commit_group(&[&batch], durability)?;
        Ok(stats.pop().unwrap_or_default())
    }

    /// Makes every earlier `Eventual` commit durable (an empty `Immediate` commit).
    pub fn flush(&self) -> Result<(), StoreError> {
        let label = &self.inner.label;
        let txn = self.inner.db.begin_write().ctx(label, "*", "begin_write")?;
        txn.commit().ctx(label, "*", "commit")
    }

    pub(super) fn effective_durability(&self, batch: &WriteBatch, asked: Durability) -> Durability {
        if batch.requires_immediate() {
            Durability::Immediate
        } else {
            asked
        }
    }

    /// Applies `batches` in order in one transaction. On any error nothing is written.
    pub(super) fn commit_group(
        &self,
        batches: &[&WriteBatch],
        durability: Durability,
    ) -> Result<Vec<CommitStats>, StoreError> {
        let label = self.inner.label.as_str();
        let mut txn = self.inner.db.begin_write().ctx(label, "*", "begin_write")?;
        txn.set_durability(match durability {
            Durability::Immediate => redb::Durability::Immediate,
            Durability::Eventual => redb::Durability::None,
        })
        .ctx(label, "*", "set_durability")?;
        // The single writer holds this for the whole transaction.
        let mut counts = self
            .inner
            .history_counts
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let applied = (|| {
            let mut tables = batch::Tables::open(
                &txn,
                label,
                self.inner.options.fact_history_limit,
                &mut counts,
            )?;
            batches
                .iter()
                .map(|batch| tables.apply(batch))
                .collect::<Result<Vec<_>, _>>()
        })();
        match applied {
            Ok(mut all) => {
                if let Err(e) = txn.commit() {
                    counts.clear();
                    return Err(e).ctx(label, "*", "commit");
                }
                for stats in &mut all {
                    stats.durability = durability;
                    stats.group_size = batches.len();
                }
                Ok(all)
            }
            Err(error) => {
                counts.clear();
                if let Err(abort) = txn.abort() {
                    tracing::warn!(file = label, error = %abort, "aborting a failed write transaction failed");
                }
                Err(error)
            }
        }
    }

    // ---- reads ----

    fn read_txn(&self) -> Result<ReadTransaction, StoreError> {
        self.inner
            .db
            .begin_read()
            .ctx(&self.inner.label, "*", "begin_read")
    }

    fn open_read<K: redb::Key + 'static, V: redb::Value + 'static>(
        &self,
        txn: &ReadTransaction,
        def: TableDefinition<'static, K, V>,
    ) -> Result<ReadOnlyTable<K, V>, StoreError> {
        txn.open_table(def)
            .ctx(&self.inner.label, def.name(), "open_table")
    }

    fn decode<T: DeserializeOwned>(
        &self,
        table: &str,
        key: &str,
        bytes: &[u8],
    ) -> Result<T, StoreError> {
        decode_value(&self.inner.label, table, key, bytes)
    }

    fn get<T: DeserializeOwned>(
        &self,
        def: TableDefinition<'static, &'static str, &'static [u8]>,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        let txn = self.read_txn()?;
        let table = self.open_read(&txn, def)?;
        let value = table.get(key).ctx(&self.inner.label, def.name(), "get")?;
        value
            .map(|guard| self.decode(def.name(), key, guard.value()))
            .transpose()
    }

    /// Visits `(key, value bytes)` in key order over `range` (all when `None`) until `visit`
    /// returns false.
    fn scan(
        &self,
        def: TableDefinition<'static, &'static str, &'static [u8]>,
        range: Option<(&str, std::ops::Bound<&str>)>,
        mut visit: impl FnMut(&str, &[u8]) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let label = &self.inner.label;
        let txn = self.read_txn()?;
        let table = self.open_read(&txn, def)?;
        let iter = match range {
            None => table.iter(),
            Some((lo, hi)) => table.range::<&str>((std::ops::Bound::Included(lo), hi)),
        }
        .ctx(label, def.name(), "range")?;
        for item in iter {
            let (key, value) = item.ctx(label, def.name(), "range")?;
            if !visit(key.value(), value.value())? {
                break;
            }
        }
        Ok(())
    }

    /// Decodes every value in `range`, keeping those `keep` accepts.
    fn collect<T: DeserializeOwned>(
        &self,
        def: TableDefinition<'static, &'static str, &'static [u8]>,
        range: Option<(&str, std::ops::Bound<&str>)>,
        mut keep: impl FnMut(&str, &T) -> bool,
    ) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        self.scan(def, range, |key, bytes| {
            let value: T = self.decode(def.name(), key, bytes)?;
            if keep(key, &value) {
                out.push(value);
            }
            Ok(true)
        })?;
        Ok(out)
    }

    /// Every value whose key is `prefix` followed by more parts.
    fn collect_prefix<T: DeserializeOwned>(
        &self,
        def: TableDefinition<'static, &'static str, &'static [u8]>,
        prefix: &str,
    ) -> Result<Vec<T>, StoreError> {
        let (lo, hi) = prefix_range(prefix);
        self.collect(def, Some((&lo, std::ops::Bound::Excluded(&hi))), |_, _| {
            true
        })
    }

    /// A meta value (`schema_version`, the store's counters, or a key another module set).
    pub fn meta_get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        self.get(META, key)
    }

    /// The last standards set that loaded from its files, if one ever did.
    pub fn last_good_standards(&self) -> Result<Option<StoredStandards>, StoreError> {
        self.get(STANDARDS_SETS, STANDARDS_LAST_GOOD)
    }

    /// The schema version recorded in the file.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        Ok(self.meta_get(SCHEMA_VERSION_KEY)?.unwrap_or(SCHEMA_VERSION))
    }

    /// One entity, with its origin and approved tier override.
    pub fn entity(&self, id: &str) -> Result<Option<StoredEntity>, StoreError> {
        if check_part("entities", id).is_err() {
            return Ok(None);
        }
        let Some(record) = self.get::<EntityRecord>(ENTITIES, id)? else {
            return Ok(None);
        };
        let tier_override = self.get(TIER_OVERRIDES, id)?;
        Ok(Some(StoredEntity {
            entity: std::sync::Arc::new(record.entity),
            origin: record.origin,
            tier_override,
        }))
    }

    /// Every entity, by identifier.
    pub fn entities(&self) -> Result<Vec<StoredEntity>, StoreError> {
        let mut overrides: HashMap<String, TierOverride> = HashMap::new();
        self.scan(TIER_OVERRIDES, None, |key, bytes| {
            overrides.insert(key.to_owned(), self.decode("tier_overrides", key, bytes)?);
            Ok(true)
        })?;
        let records: Vec<EntityRecord> = self.collect(ENTITIES, None, |_, _| true)?;
        Ok(records
            .into_iter()
            .map(|record| StoredEntity {
                tier_override: overrides.remove(&record.entity.identifier),
                entity: std::sync::Arc::new(record.entity),
                origin: record.origin,
            })
            .collect())
    }

    /// The latest facts of an entity, by source.
    pub fn facts(&self, entity: &str) -> Result<EntityFacts, StoreError> {
        let Ok(prefix) = compose("facts_latest", &[entity]) else {
            return Ok(EntityFacts::new());
        };
        let records: Vec<FactRecord> = self.collect_prefix(FACTS_LATEST, &prefix)?;
        Ok(records.into_iter().map(|r| (r.source.clone(), r)).collect())
    }

    /// The kept facts of one (entity, source), oldest first (the last one is the latest): the
    /// newest `fact_history_limit` (the file may hold a few older ones until the next trim).
    pub fn fact_history(&self, entity: &str, source: &str) -> Result<Vec<FactRecord>, StoreError> {
        let Ok(series) = compose("facts_history", &[entity, source]) else {
            return Ok(Vec::new());
        };
        let mut history: Vec<FactRecord> = self.collect_prefix(FACTS_HISTORY, &series)?;
        let excess = history
            .len()
            .saturating_sub(self.inner.options.fact_history_limit.max(1));
        history.drain(..excess);
        Ok(history)
    }

    /// Every recorded first round: (entity, source, record), in key order.
    pub fn first_rounds(&self) -> Result<Vec<(String, String, FirstRound)>, StoreError> {
        let mut out = Vec::new();
        self.scan(FIRST_ROUNDS, None, |key, bytes| {
            let mut parts = key.splitn(2, SEP);
            if let (Some(entity), Some(source)) = (parts.next(), parts.next()) {
                let record: FirstRound = self.decode("first_rounds", key, bytes)?;
                out.push((entity.to_owned(), source.to_owned(), record));
            }
            Ok(true)
        })?;
        Ok(out)
    }

    /// The results of an entity, by scorecard identifier.
    pub fn results(&self, entity: &str) -> Result<Vec<ScorecardResult>, StoreError> {
        let Ok(prefix) = compose("results", &[entity]) else {
            return Ok(Vec::new());
        };
        let (lo, hi) = prefix_range(&prefix);
        let mut out = Vec::new();
        self.scan(
            RESULTS,
            Some((&lo, std::ops::Bound::Excluded(&hi))),
            |key, bytes| {
                out.push(codec::decode_result(&self.inner.label, key, bytes)?);
                Ok(true)
            },
        )?;
        Ok(out)
    }

    /// The result of one (entity, scorecard).
    pub fn result(
        &self,
        entity: &str,
        scorecard: &str,
    ) -> Result<Option<ScorecardResult>, StoreError> {
        let Ok(key) = compose("results", &[entity, scorecard]) else {
            return Ok(None);
        };
        let txn = self.read_txn()?;
        let table = self.open_read(&txn, RESULTS)?;
        let value = table
            .get(key.as_str())
            .ctx(&self.inner.label, "results", "get")?;
        value
            .map(|guard| codec::decode_result(&self.inner.label, &key, guard.value()))
            .transpose()
    }

    /// Every result, by entity then scorecard, from one consistent snapshot.
    pub fn all_results(&self) -> Result<Vec<ScorecardResult>, StoreError> {
        let mut out = Vec::new();
        self.for_each_result(|result| {
            out.push(result);
            true
        })?;
        Ok(out)
    }

    /// Every result of one scorecard (other scorecards' values are skipped before decoding).
    pub fn scorecard_results(&self, scorecard: &str) -> Result<Vec<ScorecardResult>, StoreError> {
        let mut out = Vec::new();
        self.scan(RESULTS, None, |key, bytes| {
            if last_part(key) == scorecard {
                out.push(codec::decode_result(&self.inner.label, key, bytes)?);
            }
            Ok(true)
        })?;
        Ok(out)
    }

    /// Streams every result to `visit` from one snapshot without collecting them; stop early by
    /// returning false.
    pub fn for_each_result(
        &self,
        mut visit: impl FnMut(ScorecardResult) -> bool,
    ) -> Result<(), StoreError> {
        self.scan(RESULTS, None, |key, bytes| {
            Ok(visit(codec::decode_result(&self.inner.label, key, bytes)?))
        })
    }

    /// Level changes of an entity (on one scorecard or all), at or after `since`, oldest first.
    pub fn level_history(
        &self,
        entity: &str,
        scorecard: Option<&str>,
        since: Option<Timestamp>,
    ) -> Result<Vec<LevelChange>, StoreError> {
        let parts: Vec<&str> = std::iter::once(entity).chain(scorecard).collect();
        let Ok(prefix) = compose("level_history", &parts) else {
            return Ok(Vec::new());
        };
        let (lo, hi) = prefix_range(&prefix);
        let since_part = since.map(time_part);
        let mut changes: Vec<LevelChange> = match (&since_part, scorecard) {
            // One scorecard: the time is the key's last part, so `since` is a range bound.
            (Some(since), Some(_)) => {
                let lo = format!("{lo}{since}");
                self.collect(
                    LEVEL_HISTORY,
                    Some((&lo, std::ops::Bound::Excluded(&hi))),
                    |_, _| true,
                )?
            }
            _ => self.collect(
                LEVEL_HISTORY,
                Some((&lo, std::ops::Bound::Excluded(&hi))),
                |key, _| since_part.as_deref().is_none_or(|s| last_part(key) >= s),
            )?,
        };
        changes.sort_by_key(|c| c.at);
        Ok(changes)
    }

    /// Daily snapshots of one scorecard from `from` to `to` inclusive, oldest first.
    pub fn snapshots(
        &self,
        scorecard: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<DailySnapshot>, StoreError> {
        let (Ok(lo), Ok(hi)) = (
            compose(
                "daily_snapshots",
                &[scorecard, &from.format("%Y-%m-%d").to_string()],
            ),
            compose(
                "daily_snapshots",
                &[scorecard, &to.format("%Y-%m-%d").to_string()],
            ),
        ) else {
            return Ok(Vec::new());
        };
        if lo > hi {
            return Ok(Vec::new());
        }
        self.collect(
            DAILY_SNAPSHOTS,
            Some((&lo, std::ops::Bound::Included(&hi))),
            |_, _| true,
        )
    }

    pub fn exemption(&self, id: &str) -> Result<Option<Exemption>, StoreError> {
        self.get(EXEMPTIONS, id)
    }

    /// Exemptions, all or with one status, by id.
    pub fn exemptions(
        &self,
        status: Option<ExemptionStatus>,
    ) -> Result<Vec<Exemption>, StoreError> {
        self.collect(EXEMPTIONS, None, |_, e: &Exemption| {
            status.is_none_or(|s| e.status == s)
        })
    }

    pub fn tier_request(&self, id: &str) -> Result<Option<TierRequest>, StoreError> {
        self.get(TIER_REQUESTS, id)
    }

    /// Tier requests, all or with one status, by id.
    pub fn tier_requests(
        &self,
        status: Option<TierRequestStatus>,
    ) -> Result<Vec<TierRequest>, StoreError> {
        self.collect(TIER_REQUESTS, None, |_, r: &TierRequest| {
            status.is_none_or(|s| r.status == s)
        })
    }

    pub fn lock(&self, entity: &str) -> Result<Option<Lock>, StoreError> {
        self.get(LOCKS, entity)
    }

    /// Every lock, by entity.
    pub fn locks(&self) -> Result<Vec<Lock>, StoreError> {
        self.collect(LOCKS, None, |_, _| true)
    }

    pub fn task(&self, id: &str) -> Result<Option<Task>, StoreError> {
        self.get(TASKS, id)
    }

    /// Tasks matching `filter`, by id.
    pub fn tasks(&self, filter: &TaskFilter) -> Result<Vec<Task>, StoreError> {
        self.collect(TASKS, None, |_, t: &Task| filter.matches(t))
    }

    /// The task that is not done for (entity, scorecard, rule), if any.
    pub fn open_task(
        &self,
        entity: &str,
        scorecard: &str,
        rule: &str,
    ) -> Result<Option<Task>, StoreError> {
        let Ok(key) = compose("open_tasks", &[entity, scorecard, rule]) else {
            return Ok(None);
        };
        let id = {
            let txn = self.read_txn()?;
            let index = self.open_read(&txn, OPEN_TASKS)?;
            let found = index
                .get(key.as_str())
                .ctx(&self.inner.label, "open_tasks", "get")?;
            found.map(|g| g.value().to_owned())
        };
        match id {
            Some(id) => self.task(&id),
            None => Ok(None),
        }
    }

    /// Up to `limit` outbox entries due at `now` (`next_attempt_at <= now`), oldest first.
    pub fn outbox_due(&self, now: Timestamp, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        self.outbox_entries(limit, |e| e.next_attempt_at <= now)
    }

    /// Every queued outbox entry, due or not, oldest first.
    pub fn outbox(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        self.outbox_entries(usize::MAX, |_| true)
    }

    fn outbox_entries(
        &self,
        limit: usize,
        keep: impl Fn(&OutboxEntry) -> bool,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let label = &self.inner.label;
        let txn = self.read_txn()?;
        let table = self.open_read(&txn, OUTBOX)?;
        let mut out = Vec::new();
        for item in table.iter().ctx(label, "outbox", "iter")? {
            if out.len() >= limit {
                break;
            }
            let (seq, bytes) = item.ctx(label, "outbox", "iter")?;
            let mut entry: OutboxEntry =
                self.decode("outbox", &seq.value().to_string(), bytes.value())?;
            entry.seq = seq.value();
            if keep(&entry) {
                out.push(entry);
            }
        }
        Ok(out)
    }

    /// When the notification with `idempotency_key` was sent, if it was.
    pub fn outbox_sent(&self, idempotency_key: &str) -> Result<Option<SentRecord>, StoreError> {
        self.get(OUTBOX_SENT, idempotency_key)
    }

    /// Every dead letter, oldest first.
    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        let label = &self.inner.label;
        let txn = self.read_txn()?;
        let table = self.open_read(&txn, DEAD_LETTERS)?;
        let mut out = Vec::new();
        for item in table.iter().ctx(label, "dead_letters", "iter")? {
            let (seq, bytes) = item.ctx(label, "dead_letters", "iter")?;
            let mut letter: DeadLetter =
                self.decode("dead_letters", &seq.value().to_string(), bytes.value())?;
            letter.seq = seq.value();
            letter.entry.seq = seq.value();
            out.push(letter);
        }
        Ok(out)
    }

    /// The audit trail of one record (`kind`, `id`), oldest first.
    pub fn audit(&self, kind: &str, id: &str) -> Result<Vec<AuditRecord>, StoreError> {
        let Ok(subject) = compose("audit_by_subject", &[kind, id]) else {
            return Ok(Vec::new());
        };
        let label = &self.inner.label;
        let txn = self.read_txn()?;
        let index = self.open_read(&txn, AUDIT_BY_SUBJECT)?;
        let log = self.open_read(&txn, AUDIT)?;
        let (lo, hi) = prefix_range(&subject);
        let mut out = Vec::new();
        for item in
            index
                .range::<&str>(lo.as_str()..hi.as_str())
                .ctx(label, "audit_by_subject", "range")?
        {
            let (_, seq) = item.ctx(label, "audit_by_subject", "range")?;
            let seq = seq.value();
            if let Some(bytes) = log.get(seq).ctx(label, "audit", "get")? {
                out.push(self.audit_record(seq, bytes.value())?);
            }
        }
        Ok(out)
    }

    /// The newest `limit` audit records, newest first.
    pub fn audit_recent(&self, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        let label = &self.inner.label;
        let txn = self.read_txn()?;
        let log = self.open_read(&txn, AUDIT)?;
        let mut out = Vec::new();
        for item in log.iter().ctx(label, "audit", "iter")?.rev().take(limit) {
            let (seq, bytes) = item.ctx(label, "audit", "iter")?;
            out.push(self.audit_record(seq.value(), bytes.value())?);
        }
        Ok(out)
    }

    fn audit_record(&self, seq: u64, bytes: &[u8]) -> Result<AuditRecord, StoreError> {
        let mut record: AuditRecord = self.decode("audit", &seq.to_string(), bytes)?;
        record.seq = seq;
        Ok(record)
    }

    /// A piece of automation state set with `WriteBatch::put_alert_state`.
    pub fn alert_state<T: DeserializeOwned>(&self, key: &[&str]) -> Result<Option<T>, StoreError> {
        match compose("alert_state", key) {
            Ok(key) => self.get(ALERT_STATE, &key),
            Err(_) => Ok(None),
        }
    }

    /// Row counts of the main tables, from one snapshot.
    pub fn counts(&self) -> Result<StoreCounts, StoreError> {
        let label = &self.inner.label;
        let txn = self.read_txn()?;
        let len_str = |def: TableDefinition<'static, &'static str, &'static [u8]>| {
            self.open_read(&txn, def)?
                .len()
                .ctx(label, def.name(), "len")
        };
        let len_seq = |def: TableDefinition<'static, u64, &'static [u8]>| {
            self.open_read(&txn, def)?
                .len()
                .ctx(label, def.name(), "len")
        };
        Ok(StoreCounts {
            entities: len_str(ENTITIES)?,
            facts: len_str(FACTS_LATEST)?,
            fact_history: len_str(FACTS_HISTORY)?,
            results: len_str(RESULTS)?,
            level_changes: len_str(LEVEL_HISTORY)?,
            snapshots: len_str(DAILY_SNAPSHOTS)?,
            exemptions: len_str(EXEMPTIONS)?,
            tier_requests: len_str(TIER_REQUESTS)?,
            locks: len_str(LOCKS)?,
            tasks: len_str(TASKS)?,
            open_tasks: self
                .open_read(&txn, OPEN_TASKS)?
                .len()
                .ctx(label, "open_tasks", "len")?,
            outbox: len_seq(OUTBOX)?,
            outbox_sent: len_str(OUTBOX_SENT)?,
            dead_letters: len_seq(DEAD_LETTERS)?,
            audit: len_seq(AUDIT)?,
        })
    }
}

/// Checks an existing, non-empty file without opening it for writing: that it is a redb file
/// and holds no schema this readyd refuses. A file that was not shut down cleanly cannot be
/// read without redb's repair, so its check runs on a copy in memory (the repair happens there)
/// and the file itself is repaired only once it is known to be readyd's.
fn check_before_writing(
    builder: &redb::Builder,
    path: &Path,
    label: &str,
) -> Result<(), StoreError> {
    let len = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        // Absent: `create` makes a new file.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(StoreError::Open {
                file: label.to_owned(),
                source: e.into(),
            });
        }
    };
    if len == 0 {
        return Ok(());
    }
    let not_redb = |source: redb::DatabaseError| match source {
        redb::DatabaseError::Storage(redb::StorageError::Corrupted(_)) => StoreError::Foreign {
            file: label.to_owned(),
            reason: "it is not a redb database file".into(),
        },
        source => StoreError::Open {
            file: label.to_owned(),
            source,
        },
    };
    match builder.open_read_only(path) {
        Ok(db) => check_schema(&db, label).map(|_| ()),
        Err(redb::DatabaseError::RepairAborted) => {
            let bytes = std::fs::read(path).map_err(|e| StoreError::Open {
                file: label.to_owned(),
                source: e.into(),
            })?;
            let backend = redb::backends::InMemoryBackend::new();
            let copy = (|| {
                use redb::StorageBackend as _;
                backend.set_len(bytes.len() as u64)?;
                backend.write(0, &bytes)
            })();
            copy.map_err(|e| StoreError::Open {
                file: label.to_owned(),
                source: e.into(),
            })?;
            let db = redb::Builder::new()
                .create_with_backend(backend)
                .map_err(not_redb)?;
            check_schema(&db, label).map(|_| ())
        }
        Err(e) => Err(not_redb(e)),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Schema {
    /// No table yet: a new file.
    Fresh,
    Current,
}

/// Reads the schema version without writing; refuses what this readyd cannot use.
fn check_schema(db: &impl ReadableDatabase, label: &str) -> Result<Schema, StoreError> {
    let txn = db.begin_read().ctx(label, "meta", "begin_read")?;
    let foreign = |reason: &str| StoreError::Foreign {
        file: label.to_owned(),
        reason: reason.to_owned(),
    };
    let meta = match txn.open_table(META) {
        Ok(meta) => meta,
        Err(TableError::TableDoesNotExist(_)) => {
            let has_tables = txn
                .list_tables()
                .ctx(label, "*", "list_tables")?
                .next()
                .is_some();
            return if has_tables {
                Err(foreign("it has tables but no readyd meta table"))
            } else {
                Ok(Schema::Fresh)
            };
        }
        Err(TableError::TableTypeMismatch { .. }) => {
            return Err(foreign("its meta table has another layout"));
        }
        Err(e) => return Err(StoreError::storage(label, "meta", "open_table", e)),
    };
    let Some(bytes) = meta.get(SCHEMA_VERSION_KEY).ctx(label, "meta", "get")? else {
        return Err(foreign("its meta table has no schema_version"));
    };
    let found: u32 = decode_value(label, "meta", SCHEMA_VERSION_KEY, bytes.value())?;
    // Migrations from older versions go here when there is an older version to migrate from.
    match found.cmp(&SCHEMA_VERSION) {
        std::cmp::Ordering::Equal => Ok(Schema::Current),
        std::cmp::Ordering::Greater => Err(StoreError::SchemaTooNew {
            file: label.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        }),
        std::cmp::Ordering::Less => Err(StoreError::SchemaUnsupported {
            file: label.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        }),
    }
}
