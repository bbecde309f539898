//! One integration-test binary, a module per area.
mod api;
mod automation;
mod dashboard;
mod engine;
mod exemptions;
mod fail_closed;
mod github;
mod json_stand_in;
mod kubernetes;
mod manifests;
mod pagerduty;
mod plugins;
mod port;
mod quiet_start;
mod tls;
mod vuln_report;
