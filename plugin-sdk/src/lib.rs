//! (being written)
#![deny(missing_docs)]
extern crate self as readyd_plugin_sdk;
pub mod bindings;
#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;
}
