//! Store tests: on redb's in-memory backend, and on temporary files where the file matters
//! (schema checks, reopening, durability).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use redb::TableHandle;

use super::*;
use crate::model::{
    AuditEntry, Entity, Exemption, ExemptionStatus, FactRecord, LevelChange, Lock, RuleResult,
    RuleStatus, ScorecardResult, Task, TaskStatus,
};

fn at(seconds: i64) -> Timestamp {
    Utc.timestamp_opt(1_700_000_000 + seconds, 0).unwrap()
}

fn mem() -> Store {
    Store::in_memory().unwrap()
}

fn entity(id: &str, tier: Option<u8>) -> Entity {
    Entity {
        identifier: id.into(),
        kind: "service".into(),
        title: id.to_uppercase(),
        team: Some("payments".into()),
        tier,
        properties: serde_json::json!({"language": "rust"})
            .as_object()
            .cloned()
            .unwrap(),
        relations: BTreeMap::new(),
    }
}

fn result(entity: &str, scorecard: &str, rules: usize, evaluated: Timestamp) -> ScorecardResult {
    ScorecardResult {
        entity: entity.into(),
        scorecard: scorecard.into(),
        level: "Bronze".into(),
        level_index: 1,
        percent: 80.0,
        score: 75.5,
        rules: (0..rules)
            .map(|i| RuleResult {
                rule: format!("rule-{i}").into(),
                level: "Bronze".into(),
                status: if i % 3 == 0 {
                    RuleStatus::Fail
                } else {
                    RuleStatus::Pass
                },
                message: Some(format!("property runbook was missing on {entity} ({i})")),
                details: None,
                weight: 1.0,
                evaluated_at: evaluated,
                changed_at: at(0),
            })
            .collect(),
        evaluated_at: evaluated,
    }
}

fn facts(source: &str, n: i64, collected: Timestamp) -> FactRecord {
    FactRecord {
        source: source.into(),
        facts: serde_json::json!({"n": n}).as_object().cloned().unwrap(),
        collected_at: collected,
        plugin_version: "sha256:abc".into(),
        stale_reason: None,
    }
}

fn exemption(id: &str, entity: &str) -> Exemption {
    Exemption {
        id: id.into(),
        entity: entity.into(),
        scorecard: "prod".into(),
        rule: Some("has-runbook".into()),
        reason: "migrating".into(),
        until: at(86_400),
        requested_by: "alice".into(),
        requested_at: at(0),
        status: ExemptionStatus::Pending,
        history: vec![],
    }
}

fn task(id: &str, entity: &str, rule: &str, status: TaskStatus) -> Task {
    Task {
        id: id.into(),
        entity: entity.into(),
        team: Some("payments".into()),
        scorecard: "prod".into(),
        rule: rule.into(),
        title: "Add a runbook".into(),
        message: None,
        created_at: at(0),
        due: at(7 * 86_400),
        status,
        closed_at: None,
        reminded: false,
    }
}

fn message(key: &str) -> OutboxMessage {
    OutboxMessage {
        id: format!("event-{key}"),
        idempotency_key: key.into(),
        channel: "sre-slack".into(),
        payload: serde_json::json!({"text": format!("payments degraded ({key})")}),
        created_at: at(0),
    }
}

fn audit_entry(action: &str) -> AuditEntry {
    AuditEntry {
        actor: "bob".into(),
        action: action.into(),
        at: at(5),
        note: None,
    }
}

fn level_change(entity: &str, scorecard: &str, to_index: usize, when: Timestamp) -> LevelChange {
    LevelChange {
        entity: entity.into(),
        scorecard: scorecard.into(),
        from: None,
        to: format!("L{to_index}"),
        from_index: None,
        to_index,
        percent: 50.0,
        at: when,
    }
}

/// Writes a schema version straight into the meta table, as another readyd version would.
fn write_schema_version(store: &Store, version: u32) {
    let txn = store.inner.db.begin_write().unwrap();
    {
        let mut meta = txn.open_table(META).unwrap();
        let bytes = rmp_serde::to_vec_named(&version).unwrap();
        meta.insert(SCHEMA_VERSION_KEY, bytes.as_slice()).unwrap();
    }
    txn.commit().unwrap();
}

// ---- schema ----

#[test]
fn a_new_file_is_initialised_with_the_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(store.meta_get::<u32>("schema_version").unwrap(), Some(1));
    assert!(store.file_size().unwrap().unwrap() > 0);
    assert_eq!(store.path(), Some(path.as_path()));
    assert_eq!(store.counts().unwrap(), StoreCounts::default());
    drop(store);
    // Reopening a current file is accepted and keeps the version.
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
}

#[test]
fn a_newer_schema_is_refused_with_file_and_versions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    write_schema_version(&store, 7);
    drop(store);
    let error = Store::open(&path, StoreOptions::default()).unwrap_err();
    assert!(
        matches!(&error, StoreError::SchemaTooNew { found: 7, supported: 1, file } if file.contains("state.redb")),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(
        text.contains("state.redb") && text.contains('7') && text.contains('1'),
        "{text}"
    );
}

fn file_hash(path: &std::path::Path) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

// Review finding: a file refused for its schema version was still modified on disk (820 bytes
// differed after the refused open): redb wrote its header when opening it for writing.
#[test]
fn a_refused_schema_leaves_the_file_byte_for_byte_unchanged() {
    for version in [7u32, 0] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let store = Store::open(&path, StoreOptions::default()).unwrap();
        write_schema_version(&store, version);
        drop(store);
        let before = file_hash(&path);
        assert!(Store::open(&path, StoreOptions::default()).is_err());
        assert_eq!(
            file_hash(&path),
            before,
            "schema {version}: the refused file changed"
        );
    }
}

#[test]
fn a_file_that_is_not_redb_is_refused_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in [
        (
            "text.redb",
            b"this is a text file, not a database\n".repeat(200),
        ),
        ("short.redb", b"hello".to_vec()),
        ("wasm.redb", b"\0asm\x01\0\0\0".repeat(1000)),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        let error = Store::open(&path, StoreOptions::default()).unwrap_err();
        assert!(error.to_string().contains(name), "{error}");
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{name} was modified");
    }
}

/// A file copied while its store was open needs redb's repair, which writes: its check runs on
/// a copy in memory, so a refused one stays as it was and a good one opens.
#[test]
fn a_file_that_needs_repair_is_checked_before_it_is_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    let unclean_current = dir.path().join("current.redb");
    std::fs::copy(&path, &unclean_current).unwrap();
    write_schema_version(&store, 9);
    let unclean_newer = dir.path().join("newer.redb");
    std::fs::copy(&path, &unclean_newer).unwrap();
    drop(store);
    let before = file_hash(&unclean_newer);
    let error = Store::open(&unclean_newer, StoreOptions::default()).unwrap_err();
    assert!(
        matches!(error, StoreError::SchemaTooNew { found: 9, .. }),
        "{error:?}"
    );
    assert_eq!(file_hash(&unclean_newer), before);
    let store = Store::open(&unclean_current, StoreOptions::default()).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
}

#[test]
fn an_older_schema_without_migration_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    write_schema_version(&store, 0);
    drop(store);
    let error = Store::open(&path, StoreOptions::default()).unwrap_err();
    assert!(
        matches!(error, StoreError::SchemaUnsupported { found: 0, .. }),
        "{error:?}"
    );
}

/// The `standards_sets` table came after schema version 1 without a bump: a file written by the
/// readyd before it (every other table, version 1) must open, keep its state, start with no
/// stored set, and keep one once written.
#[test]
fn a_file_from_before_the_standards_table_opens_and_keeps_a_set() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            for def in STR_TABLES
                .iter()
                .filter(|d| d.name() != STANDARDS_SETS.name())
            {
                txn.open_table(*def).unwrap();
            }
            let mut meta = txn.open_table(META).unwrap();
            let version = rmp_serde::to_vec_named(&1u32).unwrap();
            meta.insert(SCHEMA_VERSION_KEY, version.as_slice()).unwrap();
            let mut entities = txn.open_table(ENTITIES).unwrap();
            let record = rmp_serde::to_vec_named(&EntityRecord {
                entity: entity("pay", Some(1)),
                origin: EntityOrigin::CatalogFile,
            })
            .unwrap();
            entities.insert("pay", record.as_slice()).unwrap();
        }
        txn.commit().unwrap();
        let txn = db.begin_read().unwrap();
        assert!(
            txn.list_tables()
                .unwrap()
                .all(|t| t.name() != STANDARDS_SETS.name())
        );
    }
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    assert_eq!(store.schema_version().unwrap(), 1);
    assert!(store.entity("pay").unwrap().is_some());
    assert_eq!(store.last_good_standards().unwrap(), None);
    let set = StoredStandards {
        revision: "0123456789abcdef".into(),
        loaded_at: at(5),
        files: vec![StoredStandardsFile {
            path: "tiers.yaml".into(),
            text: "tiers: {}\n".into(),
        }],
    };
    let mut batch = WriteBatch::new();
    batch.put_last_good_standards(&set);
    assert!(batch.requires_immediate());
    store.commit(batch, Durability::Eventual).unwrap();
    drop(store);
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    assert_eq!(store.last_good_standards().unwrap(), Some(set.clone()));
    // A later set replaces it.
    let newer = StoredStandards {
        revision: "fedcba9876543210".into(),
        ..set
    };
    let mut batch = WriteBatch::new();
    batch.put_last_good_standards(&newer);
    store.commit(batch, Durability::Immediate).unwrap();
    assert_eq!(store.last_good_standards().unwrap(), Some(newer));
}

#[test]
fn a_redb_file_of_another_program_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.redb");
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut table = txn
                .open_table(redb::TableDefinition::<u64, u64>::new("counters"))
                .unwrap();
            table.insert(1, 2).unwrap();
        }
        txn.commit().unwrap();
    }
    let error = Store::open(&path, StoreOptions::default()).unwrap_err();
    assert!(matches!(error, StoreError::Foreign { .. }), "{error:?}");
}

#[test]
fn a_file_that_is_not_redb_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "a".repeat(8192)).unwrap();
    let error = Store::open(&path, StoreOptions::default()).unwrap_err();
    assert!(matches!(error, StoreError::Open { .. }), "{error:?}");
    assert!(error.to_string().contains("notes.txt"));
}

// ---- batches ----

#[test]
fn a_batch_with_a_failing_op_changes_nothing() {
    let store = mem();
    let mut batch = WriteBatch::new();
    batch
        .put_entity(&entity("pay", Some(1)), EntityOrigin::Api)
        .put_exemption(&exemption("ex1", "pay"))
        .enqueue_outbox(&message("k1"))
        .mark_outbox_sent(99, "k-missing", at(1));
    let error = store.commit(batch, Durability::Immediate).unwrap_err();
    assert!(
        matches!(error, StoreError::NotFound { ref table, .. } if table == "outbox"),
        "{error:?}"
    );
    assert!(store.entity("pay").unwrap().is_none());
    assert!(store.exemption("ex1").unwrap().is_none());
    assert!(store.outbox().unwrap().is_empty());
    assert_eq!(store.counts().unwrap(), StoreCounts::default());

    // The failed batch consumed no sequence number.
    let mut batch = WriteBatch::new();
    batch.enqueue_outbox(&message("k1"));
    assert_eq!(
        store
            .commit(batch, Durability::Immediate)
            .unwrap()
            .outbox_enqueued,
        vec![1]
    );
}

#[test]
fn appended_batches_keep_order_errors_and_durability() {
    let store = mem();
    let mut derived = WriteBatch::new();
    derived.put_result(&result("pay", "prod", 1, at(0)));
    let mut people = WriteBatch::new();
    people.put_exemption(&exemption("ex1", "pay"));
    derived.append(people);
    assert_eq!(derived.len(), 2);
    assert!(derived.requires_immediate());
    assert_eq!(
        store
            .commit(derived, Durability::Eventual)
            .unwrap()
            .durability,
        Durability::Immediate
    );

    let mut good = WriteBatch::new();
    good.put_exemption(&exemption("ex2", "pay"));
    let mut bad = WriteBatch::new();
    bad.delete_lock("");
    good.append(bad);
    assert!(matches!(
        store.commit(good, Durability::Immediate),
        Err(StoreError::InvalidKey { .. })
    ));
    assert!(store.exemption("ex2").unwrap().is_none());
}

#[test]
fn a_batch_with_an_invalid_key_is_refused_before_writing() {
    let store = mem();
    let mut batch = WriteBatch::new();
    batch
        .put_exemption(&exemption("ex1", "pay"))
        .put_facts("bad\0id", &facts("git", 1, at(0)));
    assert!(batch.error().is_some());
    let error = store.commit(batch, Durability::Immediate).unwrap_err();
    assert!(matches!(error, StoreError::InvalidKey { .. }), "{error:?}");
    assert!(store.exemption("ex1").unwrap().is_none());
}

#[test]
fn fact_history_is_bounded_per_entity_and_source() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.redb");
    let options = StoreOptions {
        fact_history_limit: 3,
        ..StoreOptions::default()
    };
    let store = Store::open(&path, options.clone()).unwrap();
    let put = |store: &Store, n: i64| {
        let mut batch = WriteBatch::new();
        batch
            .put_facts("pay", &facts("git", n, at(n * 60)))
            .put_facts("pay", &facts("pagerduty", n, at(n * 60)));
        store
            .commit(batch, Durability::Eventual)
            .unwrap()
            .facts_history_trimmed
    };
    let kept = |store: &Store| -> Vec<i64> {
        store
            .fact_history("pay", "git")
            .unwrap()
            .iter()
            .map(|f| f.facts["n"].as_i64().unwrap())
            .collect()
    };
    // Limit 3: the file keeps up to 3 + 2 entries per series; the sixth put trims each series
    // back to the newest 3. Reads always answer the newest 3.
    let mut trimmed = 0;
    for n in 0..5 {
        trimmed += put(&store, n);
        assert!(kept(&store).len() <= 3);
    }
    assert_eq!(trimmed, 0);
    assert_eq!(kept(&store), vec![2, 3, 4]);
    assert_eq!(store.counts().unwrap().fact_history, 10);
    assert_eq!(put(&store, 5), 6);
    assert_eq!(store.counts().unwrap().fact_history, 6);
    assert_eq!(kept(&store), vec![3, 4, 5]);
    for n in 6..8 {
        assert_eq!(put(&store, n), 0);
    }
    assert_eq!(kept(&store), vec![5, 6, 7]);

    // Reopened, the writer counts each series from the file again and the bound holds.
    drop(store);
    let store = Store::open(&path, options).unwrap();
    assert_eq!(kept(&store), vec![5, 6, 7]);
    assert_eq!(put(&store, 8), 6);
    assert_eq!(kept(&store), vec![6, 7, 8]);
    assert_eq!(put(&store, 9), 0);
    assert_eq!(store.counts().unwrap().fact_history, 8);
    assert_eq!(kept(&store), vec![7, 8, 9]);
    let latest = store.facts("pay").unwrap();
    assert_eq!(latest.len(), 2);
    assert_eq!(latest["git"], facts("git", 9, at(540)));

    // Putting the same collection again (marked stale) replaces its history entry.
    let mut stale = facts("git", 9, at(540));
    stale.stale_reason = Some("plugin timed out".into());
    let mut batch = WriteBatch::new();
    batch.put_facts("pay", &stale);
    store.commit(batch, Durability::Eventual).unwrap();
    let history = store.fact_history("pay", "git").unwrap();
    assert_eq!(history.len(), 3);
    assert_eq!(history.last(), Some(&stale));
    assert_eq!(store.counts().unwrap().fact_history, 8);
    assert_eq!(store.facts("pay").unwrap()["git"], stale);
}

#[test]
fn delete_entity_purges_derived_state_and_keeps_the_records_of_people() {
    let store = mem();
    let mut batch = WriteBatch::new();
    for id in ["pay", "pay-x"] {
        batch
            .put_entity(&entity(id, Some(2)), EntityOrigin::CatalogFile)
            .put_facts(id, &facts("git", 1, at(0)))
            .put_result(&result(id, "prod", 3, at(0)))
            .append_level_change(&level_change(id, "prod", 1, at(0)))
            .put_lock(&Lock {
                entity: id.into(),
                reason: "freeze".into(),
                locked_by: "bob".into(),
                locked_at: at(0),
            })
            .put_alert_state(&[id, "prod", "degraded"], &true)
            .put_task(&task(
                &format!("task-{id}"),
                id,
                "has-runbook",
                TaskStatus::Open,
            ));
    }
    batch
        .set_tier_override(
            "pay",
            Some(&TierOverride {
                tier: Some(1),
                request_id: "tr1".into(),
                approved_at: at(0),
            }),
        )
        .put_exemption(&exemption("ex1", "pay"))
        .append_audit("exemption", "ex1", &audit_entry("requested"));
    store.commit(batch, Durability::Immediate).unwrap();

    let mut batch = WriteBatch::new();
    batch.delete_entity("pay", at(100));
    let stats = store.commit(batch, Durability::Eventual).unwrap();
    assert_eq!((stats.entities_deleted, stats.tasks_closed), (1, 1));
    assert_eq!(stats.durability, Durability::Immediate);

    assert!(store.entity("pay").unwrap().is_none());
    assert!(store.facts("pay").unwrap().is_empty());
    assert!(store.fact_history("pay", "git").unwrap().is_empty());
    assert!(store.results("pay").unwrap().is_empty());
    assert!(store.level_history("pay", None, None).unwrap().is_empty());
    assert!(store.lock("pay").unwrap().is_none());
    assert!(
        store
            .alert_state::<bool>(&["pay", "prod", "degraded"])
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .open_task("pay", "prod", "has-runbook")
            .unwrap()
            .is_none()
    );
    let closed = store.task("task-pay").unwrap().unwrap();
    assert_eq!(
        (closed.status, closed.closed_at),
        (TaskStatus::Done, Some(at(100)))
    );
    // Kept for the record.
    assert!(store.exemption("ex1").unwrap().is_some());
    assert_eq!(store.audit("exemption", "ex1").unwrap().len(), 1);
    // Recreating the entity does not resurrect the tier override.
    let mut batch = WriteBatch::new();
    batch.put_entity(&entity("pay", Some(2)), EntityOrigin::CatalogFile);
    store.commit(batch, Durability::Immediate).unwrap();
    assert_eq!(
        store.entity("pay").unwrap().unwrap().effective_tier(),
        Some(2)
    );

    // The neighbour whose id shares the prefix is untouched.
    assert!(store.entity("pay-x").unwrap().is_some());
    assert_eq!(store.facts("pay-x").unwrap().len(), 1);
    assert_eq!(store.results("pay-x").unwrap().len(), 1);
    assert_eq!(store.level_history("pay-x", None, None).unwrap().len(), 1);
    assert!(store.lock("pay-x").unwrap().is_some());
    assert_eq!(
        store
            .alert_state::<bool>(&["pay-x", "prod", "degraded"])
            .unwrap(),
        Some(true)
    );
    assert!(
        store
            .open_task("pay-x", "prod", "has-runbook")
            .unwrap()
            .is_some()
    );
}

#[test]
fn unchanged_results_and_entities_are_not_rewritten() {
    let store = mem();
    let results: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|e| result(e, "prod", 4, at(0)))
        .collect();
    let mut batch = WriteBatch::new();
    batch
        .put_results(&results)
        .put_entity(&entity("a", None), EntityOrigin::CatalogFile);
    let stats = store.commit(batch, Durability::Eventual).unwrap();
    assert_eq!((stats.results_written, stats.results_unchanged), (3, 0));
    assert_eq!(stats.entities_written, 1);

    let mut batch = WriteBatch::new();
    batch
        .put_results(&results)
        .put_entity(&entity("a", None), EntityOrigin::CatalogFile);
    let stats = store.commit(batch, Durability::Eventual).unwrap();
    assert_eq!((stats.results_written, stats.results_unchanged), (0, 3));
    assert_eq!((stats.entities_written, stats.entities_unchanged), (0, 1));

    let mut changed = results.clone();
    changed[1].rules[0].status = RuleStatus::Pass;
    let mut batch = WriteBatch::new();
    batch.put_results(&changed);
    let stats = store.commit(batch, Durability::Eventual).unwrap();
    assert_eq!((stats.results_written, stats.results_unchanged), (1, 2));
    assert_eq!(store.result("b", "prod").unwrap().unwrap(), changed[1]);
    assert_eq!(store.all_results().unwrap(), changed);
}

#[test]
fn result_reads_by_entity_scorecard_and_stream() {
    let store = mem();
    let mut batch = WriteBatch::new();
    for e in ["a", "b"] {
        for s in ["prod", "security"] {
            batch.put_result(&result(e, s, 2, at(0)));
        }
    }
    batch.delete_result("b", "security");
    store.commit(batch, Durability::Eventual).unwrap();
    let scorecards: Vec<_> = store
        .results("a")
        .unwrap()
        .into_iter()
        .map(|r| r.scorecard)
        .collect();
    assert_eq!(scorecards, vec!["prod", "security"]);
    let entities: Vec<_> = store
        .scorecard_results("security")
        .unwrap()
        .into_iter()
        .map(|r| r.entity)
        .collect();
    assert_eq!(entities, vec!["a"]);
    let mut seen = 0;
    store
        .for_each_result(|_| {
            seen += 1;
            seen < 2
        })
        .unwrap();
    assert_eq!(seen, 2);
    assert_eq!(store.all_results().unwrap().len(), 3);
    assert!(store.result("a", "missing").unwrap().is_none());
}

// ---- outbox ----

#[test]
fn a_notification_is_never_marked_sent_twice_nor_queued_again() {
    let store = mem();
    let mut batch = WriteBatch::new();
    batch.enqueue_outbox(&message("k1"));
    let seq = store
        .commit(batch, Durability::Eventual)
        .unwrap()
        .outbox_enqueued[0];
    let due = store.outbox_due(at(0), 10).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].seq, &due[0].message), (seq, &message("k1")));

    let mut batch = WriteBatch::new();
    batch.mark_outbox_sent(seq, "k1", at(3));
    store.commit(batch, Durability::Immediate).unwrap();
    assert!(store.outbox().unwrap().is_empty());
    assert_eq!(
        store.outbox_sent("k1").unwrap(),
        Some(SentRecord {
            seq,
            event_id: "event-k1".into(),
            sent_at: at(3)
        })
    );

    let mut batch = WriteBatch::new();
    batch.mark_outbox_sent(seq, "k1", at(4));
    let error = store.commit(batch, Durability::Immediate).unwrap_err();
    assert!(
        matches!(error, StoreError::AlreadySent { ref idempotency_key, sent_at } if idempotency_key == "k1" && sent_at == at(3)),
        "{error:?}"
    );

    // The same event emitted again is not queued again.
    let mut batch = WriteBatch::new();
    batch.enqueue_outbox(&message("k1"));
    let stats = store.commit(batch, Durability::Immediate).unwrap();
    assert_eq!(
        (stats.outbox_enqueued.len(), stats.outbox_duplicates),
        (0, 1)
    );
    assert!(store.outbox().unwrap().is_empty());
}

#[test]
fn queued_duplicates_are_skipped_and_keys_must_match() {
    let store = mem();
    let mut batch = WriteBatch::new();
    batch
        .enqueue_outbox(&message("k1"))
        .enqueue_outbox(&message("k1"));
    let stats = store.commit(batch, Durability::Immediate).unwrap();
    assert_eq!(
        (stats.outbox_enqueued.clone(), stats.outbox_duplicates),
        (vec![1], 1)
    );
    let mut batch = WriteBatch::new();
    batch.mark_outbox_sent(1, "k2", at(1));
    let error = store.commit(batch, Durability::Immediate).unwrap_err();
    assert!(matches!(error, StoreError::Conflict { .. }), "{error:?}");
    assert_eq!(store.outbox().unwrap().len(), 1);
}

#[test]
fn outbox_retries_dead_letters_and_requeues() {
    let store = mem();
    let mut batch = WriteBatch::new();
    batch
        .enqueue_outbox(&message("a"))
        .enqueue_outbox(&message("b"));
    let seqs = store
        .commit(batch, Durability::Immediate)
        .unwrap()
        .outbox_enqueued;
    assert_eq!(seqs, vec![1, 2]);

    let mut batch = WriteBatch::new();
    batch
        .reschedule_outbox(1, 1, at(600), "HTTP 503")
        .dead_letter(2, "HTTP 404 after 8 attempts", at(10));
    store.commit(batch, Durability::Immediate).unwrap();
    assert!(store.outbox_due(at(10), 10).unwrap().is_empty());
    let later = store.outbox_due(at(600), 10).unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(
        (later[0].attempts, later[0].last_error.as_deref()),
        (1, Some("HTTP 503"))
    );
    let letters = store.dead_letters().unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!((letters[0].seq, letters[0].entry.seq), (2, 2));
    assert_eq!(letters[0].reason, "HTTP 404 after 8 attempts");

    // A dead-lettered event is not queued a second time by a re-emission.
    let mut batch = WriteBatch::new();
    batch.enqueue_outbox(&message("b"));
    assert_eq!(
        store
            .commit(batch, Durability::Immediate)
            .unwrap()
            .outbox_duplicates,
        1
    );

    let mut batch = WriteBatch::new();
    batch.requeue_dead_letter(2, at(20));
    store.commit(batch, Durability::Immediate).unwrap();
    assert!(store.dead_letters().unwrap().is_empty());
    let due: Vec<_> = store
        .outbox_due(at(20), 10)
        .unwrap()
        .into_iter()
        .map(|e| (e.seq, e.attempts))
        .collect();
    assert_eq!(due, vec![(2, 0)]);

    // Sequence numbers are never reused, even once the outbox is empty.
    let mut batch = WriteBatch::new();
    batch
        .mark_outbox_sent(1, "a", at(700))
        .mark_outbox_sent(2, "b", at(700))
        .enqueue_outbox(&message("c"));
    assert_eq!(
        store
            .commit(batch, Durability::Immediate)
            .unwrap()
            .outbox_enqueued,
        vec![3]
    );
    assert_eq!(store.outbox_due(at(700), 1).unwrap().len(), 1);

    let mut batch = WriteBatch::new();
    batch.prune_outbox_sent(at(701));
    store.commit(batch, Durability::Immediate).unwrap();
    assert!(store.outbox_sent("a").unwrap().is_none());
}

// ---- people's records ----

#[test]
fn one_open_task_per_rule_through_the_index() {
    let store = mem();
    let mut batch = WriteBatch::new();
    batch.put_task(&task("t1", "pay", "has-runbook", TaskStatus::Open));
    store.commit(batch, Durability::Immediate).unwrap();
    assert_eq!(
        store
            .open_task("pay", "prod", "has-runbook")
            .unwrap()
            .unwrap()
            .id,
        "t1"
    );

    let mut batch = WriteBatch::new();
    batch.put_task(&task("t2", "pay", "has-runbook", TaskStatus::Open));
    let error = store.commit(batch, Durability::Immediate).unwrap_err();
    assert!(matches!(error, StoreError::Conflict { .. }), "{error:?}");

    // Overdue is still open; done leaves the index; then a new task may open.
    let mut batch = WriteBatch::new();
    batch.put_task(&task("t1", "pay", "has-runbook", TaskStatus::Overdue));
    store.commit(batch, Durability::Immediate).unwrap();
    assert_eq!(
        store
            .open_task("pay", "prod", "has-runbook")
            .unwrap()
            .unwrap()
            .status,
        TaskStatus::Overdue
    );
    let mut batch = WriteBatch::new();
    batch
        .put_task(&task("t1", "pay", "has-runbook", TaskStatus::Done))
        .put_task(&task("t2", "pay", "has-runbook", TaskStatus::Open));
    store.commit(batch, Durability::Immediate).unwrap();
    assert_eq!(
        store
            .open_task("pay", "prod", "has-runbook")
            .unwrap()
            .unwrap()
            .id,
        "t2"
    );

    let open = store
        .tasks(&TaskFilter {
            team: Some("payments".into()),
            status: Some(TaskStatus::Open),
            ..TaskFilter::default()
        })
        .unwrap();
    assert_eq!(
        open.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        vec!["t2"]
    );
    assert_eq!(store.tasks(&TaskFilter::default()).unwrap().len(), 2);
    assert!(
        store
            .tasks(&TaskFilter {
                team: Some("other".into()),
                ..TaskFilter::default()
            })
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.counts().unwrap().open_tasks, 1);
}

#[test]
fn an_approved_tier_survives_catalog_reloads() {
    let store = mem();
    let mut batch = WriteBatch::new();
    batch.put_entity(&entity("pay", Some(3)), EntityOrigin::CatalogFile);
    store.commit(batch, Durability::Eventual).unwrap();
    let tier_override = TierOverride {
        tier: Some(1),
        request_id: "tr1".into(),
        approved_at: at(1),
    };
    let mut batch = WriteBatch::new();
    batch.set_tier_override("pay", Some(&tier_override));
    assert_eq!(
        store
            .commit(batch, Durability::Eventual)
            .unwrap()
            .durability,
        Durability::Immediate
    );

    let mut reloaded = entity("pay", Some(3));
    reloaded.title = "Payments".into();
    let mut batch = WriteBatch::new();
    batch.put_entity(&reloaded, EntityOrigin::CatalogFile);
    store.commit(batch, Durability::Eventual).unwrap();
    let stored = store.entity("pay").unwrap().unwrap();
    assert_eq!(*stored.entity, reloaded);
    assert_eq!(stored.tier_override.as_ref(), Some(&tier_override));
    assert_eq!(stored.effective().tier, Some(1));
    assert_eq!(store.entities().unwrap(), vec![stored]);

    let mut batch = WriteBatch::new();
    batch.set_tier_override("pay", None);
    store.commit(batch, Durability::Immediate).unwrap();
    assert_eq!(
        store.entity("pay").unwrap().unwrap().effective_tier(),
        Some(3)
    );
}

#[test]
fn exemptions_tier_requests_and_locks_round_trip() {
    let store = mem();
    let mut approved = exemption("ex2", "pay");
    approved.status = ExemptionStatus::Approved;
    let request = crate::model::TierRequest {
        id: "tr1".into(),
        entity: "pay".into(),
        from: Some(3),
        to: Some(1),
        reason: "now critical".into(),
        requested_by: "alice".into(),
        requested_at: at(0),
        status: crate::model::TierRequestStatus::Pending,
        history: vec![audit_entry("requested")],
    };
    let mut batch = WriteBatch::new();
    batch
        .put_exemption(&exemption("ex1", "pay"))
        .put_exemption(&approved)
        .put_tier_request(&request)
        .put_lock(&Lock {
            entity: "pay".into(),
            reason: "incident".into(),
            locked_by: "bob".into(),
            locked_at: at(0),
        });
    store.commit(batch, Durability::Immediate).unwrap();
    assert_eq!(store.exemptions(None).unwrap().len(), 2);
    assert_eq!(
        store.exemptions(Some(ExemptionStatus::Approved)).unwrap(),
        vec![approved]
    );
    assert_eq!(store.tier_request("tr1").unwrap(), Some(request.clone()));
    assert_eq!(
        store
            .tier_requests(Some(crate::model::TierRequestStatus::Approved))
            .unwrap(),
        vec![]
    );
    assert_eq!(store.locks().unwrap().len(), 1);

    let mut batch = WriteBatch::new();
    batch.delete_lock("pay").delete_lock("never-locked");
    store.commit(batch, Durability::Immediate).unwrap();
    assert!(store.lock("pay").unwrap().is_none());
}

#[test]
fn level_history_and_snapshots_by_range() {
    let store = mem();
    let mut batch = WriteBatch::new();
    for (i, when) in [at(10), at(20), at(30)].into_iter().enumerate() {
        batch
            .append_level_change(&level_change("pay", "prod", i, when))
            .append_level_change(&level_change(
                "pay",
                "security",
                i,
                when + Duration::seconds(5),
            ));
    }
    let day = |d| NaiveDate::from_ymd_opt(2024, 5, d).unwrap();
    for d in 1..=5 {
        batch.put_snapshot(&DailySnapshot {
            scorecard: "prod".into(),
            date: day(d),
            taken_at: at(i64::from(d)),
            level_titles: vec!["Basic".into(), "Bronze".into()],
            levels: [
                ("pay".to_owned(), 1),
                ("web".to_owned(), 0),
                ("api".to_owned(), 1),
            ]
            .into(),
        });
    }
    store.commit(batch, Durability::Eventual).unwrap();

    let prod = store
        .level_history("pay", Some("prod"), Some(at(20)))
        .unwrap();
    assert_eq!(
        prod.iter().map(|c| c.to_index).collect::<Vec<_>>(),
        vec![1, 2]
    );
    let all = store.level_history("pay", None, Some(at(20))).unwrap();
    let all: Vec<_> = all.iter().map(|c| (c.scorecard.as_str(), c.at)).collect();
    assert_eq!(
        all,
        vec![
            ("prod", at(20)),
            ("security", at(25)),
            ("prod", at(30)),
            ("security", at(35))
        ]
    );
    assert_eq!(store.level_history("pay", None, None).unwrap().len(), 6);

    let snapshots = store.snapshots("prod", day(2), day(4)).unwrap();
    assert_eq!(
        snapshots.iter().map(|s| s.date).collect::<Vec<_>>(),
        vec![day(2), day(3), day(4)]
    );
    assert_eq!(snapshots[0].distribution(), [(0, 1), (1, 2)].into());
    assert!(
        store
            .snapshots("security", day(1), day(5))
            .unwrap()
            .is_empty()
    );
    assert!(store.snapshots("prod", day(4), day(2)).unwrap().is_empty());
}

#[test]
fn audit_log_by_subject_and_recent() {
    let store = mem();
    let mut batch = WriteBatch::new();
    batch
        .append_audit("exemption", "ex1", &audit_entry("requested"))
        .append_audit("exemption", "ex10", &audit_entry("requested"))
        .append_audit("exemption", "ex1", &audit_entry("approved"));
    let stats = store.commit(batch, Durability::Eventual).unwrap();
    assert_eq!(stats.audit_appended, vec![1, 2, 3]);
    assert_eq!(stats.durability, Durability::Immediate);
    let trail: Vec<_> = store
        .audit("exemption", "ex1")
        .unwrap()
        .into_iter()
        .map(|r| (r.seq, r.entry.action))
        .collect();
    assert_eq!(
        trail,
        vec![(1, "requested".to_owned()), (3, "approved".to_owned())]
    );
    let recent: Vec<_> = store
        .audit_recent(2)
        .unwrap()
        .into_iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(recent, vec![3, 2]);
}

#[test]
fn meta_keys_of_the_store_are_reserved() {
    let store = mem();
    let mut batch = WriteBatch::new();
    batch.put_meta("schema_version", &2u32);
    assert!(matches!(
        store.commit(batch, Durability::Immediate).unwrap_err(),
        StoreError::ReservedMetaKey { .. }
    ));
    let mut batch = WriteBatch::new();
    batch.put_meta("seq.outbox", &0u64);
    assert!(store.commit(batch, Durability::Immediate).is_err());
    let mut batch = WriteBatch::new();
    batch.put_meta("standards.revision", "abc123");
    store.commit(batch, Durability::Immediate).unwrap();
    assert_eq!(
        store
            .meta_get::<String>("standards.revision")
            .unwrap()
            .as_deref(),
        Some("abc123")
    );
    assert_eq!(store.schema_version().unwrap(), 1);
}

#[test]
fn derived_data_may_be_eventual_but_people_records_are_immediate() {
    let store = mem();
    let mut derived = WriteBatch::new();
    derived
        .put_result(&result("pay", "prod", 1, at(0)))
        .put_facts("pay", &facts("git", 1, at(0)));
    assert!(!derived.requires_immediate());
    assert_eq!(
        store
            .commit(derived, Durability::Eventual)
            .unwrap()
            .durability,
        Durability::Eventual
    );
    for build in [
        |b: &mut WriteBatch| {
            b.put_exemption(&exemption("e", "pay"));
        },
        |b: &mut WriteBatch| {
            b.put_task(&task("t", "pay", "r", TaskStatus::Open));
        },
        |b: &mut WriteBatch| {
            b.enqueue_outbox(&message("m"));
        },
        |b: &mut WriteBatch| {
            b.put_entity(&entity("api-made", None), EntityOrigin::Api);
        },
    ] {
        let mut batch = WriteBatch::new();
        batch.put_result(&result("pay", "prod", 2, at(0)));
        build(&mut batch);
        assert!(batch.requires_immediate());
        assert_eq!(
            store
                .commit(batch, Durability::Eventual)
                .unwrap()
                .durability,
            Durability::Immediate
        );
    }
}

// ---- files and durability ----

#[test]
fn data_committed_immediately_survives_a_drop_without_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    let mut batch = WriteBatch::new();
    batch
        .put_exemption(&exemption("ex1", "pay"))
        .put_task(&task("t1", "pay", "r", TaskStatus::Open))
        .enqueue_outbox(&message("k1"));
    store.commit(batch, Durability::Immediate).unwrap();
    let mut derived = WriteBatch::new();
    derived.put_result(&result("pay", "prod", 2, at(0)));
    store.commit(derived, Durability::Eventual).unwrap();
    drop(store);

    let store = Store::open(&path, StoreOptions::default()).unwrap();
    assert!(store.exemption("ex1").unwrap().is_some());
    assert!(store.open_task("pay", "prod", "r").unwrap().is_some());
    assert_eq!(store.outbox().unwrap().len(), 1);
    // redb makes pending eventual commits durable when the database is dropped.
    assert!(store.result("pay", "prod").unwrap().is_some());
    // Counters continue where they were.
    let mut batch = WriteBatch::new();
    batch.enqueue_outbox(&message("k2"));
    assert_eq!(
        store
            .commit(batch, Durability::Immediate)
            .unwrap()
            .outbox_enqueued,
        vec![2]
    );
}

#[test]
fn a_file_open_in_one_store_is_refused_to_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let _store = Store::open(&path, StoreOptions::default()).unwrap();
    let error = Store::open(&path, StoreOptions::default()).unwrap_err();
    assert!(matches!(error, StoreError::Open { .. }), "{error:?}");
}

#[test]
fn compaction_keeps_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    let mut batch = WriteBatch::new();
    for i in 0..500 {
        batch.put_result(&result(&format!("svc-{i}"), "prod", 10, at(0)));
    }
    store.commit(batch, Durability::Immediate).unwrap();
    let mut batch = WriteBatch::new();
    for i in 0..450 {
        batch.delete_entity(&format!("svc-{i}"), at(1));
    }
    store.commit(batch, Durability::Immediate).unwrap();
    drop(store);
    Store::compact_file(&path, &StoreOptions::default()).unwrap();
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    assert_eq!(store.all_results().unwrap().len(), 50);
}

// ---- the writer ----

/// Holds redb's write lock so that requests pile up in the writer's queue.
fn hold_write_lock(store: &Store) -> redb::WriteTransaction {
    store.inner.db.begin_write().unwrap()
}

#[tokio::test]
async fn queued_batches_are_committed_in_one_group() {
    let store = mem();
    let writer = Writer::spawn(store.clone());
    let lock = hold_write_lock(&store);
    let request = |i: usize| {
        let mut batch = WriteBatch::new();
        batch.enqueue_outbox(&message(&format!("k{i}")));
        writer.commit(batch, Durability::Eventual)
    };
    // The writer takes the first request (with whatever is queued by then) and blocks on the
    // held lock; give it that moment, so the other nine queue up behind it and make one group
    // whatever the scheduling (queued while the writer was forming its group, a request could
    // otherwise split them).
    let mut pending = vec![request(0)];
    std::thread::sleep(std::time::Duration::from_millis(100));
    pending.extend((1..10).map(request));
    drop(lock);
    let mut seqs = Vec::new();
    let mut largest_group = 0;
    for commit in pending {
        let stats = commit.await.unwrap();
        largest_group = largest_group.max(stats.group_size);
        assert_eq!(stats.durability, Durability::Immediate);
        seqs.extend(stats.outbox_enqueued);
    }
    // The writer may have taken the first request before the others were queued.
    assert!(largest_group >= 9, "largest group {largest_group}");
    // Committed in call order.
    assert_eq!(seqs, (1..=10).collect::<Vec<u64>>());
    writer.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_failing_batch_fails_alone_in_its_group() {
    let store = mem();
    let writer = Writer::spawn(store.clone());
    let lock = hold_write_lock(&store);
    let mut good = WriteBatch::new();
    good.put_exemption(&exemption("ex1", "pay"));
    let mut bad = WriteBatch::new();
    bad.put_exemption(&exemption("ex2", "pay"))
        .mark_outbox_sent(42, "nope", at(0));
    let mut invalid = WriteBatch::new();
    invalid.put_lock(&Lock {
        entity: String::new(),
        reason: "x".into(),
        locked_by: "x".into(),
        locked_at: at(0),
    });
    let mut also_good = WriteBatch::new();
    also_good.put_exemption(&exemption("ex3", "pay"));
    let results = [
        writer.commit(good, Durability::Immediate),
        writer.commit(bad, Durability::Immediate),
        writer.commit(invalid, Durability::Immediate),
        writer.commit(also_good, Durability::Eventual),
    ];
    drop(lock);
    let [good, bad, invalid, also_good] = results;
    assert!(good.await.is_ok());
    assert!(matches!(bad.await, Err(StoreError::NotFound { .. })));
    assert!(matches!(invalid.await, Err(StoreError::InvalidKey { .. })));
    assert!(also_good.await.is_ok());
    let ids: Vec<_> = store
        .exemptions(None)
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, vec!["ex1", "ex3"]);
    writer.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_concurrent_writers_each_get_their_own_result() {
    let store = mem();
    let writer = Writer::spawn(store.clone());
    let mut tasks = Vec::new();
    for w in 0..8 {
        let writer = writer.clone();
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..25 {
                let mut batch = WriteBatch::new();
                batch
                    .enqueue_outbox(&message(&format!("w{w}-{i}")))
                    .put_result(&result(&format!("svc-{w}"), &format!("sc-{i}"), 1, at(0)));
                let durability = if i % 2 == 0 {
                    Durability::Eventual
                } else {
                    Durability::Immediate
                };
                let stats = writer.commit(batch, durability).await.unwrap();
                assert_eq!((stats.results_written, stats.outbox_enqueued.len()), (1, 1));
                seqs.extend(stats.outbox_enqueued);
            }
            seqs
        }));
    }
    let mut all = BTreeSet::new();
    for task in tasks {
        for seq in task.await.unwrap() {
            assert!(all.insert(seq), "seq {seq} handed out twice");
        }
    }
    assert_eq!(all.len(), 200);
    let counts = store.counts().unwrap();
    assert_eq!((counts.outbox, counts.results), (200, 200));
    writer.flush().await.unwrap();
    writer.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_writer_commits_to_a_file_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    let writer = Writer::spawn_with(
        store.clone(),
        WriterOptions {
            flush_interval: std::time::Duration::from_millis(10),
            ..WriterOptions::default()
        },
    );
    let mut batch = WriteBatch::new();
    batch.put_result(&result("pay", "prod", 3, at(0)));
    let stats = writer.commit(batch, Durability::Eventual).await.unwrap();
    assert_eq!(stats.durability, Durability::Eventual);
    let other = writer.clone();
    writer.shutdown().await.unwrap();
    let mut batch = WriteBatch::new();
    batch.put_result(&result("pay", "prod", 4, at(0)));
    assert!(matches!(
        other.commit(batch, Durability::Eventual).await,
        Err(StoreError::WriterClosed)
    ));
    drop(store);
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    assert_eq!(store.result("pay", "prod").unwrap().unwrap().rules.len(), 3);
}

#[test]
fn errors_and_batches_cross_threads() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    fn assert_send<T: Send + 'static>() {}
    assert_send_sync::<StoreError>();
    assert_send_sync::<Store>();
    assert_send_sync::<WriterHandle>();
    assert_send::<WriteBatch>();
    // anyhow (used by main and glue) needs std::error::Error + Send + Sync + 'static.
    let error: Box<dyn std::error::Error + Send + Sync> = Box::new(StoreError::WriterClosed);
    assert!(error.to_string().contains("writer"));
}

#[test]
fn table_names_are_unique() {
    let mut names: Vec<&str> = STR_TABLES.iter().map(|d| d.name()).collect();
    names.extend([
        OPEN_TASKS.name(),
        OUTBOX.name(),
        OUTBOX_KEYS.name(),
        DEAD_LETTERS.name(),
        AUDIT.name(),
        AUDIT_BY_SUBJECT.name(),
    ]);
    let unique: BTreeSet<_> = names.iter().collect();
    assert_eq!(unique.len(), names.len());
    assert_eq!(names.len(), 22);
}

/// DESIGN.md section 11: a full pass (10,000 entities × 5 scorecards × 10 rules) commits in one
/// transaction well under a second. Prints the times; run with
/// `cargo test -p readyd --release --lib store::tests::full_pass_commit_time -- --ignored --nocapture`.
#[test]
#[ignore = "measurement, prints timings"]
fn full_pass_commit_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    let pass = |evaluated: Timestamp| -> Vec<ScorecardResult> {
        (0..10_000)
            .flat_map(|e| {
                (0..5).map(move |s| {
                    result(
                        &format!("service-{e:05}"),
                        &format!("scorecard-{s}"),
                        10,
                        evaluated,
                    )
                })
            })
            .collect()
    };
    let first = pass(at(0));
    let size = codec::encode_result("k", &first[0]).unwrap().len();
    for (label, results) in [
        ("first pass (all new)", &first),
        ("same pass again (all unchanged)", &first),
        ("next pass (all changed)", &pass(at(60))),
    ] {
        let started = std::time::Instant::now();
        let mut batch = WriteBatch::new();
        batch.put_results(results.iter());
        let encoded = started.elapsed();
        let stats = store.commit(batch, Durability::Immediate).unwrap();
        let total = started.elapsed();
        println!(
            "{label}: {} results ({size} bytes each): encode {encoded:?}, encode+commit {total:?} (written {}, unchanged {})",
            results.len(),
            stats.results_written,
            stats.results_unchanged
        );
    }
    let started = std::time::Instant::now();
    let all = store.all_results().unwrap();
    println!("all_results: {} in {:?}", all.len(), started.elapsed());
    println!("file size: {} bytes", store.file_size().unwrap().unwrap());
}

#[test]
fn first_rounds_are_kept_per_entity_and_source_and_go_with_the_entity() {
    let store = mem();
    let collected = FirstRound {
        at: at(1),
        outcome: FirstRoundOutcome::Collected,
    };
    let failed = FirstRound {
        at: at(2),
        outcome: FirstRoundOutcome::Failed,
    };
    let mut batch = WriteBatch::new();
    batch
        .put_entity(&entity("pay", Some(1)), EntityOrigin::CatalogFile)
        .put_entity(&entity("pay-x", Some(1)), EntityOrigin::CatalogFile)
        .put_first_round("pay", "oncall", &collected)
        .put_first_round("pay", "prometheus", &failed)
        .put_first_round("pay-x", "oncall", &collected);
    store.commit(batch, Durability::Immediate).unwrap();
    let rounds = store.first_rounds().unwrap();
    assert_eq!(
        rounds,
        [
            ("pay".to_owned(), "oncall".to_owned(), collected),
            ("pay".to_owned(), "prometheus".to_owned(), failed),
            ("pay-x".to_owned(), "oncall".to_owned(), collected),
        ]
    );
    // A key part that cannot exist refuses the whole batch.
    let mut bad = WriteBatch::new();
    bad.put_first_round("pay", "", &collected);
    assert!(store.commit(bad, Durability::Immediate).is_err());

    let mut batch = WriteBatch::new();
    batch.delete_entity("pay", at(3));
    store.commit(batch, Durability::Immediate).unwrap();
    assert_eq!(
        store.first_rounds().unwrap(),
        [("pay-x".to_owned(), "oncall".to_owned(), collected)],
        "deleting pay keeps pay-x's rounds"
    );
}
