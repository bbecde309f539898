//! readyd: a daemon that keeps every service continuously scored against its
//! production-readiness standards.
//!
//! # Layout
//!
//! Data flows one way (DESIGN.md section 2):
//! catalog + facts + standards → evaluator → results in redb → API, gate, automation.
//!
//! - [`model`]: the domain types every other module shares (no I/O).
//! - [`catalog`]: reads entities from catalog files (readyd YAML and Backstage documents).
//! - [`standards`]: reads and validates scorecards, tier policy and initiatives.
//! - [`eval`]: the pure evaluator: (entity, facts, standards, exemptions, clock) → results.
//! - [`plugin`]: the only code that knows wasmtime: manifests, sandbox, data-source and check calls.
//! - [`store`]: the only code that knows redb: tables, schema version, the single writer.
//! - [`engine`]: ties them together: collects facts, evaluates incrementally, commits.
//! - [`clock`]: the clock time-dependent decisions read (manual in tests).
//! - [`config`]: `readyd.toml`, environment overrides.
//! - [`metrics`]: the process's Prometheus metrics.
//! - [`http`]: the only code that knows hyper: the `/v1` API, dashboard, metrics.
//! - [`automation`]: events → tasks and notifications through the durable outbox.
//! - [`net`]: the only code that opens outgoing connections: TLS roots, `tls_ca_file`, proxies,
//!   redaction of secret URLs.
//! - [`watch`]: hot reload of plugins, standards and catalog.
//! - [`demo`]: the demo's local stand-in for the paging system, Prometheus and chat hooks.
//! - [`cli`]: the command-line front end (`serve`, `eval`, `validate`, `gate`, `plugin ...`).

pub mod allocator;
pub mod automation;
pub mod catalog;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod engine;
pub mod eval;
#[cfg(test)]
mod hostile;
pub mod http;
pub mod metrics;
pub mod model;
pub mod net;
pub mod plugin;
pub mod standards;
pub mod store;
pub mod watch;
