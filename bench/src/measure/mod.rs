//! The measurements, one module per area of DESIGN.md section 11. Each returns a
//! [`crate::report::Section`]; none asserts a timing.
//!
//! - [`evaluation`]: the pure evaluator, a full pass with its redb commit, plugin rules in a pass.
//! - [`plugins`]: plugin loads, instantiation, warm calls against native, calls per second.
//! - [`engine`]: the engine in process: start, data-source rounds, the incremental path.
//! - [`api`]: the child daemon's API under open-loop load, exemptions, memory.
//! - [`reload`]: hot reload of a scorecard and of a plugin build.
//! - [`automation`]: a degrading standards change, tasks, outbox, webhook delivery.
//! - [`tls`]: the gate and webhook delivery over HTTPS against the same over HTTP.
//! - [`soak`]: mixed reads, gate queries and durable writes with a hot reload halfway, memory
//!   over time.

pub mod api;
pub mod automation;
pub mod engine;
pub mod evaluation;
pub mod plugins;
pub mod reload;
pub mod soak;
pub mod tls;
