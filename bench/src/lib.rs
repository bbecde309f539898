//! readyd-bench: the benchmark harness. One command measures every speed target of DESIGN.md
//! section 11 on a generated organisation, compares readyd's evaluator with json-rules-engine
//! and regorus on the same rules and facts, and writes BENCHMARKS.md.
//!
//! # Layout
//!
//! - [`harness`]: the run — phases in order, the plan of repetitions per mode, the report.
//! - [`org`]: the deterministic organisation (catalog, standards and their variants, facts).
//! - [`rng`]: the generator's own random numbers (stable across dependency versions).
//! - [`peers`]: the shared rule set, its translations, the other engines, the agreement check.
//! - [`measure`]: one module per area (evaluation, plugins, engine, API, reload, automation).
//! - [`daemon`]: the child daemon process and the local webhook receiver.
//! - [`client`]: the loopback HTTP(S) client and the open-loop load generator.
//! - [`tls`]: the run's throwaway CA and server certificate (the HTTPS figures).
//! - [`stats`], [`report`]: medians and spreads; BENCHMARKS.md.
//!
//! The harness measures and reports; it never asserts a timing (the machine is shared and noisy)
//! and never reaches beyond 127.0.0.1. A run fails only when engines disagree on an answer.

pub mod client;
pub mod daemon;
pub mod harness;
pub mod measure;
pub mod org;
pub mod peers;
pub mod report;
pub mod rng;
pub mod stats;
pub mod tls;
