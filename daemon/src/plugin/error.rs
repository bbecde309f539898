//! [`PluginError`]: everything that can go wrong loading or calling a plugin.
//!
//! Every variant names the plugin; its `Display` is the reason the API and the rule's `error`
//! result show. The variants separate the plugin's fault (trap, timeout, out-of-memory,
//! malformed output, a failing `init`) from the guest's *expected* failures (`Plugin`: the WIT
//! `plugin-error` it returned) and from the host's own limits (`Parked`, `Capacity`), because
//! only the first kind counts toward the circuit breaker.

use crate::plugin::manifest::ManifestError;

/// Why loading or calling a plugin failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// The manifest is invalid (file and fault inside).
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The wasm file could not be read or compiled.
    #[error("plugin `{plugin}`: cannot compile: {reason}")]
    Compile { plugin: String, reason: String },
    /// The manifest's `wasm` is not a WebAssembly component: a core module, or not WebAssembly
    /// at all (`/etc/passwd`, a text file). None of its bytes are shown: the file may be anything.
    #[error(
        "plugin `{plugin}`: cannot compile: {} is not a WebAssembly component ({found})",
        wasm.display()
    )]
    NotAComponent {
        plugin: String,
        wasm: std::path::PathBuf,
        found: &'static str,
    },
    /// The component does not export the world its manifest declares.
    #[error(
        "plugin `{plugin}`: the manifest declares a `{expected}` plugin but the component is {found}"
    )]
    WrongWorld {
        plugin: String,
        expected: String,
        found: String,
    },
    /// The component targets a `readyd:plugin` version this daemon does not serve.
    #[error("plugin `{plugin}`: built against {found}; this daemon serves {supported}")]
    UnsupportedVersion {
        plugin: String,
        found: String,
        supported: String,
    },
    /// The component's imports cannot be satisfied (it asks for something the sandbox lacks).
    #[error("plugin `{plugin}`: cannot be linked: {reason}")]
    Link { plugin: String, reason: String },
    /// `init` returned an error.
    #[error("plugin `{plugin}`: init failed: {reason}")]
    Init { plugin: String, reason: String },
    /// A call ran past its budget and was interrupted.
    #[error("plugin `{plugin}`: timed out after {timeout_ms} ms")]
    Timeout { plugin: String, timeout_ms: u64 },
    /// The plugin tried to grow its memory past its cap.
    #[error("plugin `{plugin}`: out of memory (limit {limit_mb} MiB)")]
    OutOfMemory { plugin: String, limit_mb: u64 },
    /// The plugin trapped: it is broken.
    #[error("plugin `{plugin}`: trapped: {reason}")]
    Trap { plugin: String, reason: String },
    /// The plugin returned something that is not what the contract promises.
    #[error("plugin `{plugin}`: malformed output: {reason}")]
    MalformedOutput { plugin: String, reason: String },
    /// The plugin reported an expected failure (`plugin-error`), e.g. `unavailable: ...`.
    #[error("plugin `{plugin}`: {error}")]
    Plugin { plugin: String, error: String },
    /// The circuit breaker parked the plugin after repeated failures; it was not run.
    #[error("plugin `{plugin}`: parked after {failures} consecutive failures")]
    Parked { plugin: String, failures: u32 },
    /// The host had no room for another instance (pooling allocator full).
    #[error("plugin `{plugin}`: no instance capacity: {reason}")]
    Capacity { plugin: String, reason: String },
    /// No plugin of that name is loaded.
    #[error("plugin `{plugin}` is not loaded")]
    Unknown { plugin: String },
    /// The plugin was asked for the other world's call (`evaluate` on a data source, ...).
    #[error("plugin `{plugin}` is a {kind} plugin and cannot {call}")]
    WrongCall {
        plugin: String,
        kind: String,
        call: &'static str,
    },
    /// The host itself failed (engine setup, a worker thread, the cache directory).
    #[error("plugin host: {reason}")]
    Host { reason: String },
}

impl PluginError {
    /// The plugin concerned, when the error is about one.
    pub fn plugin(&self) -> Option<&str> {
        use PluginError::*;
        match self {
            Manifest(_) | Host { .. } => None,
            Compile { plugin, .. }
            | NotAComponent { plugin, .. }
            | WrongWorld { plugin, .. }
            | UnsupportedVersion { plugin, .. }
            | Link { plugin, .. }
            | Init { plugin, .. }
            | Timeout { plugin, .. }
            | OutOfMemory { plugin, .. }
            | Trap { plugin, .. }
            | MalformedOutput { plugin, .. }
            | Plugin { plugin, .. }
            | Parked { plugin, .. }
            | Capacity { plugin, .. }
            | Unknown { plugin }
            | WrongCall { plugin, .. } => Some(plugin),
        }
    }

    /// Whether the error is evidence that the plugin itself is broken, and so counts toward
    /// parking it. A guest's own `plugin-error` is an expected failure and does not; neither
    /// do the host's refusals (parked, no capacity, wrong call).
    pub fn is_plugin_fault(&self) -> bool {
        use PluginError::*;
        matches!(
            self,
            Init { .. }
                | Timeout { .. }
                | OutOfMemory { .. }
                | Trap { .. }
                | MalformedOutput { .. }
        )
    }
}
