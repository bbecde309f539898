//! [`PluginHost`]: the one wasmtime `Engine` of the daemon and everything shared by plugins.
//!
//! The host owns the engine (component model, async, epoch interruption, the pooling allocator
//! sized from [`HostConfig`] rather than wasmtime's terabyte defaults), the epoch ticker thread,
//! the one `Linker` (WASI p2, wasi-http, `readyd:plugin/host`), the compiled-artifact cache, and
//! the bounds on live instances. [`PluginHost::load`] turns a [`Manifest`] into a ready
//! [`Plugin`]: compile (or load from the cache) on a blocking thread, check the contract
//! version and world, pre-instantiate, and run `init` once as a smoke test.
//!
//! This module must never run guest code on a thread that compiles, nor compile on the async
//! runtime's threads.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ProfilingStrategy,
};

use crate::plugin::bindings::{self, check::CheckPre, data_source::DataSourcePre};
use crate::plugin::cache::{ArtifactCache, sha256_hex};
use crate::plugin::contract::check_contract;
use crate::plugin::error::PluginError;
use crate::plugin::instance::{Plugin, PluginParts, WorldPre};
use crate::plugin::manifest::{Manifest, ManifestError, ManifestFault, PluginKind};
use crate::plugin::sandbox::HostState;

/// Resolution of call deadlines: the ticker advances the engine's epoch this often, and a
/// running guest yields to the async runtime at every tick.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Settings of the plugin host; every value has a default that serves the demo.
#[derive(Clone, Debug)]
pub struct HostConfig {
    /// Where compiled plugins are cached; `None`: compile on every load.
    pub cache_dir: Option<PathBuf>,
    /// Plugin calls that may run at once. The pool reserves room for these plus half as many
    /// warm idle instances; further calls wait for a free slot.
    pub max_instances: u32,
    /// Call budget of a plugin whose manifest names no `timeout_ms`.
    pub default_timeout_ms: u64,
    /// Memory cap of a plugin whose manifest names no `memory_mb`.
    pub default_memory_mb: u64,
    /// The largest `memory_mb` a manifest may ask for; sizes the pool's memory slots.
    pub max_memory_mb: u64,
    /// Consecutive faults after which a plugin is parked.
    pub park_after_failures: u32,
    /// How long a parked plugin waits before one trial call.
    pub retry_parked_after: Duration,
    /// Guest log lines (host.log, stdout, stderr) forwarded per call; the rest are counted.
    pub max_log_lines_per_call: usize,
    /// Largest output of one call (facts, an outcome's message and details) in bytes.
    pub max_output_bytes: usize,
    /// How plugins' allowed HTTP requests are sent (trusted roots, `tls_ca_file`, proxies).
    pub net: crate::net::Net,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            cache_dir: None,
            max_instances: 64,
            default_timeout_ms: 2_000,
            default_memory_mb: 64,
            max_memory_mb: 256,
            park_after_failures: 5,
            retry_parked_after: Duration::from_secs(300),
            max_log_lines_per_call: 100,
            max_output_bytes: 16 << 20,
            net: crate::net::Net::system(),
        }
    }
}

/// Core instances, memories and tables one component needs, for sizing the pool: a Rust
/// wasip2 component has about 3 core instances, 1 memory and 2 tables; room for more.
const CORE_INSTANCES_PER_COMPONENT: u32 = 8;
const MEMORIES_PER_COMPONENT: u32 = 2;
const TABLES_PER_COMPONENT: u32 = 4;

/// Warm idle instances kept per plugin (beyond that, a finished instance is dropped).
pub(crate) const IDLE_PER_PLUGIN: usize = 4;

/// The daemon's plugin runtime. Cheap to clone; all clones share one engine.
#[derive(Clone)]
pub struct PluginHost {
    pub(crate) inner: Arc<HostInner>,
}

pub(crate) struct HostInner {
    pub(crate) engine: Engine,
    linker: Linker<HostState>,
    cache: Option<ArtifactCache>,
    pub(crate) config: HostConfig,
    /// One permit per running instance.
    pub(crate) running: Arc<tokio::sync::Semaphore>,
    /// Warm idle instances across all plugins, bounded by `idle_capacity`.
    pub(crate) idle: Arc<IdleBudget>,
    ticker_stop: Arc<AtomicBool>,
}

impl Drop for HostInner {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// Counts idle instances so that running + idle never exceeds what the pool was sized for.
pub(crate) struct IdleBudget {
    used: AtomicU32,
    capacity: u32,
}

/// One idle instance's share of the budget; given back on drop.
pub(crate) struct IdleSlot(Arc<IdleBudget>);

impl IdleBudget {
    pub(crate) fn try_take(self: &Arc<Self>) -> Option<IdleSlot> {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.capacity).then_some(n + 1)
            })
            .ok()
            .map(|_| IdleSlot(self.clone()))
    }
}

impl Drop for IdleSlot {
    fn drop(&mut self) {
        self.0.used.fetch_sub(1, Ordering::AcqRel);
    }
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

fn host_error(what: &str) -> impl Fn(wasmtime::Error) -> PluginError + '_ {
    move |e| PluginError::Host {
        reason: format!("{what}: {e:#}"),
    }
}

/// Whether `bytes` start as a WebAssembly component does (the `\0asm` magic, then a version
/// and the component layer `1`); else what they are instead, in words.
pub(crate) fn component_header(bytes: &[u8]) -> Result<(), &'static str> {
    const MAGIC: &[u8; 4] = b"\0asm";
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Err("not WebAssembly at all");
    }
    match [bytes[6], bytes[7]] {
        [1, 0] => Ok(()),
        [0, 0] => Err("a core WebAssembly module: build it as a component, for wasm32-wasip2"),
        _ => Err("an unknown WebAssembly layer"),
    }
}

/// What a 32-bit linear memory can address: a slot this large needs no bounds checks.
const FULL_32_BIT_MEMORY: u64 = 1 << 32;

/// Bytes of each pooled linear memory kept resident (and zeroed) between instances.
const KEEP_RESIDENT_BYTES: usize = 1 << 20;
/// Bytes of each pooled table kept resident between instances.
const KEEP_RESIDENT_TABLE_BYTES: usize = 16 << 10;

impl PluginHost {
    /// Create the engine, the linker, the cache and the epoch ticker.
    pub fn new(config: HostConfig) -> Result<Self, PluginError> {
        let max_instances = config.max_instances.max(1);
        let idle_capacity = max_instances / 2;
        let components = max_instances + idle_capacity;
        let memory_bytes = config.max_memory_mb.max(1).saturating_mul(1 << 20);
        let memory_bytes_usize = usize::try_from(memory_bytes).map_err(|_| PluginError::Host {
            reason: format!("max_memory_mb {} is too large", config.max_memory_mb),
        })?;

        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(components)
            .total_core_instances(components * CORE_INSTANCES_PER_COMPONENT)
            .total_memories(components * MEMORIES_PER_COMPONENT)
            .total_tables(components * TABLES_PER_COMPONENT)
            // Fiber stacks exist only while a call runs.
            .total_stacks(max_instances)
            .max_memory_size(memory_bytes_usize)
            // A reused slot is reset by zeroing the pages the last instance dirtied (found with
            // the PAGEMAP_SCAN ioctl where the kernel has it) instead of unmapping them, so the
            // next instance does not take a page fault on every page it touches. Bounded to
            // the low megabyte of each memory (stack and early heap of a Rust guest).
            .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
            .table_keep_resident(KEEP_RESIDENT_TABLE_BYTES)
            .pagemap_scan(wasmtime::Enabled::Auto);

        let engine_with = |full_reservation: bool| {
            let mut wasm = Config::new();
            wasm.wasm_component_model(true)
                .epoch_interruption(true)
                .allocation_strategy(InstanceAllocationStrategy::Pooling(pool.clone()));
            if full_reservation {
                // Each slot reserves the whole 4 GiB a 32-bit memory can address (plus
                // wasmtime's guard), so compiled guest code needs no bounds check on its loads
                // and stores: a warm call is 10-17% faster than with slots of `max_memory_mb`
                // and explicit checks. Address space only: the pages are not committed, and
                // `memory_mb` is still enforced by the store's limiter and the slot's
                // `max_memory_size`.
                wasm.memory_reservation(FULL_32_BIT_MEMORY)
                    .memory_reservation_for_growth(0);
            } else {
                wasm.memory_reservation(memory_bytes)
                    .memory_reservation_for_growth(0)
                    .memory_guard_size(64 << 10);
            }
            if std::env::var_os("READYD_WASM_PERFMAP").is_some_and(|v| v == "1") {
                // For profiling plugins: `perf` names guest functions from /tmp/perf-PID.map.
                wasm.profiler(ProfilingStrategy::PerfMap);
            }
            Engine::new(&wasm)
        };
        let engine = match engine_with(cfg!(target_pointer_width = "64")) {
            Ok(engine) => engine,
            Err(refused) if cfg!(target_pointer_width = "64") => {
                // A limit on address space (`ulimit -v`) refuses the full reservation.
                tracing::warn!(
                    error = %refused,
                    "cannot reserve 4 GiB of address space per plugin memory slot; using slots \
                     of max_memory_mb with bounds checks (plugin calls are slower)"
                );
                engine_with(false).map_err(host_error("cannot create the wasm engine"))?
            }
            Err(refused) => return Err(host_error("cannot create the wasm engine")(refused)),
        };

        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(host_error("linking WASI"))?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(host_error("linking wasi:http"))?;
        bindings::host::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(host_error("linking readyd:plugin/host"))?;

        let cache = match &config.cache_dir {
            Some(dir) => {
                Some(
                    ArtifactCache::open(dir, &engine).map_err(|e| PluginError::Host {
                        reason: format!("cannot open the plugin cache {}: {e}", dir.display()),
                    })?,
                )
            }
            None => None,
        };

        let ticker_stop = Arc::new(AtomicBool::new(false));
        spawn_ticker(engine.clone(), ticker_stop.clone())?;

        Ok(PluginHost {
            inner: Arc::new(HostInner {
                engine,
                linker,
                cache,
                running: Arc::new(tokio::sync::Semaphore::new(max_instances as usize)),
                idle: Arc::new(IdleBudget {
                    used: AtomicU32::new(0),
                    capacity: idle_capacity,
                }),
                config,
                ticker_stop,
            }),
        })
    }

    /// The host's settings.
    pub fn config(&self) -> &HostConfig {
        &self.inner.config
    }

    /// Compile (or load from the cache), check, pre-instantiate and smoke-test a plugin.
    #[tracing::instrument(skip_all, fields(plugin = %manifest.name))]
    pub async fn load(&self, manifest: Manifest) -> Result<Arc<Plugin>, PluginError> {
        let config = &self.inner.config;
        let name = manifest.name.clone();
        let memory_mb = manifest.memory_mb.unwrap_or(config.default_memory_mb);
        if memory_mb > config.max_memory_mb {
            return Err(PluginError::Manifest(ManifestError {
                path: manifest.path.clone(),
                fault: ManifestFault::BadLimit {
                    field: "memory_mb",
                    value: memory_mb,
                    reason: format!("this daemon allows at most {}", config.max_memory_mb),
                },
            }));
        }

        let inner = self.inner.clone();
        let wasm_path = manifest.wasm.clone();
        let plugin = name.clone();
        let started = std::time::Instant::now();
        let (component, sha256, from_cache) = tokio::task::spawn_blocking(move || {
            let compile_error = |reason: String| PluginError::Compile {
                plugin: plugin.clone(),
                reason,
            };
            let bytes = std::fs::read(&wasm_path)
                .map_err(|e| compile_error(format!("cannot read {}: {e}", wasm_path.display())))?;
            // Before wasmtime sees it: its parser's errors quote the bytes it found, and a
            // manifest may point at any file (/etc/passwd).
            if let Err(found) = component_header(&bytes) {
                return Err(PluginError::NotAComponent {
                    plugin: plugin.clone(),
                    wasm: wasm_path.clone(),
                    found,
                });
            }
            let sha256 = sha256_hex(&bytes);
            let (component, from_cache) = match &inner.cache {
                Some(cache) => cache.load_or_compile(&inner.engine, &bytes, &sha256),
                None => Component::new(&inner.engine, &bytes)
                    .map(|c| (c, false))
                    .map_err(|e| format!("{e:#}")),
            }
            .map_err(compile_error)?;
            Ok::<_, PluginError>((component, sha256, from_cache))
        })
        .await
        .map_err(|e| PluginError::Host {
            reason: format!("compile worker failed: {e}"),
        })??;
        tracing::debug!(
            from_cache,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "compiled"
        );

        check_contract(&self.inner.engine, &component, &name, manifest.kind)?;
        let pre = self
            .inner
            .linker
            .instantiate_pre(&component)
            .map_err(|e| PluginError::Link {
                plugin: name.clone(),
                reason: format!("{e:#}"),
            })?;
        let wrong_world = |e: wasmtime::Error| PluginError::WrongWorld {
            plugin: name.clone(),
            expected: manifest.kind.to_string(),
            found: format!("a component whose exports do not match: {e:#}"),
        };
        let pre = match manifest.kind {
            PluginKind::Check => WorldPre::Check(CheckPre::new(pre).map_err(wrong_world)?),
            PluginKind::DataSource => {
                WorldPre::DataSource(DataSourcePre::new(pre).map_err(wrong_world)?)
            }
        };

        let plugin = Plugin::new(PluginParts {
            host: self.inner.clone(),
            manifest,
            pre,
            sha256,
            from_cache,
            memory_mb,
        })?;
        plugin.smoke_test().await?;
        crate::metrics::metrics()
            .plugin_load_seconds
            .observe(started.elapsed().as_secs_f64());
        tracing::info!(version = %plugin.version, from_cache, "plugin loaded");
        Ok(Arc::new(plugin))
    }
}

/// Advance the engine's epoch every [`EPOCH_TICK`] on a thread of its own (never a runtime
/// worker: a busy runtime must not delay deadlines), until the host is dropped.
fn spawn_ticker(engine: Engine, stop: Arc<AtomicBool>) -> Result<(), PluginError> {
    std::thread::Builder::new()
        .name("readyd-epoch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                engine.increment_epoch();
            }
        })
        .map(|_| ())
        .map_err(|e| PluginError::Host {
            reason: format!("cannot start the epoch ticker: {e}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Review finding: a manifest whose `wasm` was /etc/passwd got its first bytes quoted in
    // `/v1/status` by wasmtime's parser. The header is checked first, and the error names the
    // file and what it is, never its content.
    #[tokio::test]
    async fn a_file_that_is_not_a_component_is_refused_without_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let host = PluginHost::new(HostConfig {
            max_instances: 2,
            ..HostConfig::default()
        })
        .unwrap();
        for (file, bytes, found) in [
            (
                "passwd",
                &b"root:x:0:0:root:/root:/bin/bash\n"[..],
                "not WebAssembly at all",
            ),
            ("tiny", &b"\0as"[..], "not WebAssembly at all"),
            (
                "core.wasm",
                &b"\0asm\x01\0\0\0"[..],
                "a core WebAssembly module",
            ),
            (
                "odd.wasm",
                &b"\0asm\x01\0\x07\0"[..],
                "an unknown WebAssembly layer",
            ),
        ] {
            std::fs::write(dir.path().join(file), bytes).unwrap();
            let text = format!("name = \"p\"\nkind = \"check\"\nwasm = \"{file}\"\n");
            let manifest = Manifest::parse(&text, &dir.path().join("p.toml"), &|_| None).unwrap();
            let err = host.load(manifest).await.unwrap_err();
            assert!(
                matches!(&err, PluginError::NotAComponent { found: f, .. } if f.starts_with(found)),
                "{file}: {err:?}"
            );
            let message = err.to_string();
            assert!(
                message.contains("is not a WebAssembly component"),
                "{message}"
            );
            assert!(message.contains(file), "{message}");
            assert!(
                !message.contains("root:") && !message.contains("0x"),
                "{message}"
            );
        }
        assert_eq!(component_header(b"\0asm\x0d\0\x01\0"), Ok(()));
    }
}
