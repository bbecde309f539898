//! One integration-test binary, a module per area.
mod api;
mod automation;
mod dashboard;
mod engine;
mod exemptions;
mod manifests;
mod plugins;
mod port;
