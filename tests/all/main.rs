//! One integration-test binary, a module per area.
mod api;
mod automation;
mod dashboard;
mod engine;
mod fail_closed;
mod github;
mod json_stand_in;
mod kubernetes;
mod pagerduty;
mod plugins;
mod quiet_start;
mod vuln_report;
mod tls;
mod exemptions;
mod manifests;
mod plugins;
mod port;
