//! Facts: data-source plugins run on their manifest's interval (and on demand), in batches of
//! entities, a bounded number at once. New facts are committed with the entities' new results.
//! A source that fails leaves the previous facts in place, marked stale with the reason (their
//! `collected_at` shows their age).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::model::{EntityFacts, FactRecord, JsonObject};
use crate::plugin::{Plugin, PluginKind};
use crate::store::{Durability, WriteBatch};

use super::{Engine, EngineError, RefreshAnswer, Result, SourceOutcome};

/// Start one schedule per data-source plugin. A schedule follows the plugin by name, so a
/// replaced plugin is picked up at its next run.
pub(super) fn spawn_schedules(engine: &Engine) -> Vec<tokio::task::JoinHandle<()>> {
    let engine = engine.clone();
    let mut stop = engine.shutdown_signal();
    // One supervisor wakes every second and runs each data source whose interval has passed;
    // plugins loaded later (hot reload) are picked up without a restart.
    vec![tokio::spawn(async move {
        let mut last_run: std::collections::HashMap<String, tokio::time::Instant> =
            std::collections::HashMap::new();
        let semaphore = Arc::new(tokio::sync::Semaphore::new(
            engine.inner.config.limits.collect_concurrency.max(1),
        ));
        let mut running: std::collections::HashMap<String, tokio::task::JoinHandle<()>> =
            std::collections::HashMap::new();
        loop {
            for status in engine.inner.plugins.status() {
                if status.kind != PluginKind::DataSource {
                    continue;
                }
                let Some(plugin) = engine.inner.plugins.get(&status.name) else {
                    continue;
                };
                let due = last_run
                    .get(&status.name)
                    .is_none_or(|t| t.elapsed() >= plugin.manifest.interval());
                let busy = running.get(&status.name).is_some_and(|h| !h.is_finished());
                if due && !busy {
                    last_run.insert(status.name.clone(), tokio::time::Instant::now());
                    let e = engine.clone();
                    let sem = semaphore.clone();
                    running.insert(
                        status.name.clone(),
                        tokio::spawn(async move {
                            e.collect_all(plugin, sem).await;
                        }),
                    );
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.changed() => {
                    for (_, h) in running.drain() {
                        h.abort();
                    }
                    return;
                }
            }
        }
    })]
}

/// Collect from a freshly loaded data source at once (hot reload).
pub(super) fn spawn_collect_now(engine: &Engine, plugin: Arc<Plugin>) {
    let e = engine.clone();
    let sem = Arc::new(tokio::sync::Semaphore::new(
        engine.inner.config.limits.collect_concurrency.max(1),
    ));
    tokio::spawn(async move { e.collect_all(plugin, sem).await });
}

/// A data source's round (or one batch of it) that collected nothing: which plugin, for which
/// entities, and why. `readyd eval` prints each one.
#[derive(Clone, Debug)]
pub struct CollectFailure {
    pub plugin: String,
    /// The batch's entities (all of them when the source has one batch).
    pub entities: Vec<String>,
    pub reason: String,
}

impl Engine {
    /// Run every active data source over every entity once and wait (`readyd eval`, tests);
    /// the batches that failed.
    pub async fn collect_once(&self) -> Vec<CollectFailure> {
        let semaphore = Arc::new(tokio::sync::Semaphore::new(
            self.inner.config.limits.collect_concurrency.max(1),
        ));
        let mut failures = Vec::new();
        for status in self.inner.plugins.status() {
            if status.kind != PluginKind::DataSource {
                continue;
            }
            if let Some(plugin) = self.inner.plugins.get(&status.name) {
                failures.extend(self.collect_all(plugin, semaphore.clone()).await);
            }
        }
        failures
    }

    /// Run one data source over every entity, batch by batch; the batches that failed.
    async fn collect_all(
        &self,
        plugin: Arc<Plugin>,
        semaphore: Arc<tokio::sync::Semaphore>,
    ) -> Vec<CollectFailure> {
        let entities: Vec<crate::model::Entity> = self
            .read()
            .effective
            .values()
            .map(|e| (**e).clone())
            .collect();
        let batch_size = self.inner.config.limits.collect_batch.max(1);
        let mut jobs = Vec::new();
        for chunk in entities.chunks(batch_size) {
            let chunk = chunk.to_vec();
            let plugin = plugin.clone();
            let sem = semaphore.clone();
            let engine = self.clone();
            jobs.push(tokio::spawn(async move {
                let Ok(_permit) = sem.acquire_owned().await else {
                    return None;
                };
                match engine.collect_batch(&plugin, &chunk).await {
                    Ok(_) => None,
                    Err(reason) => {
                        tracing::warn!(plugin = %plugin.manifest.name, error = %reason, "collection failed");
                        Some(CollectFailure {
                            plugin: plugin.manifest.name.clone(),
                            entities: chunk.into_iter().map(|e| e.identifier).collect(),
                            reason,
                        })
                    }
                }
            }));
        }
        let mut failures = Vec::new();
        for job in jobs {
            if let Ok(Some(failure)) = job.await {
                failures.push(failure);
            }
        }
        failures
    }

    /// Collect one batch and commit the facts with the re-evaluated results.
    async fn collect_batch(
        &self,
        plugin: &Plugin,
        entities: &[crate::model::Entity],
    ) -> std::result::Result<usize, String> {
        let source = plugin.manifest.name.clone();
        let answer = plugin.collect(entities).await;
        let now = self.now();
        match answer {
            Ok(pairs) => {
                let known: std::collections::HashSet<&str> =
                    entities.iter().map(|e| e.identifier.as_str()).collect();
                let records: Vec<(String, FactRecord)> = pairs
                    .into_iter()
                    .filter(|(id, _)| known.contains(id.as_str()))
                    .map(|(id, facts)| {
                        (
                            id,
                            FactRecord {
                                source: source.clone(),
                                facts,
                                collected_at: now,
                                plugin_version: plugin.version.clone(),
                                stale_reason: None,
                            },
                        )
                    })
                    .collect();
                self.store_facts(records).await.map_err(|e| e.to_string())
            }
            Err(err) => {
                let reason = err.to_string();
                let mut state = self.write();
                for e in entities {
                    if let Some(record) = state
                        .facts
                        .get_mut(&e.identifier)
                        .and_then(|f| Arc::make_mut(f).get_mut(&source))
                    {
                        record.stale_reason = Some(reason.clone());
                    }
                }
                Err(reason)
            }
        }
    }

    /// Commit new facts, re-evaluating only the entities whose facts changed.
    async fn store_facts(&self, records: Vec<(String, FactRecord)>) -> Result<usize> {
        if records.is_empty() {
            return Ok(0);
        }
        let _guard = self.inner.ops.lock().await;
        let mut batch = WriteBatch::new();
        let mut changed_ids = Vec::new();
        // The facts each changed entity is evaluated with, built once: installed as they are
        // after the commit (no record is copied more than once).
        let mut changed_facts: HashMap<String, Arc<EntityFacts>> = HashMap::new();
        let mut unchanged = Vec::new();
        {
            let state = self.read();
            for (id, record) in records {
                if !state.entities.contains_key(&id) {
                    continue;
                }
                let current = state.facts.get(&id);
                let previous = current.and_then(|f| f.get(&record.source));
                let same = previous.is_some_and(|p| p.facts == record.facts);
                if !same {
                    batch.put_facts(&id, &record);
                    let mut facts: EntityFacts = current
                        .map(|f| {
                            f.iter()
                                .filter(|(source, _)| **source != record.source)
                                .map(|(source, r)| (source.clone(), r.clone()))
                                .collect()
                        })
                        .unwrap_or_default();
                    facts.insert(record.source.clone(), record);
                    changed_ids.push(id.clone());
                    changed_facts.insert(id, Arc::new(facts));
                    continue;
                }
                if previous.is_some_and(|p| p.stale_reason.is_some()) {
                    // Fresh again: record the new collection time so the age is right.
                    batch.put_facts(&id, &record);
                }
                unchanged.push((id, record));
            }
        }
        let now = self.now();
        let outcome = self
            .evaluate_ids_with(&changed_ids, |state, id| {
                let mut inputs = super::pass::Inputs::gather(state, id)?;
                if let Some(facts) = changed_facts.get(id) {
                    inputs.facts = facts.clone();
                }
                Some(inputs)
            })
            .await;
        let plan = self.plan_for(&outcome, now);
        super::pass::write_all(&outcome, &mut batch);
        plan.apply_to(&mut batch);
        self.commit(batch, Durability::Eventual).await?;
        let n = changed_ids.len();
        {
            let mut state = self.write();
            for (id, facts) in changed_facts {
                state.facts.insert(id, facts);
            }
            for (id, record) in unchanged {
                Arc::make_mut(state.facts.entry(id).or_default())
                    .insert(record.source.clone(), record);
            }
            super::actions::apply_to_state(&plan, &mut state);
            Self::apply_outcome(&mut state, outcome);
        }
        self.inner.delivery.wake();
        Ok(n)
    }

    /// Put facts for entities directly (facts files of `readyd eval`, tests, benchmarks),
    /// committing them with the re-evaluated results.
    pub async fn ingest_facts(
        &self,
        source: &str,
        facts: Vec<(String, JsonObject)>,
    ) -> Result<usize> {
        let now = self.now();
        let records = facts
            .into_iter()
            .map(|(id, facts)| {
                (
                    id,
                    FactRecord {
                        source: source.to_owned(),
                        facts,
                        collected_at: now,
                        plugin_version: "ingested".into(),
                        stale_reason: None,
                    },
                )
            })
            .collect();
        self.store_facts(records).await
    }

    /// `POST /v1/entities/{id}/refresh`: collect this entity's facts from every data source now
    /// and answer with its new scores.
    pub async fn refresh(&self, actor: &super::Actor, id: &str) -> Result<RefreshAnswer> {
        let entity = self
            .read()
            .effective
            .get(id)
            .cloned()
            .ok_or_else(|| EngineError::NotFound(format!("no entity `{id}`")))?;
        match &actor.role {
            crate::config::Role::Admin => {}
            crate::config::Role::Owner(team) if entity.team.as_ref() == Some(team) => {}
            _ => {
                return Err(EngineError::Forbidden(
                    "only the owning team or an admin may refresh".into(),
                ));
            }
        }
        let mut sources = Vec::new();
        let entities = vec![(*entity).clone()];
        for status in self.inner.plugins.status() {
            if status.kind != PluginKind::DataSource {
                continue;
            }
            let Some(plugin) = self.inner.plugins.get(&status.name) else {
                sources.push(SourceOutcome {
                    source: status.name.clone(),
                    ok: false,
                    error: Some("plugin is not active".into()),
                });
                continue;
            };
            match self.collect_batch(&plugin, &entities).await {
                Ok(_) => sources.push(SourceOutcome {
                    source: status.name.clone(),
                    ok: true,
                    error: None,
                }),
                Err(e) => sources.push(SourceOutcome {
                    source: status.name.clone(),
                    ok: false,
                    error: Some(e),
                }),
            }
        }
        // Check plugins may have changed too: evaluate even when no fact changed.
        let _guard = self.inner.ops.lock().await;
        self.reevaluate_locked(&[id.to_owned()]).await?;
        drop(_guard);
        Ok(RefreshAnswer {
            entity: id.to_owned(),
            sources,
            scores: self.entity_scores(id)?,
        })
    }
}
