//! Facts: data-source plugins run on their manifest's interval (and on demand), in batches of
//! entities, a bounded number at once. New facts are committed with the entities' new results.
//! A source that fails leaves the previous facts in place, marked stale with the reason (their
//! `collected_at` shows their age).
//!
//! Every round also records, per entity, the first round of each source (collected or failed),
//! once, in the batch of its facts: until then the entity's results are quiet
//! (`first_round.rs`). The schedule's supervisor ends the quiet of entities that waited longer
//! than `first_round_timeout`, and an entity added while the daemon runs is collected at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::model::{EntityFacts, FactRecord, JsonObject};
use crate::plugin::{Plugin, PluginKind};
use crate::store::{Durability, FirstRound, FirstRoundOutcome, WriteBatch};

use super::first_round::NewRounds;

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
            engine.end_overdue_quiet().await;
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
    /// Collect the facts of entities just added (catalog file or API) from every data source,
    /// in the background, so that their quiet first evaluation is soon followed by one that
    /// acts. Only while the engine runs its background work, and not during the start (the
    /// schedules collect everything then).
    pub(super) fn collect_new_entities(&self, ids: Vec<String>) {
        if ids.is_empty() || !self.inner.collects || !self.is_ready() {
            return;
        }
        let engine = self.clone();
        tokio::spawn(async move {
            let entities: Vec<crate::model::Entity> = {
                let state = engine.read();
                ids.iter()
                    .filter_map(|id| state.effective.get(id).map(|e| (**e).clone()))
                    .collect()
            };
            let batch_size = engine.inner.config.limits.collect_batch.max(1);
            for status in engine.inner.plugins.status() {
                if status.kind != PluginKind::DataSource {
                    continue;
                }
                let Some(plugin) = engine.inner.plugins.get(&status.name) else {
                    continue;
                };
                for chunk in entities.chunks(batch_size) {
                    if let Err(err) = engine.collect_batch(&plugin, chunk).await {
                        tracing::warn!(plugin = %plugin.manifest.name, error = %err, "collection of new entities failed");
                    }
                }
            }
        });
    }

    /// End the quiet of entities that have waited `first_round_timeout` or longer: their
    /// pending first rounds are recorded as timed out and they are evaluated again, acting.
    pub async fn end_overdue_quiet(&self) {
        let timeout = self.inner.config.first_round_timeout;
        let overdue: Vec<(String, String)> = {
            let state = self.read();
            if state.first_rounds.quiet.is_empty() {
                return;
            }
            let now = self.now();
            let timeout = chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::MAX);
            let waiting = self.waiting_sources(&state.standards);
            let mut overdue = Vec::new();
            for (id, quiet) in &state.first_rounds.quiet {
                if now.signed_duration_since(quiet.since) < timeout {
                    continue;
                }
                let pending = state.first_rounds.pending_sources(id, &waiting);
                if pending.is_empty() {
                    // Nothing left to wait for (a source was unloaded): evaluate again.
                    overdue.push((id.clone(), String::new()));
                }
                for source in pending {
                    overdue.push((id.clone(), source.clone()));
                }
            }
            overdue
        };
        if overdue.is_empty() {
            return;
        }
        tracing::info!(
            entities = overdue.len(),
            "first rounds still pending after first_round_timeout: acting on what is known"
        );
        if let Err(err) = self
            .store_facts(Vec::new(), overdue, FirstRoundOutcome::TimedOut)
            .await
        {
            tracing::warn!(error = %err, "ending the quiet of overdue entities failed");
        }
    }

    /// The entities of `entities` whose first round of `source` is not recorded yet.
    fn first_round_pending(
        &self,
        source: &str,
        entities: &[crate::model::Entity],
    ) -> Vec<(String, String)> {
        let state = self.read();
        entities
            .iter()
            .filter(|e| !state.first_rounds.is_done(&e.identifier, source))
            .map(|e| (e.identifier.clone(), source.to_owned()))
            .collect()
    }

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
                // Every entity of the batch had its round, facts or not.
                let rounds = self.first_round_pending(&source, entities);
                self.store_facts(records, rounds, FirstRoundOutcome::Collected)
                    .await
                    .map_err(|e| e.to_string())
            }
            Err(err) => {
                let reason = err.to_string();
                {
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
                }
                // A failed first round counts as collected: the rules see missing facts.
                let rounds = self.first_round_pending(&source, entities);
                if let Err(e) = self
                    .store_facts(Vec::new(), rounds, FirstRoundOutcome::Failed)
                    .await
                {
                    tracing::warn!(plugin = %source, error = %e, "recording a failed first round failed");
                }
                Err(reason)
            }
        }
    }

    /// Commit new facts and the first rounds `rounds` ((entity, source) pairs that ended with
    /// `outcome`), re-evaluating the entities whose facts changed and the quiet ones a round
    /// may settle.
    async fn store_facts(
        &self,
        records: Vec<(String, FactRecord)>,
        rounds: Vec<(String, String)>,
        outcome: FirstRoundOutcome,
    ) -> Result<usize> {
        if records.is_empty() && rounds.is_empty() {
            return Ok(0);
        }
        let _guard = self.inner.ops.lock().await;
        let mut batch = WriteBatch::new();
        let mut changed_ids = Vec::new();
        let round = FirstRound {
            at: self.now(),
            outcome,
        };
        // The rounds this batch records, and the quiet entities they may settle.
        let mut new_rounds = NewRounds::new();
        let mut settle: Vec<String> = Vec::new();
        if !rounds.is_empty() {
            let state = self.read();
            for (id, source) in rounds {
                if !state.entities.contains_key(&id) {
                    continue;
                }
                if !source.is_empty() && !state.first_rounds.is_done(&id, &source) {
                    batch.put_first_round(&id, &source, &round);
                    new_rounds.entry(id.clone()).or_default().push(source);
                }
                if state.first_rounds.quiet.contains_key(&id) && !settle.contains(&id) {
                    settle.push(id);
                }
            }
        }
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
        let mut ids = changed_ids.clone();
        ids.extend(
            settle
                .into_iter()
                .filter(|id| !changed_facts.contains_key(id)),
        );
        let (standards, inputs) = {
            let state = self.read();
            let inputs: Vec<super::pass::Inputs> = ids
                .iter()
                .filter_map(|id| {
                    let mut inputs = super::pass::Inputs::gather(&state, id)?;
                    if let Some(facts) = changed_facts.get(id) {
                        inputs.facts = facts.clone();
                    }
                    Some(inputs)
                })
                .collect();
            (state.standards.clone(), inputs)
        };
        let outcome = self
            .evaluate_inputs_with_rounds(&standards, inputs, now, None, &new_rounds)
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
            for (id, sources) in &new_rounds {
                for source in sources {
                    state.first_rounds.record(id, source);
                }
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
            .collect::<Vec<(String, FactRecord)>>();
        // Facts put directly are that source's round for those entities.
        let rounds = {
            let state = self.read();
            records
                .iter()
                .filter(|(id, _)| !state.first_rounds.is_done(id, source))
                .map(|(id, _)| (id.clone(), source.to_owned()))
                .collect()
        };
        self.store_facts(records, rounds, FirstRoundOutcome::Collected)
            .await
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
