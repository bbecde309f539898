//! [`Plugin`]: a loaded plugin, and the calls into it.
//!
//! A plugin keeps its `InstancePre` (linked and type-checked once at load) and a few warm
//! idle instances. A call takes a running-instance permit, a warm instance (or instantiates
//! one and runs `init`), arms the deadline (epoch deadline + a timer, [`within`], since
//! epochs do not interrupt host calls), calls, and classifies what went wrong: timeout,
//! out-of-memory, trap, malformed output, or the guest's own `plugin-error`. A store that saw a
//! trap, a timeout or an abandoned call is dead and is dropped; one that answered goes back to
//! the idle list. Every call passes the plugin's circuit breaker ([`Health`]).
//!
//! JSON crosses the boundary as text: an entity's properties and facts are serialised once
//! into a [`CheckInput`] (the evaluator makes one per entity per pass and reuses it for every
//! plugin rule), a rule's params once per batch; facts and details coming back are parsed and
//! must be what the contract says.
//! This module must never let a guest's failure escape as a panic or stop other plugins.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime::{Store, Trap, UpdateDeadline};

use crate::model::{CheckOutcome, Entity, JsonObject, RuleStatus, Timestamp};
use crate::plugin::bindings::{self, check, data_source};
use crate::plugin::error::PluginError;
use crate::plugin::health::{Health, HealthReport};
use crate::plugin::host::{HostInner, IDLE_PER_PLUGIN, IdleSlot};
use crate::plugin::manifest::{Manifest, PluginKind};
use crate::plugin::sandbox::{HostState, SandboxSpec};

/// One check call of a batch: the entity with its facts, already encoded, and the rule's
/// params as JSON text.
pub type CheckCall<'a> = (&'a CheckInput, &'a String);

/// What a check call says about one entity, encoded for the wire once: the entity (its
/// properties as JSON text) and its facts (a JSON object keyed by source). Encoding is most of
/// a warm call's host-side cost, so the evaluator builds this once per entity and pass.
#[derive(Clone, Debug)]
pub struct CheckInput {
    wire: bindings::Entity,
    facts: String,
}

impl CheckInput {
    /// Encode `entity` and its `facts` (an object keyed by source).
    pub fn new(entity: &Entity, facts: &serde_json::Value) -> Result<CheckInput, PluginError> {
        Self::with_facts_json(entity, encode(facts, "facts")?)
    }

    /// `entity` with facts already encoded as JSON text (an object keyed by source).
    pub fn with_facts_json(entity: &Entity, facts: String) -> Result<CheckInput, PluginError> {
        Ok(CheckInput {
            wire: to_wire(entity)?,
            facts,
        })
    }

    /// The entity's identifier.
    pub fn identifier(&self) -> &str {
        &self.wire.identifier
    }
}

/// Params encoded for the wire (the evaluator encodes a rule's params once per pass).
pub fn encode_params(params: &serde_json::Value) -> Result<String, PluginError> {
    encode(params, "params")
}

/// Longest text kept from a guest's `plugin-error`.
const MAX_GUEST_ERROR_BYTES: usize = 4096;

pub(crate) enum WorldPre {
    Check(check::CheckPre<HostState>),
    DataSource(data_source::DataSourcePre<HostState>),
}

enum Bound {
    Check(check::Check),
    DataSource(data_source::DataSource),
}

/// A live instance with its store.
struct Session {
    store: Store<HostState>,
    bound: Bound,
}

struct IdleSession {
    session: Session,
    _slot: IdleSlot,
}

/// What [`PluginHost::load`](crate::plugin::PluginHost::load) hands over.
pub(crate) struct PluginParts {
    pub(crate) host: Arc<HostInner>,
    pub(crate) manifest: Manifest,
    pub(crate) pre: WorldPre,
    pub(crate) sha256: String,
    pub(crate) from_cache: bool,
    pub(crate) memory_mb: u64,
}

/// A loaded, smoke-tested plugin. Shared as `Arc<Plugin>`; calls may run concurrently.
pub struct Plugin {
    /// The manifest it was loaded from.
    pub manifest: Manifest,
    /// Short SHA-256 of the wasm file: which build produced a result.
    pub version: String,
    /// When it was loaded.
    pub loaded_at: Timestamp,
    from_cache: bool,
    host: Arc<HostInner>,
    pre: WorldPre,
    spec: Arc<SandboxSpec>,
    /// `[config]` plus secrets, as JSON text. Holds secret values: never logged or printed.
    init_config: String,
    timeout: Duration,
    timeout_ms: u64,
    memory_mb: u64,
    pub(crate) health: Health,
    idle: Mutex<Vec<IdleSession>>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.manifest.name)
            .field("kind", &self.manifest.kind)
            .field("version", &self.version)
            .field("loaded_at", &self.loaded_at)
            .field("from_cache", &self.from_cache)
            .field("timeout_ms", &self.timeout_ms)
            .field("memory_mb", &self.memory_mb)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    pub(crate) fn new(parts: PluginParts) -> Result<Plugin, PluginError> {
        let PluginParts {
            host,
            manifest,
            pre,
            sha256,
            from_cache,
            memory_mb,
        } = parts;
        let config = &host.config;
        let timeout_ms = manifest
            .timeout_ms
            .unwrap_or(config.default_timeout_ms)
            .max(1);

        let mut init = manifest.config.clone();
        for secret in &manifest.capabilities.secrets {
            init.insert(secret.name.clone(), secret.value.expose().into());
        }
        let init_config = serde_json::to_string(&init).map_err(|e| PluginError::Host {
            reason: format!("cannot encode the config of `{}`: {e}", manifest.name),
        })?;

        let spec = Arc::new(SandboxSpec {
            plugin: manifest.name.as_str().into(),
            http: manifest.capabilities.http.clone().into(),
            dirs: manifest.capabilities.dirs.clone(),
            memory_bytes: usize::try_from(memory_mb << 20).unwrap_or(usize::MAX),
            max_log_lines: config.max_log_lines_per_call,
            secret_values: manifest
                .capabilities
                .secrets
                .iter()
                .map(|s| s.value.expose().to_owned())
                .collect(),
            log_lines_dropped: Default::default(),
            net: config.net.clone(),
        });
        Ok(Plugin {
            version: crate::plugin::cache::short_version(&sha256),
            loaded_at: chrono::Utc::now(),
            from_cache,
            health: Health::new(config.park_after_failures, config.retry_parked_after),
            timeout: Duration::from_millis(timeout_ms),
            timeout_ms,
            memory_mb,
            init_config,
            spec,
            pre,
            host,
            manifest,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    /// `check` or `data-source`.
    pub fn kind(&self) -> PluginKind {
        self.manifest.kind
    }

    /// Whether the compiled code came from the on-disk cache (no compilation at load).
    pub fn loaded_from_cache(&self) -> bool {
        self.from_cache
    }

    /// The per-call time budget in force.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The memory cap in force, in MiB.
    pub fn memory_mb(&self) -> u64 {
        self.memory_mb
    }

    /// Guest log lines dropped over the per-call budget since load.
    pub fn log_lines_dropped(&self) -> u64 {
        self.spec.log_lines_dropped.load(Ordering::Relaxed)
    }

    pub(crate) fn health_report(&self) -> HealthReport {
        self.health.report()
    }

    /// Instantiate and `init` once at load, so a plugin that cannot start is refused before
    /// it replaces a working version. The instance is kept warm for the first call.
    pub(crate) async fn smoke_test(&self) -> Result<(), PluginError> {
        let permit = self.permit().await?;
        let session = self.instantiate().await?;
        self.checkin(session);
        drop(permit);
        Ok(())
    }

    /// Collect facts for `entities` (data-source plugins). Facts for identifiers that were not
    /// asked about, and repeats, are dropped; facts that are not JSON objects make the whole
    /// answer `MalformedOutput`.
    #[tracing::instrument(skip_all, fields(plugin = %self.manifest.name, entities = entities.len()))]
    pub async fn collect(
        &self,
        entities: &[Entity],
    ) -> Result<Vec<(String, JsonObject)>, PluginError> {
        self.expect_kind(PluginKind::DataSource, "collect")?;
        self.health.admit(self.name())?;
        let result = self.collect_once(entities).await;
        self.health.record(self.name(), result.as_ref().map(|_| ()));
        result
    }

    async fn collect_once(
        &self,
        entities: &[Entity],
    ) -> Result<Vec<(String, JsonObject)>, PluginError> {
        let wire: Vec<bindings::Entity> = entities.iter().map(to_wire).collect::<Result<_, _>>()?;
        let _permit = self.permit().await?;
        let mut session = self.checkout().await?;
        let Bound::DataSource(bound) = &session.bound else {
            return Err(self.wrong_call("collect"));
        };
        let hard = self.arm(&mut session.store);
        let called = within(hard, bound.call_collect(&mut session.store, &wire)).await;
        let answer = self.settle(&mut session.store, called)?;
        self.checkin(session);
        let pairs = answer.map_err(|e| self.guest_error(e))?;
        self.validate_facts(entities, pairs)
    }

    fn validate_facts(
        &self,
        entities: &[Entity],
        pairs: Vec<(String, String)>,
    ) -> Result<Vec<(String, JsonObject)>, PluginError> {
        let total: usize = pairs.iter().map(|(id, facts)| id.len() + facts.len()).sum();
        if total > self.host.config.max_output_bytes {
            return Err(self.malformed(format!(
                "{} fact entries totalling {total} bytes exceed the limit of {} bytes",
                pairs.len(),
                self.host.config.max_output_bytes
            )));
        }
        let mut wanted: HashMap<&str, bool> = entities
            .iter()
            .map(|e| (e.identifier.as_str(), false))
            .collect();
        let mut facts = Vec::with_capacity(entities.len().min(pairs.len()));
        let mut ignored = 0usize;
        for (id, json) in pairs {
            match wanted.get_mut(id.as_str()) {
                Some(seen) if !*seen => *seen = true,
                _ => {
                    ignored += 1;
                    continue;
                }
            }
            match serde_json::from_str::<serde_json::Value>(&json) {
                Ok(serde_json::Value::Object(object)) => facts.push((id, object)),
                Ok(other) => {
                    return Err(self.malformed(format!(
                        "facts for `{id}` must be a JSON object, got {}",
                        json_type(&other)
                    )));
                }
                Err(e) => {
                    return Err(self.malformed(format!("facts for `{id}` are not JSON: {e}")));
                }
            }
        }
        if ignored > 0 {
            tracing::warn!(plugin = %self.name(), ignored, "facts for unknown or repeated entities ignored");
        }
        Ok(facts)
    }

    /// Evaluate one rule on one entity (check plugins).
    #[tracing::instrument(level = "debug", skip_all, fields(plugin = %self.manifest.name, entity = %entity.identifier))]
    pub async fn evaluate(
        &self,
        entity: &Entity,
        facts: &serde_json::Value,
        params: &serde_json::Value,
    ) -> Result<CheckOutcome, PluginError> {
        self.expect_kind(PluginKind::Check, "evaluate")?;
        self.health.admit(self.name())?;
        let input = CheckInput::new(entity, facts)?;
        let params = encode_params(params)?;
        let result = async {
            let _permit = self.permit().await?;
            let mut session = self.checkout().await?;
            let result = self.evaluate_on(&mut session, &input, &params).await;
            if keeps_store_alive(&result) {
                self.checkin(session);
            }
            result
        }
        .await;
        self.health.record(self.name(), result.as_ref().map(|_| ()));
        result
    }

    /// Evaluate many calls on one warm instance (instantiated and initialised once), which is
    /// what the evaluator uses for throughput. Results are in the order of `calls`. After a
    /// call that kills the store the next call gets a fresh instance; if a fresh instance
    /// cannot be made, the remaining calls all fail with that error; once the breaker parks
    /// the plugin the remaining calls are refused without running.
    #[tracing::instrument(skip_all, fields(plugin = %self.manifest.name, calls = calls.len()))]
    pub async fn evaluate_batch(
        &self,
        calls: &[CheckCall<'_>],
    ) -> Vec<Result<CheckOutcome, PluginError>> {
        let mut results = Vec::with_capacity(calls.len());
        if let Err(e) = self.expect_kind(PluginKind::Check, "evaluate") {
            results.resize(calls.len(), Err(e));
            return results;
        }
        let _permit = match self.permit().await {
            Ok(permit) => permit,
            Err(e) => {
                results.resize(calls.len(), Err(e));
                return results;
            }
        };
        let mut session = self.take_idle();
        for (input, params) in calls {
            if let Err(refused) = self.health.admit(self.name()) {
                results.push(Err(refused));
                continue;
            }
            let live = match session.as_mut() {
                Some(live) => live,
                None => match self.instantiate().await {
                    Ok(fresh) => session.insert(fresh),
                    Err(e) => {
                        self.health.record(self.name(), Err(&e));
                        results.resize(calls.len(), Err(e));
                        return results;
                    }
                },
            };
            let result = self.evaluate_on(live, input, params).await;
            if !keeps_store_alive(&result) {
                session = None;
            }
            self.health.record(self.name(), result.as_ref().map(|_| ()));
            results.push(result);
        }
        if let Some(session) = session {
            self.checkin(session);
        }
        results
    }

    async fn evaluate_on(
        &self,
        session: &mut Session,
        input: &CheckInput,
        params: &String,
    ) -> Result<CheckOutcome, PluginError> {
        let Bound::Check(bound) = &session.bound else {
            return Err(self.wrong_call("evaluate"));
        };
        let hard = self.arm(&mut session.store);
        let called = within(
            hard,
            bound.call_evaluate(&mut session.store, &input.wire, &input.facts, params),
        )
        .await;
        let answer = self.settle(&mut session.store, called)?;
        let outcome = answer.map_err(|e| self.guest_error(e))?;
        self.convert_outcome(outcome)
    }

    fn convert_outcome(&self, outcome: bindings::Outcome) -> Result<CheckOutcome, PluginError> {
        let size = outcome.message.as_ref().map_or(0, String::len)
            + outcome.details.as_ref().map_or(0, String::len);
        if size > self.host.config.max_output_bytes {
            return Err(self.malformed(format!(
                "an outcome of {size} bytes exceeds the limit of {} bytes",
                self.host.config.max_output_bytes
            )));
        }
        let details = match outcome.details {
            None => None,
            Some(text) => Some(std::sync::Arc::new(
                serde_json::from_str(&text)
                    .map_err(|e| self.malformed(format!("details are not JSON: {e}")))?,
            )),
        };
        let status = match outcome.status {
            bindings::Status::Pass => RuleStatus::Pass,
            bindings::Status::Fail => RuleStatus::Fail,
            bindings::Status::Warn => RuleStatus::Warn,
            bindings::Status::NotApplicable => RuleStatus::NotApplicable,
        };
        let message = outcome
            .message
            .map(|m| self.spec.redact(m.into()).into_owned());
        Ok(CheckOutcome {
            status,
            message,
            details,
        })
    }

    async fn permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, PluginError> {
        self.host
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| PluginError::Host {
                reason: "the plugin host is shutting down".into(),
            })
    }

    fn take_idle(&self) -> Option<Session> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.pop().map(|idle| idle.session)
    }

    /// A warm instance, or a new one. The caller holds a running permit.
    async fn checkout(&self) -> Result<Session, PluginError> {
        match self.take_idle() {
            Some(session) => Ok(session),
            None => self.instantiate().await,
        }
    }

    /// Keep a healthy instance warm, if the per-plugin and global idle bounds allow.
    fn checkin(&self, session: Session) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < IDLE_PER_PLUGIN
            && let Some(slot) = self.host.idle.try_take()
        {
            idle.push(IdleSession {
                session,
                _slot: slot,
            });
        }
    }

    /// A fresh store and instance, `init` called. Each step has the full call budget.
    async fn instantiate(&self) -> Result<Session, PluginError> {
        let state = HostState::new(&self.spec).map_err(|reason| PluginError::Init {
            plugin: self.name().to_string(),
            reason,
        })?;
        let mut store = Store::new(&self.host.engine, state);
        store.limiter(|state| &mut state.limits);
        store.epoch_deadline_callback(|ctx| {
            // Past the deadline: trap. Otherwise yield to the runtime at every tick, so a
            // busy guest never holds a worker thread for its whole budget.
            Ok(if Instant::now() >= ctx.data().deadline() {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Yield(1)
            })
        });

        let hard = self.arm(&mut store);
        let instantiated = match &self.pre {
            WorldPre::Check(pre) => {
                let made = within(hard, pre.instantiate_async(&mut store)).await;
                self.settle(&mut store, made).map(Bound::Check)
            }
            WorldPre::DataSource(pre) => {
                let made = within(hard, pre.instantiate_async(&mut store)).await;
                self.settle(&mut store, made).map(Bound::DataSource)
            }
        };
        let bound = instantiated?;

        let hard = self.arm(&mut store);
        let init = match &bound {
            Bound::Check(b) => within(hard, b.call_init(&mut store, &self.init_config)).await,
            Bound::DataSource(b) => within(hard, b.call_init(&mut store, &self.init_config)).await,
        };
        self.settle(&mut store, init)?
            .map_err(|e| PluginError::Init {
                plugin: self.name().to_string(),
                reason: self
                    .spec
                    .redact(describe_guest_error(e).into())
                    .into_owned(),
            })?;
        Ok(Session { store, bound })
    }

    /// Start a call's clock: deadline in the store data (read by the epoch callback and the
    /// HTTP hook) and an epoch deadline of one tick (so the callback runs at the next tick).
    /// Answers the outer bound, for a call stuck where epochs cannot reach (a host call).
    fn arm(&self, store: &mut Store<HostState>) -> Instant {
        let now = Instant::now();
        store.data_mut().begin_call(now + self.timeout);
        store.set_epoch_deadline(1);
        now + self.timeout + self.timeout / 4 + Duration::from_millis(20)
    }

    /// End a call and translate what wasmtime said into a [`PluginError`].
    fn settle<T>(
        &self,
        store: &mut Store<HostState>,
        outcome: Result<wasmtime::Result<T>, TimedOut>,
    ) -> Result<T, PluginError> {
        store.data_mut().end_call();
        let plugin = || self.name().to_string();
        let error = match outcome {
            Ok(Ok(value)) => return Ok(value),
            Err(_) => {
                return Err(PluginError::Timeout {
                    plugin: plugin(),
                    timeout_ms: self.timeout_ms,
                });
            }
            Ok(Err(error)) => error,
        };
        if store.data().limits.memory_refused {
            return Err(PluginError::OutOfMemory {
                plugin: plugin(),
                limit_mb: self.memory_mb,
            });
        }
        if matches!(error.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
            return Err(PluginError::Timeout {
                plugin: plugin(),
                timeout_ms: self.timeout_ms,
            });
        }
        if let Some(full) = error.downcast_ref::<wasmtime::PoolConcurrencyLimitError>() {
            return Err(PluginError::Capacity {
                plugin: plugin(),
                reason: full.to_string(),
            });
        }
        tracing::debug!(plugin = %self.name(), error = ?error, "plugin call failed");
        Err(PluginError::Trap {
            plugin: plugin(),
            reason: self
                .spec
                .redact(error.root_cause().to_string().into())
                .into_owned(),
        })
    }

    fn guest_error(&self, error: bindings::PluginError) -> PluginError {
        PluginError::Plugin {
            plugin: self.name().to_string(),
            error: self
                .spec
                .redact(describe_guest_error(error).into())
                .into_owned(),
        }
    }

    fn malformed(&self, reason: String) -> PluginError {
        PluginError::MalformedOutput {
            plugin: self.name().to_string(),
            reason,
        }
    }

    fn expect_kind(&self, kind: PluginKind, call: &'static str) -> Result<(), PluginError> {
        if self.kind() == kind {
            Ok(())
        } else {
            Err(self.wrong_call(call))
        }
    }

    fn wrong_call(&self, call: &'static str) -> PluginError {
        PluginError::WrongCall {
            plugin: self.name().to_string(),
            kind: self.kind().to_string(),
            call,
        }
    }
}

/// A call that ran past its outer bound (see [`within`]).
struct TimedOut;

/// `call` bounded by `deadline`. Unlike `tokio::time::timeout`, no timer is registered (and
/// the clock is not read) unless the call is still running after its first poll: a warm check
/// call finishes within that poll, and the timer would be most of its host-side cost. A call
/// that does not finish at once yields at every epoch tick or waits on a host call, and from
/// then on the timer bounds it.
async fn within<F: Future>(deadline: Instant, call: F) -> Result<F::Output, TimedOut> {
    let mut call = std::pin::pin!(call);
    let mut timer: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
    std::future::poll_fn(|cx| {
        if let std::task::Poll::Ready(done) = call.as_mut().poll(cx) {
            return std::task::Poll::Ready(Ok(done));
        }
        let timer = timer.get_or_insert_with(|| {
            Box::pin(tokio::time::sleep_until(tokio::time::Instant::from_std(
                deadline,
            )))
        });
        timer.as_mut().poll(cx).map(|()| Err(TimedOut))
    })
    .await
}

/// Whether the store is still usable after a call: it answered, possibly with its own error.
fn keeps_store_alive<T>(result: &Result<T, PluginError>) -> bool {
    matches!(
        result,
        Ok(_) | Err(PluginError::Plugin { .. } | PluginError::MalformedOutput { .. })
    )
}

fn to_wire(entity: &Entity) -> Result<bindings::Entity, PluginError> {
    Ok(bindings::Entity {
        identifier: entity.identifier.clone(),
        kind: entity.kind.clone(),
        title: entity.title.clone(),
        team: entity.team.clone(),
        tier: entity.tier,
        properties: encode(&entity.properties, "properties")?,
    })
}

fn encode<T: serde::Serialize>(value: &T, what: &str) -> Result<String, PluginError> {
    serde_json::to_string(value).map_err(|e| PluginError::Host {
        reason: format!("cannot encode {what} as JSON: {e}"),
    })
}

fn describe_guest_error(error: bindings::PluginError) -> String {
    let (kind, text) = match error {
        bindings::PluginError::InvalidConfig(t) => ("invalid config", t),
        bindings::PluginError::Unavailable(t) => ("unavailable", t),
        bindings::PluginError::Failed(t) => ("failed", t),
    };
    let mut text = text;
    if text.len() > MAX_GUEST_ERROR_BYTES {
        let mut end = MAX_GUEST_ERROR_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    format!("{kind}: {text}")
}

fn json_type(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}
