//! Records only the store defines: how an entity is kept, the outbox, the audit log, trend
//! snapshots, options and commit statistics. Domain types live in [`crate::model`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::model::{AuditEntry, Entity, TaskStatus, Tier, Timestamp};

/// Where an entity came from. Catalog files are the source of truth for the entities they name
/// (a reload may replace or remove them); entities created through the API live only here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityOrigin {
    CatalogFile,
    Api,
}

/// An approved tier change. It is kept apart from the entity so that a catalog reload, which
/// rewrites the entity, does not undo an approval; it is removed with the entity or by
/// `WriteBatch::set_tier_override(entity, None)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TierOverride {
    /// The tier that applies (none: untiered).
    pub tier: Option<Tier>,
    /// The approved tier request that set it.
    pub request_id: String,
    pub approved_at: Timestamp,
}

/// An entity as the store keeps it.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredEntity {
    /// The entity as the catalog file or the API defined it (its own `tier` untouched). Shared
    /// with the engine's effective view when no tier override applies (one copy of the
    /// properties per entity, not two).
    pub entity: Arc<Entity>,
    pub origin: EntityOrigin,
    /// An approved tier change that takes precedence over `entity.tier`.
    pub tier_override: Option<TierOverride>,
}

impl StoredEntity {
    /// The tier standards apply to: the approved override if any, else the entity's own.
    pub fn effective_tier(&self) -> Option<Tier> {
        match &self.tier_override {
            Some(o) => o.tier,
            None => self.entity.tier,
        }
    }

    /// The entity with the effective tier: what evaluation and the API should see (the same
    /// allocation as [`StoredEntity::entity`] unless an override changes the tier).
    pub fn effective(&self) -> Arc<Entity> {
        let tier = self.effective_tier();
        if tier == self.entity.tier {
            return self.entity.clone();
        }
        let mut entity = (*self.entity).clone();
        entity.tier = tier;
        Arc::new(entity)
    }
}

/// What the `entities` table holds.
#[derive(Serialize, Deserialize)]
pub(super) struct EntityRecord {
    pub entity: Entity,
    pub origin: EntityOrigin,
}

/// How a data source's first round for one entity ended (see the engine's `first_round`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FirstRoundOutcome {
    /// The source answered (with or without facts for the entity).
    Collected,
    /// The source's call failed: counts as collected, its rules see missing facts.
    Failed,
    /// `first_round_timeout` passed first.
    TimedOut,
}

/// The first round of one (entity, data source): once recorded, results reading that source
/// act for that entity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirstRound {
    pub at: Timestamp,
    pub outcome: FirstRoundOutcome,
}

/// The last standards set that loaded from its files, kept so that a start whose files are
/// refused serves it instead of nothing (DESIGN.md section 12).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredStandards {
    /// The set's revision (the hash of its files' names and texts).
    pub revision: String,
    /// When it was loaded from its files.
    pub loaded_at: Timestamp,
    /// Every definition file: its path relative to the standards directory, and its text.
    pub files: Vec<StoredStandardsFile>,
}

/// One file of a [`StoredStandards`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredStandardsFile {
    pub path: String,
    pub text: String,
}

/// The level of every entity on one scorecard at the end of one day: what trend charts read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DailySnapshot {
    pub scorecard: String,
    pub date: NaiveDate,
    /// When the snapshot was taken (a later snapshot of the same day replaces it).
    pub taken_at: Timestamp,
    /// The scorecard's level titles, lowest first, as they were that day.
    #[serde(default)]
    pub level_titles: Vec<String>,
    /// entity → level index reached.
    pub levels: BTreeMap<String, usize>,
}

impl DailySnapshot {
    /// level index → number of entities at that level.
    pub fn distribution(&self) -> BTreeMap<usize, usize> {
        let mut counts = BTreeMap::new();
        for level in self.levels.values() {
            *counts.entry(*level).or_insert(0) += 1;
        }
        counts
    }
}

/// A notification to deliver, as automation hands it to the outbox.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutboxMessage {
    /// Stable id of the event (the same event evaluated twice has the same id).
    pub id: String,
    /// Delivery is refused a second time for the same key; an enqueue whose key is already
    /// queued or sent is skipped. Usually event id + channel.
    pub idempotency_key: String,
    /// The configured channel name.
    pub channel: String,
    /// The JSON document to send.
    pub payload: serde_json::Value,
    pub created_at: Timestamp,
}

/// A queued notification and its delivery state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// Position in the outbox (allocated by the store, never reused).
    #[serde(skip)]
    pub seq: u64,
    pub message: OutboxMessage,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// Not to be tried before this time.
    pub next_attempt_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Proof that a notification went out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SentRecord {
    pub seq: u64,
    pub event_id: String,
    pub sent_at: Timestamp,
}

/// A notification delivery gave up on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    #[serde(skip)]
    pub seq: u64,
    pub entry: OutboxEntry,
    pub reason: String,
    pub at: Timestamp,
}

/// One line of the audit log: a transition of a person-made record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    #[serde(skip)]
    pub seq: u64,
    /// What kind of record: `exemption`, `tier_request`, `lock`, `entity`, ...
    pub kind: String,
    /// Its id.
    pub id: String,
    pub entry: AuditEntry,
}

/// Which tasks `Store::tasks` returns; `None` matches everything.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TaskFilter {
    pub team: Option<String>,
    pub entity: Option<String>,
    pub status: Option<TaskStatus>,
}

impl TaskFilter {
    pub(super) fn matches(&self, task: &crate::model::Task) -> bool {
        self.team
            .as_deref()
            .is_none_or(|t| task.team.as_deref() == Some(t))
            && self.entity.as_deref().is_none_or(|e| task.entity == e)
            && self.status.is_none_or(|s| task.status == s)
    }
}

/// How the store is opened.
#[derive(Clone, Debug, PartialEq)]
pub struct StoreOptions {
    /// Facts kept per (entity, source) in `facts_history`, the latest included.
    pub fact_history_limit: usize,
    /// redb's page cache.
    pub cache_size_bytes: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            fact_history_limit: 10,
            // redb's own default is 1 GiB; readyd must stay under 300 MB RSS with 10,000
            // entities. The daemon keeps its live state in memory and reads the file at start
            // and for history, so the cache mostly holds pages a commit rewrites; at 64 MiB it
            // was ~50 MB of the daemon's RSS after start (restore fills it) for no gain in
            // commit time (BENCHMARKS.md).
            cache_size_bytes: 16 * 1024 * 1024,
        }
    }
}

/// How durable a commit must be when it returns.
///
/// `Immediate` is fsynced before the commit returns: a kill -9 or power loss right after keeps it.
/// `Eventual` is visible to readers at once but reaches the disk with the next `Immediate` commit
/// (redb's `Durability::None`); the writer task issues one within its flush interval, so a crash
/// loses at most that interval of eventual commits, which only derived data (facts, results,
/// history) may use. A batch holding anything a person made, a task or an outbox change is
/// always committed `Immediate`, whatever was asked (see `WriteBatch::requires_immediate`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Durability {
    Eventual,
    #[default]
    Immediate,
}

/// What one batch changed. In a group commit each batch gets its own counts.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct CommitStats {
    /// The durability the transaction was committed with.
    pub durability: Durability,
    /// How many batches shared the transaction (1 without group commit).
    pub group_size: usize,
    /// Operations in this batch.
    pub ops: usize,
    pub entities_written: usize,
    /// `put_entity` calls whose encoding equalled the stored one (not rewritten).
    pub entities_unchanged: usize,
    pub entities_deleted: usize,
    /// Tasks closed because their entity was deleted.
    pub tasks_closed: usize,
    pub facts_written: usize,
    /// Old history entries removed to keep the bound.
    pub facts_history_trimmed: usize,
    pub results_written: usize,
    /// `put_result` calls whose encoding equalled the stored one (not rewritten).
    pub results_unchanged: usize,
    pub results_deleted: usize,
    /// Sequence numbers of the entries this batch enqueued, in order.
    pub outbox_enqueued: Vec<u64>,
    /// Enqueues skipped because their idempotency key was already queued or sent.
    pub outbox_duplicates: usize,
    /// Sequence numbers of the audit records this batch appended.
    pub audit_appended: Vec<u64>,
}

/// Row counts of the main tables (for `/v1/status` and metrics).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StoreCounts {
    pub entities: u64,
    pub facts: u64,
    pub fact_history: u64,
    pub results: u64,
    pub level_changes: u64,
    pub snapshots: u64,
    pub exemptions: u64,
    pub tier_requests: u64,
    pub locks: u64,
    pub tasks: u64,
    pub open_tasks: u64,
    pub outbox: u64,
    pub outbox_sent: u64,
    pub dead_letters: u64,
    pub audit: u64,
}

/// How the writer task groups and flushes.
#[derive(Clone, Debug, PartialEq)]
pub struct WriterOptions {
    /// An `Eventual` commit is made durable by an `Immediate` one at most this long after it.
    pub flush_interval: Duration,
    /// Most batches merged into one transaction.
    pub max_group: usize,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            flush_interval: Duration::from_secs(1),
            max_group: 256,
        }
    }
}
