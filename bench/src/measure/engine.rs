//! The engine in this process: start on the organisation (restore + first full pass + commit),
//! a data-source round that changes a fact of every entity, and the incremental path — one
//! entity's facts change, then its new results are visible through `Engine::entity_scores` and
//! through the HTTP API served in-process by `readyd::http::serve`.
//!
//! The store is seeded first, directly through `readyd::store`: the organisation's entities and
//! 10 fact records per (entity, source), the bounded history the daemon keeps by default, so
//! the engine starts on a realistic file. This module never edits the organisation's files.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use readyd::clock::Clock;
use readyd::config::Config;
use readyd::engine::{Engine, ScoreFilter, StartOptions};
use readyd::model::{FactRecord, JsonObject, RuleStatus, ScorecardResult};
use readyd::store::{Durability, EntityOrigin, Store, StoreOptions, WriteBatch};
use serde_json::Value;

use crate::client::Http;
use crate::org::{Org, SOURCES, reference_time};
use crate::report::{Goal, Row, Section};
use crate::stats::{Samples, fmt_num};

/// Fact records kept per (entity, source): the daemon's default history bound.
pub const FACT_HISTORY: usize = 10;

/// Writes the organisation's entities and [`FACT_HISTORY`] fact records per (entity, source)
/// into a new store at `path`; the last record of each is the organisation's facts.
pub fn seed_store(org: &Org, path: &Path) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let store = Store::open(path, StoreOptions::default())
        .with_context(|| format!("creating {}", path.display()))?;
    for round in 0..FACT_HISTORY {
        let mut batch = WriteBatch::new();
        let last = round + 1 == FACT_HISTORY;
        let at = reference_time() - chrono::Duration::minutes(5 * (FACT_HISTORY - round) as i64);
        for entity in &org.entities {
            if round == 0 {
                batch.put_entity(entity, EntityOrigin::CatalogFile);
            }
            for (source, record) in org.facts_of(&entity.identifier) {
                let mut facts = record.facts.clone();
                if !last {
                    // Older collections differ, as real ones do.
                    facts.insert("collection".into(), Value::from(round as u64));
                }
                batch.put_facts(
                    &entity.identifier,
                    &FactRecord {
                        source: source.clone(),
                        facts,
                        collected_at: if last { record.collected_at } else { at },
                        plugin_version: "bench".into(),
                        stale_reason: None,
                    },
                );
            }
        }
        store
            .commit(
                batch,
                if last {
                    Durability::Immediate
                } else {
                    Durability::Eventual
                },
            )
            .context("seeding the store")?;
    }
    store.flush().context("flushing the seeded store")?;
    Ok(started.elapsed())
}

/// A daemon configuration for the organisation: the given standards and plugins, data at
/// `data`, no file watching, anonymous reads.
pub fn config(org: &Org, standards: &Path, plugins: &Path, data: &Path, cache: &Path) -> Config {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().expect("static address"),
        data: data.to_owned(),
        catalog_dir: org.dirs.catalog.clone(),
        standards_dir: standards.to_owned(),
        plugins_dir: plugins.to_owned(),
        cache_dir: cache.to_owned(),
        anonymous_read: true,
        ..Config::default()
    };
    config.watch.enabled = false;
    config
}

/// How many of each measurement.
#[derive(Clone, Copy, Debug)]
pub struct EngineRuns {
    pub starts: usize,
    pub rounds: usize,
    pub incremental: usize,
}

/// What the engine phase leaves for the daemon phase.
pub struct EngineOutcome {
    pub section: Section,
    /// The store the last engine wrote (entities, fact histories, results).
    pub data: Option<PathBuf>,
}

fn status_of(results: &[ScorecardResult], scorecard: &str, rule: &str) -> Option<RuleStatus> {
    results
        .iter()
        .find(|r| r.scorecard == scorecard)?
        .rules
        .iter()
        .find(|r| *r.rule == *rule)
        .map(|r| r.status)
}

/// Engine start, data-source rounds and the incremental path. `expected_results` is the number
/// of scorecard results the pure evaluator produced for the organisation.
pub async fn measure(
    org: &Arc<Org>,
    seeded: &Path,
    work: &Path,
    expected_results: usize,
    runs: EngineRuns,
) -> anyhow::Result<EngineOutcome> {
    let n = org.entities.len();
    let mut section = Section::new(
        "Engine (in process)",
        format!(
            "`readyd::engine::Engine` started with `StartOptions {{ background: false }}` on the \
             organisation: catalog and standards from their files, the store seeded with the \
             entities and {FACT_HISTORY} fact records per (entity, source). Start = restore + \
             load + evaluate all + commit ({} runs, each on a fresh copy of the seeded store). A \
             data-source round = `Engine::ingest_facts(\"git\", …)` changing one fact of every \
             entity that has git facts: re-evaluate and commit ({} rounds). Incremental = one \
             entity's git facts change (`has_codeowners` flipped) → its `security/codeowners` \
             result has the new status in `Engine::entity_scores`, or in `GET \
             /v1/entities/{{id}}/scores` served by `readyd::http::serve` in this process ({} \
             entities each).",
            runs.starts, runs.rounds, runs.incremental
        ),
    );
    let plugins = work.join("plugins-none");
    std::fs::create_dir_all(&plugins)?;
    let cache = work.join("cache");
    let mut starts = Samples::new();
    let mut engine: Option<(Engine, PathBuf)> = None;
    for k in 0..runs.starts.max(1) {
        if let Some((previous, _)) = engine.take() {
            previous.shutdown().await;
        }
        let data = work.join(format!("engine-{k}.redb"));
        std::fs::copy(seeded, &data)
            .with_context(|| format!("copying the seeded store to {}", data.display()))?;
        let config = config(org, &org.dirs.standards, &plugins, &data, &cache);
        let started = Instant::now();
        let started_engine = Engine::start_with(
            config,
            StartOptions {
                clock: Clock::system(),
                background: false,
            },
        )
        .await
        .map_err(|e| anyhow!("Engine::start_with failed: {e:#}"))?;
        starts.push(started.elapsed().as_secs_f64());
        let results = started_engine
            .scores(&ScoreFilter::default())
            .map_err(|e| anyhow!("the engine answered `{e}` to a scores query after its start"))?;
        if results.len() != expected_results {
            return Err(anyhow!(
                "after its start the engine holds {} scorecard results; the pure evaluator produced {expected_results}",
                results.len()
            ));
        }
        engine = Some((started_engine, data));
    }
    let (engine, data) = engine.expect("at least one start");
    section.rows.push(Row::target(
        &format!("engine start on {n} entities: evaluate all + commit (restore and load included)"),
        Goal::Below(1.0),
        "s",
        &mut starts,
    ));

    // A data-source round over every entity with git facts.
    let mut git: Vec<(String, JsonObject)> = org
        .entities
        .iter()
        .filter_map(|e| {
            let record = org.facts_of(&e.identifier).get("git")?;
            Some((e.identifier.clone(), record.facts.clone()))
        })
        .collect();
    let mut rounds = Samples::new();
    for _ in 0..runs.rounds {
        for (_, facts) in &mut git {
            let flipped = !facts
                .get("has_changelog")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            facts.insert("has_changelog".into(), Value::Bool(flipped));
        }
        let started = Instant::now();
        let stored = engine
            .ingest_facts("git", git.clone())
            .await
            .map_err(|e| anyhow!("Engine::ingest_facts failed: {e}"))?;
        rounds.push(started.elapsed().as_secs_f64());
        if stored != git.len() {
            return Err(anyhow!(
                "ingest_facts stored {stored} of {} fact records",
                git.len()
            ));
        }
    }
    section.rows.push(Row::target(
        &format!(
            "data-source round: {} entities' facts change → re-evaluate all + commit",
            fmt_num(git.len() as f64)
        ),
        Goal::Below(1.0),
        "s",
        &mut rounds,
    ));

    // Incremental, through the engine and through the in-process API.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(readyd::http::serve(engine.clone(), listener, async {
        let _ = stopped.await;
    }));
    let http = Http::new(addr);
    let step = (git.len() / runs.incremental.max(1)).max(1);
    let (mut via_engine, mut via_api) = (Samples::new(), Samples::new());
    for (id, facts) in git.iter_mut().step_by(step).take(runs.incremental) {
        for through_api in [false, true] {
            let flipped = !facts
                .get("has_codeowners")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            facts.insert("has_codeowners".into(), Value::Bool(flipped));
            let expected = if flipped {
                RuleStatus::Pass
            } else {
                RuleStatus::Fail
            };
            let started = Instant::now();
            engine
                .ingest_facts("git", vec![(id.clone(), facts.clone())])
                .await
                .map_err(|e| anyhow!("Engine::ingest_facts failed: {e}"))?;
            let deadline = started + Duration::from_secs(10);
            loop {
                let seen = if through_api {
                    let answer = http.get_json(&format!("/v1/entities/{id}/scores")).await?;
                    let results: Vec<ScorecardResult> =
                        serde_json::from_value(answer).context("reading the scores answer")?;
                    status_of(&results, "security", "codeowners")
                } else {
                    status_of(
                        &engine.entity_scores(id).map_err(|e| anyhow!("{e}"))?,
                        "security",
                        "codeowners",
                    )
                };
                if seen == Some(expected) {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(anyhow!(
                        "{id}: security/codeowners did not become {expected:?} within 10 s"
                    ));
                }
                tokio::task::yield_now().await;
            }
            let elapsed = started.elapsed().as_secs_f64() * 1e3;
            if through_api {
                via_api.push(elapsed)
            } else {
                via_engine.push(elapsed)
            }
        }
    }
    let _ = stop.send(());
    server
        .await
        .context("the in-process HTTP server panicked")?
        .map_err(|e| anyhow!("HTTP server: {e:#}"))?;
    section.rows.push(Row::target(
        "incremental: one entity's facts → new result in `Engine::entity_scores`",
        Goal::Below(10.0),
        "ms",
        &mut via_engine,
    ));
    section.rows.push(Row::target(
        "incremental: one entity's facts → new result through `GET /v1/entities/{id}/scores`",
        Goal::Below(10.0),
        "ms",
        &mut via_api,
    ));
    engine.shutdown().await;
    drop(engine);
    let size = std::fs::metadata(&data).map(|m| m.len()).unwrap_or(0);
    section.rows.push(Row::value(
        &format!("redb file: {n} entities, {FACT_HISTORY} fact records per (entity, source), results and level history"),
        format!("{} MiB", fmt_num(size as f64 / (1024.0 * 1024.0))),
    ));
    section.notes.push(format!(
        "Sources: {}. The engine commits through the store's single writer; a fact ingestion asks \
         for `Durability::Eventual` (visible at once, fsynced by the writer within its flush \
         interval), which the store raises to `Immediate` when the batch also holds tasks or \
         outbox entries.",
        SOURCES.join(", ")
    ));
    Ok(EngineOutcome {
        section,
        data: Some(data),
    })
}
