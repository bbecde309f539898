//! Guest bindings generated from the root `wit/` contract: the only `generate!` in readyd.
//!
//! Both worlds are generated, each in its own module, because a component exports exactly one
//! of them and [`export!`](crate::export) picks which; the `data-source` module reuses the
//! `check` module's `types` and `host` so an `Entity` is one Rust type. Plugin code should not
//! need anything here except for `raw_*` exports (see `export!`).
// Generated code: its docs come from the WIT comments (not every item has one), the ABI glue is
// `unsafe` by nature, and its style is wit-bindgen's, not ours.
#![allow(missing_docs, unsafe_code, clippy::all)]

/// Bindings of the `check` world.
pub mod check {
    wit_bindgen::generate!({
        path: "../wit",
        world: "check",
        pub_export_macro: true,
        export_macro_name: "__export_check_world",
        default_bindings_module: "readyd_plugin_sdk::bindings::check",
        runtime_path: "readyd_plugin_sdk::__private::wit_bindgen::rt",
    });
}

/// Bindings of the `data-source` world.
pub mod data_source {
    wit_bindgen::generate!({
        path: "../wit",
        world: "data-source",
        pub_export_macro: true,
        export_macro_name: "__export_data_source_world",
        default_bindings_module: "readyd_plugin_sdk::bindings::data_source",
        runtime_path: "readyd_plugin_sdk::__private::wit_bindgen::rt",
        with: {
            "readyd:plugin/types@0.1.0": crate::bindings::check::readyd::plugin::types,
            "readyd:plugin/host@0.1.0": crate::bindings::check::readyd::plugin::host,
        },
    });
}
