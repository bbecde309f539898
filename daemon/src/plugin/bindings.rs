//! The Rust bindings of `readyd:plugin@0.1.0`, generated from `wit/` by wasmtime's `bindgen!`.
//!
//! This is the only `bindgen!` of the daemon: one module per world, the second reusing the
//! first's `types` and `host` interfaces so both worlds share one `Entity`, one `Outcome` and
//! one `host::Host` implementation. Exports are async (calls run on the tokio runtime and yield
//! at every epoch tick); the `host.log` import is synchronous, it never waits.
//! Nothing here may change by hand: edit the WIT file instead.

/// `world check`: `init` + `evaluate`.
pub(crate) mod check {
    wasmtime::component::bindgen!({
        world: "check",
        path: "../wit",
        exports: { default: async },
    });
}

/// `world data-source`: `init` + `collect`.
pub(crate) mod data_source {
    wasmtime::component::bindgen!({
        world: "data-source",
        path: "../wit",
        exports: { default: async },
        with: {
            "readyd:plugin/types": super::check::readyd::plugin::types,
            "readyd:plugin/host": super::check::readyd::plugin::host,
        },
    });
}

pub(crate) use check::readyd::plugin::host;
pub(crate) use check::readyd::plugin::types::{Entity, Outcome, PluginError, Status};

/// The WIT package and version this daemon serves.
pub(crate) const PACKAGE: &str = "readyd:plugin";
pub(crate) const VERSION: &str = "0.1.0";
