//! The engine: the one owner of readyd's live state. It loads the catalog, standards and plugins,
//! collects facts, evaluates incrementally, commits through the store's single writer, and
//! carries out what people ask for (exemptions, tier changes, locks).
//!
//! Everything the HTTP API, the CLI and the dashboard can do goes through [`Engine`]'s methods
//! (see [`api`] for the request and answer types). The engine never speaks HTTP and never touches
//! redb or wasmtime directly: it calls `store`, `plugin` and the pure `eval`.
//!
//! Concurrency: reads take a short read lock on the in-memory [`State`]. Every mutation runs
//! under one async mutex (`ops`): gather inputs → evaluate → build one write batch → commit →
//! apply to the in-memory state. So the state a reader sees was always committed first, and
//! mutations never interleave.

mod actions;
pub mod api;
mod first_round;
mod pass;
mod reads;
mod reload;
mod sources;
mod state;
mod workflows;

pub use api::*;
pub use first_round::SourcesRead;
pub use pass::{Evaluated, Inputs, evaluate_scorecards, facts_json_text, same_outcome};
pub use reload::ReloadReport;
pub use sources::CollectFailure;
pub use state::PartStatus;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use anyhow::Context as _;

use crate::clock::Clock;
use crate::config::Config;
use crate::metrics::metrics;
use crate::model::{TaskStatus, Timestamp};
use crate::plugin::{HostConfig, PluginHost, PluginRegistry};
use crate::standards::Standards;
use crate::store::{Durability, Store, StoreOptions, WriteBatch, Writer, WriterHandle};

use first_round::NewRounds;
use state::State;

/// Filter of `GET /v1/tasks`.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskFilter {
    pub team: Option<String>,
    pub entity: Option<String>,
    pub status: Option<TaskStatus>,
}

/// The running engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    clock: Clock,
    store: Store,
    writer: WriterHandle,
    host: PluginHost,
    plugins: PluginRegistry,
    /// `[plugins.policy]`, compiled: what manifests may grant (none configured: unbounded).
    grant_policy: Option<crate::plugin::GrantPolicy>,
    /// What reads are answered from; written only after a commit.
    state: RwLock<State>,
    /// Serialises mutations (see the module docs).
    ops: tokio::sync::Mutex<()>,
    /// Set once a standards set is in force and the first full evaluation under it is
    /// committed: at the end of the start, or by the first standards load after it.
    ready: AtomicBool,
    /// Set when the start's initial load is over (a later standards load may then make the
    /// engine ready; during the start only its end does).
    started: AtomicBool,
    /// Tells background tasks to stop.
    shutdown: tokio::sync::watch::Sender<bool>,
    /// Background tasks, awaited on shutdown.
    background: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Whether background work runs: then a new entity's facts are collected at once, so its
    /// quiet first evaluation is followed soon by one that acts.
    collects: bool,
    /// Wakes the outbox delivery worker after a commit that enqueued notifications.
    delivery: crate::automation::DeliveryHandle,
    /// Outgoing connections (delivery; the plugin host holds a clone for plugin egress).
    net: crate::net::Net,
    /// Every scorecard's aggregate view, for the standards and results revision it was built
    /// from (see `reads.rs`).
    scorecard_views: Mutex<Option<reads::ScorecardViews>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("data", &self.inner.config.data)
            .finish_non_exhaustive()
    }
}

type Result<T> = std::result::Result<T, EngineError>;

/// How an engine is started.
#[derive(Clone, Debug)]
pub struct StartOptions {
    /// The clock (manual in tests).
    pub clock: Clock,
    /// Run the data-source schedules, the periodic tick, outbox delivery and the file watcher.
    /// `readyd eval` and some tests evaluate once without them.
    pub background: bool,
}

impl Default for StartOptions {
    fn default() -> Self {
        StartOptions {
            clock: Clock::system(),
            background: true,
        }
    }
}

impl Engine {
    /// Open the store, load plugins, catalog and standards, evaluate, and start the background
    /// work (data-source schedules, expiry, outbox delivery, watching).
    pub async fn start(config: Config) -> anyhow::Result<Engine> {
        Engine::start_with(config, StartOptions::default()).await
    }

    /// [`Engine::start`] with a chosen clock and background work.
    pub async fn start_with(config: Config, options: StartOptions) -> anyhow::Result<Engine> {
        if let Some(parent) = config.data.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let store = Store::open(
            &config.data,
            StoreOptions {
                fact_history_limit: config.limits.fact_history,
                ..StoreOptions::default()
            },
        )
        .with_context(|| format!("opening {}", config.data.display()))?;
        let net = crate::net::Net::from_config(&config).context("setting up outgoing TLS")?;
        let writer = Writer::spawn(store.clone());
        let host = PluginHost::new(HostConfig {
            net: net.clone(),
            cache_dir: Some(config.cache_dir.clone()),
            max_instances: config.limits.max_plugin_instances,
            default_timeout_ms: config.limits.plugin_timeout_ms,
            default_memory_mb: config.limits.plugin_memory_mb,
            park_after_failures: config.limits.park_after_failures,
            ..HostConfig::default()
        })
        .context("starting the plugin host")?;
        let plugins = PluginRegistry::new(config.limits.park_after_failures);
        let grant_policy = match &config.plugins.policy {
            Some(policy) => Some(
                crate::plugin::GrantPolicy::compile(policy)
                    .map_err(|m| anyhow::anyhow!("plugins.policy: {m}"))?,
            ),
            None => None,
        };
        let (shutdown, _) = tokio::sync::watch::channel(false);
        let engine = Engine {
            inner: Arc::new(Inner {
                config,
                clock: options.clock,
                store,
                writer,
                host,
                plugins,
                grant_policy,
                state: RwLock::new(State::default()),
                scorecard_views: Mutex::new(None),
                ops: tokio::sync::Mutex::new(()),
                ready: AtomicBool::new(false),
                started: AtomicBool::new(false),
                shutdown,
                background: Mutex::new(Vec::new()),
                collects: options.background,
                delivery: crate::automation::DeliveryHandle::new(),
                net,
            }),
        };
        engine.restore().context("reading the stored state")?;
        engine.initial_load().await?;
        engine.inner.started.store(true, Ordering::SeqCst);
        engine.mark_ready_after_start();
        if let Err(not_ready) = engine.readiness() {
            tracing::warn!("{not_ready}");
        }
        if options.background {
            engine.spawn_background();
        }
        Ok(engine)
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The engine's clock.
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// The plugin registry (for status and the CLI).
    pub fn plugins(&self) -> &PluginRegistry {
        &self.inner.plugins
    }

    /// Stop background work and wait for the current commit.
    pub async fn shutdown(&self) {
        let _ = self.inner.shutdown.send(true);
        let handles: Vec<_> = std::mem::take(
            &mut *self
                .inner
                .background
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        for handle in handles {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), handle).await;
        }
        // Waiting for the ops lock means no mutation is half done.
        let _guard = self.inner.ops.lock().await;
        // Stop the writer: it commits what is queued, flushes, and releases the file.
        if let Err(err) = self.inner.writer.clone().shutdown().await {
            tracing::error!(error = %err, "final flush of the store failed");
        }
    }

    /// Whether a standards set is in force and the first evaluation under it has been
    /// committed (for `/readyz` and the gate).
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::SeqCst)
    }

    /// `Ok` when ready, else [`EngineError::NotReady`] saying why: what `/readyz` and the gate
    /// answer. Fail closed: until then nothing may be taken as allowed.
    pub fn readiness(&self) -> Result<()> {
        if self.is_ready() {
            return Ok(());
        }
        let state = self.read();
        let reason = match (
            &state.standards_serving.files_refused,
            state.standards_serving.from,
        ) {
            (Some(refused), state::ServingFrom::None) => format!(
                "not ready: no standards set has loaded (the standards files were refused: \
                 {refused}; no earlier set is stored)"
            ),
            _ => "not ready: the first evaluation has not been committed yet".to_owned(),
        };
        Err(EngineError::NotReady(reason))
    }

    /// Become ready when a standards set serves and the start is over (its passes, catalog
    /// included, are committed by then).
    fn mark_ready_after_start(&self) {
        if !self.inner.started.load(Ordering::SeqCst) || self.is_ready() {
            return;
        }
        if self.read().standards_serving.from == state::ServingFrom::None {
            return;
        }
        self.inner.ready.store(true, Ordering::SeqCst);
        metrics().ready.set(1);
        tracing::info!("ready: a standards set is in force and its first evaluation is committed");
    }

    /// A receiver that turns true when the engine shuts down.
    pub fn shutdown_signal(&self) -> tokio::sync::watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }

    fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.inner.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.inner.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Read what the store holds into the in-memory state (restart after a crash or a stop).
    fn restore(&self) -> anyhow::Result<()> {
        let store = &self.inner.store;
        let mut state = self.write();
        for stored in store.entities()? {
            state.put_entity(stored);
        }
        let ids: Vec<String> = state.entities.keys().cloned().collect();
        for id in &ids {
            let facts = store.facts(id)?;
            if !facts.is_empty() {
                state.facts.insert(id.clone(), Arc::new(facts));
            }
        }
        for (entity, source, _) in store.first_rounds()? {
            state.first_rounds.record(&entity, &source);
        }
        for result in store.all_results()? {
            Arc::make_mut(state.results.entry(result.entity.clone()).or_default()).push(result);
        }
        for exemption in store.exemptions(None)? {
            state.put_exemption(exemption);
        }
        for request in store.tier_requests(None)? {
            state.tier_requests.insert(request.id.clone(), request);
        }
        for lock in store.locks()? {
            state.locks.insert(lock.entity.clone(), lock);
        }
        for task in store.tasks(&crate::store::TaskFilter::default())? {
            state.put_task(task);
        }
        for id in &ids {
            if let Some(alert) = store.alert_state::<crate::automation::DegradedAlert>(
                &crate::automation::degraded_key(id),
            )? {
                state.degraded_alerts.insert(id.clone(), alert);
            }
        }
        metrics().entities.set(state.entities.len() as i64);
        Ok(())
    }

    /// Load plugins, standards and catalog from their directories and evaluate everything.
    async fn initial_load(&self) -> anyhow::Result<()> {
        let report = self.reload_all("start").await;
        for line in report.lines() {
            tracing::info!("{line}");
        }
        Ok(())
    }

    fn spawn_background(&self) {
        let mut handles = Vec::new();
        handles.extend(sources::spawn_schedules(self));
        handles.push(self.spawn_tick());
        handles.push(actions::spawn_delivery(
            self.inner.store.clone(),
            self.inner.writer.clone(),
            self.inner.config.clone(),
            self.inner.net.clone(),
            self.inner.clock.clone(),
            self.inner.delivery.clone(),
            self.shutdown_signal(),
        ));
        if self.inner.config.watch.enabled {
            match crate::watch::spawn(self.clone()) {
                Ok(handle) => handles.push(handle),
                Err(err) => tracing::error!(error = %err, "file watching is off"),
            }
        }
        self.inner
            .background
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(handles);
    }

    /// The periodic tick: exemption expiry, task deadlines, daily snapshots.
    fn spawn_tick(&self) -> tokio::task::JoinHandle<()> {
        let engine = self.clone();
        let mut stop = self.shutdown_signal();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(std::time::Duration::from_secs(5));
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = interval.tick() => {}
                    _ = stop.changed() => return,
                }
                if let Err(err) = engine.tick().await {
                    tracing::warn!(error = %err, "periodic tick failed");
                }
            }
        })
    }

    /// Run the time-based work once: expire exemptions, turn tasks overdue, send reminders,
    /// take the daily snapshot. Public so tests with a manual clock can drive it.
    pub async fn tick(&self) -> Result<()> {
        let _guard = self.inner.ops.lock().await;
        let now = self.now();
        let mut batch = WriteBatch::new();
        // Planning the tick walks every open task, exemption and initiative (tens of
        // milliseconds at 10,000 entities): on a blocking thread, so the runtime's workers keep
        // answering requests meanwhile (on a worker it stalled one in two requests' worth of
        // tasks every 5 s).
        let engine = self.clone();
        let tick_plan = tokio::task::spawn_blocking(move || {
            let state = engine.read();
            actions::plan_tick(
                &engine.automation_context(&state),
                &state,
                &engine.inner.store,
                now,
            )
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        let expired: Vec<crate::model::Exemption> =
            tick_plan.expired_exemptions().cloned().collect();
        let reevaluate: Vec<String> = expired.iter().map(|e| e.entity.clone()).collect();
        tick_plan.apply_to(&mut batch);
        let snapshot_due = self.snapshot_due(now);
        if let Some(snapshots) = &snapshot_due {
            for s in snapshots {
                batch.put_snapshot(s);
            }
            batch.put_meta("last_snapshot_date", &now.date_naive().to_string());
        }
        if batch.is_empty() && reevaluate.is_empty() {
            return Ok(());
        }
        let outcome = self
            .evaluate_ids_with(&reevaluate, |state, id| {
                let mut inputs = Inputs::gather(state, id)?;
                for e in &expired {
                    if e.entity == id {
                        inputs = inputs.with_exemption(e);
                    }
                }
                Some(inputs)
            })
            .await;
        let plan = self.plan_for(&outcome, now);
        pass::write_all(&outcome, &mut batch);
        plan.apply_to(&mut batch);
        self.commit(batch, Durability::Immediate).await?;
        let mut state = self.write();
        actions::apply_to_state(&tick_plan, &mut state);
        actions::apply_to_state(&plan, &mut state);
        Self::apply_outcome(&mut state, outcome);
        drop(state);
        self.inner.delivery.wake();
        Ok(())
    }

    fn snapshot_due(&self, now: Timestamp) -> Option<Vec<crate::store::DailySnapshot>> {
        let today = now.date_naive().to_string();
        let last: Option<String> = self
            .inner
            .store
            .meta_get("last_snapshot_date")
            .ok()
            .flatten();
        if last.as_deref() == Some(today.as_str()) {
            return None;
        }
        let state = self.read();
        if !state.first_rounds.quiet.is_empty() {
            // The day's one snapshot waits until no level is a quiet one (`first_round.rs`).
            return None;
        }
        let mut snapshots = Vec::new();
        for scorecard in &state.standards.scorecards {
            let levels = state
                .results
                .values()
                .flat_map(|r| r.iter())
                .filter(|r| r.scorecard == scorecard.identifier)
                .map(|r| (r.entity.clone(), r.level_index))
                .collect();
            snapshots.push(crate::store::DailySnapshot {
                scorecard: scorecard.identifier.to_string(),
                date: now.date_naive(),
                taken_at: now,
                level_titles: scorecard
                    .levels
                    .iter()
                    .map(|l| l.title.to_string())
                    .collect(),
                levels,
            });
        }
        Some(snapshots)
    }

    /// Evaluate the given entities (inputs from the live state, adjusted by `gather`).
    async fn evaluate_ids_with(
        &self,
        ids: &[String],
        gather: impl Fn(&State, &str) -> Option<Inputs>,
    ) -> Vec<Evaluated> {
        self.evaluate_ids_scoped(ids, gather, None).await
    }

    /// [`Engine::evaluate_ids_with`] limited to the scorecards in `only` (all when `None`).
    async fn evaluate_ids_scoped(
        &self,
        ids: &[String],
        gather: impl Fn(&State, &str) -> Option<Inputs>,
        only: Option<Arc<std::collections::BTreeSet<String>>>,
    ) -> Vec<Evaluated> {
        if ids.is_empty() {
            return Vec::new();
        }
        let (standards, inputs) = {
            let state = self.read();
            let inputs: Vec<Inputs> = ids.iter().filter_map(|id| gather(&state, id)).collect();
            (state.standards.clone(), inputs)
        };
        self.evaluate_inputs(&standards, inputs, self.now(), only)
            .await
    }

    /// Evaluate `inputs` under `standards` (only the scorecards in `only`, when given) and
    /// record the evaluation metrics. Every pass goes through here, reloads included, so
    /// `/metrics` counts them all.
    async fn evaluate_inputs(
        &self,
        standards: &Arc<Standards>,
        inputs: Vec<Inputs>,
        now: Timestamp,
        only: Option<Arc<std::collections::BTreeSet<String>>>,
    ) -> Vec<Evaluated> {
        self.evaluate_inputs_with_rounds(standards, inputs, now, only, &NewRounds::new())
            .await
    }

    /// [`Engine::evaluate_inputs`] in a batch that also records the first rounds in `new`:
    /// entities whose waited-for sources have no first round, neither recorded nor in `new`,
    /// come back quiet (`first_round.rs`).
    async fn evaluate_inputs_with_rounds(
        &self,
        standards: &Arc<Standards>,
        inputs: Vec<Inputs>,
        now: Timestamp,
        only: Option<Arc<std::collections::BTreeSet<String>>>,
        new: &NewRounds,
    ) -> Vec<Evaluated> {
        let started = std::time::Instant::now();
        let mut outcome =
            pass::evaluate_scorecards(standards, &self.inner.plugins, inputs, now, only).await;
        if !self.inner.config.first_round_timeout.is_zero() && !outcome.is_empty() {
            let waiting = self.waiting_sources(standards);
            let state = self.read();
            first_round::mark_quiet(&state.first_rounds, &waiting, new, &mut outcome);
        }
        let m = metrics();
        m.evaluations.inc_by(outcome.len() as u64);
        m.rule_evaluations
            .inc_by(outcome.iter().map(|e| e.rule_count() as u64).sum());
        m.level_changes
            .inc_by(outcome.iter().map(|e| e.level_changes.len() as u64).sum());
        m.evaluation_seconds
            .observe(started.elapsed().as_secs_f64());
        outcome
    }

    /// The loaded data sources whose first round the results of `standards` wait for.
    fn waiting_sources(&self, standards: &Standards) -> Vec<String> {
        let plugins = &self.inner.plugins;
        let active = plugins
            .status()
            .into_iter()
            .filter(|s| {
                s.kind == crate::plugin::PluginKind::DataSource && plugins.get(&s.name).is_some()
            })
            .map(|s| s.name);
        SourcesRead::of(standards).waiting(active)
    }

    /// Tasks, events and notifications that follow from an evaluation.
    fn plan_for(&self, outcome: &[Evaluated], now: Timestamp) -> crate::automation::Plan {
        let state = self.read();
        let ctx = self.automation_context(&state);
        plan_all(&ctx, &state, outcome, now)
    }

    fn automation_context<'a>(&'a self, state: &'a State) -> actions::Context<'a> {
        actions::Context {
            config: &self.inner.config,
            standards: &state.standards,
        }
    }

    /// Put results into the live state after their commit.
    ///
    /// The caller holds the state's write lock, which every API read waits for; the results
    /// this replaces (and what the pass kept of them) are freed on another thread when there
    /// are many, since freeing half a million rule results takes tens of milliseconds; that
    /// thread then hands the freed pages back to the OS (the daemon's RSS target).
    fn apply_outcome(state: &mut State, outcome: Vec<Evaluated>) {
        let many = outcome.len() > 512;
        let mut retired: Vec<(Evaluated, Option<Arc<Vec<crate::model::ScorecardResult>>>)> =
            Vec::with_capacity(if many { outcome.len() } else { 0 });
        for mut evaluated in outcome {
            let id = evaluated.entity.identifier.clone();
            if !state.entities.contains_key(&id) {
                continue;
            }
            let at = || {
                evaluated
                    .results
                    .first()
                    .map(|r| r.evaluated_at)
                    .unwrap_or_else(chrono::Utc::now)
            };
            if evaluated.quiet {
                // Counts as no degradation; the results that acted last stay what the next
                // acting evaluation is compared with.
                if !state.first_rounds.quiet.contains_key(&id) {
                    let quiet = first_round::Quiet {
                        since: at(),
                        settled: evaluated.previous.clone(),
                    };
                    state.first_rounds.quiet.insert(id.clone(), quiet);
                }
            } else {
                if !state.first_rounds.quiet.is_empty() {
                    state.first_rounds.quiet.remove(&id);
                }
                let misses = crate::eval::tier_misses(
                    &evaluated.entity,
                    &evaluated.results,
                    &state.standards,
                );
                if misses.is_empty() {
                    state.degraded_since.remove(&id);
                } else {
                    state.degraded_since.entry(id.clone()).or_insert_with(at);
                }
            }
            let results = std::mem::take(&mut evaluated.results);
            let old = state.results.insert(id, Arc::new(results));
            if many {
                retired.push((evaluated, old));
            }
        }
        if !retired.is_empty() {
            std::thread::spawn(move || {
                drop(retired);
                crate::allocator::release_free_memory();
            });
        }
    }

    /// Commit a batch through the single writer, counting it.
    async fn commit(&self, batch: WriteBatch, durability: Durability) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let result = self.inner.writer.commit(batch, durability).await;
        let m = metrics();
        m.store_commits.inc();
        m.store_commit_seconds
            .observe(started.elapsed().as_secs_f64());
        result.map(|_| ()).map_err(|e| {
            tracing::error!(error = %e, "commit failed");
            EngineError::Unavailable(format!("the state could not be saved: {e}"))
        })
    }
}

/// The tasks, events and notifications of every evaluated entity, in order; planned on every
/// core when there are many (a first evaluation plans a task for each failing rule).
fn plan_all(
    ctx: &actions::Context<'_>,
    state: &State,
    outcome: &[Evaluated],
    now: Timestamp,
) -> crate::automation::Plan {
    let mut plan = crate::automation::Plan::default();
    for part in pass::chunked(outcome, 512, |part| {
        let mut plan = crate::automation::Plan::default();
        // A quiet evaluation acts on nothing (`first_round.rs`).
        for evaluated in part.iter().filter(|e| !e.quiet) {
            plan.extend(actions::plan_evaluation(ctx, state, evaluated, now));
        }
        plan
    }) {
        plan.extend(part);
    }
    plan
}
