//! The plugin host: the only code that knows wasmtime (DESIGN.md sections 4 and 5).
//!
//! Plugins are WebAssembly components of `readyd:plugin@0.1.0` (wit/readyd-plugin.wit):
//! data sources collect facts, checks evaluate one rule on one entity. This module reads their
//! manifests, compiles them once (cached on disk), checks the contract they target, and runs
//! them in a sandbox that grants only what the manifest names, bounded in time and memory.
//!
//! Layout:
//! - [`manifest`]: `plugins/<name>.toml` → [`Manifest`], with file-and-fault errors.
//! - `policy`: [`GrantPolicy`], `[plugins.policy]`: the most a manifest may grant itself.
//! - `host`: [`PluginHost`], the one `Engine` (pooling allocator, epoch ticker, linker, cache).
//! - `instance`: [`Plugin`], a loaded plugin: `collect`, `evaluate`, `evaluate_batch`.
//! - `registry`: [`PluginRegistry`], plugins by name with atomic swap and status.
//! - `health`: the circuit breaker that parks a plugin after repeated faults.
//! - `sandbox`: the store data: WASI without ambient authority, limits, bounded guest log.
//! - `egress`: the wasi-http hook that enforces the HTTP allow list.
//! - `contract`: reads a component's imports/exports to refuse wrong worlds and versions.
//! - `cache`: compiled artifacts on disk (the only `unsafe` of the daemon).
//! - `bindings`: the one `bindgen!`.
//! - [`cli`]: `readyd plugin check|run` for plugin authors.
//!
//! Invariants: a plugin never reaches the network, files, environment or clock skew beyond
//! its manifest; a trap, timeout, out-of-memory or malformed output becomes a [`PluginError`]
//! for that call and never stops the daemon; a store is never reused after a failed call;
//! secrets are never logged.

mod bindings;
mod cache;
pub mod cli;
mod contract;
mod egress;
mod error;
mod health;
mod host;
mod instance;
pub mod manifest;
mod policy;
mod registry;
mod sandbox;

pub use error::PluginError;
pub use health::PluginState;
pub use host::{HostConfig, PluginHost};
pub use instance::{CheckCall, CheckInput, Plugin, encode_params};
pub use manifest::{
    Capabilities, DirGrant, HttpGrant, Manifest, ManifestError, ManifestFault, PluginKind,
    SecretGrant, SecretValue, declared_plugin, load_manifests,
};
pub use policy::GrantPolicy;
pub use registry::{PluginRegistry, PluginStatus};
pub use sandbox::GUEST_LOG_TARGET;

/// The version [`Plugin::version`] would have for the wasm file at `path` (short SHA-256),
/// or `None` if it cannot be read: lets a reload tell whether a component changed.
pub fn wasm_version(path: &std::path::Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    Some(cache::short_version(&cache::sha256_hex(&bytes)))
}

/// The contract this daemon serves, e.g. for `/v1/status`: `readyd:plugin@0.1.0`.
pub fn contract_version() -> String {
    format!("{}@{}", bindings::PACKAGE, bindings::VERSION)
}
