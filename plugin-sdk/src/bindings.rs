//! Guest bindings generated from the root `wit/` contract: the only `generate!` in readyd.
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
