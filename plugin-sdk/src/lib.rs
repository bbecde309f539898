//! Write readyd plugins: WebAssembly components that collect facts or evaluate rules.
//!
//! A plugin is a Rust crate built for `wasm32-wasip2`. It implements one of two traits, one per
//! WIT world of the contract in `wit/readyd-plugin.wit`, and exports it with [`export!`]:
//!
//! * [`DataSource`] collects *facts* about catalog entities (standards read them as
//!   `facts.<source>.<path>`);
//! * [`Check`] evaluates one scorecard rule on one entity and returns an [`Outcome`].
//!
//! # A complete plugin
//!
//! ```
//! use readyd_plugin_sdk::{Check, Config, Entity, Facts, Outcome, Params, PluginError};
//!
//! /// Passes when the entity's on-call rotation has at least `min` people.
//! pub struct OncallSize { min: u64 }
//!
//! impl Check for OncallSize {
//!     fn init(config: Config) -> Result<Self, PluginError> {
//!         Ok(OncallSize { min: config.get("min").unwrap_or(2) })
//!     }
//!
//!     fn evaluate(&self, entity: &Entity, facts: &Facts, _: &Params) -> Result<Outcome, PluginError> {
//!         Ok(match facts.get::<u64>("pagerduty", "oncall_count") {
//!             None => Outcome::fail("no on-call facts from pagerduty"),
//!             Some(n) if n >= self.min => Outcome::pass(format!("{n} people on call")),
//!             Some(n) => Outcome::fail(format!("{} has {n} people on call, needs {}", entity.identifier, self.min)),
//!         })
//!     }
//! }
//!
//! readyd_plugin_sdk::export!(OncallSize as check);
//! # fn main() {}
//! ```
//!
//! Its `Cargo.toml` makes the crate both a component and a library for native tests:
//!
//! ```toml
//! [lib]
//! crate-type = ["cdylib", "rlib"]
//!
//! [dependencies]
//! readyd-plugin-sdk = "0.1"
//! ```
//!
//! # Build
//!
//! In the plugin's directory (the same command inside readyd's workspace):
//!
//! ```text
//! rustup target add wasm32-wasip2
//! cargo build --release --target wasm32-wasip2
//! # -> target/wasm32-wasip2/release/<crate_name>.wasm, a component exporting the chosen world
//! ```
//!
//! Copy the `.wasm` next to a manifest (`plugins/<name>.toml`) in the daemon's plugins directory;
//! the daemon picks it up while running. The manifest's keys (`name`, `kind`, `wasm` relative to
//! the manifest, limits, capabilities, `[config]`) are described in readyd's `plugins/README.md`.
//!
//! # Test natively
//!
//! The same crate compiles for the host: `export!` only checks the trait there, the
//! [`http`] client answers from a [`testing::MockHttp`] installed on the test's thread, and log
//! lines go to stderr or a [`testing::LogCapture`]. So the plugin's logic is tested with plain
//! `cargo test`:
//!
//! ```
//! use readyd_plugin_sdk::http::{Request, Response};
//! use readyd_plugin_sdk::testing::MockHttp;
//!
//! let mock = MockHttp::new().on_get("http://127.0.0.1:8080/x", Response::new(404));
//! let _installed = mock.install();
//! assert_eq!(Request::get("http://127.0.0.1:8080/x").send().unwrap().status(), 404);
//! ```
//!
//! # What a plugin gets
//!
//! * [`Config`]: the manifest's `[config]` table, with the secrets the manifest grants added
//!   under their names ([`Config::secret`]); deserialize it into your own type.
//! * [`Entity`], [`Facts`], [`Params`]: typed, dotted-path access (`entity.property::<String>(
//!   "repo.url")`, `facts.get::<f64>("prometheus", "slo.availability")`).
//! * [`http`]: GET/POST with headers, JSON bodies and timeouts, to the hosts the manifest allows.
//! * [`log`] and the [`info!`]-style macros: lines in the daemon's log.
//! * Read-only directories the manifest grants, through `std::fs`. Nothing else: no environment
//!   variables, no sockets, no other files.
//!
//! Report expected failures as [`PluginError`]s; a panic traps the instance and the daemon
//! reports the plugin as broken.
#![deny(missing_docs)]

// Lets the generated bindings and the exported macros name this crate the same way from inside
// and outside it.
extern crate self as readyd_plugin_sdk;

pub mod bindings;
mod config;
mod entity;
mod error;
mod export;
mod facts;
pub mod http;
mod json;
pub mod log;
mod outcome;
mod plugin;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

pub use config::{Config, Params};
pub use entity::Entity;
pub use error::PluginError;
pub use facts::Facts;
pub use outcome::{Outcome, Status};
pub use plugin::{Check, DataSource};

/// Re-exported so plugins need no direct `serde_json` dependency for simple facts.
pub use serde_json::{self, json};

#[doc(hidden)]
pub mod __private {
    //! What [`export!`](crate::export) expands to; not public API.
    pub use crate::export::{check_evaluate, check_init, data_source_collect, data_source_init};
    pub use wit_bindgen;
}
