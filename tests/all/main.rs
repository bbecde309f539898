//! One integration-test binary, a module per area.
mod api;
mod automation;
mod dashboard;
mod engine;
mod json_stand_in;
mod kubernetes;
mod pagerduty;
mod plugins;
