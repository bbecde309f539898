//! HTTPS against HTTP (issue 17): two child daemons on the same store and organisation, one
//! serving plain HTTP and delivering to a plain receiver, the other serving HTTPS with the run's
//! certificate (`tls_cert_file`, `tls_key_file`) and delivering to an HTTPS receiver it trusts
//! through `tls_ca_file`. Each gets the same gate load, the same new-connection probe and the
//! same degrading change; the section puts the two side by side with their ratios.
//!
//! The handshake is in the figures the way a client meets it: the load client pools and keeps
//! its connections alive (as a CI runner's client does), so the gate rows pay a handshake per
//! pooled connection, and the new-connection rows pay one per request.

use std::time::{Duration, Instant};

use anyhow::anyhow;

use crate::client::{Http, LoadRun};
use crate::measure::api::{self, ApiRuns, GATE_RATE};
use crate::measure::automation::{self, Delivery};
use crate::org::Org;
use crate::report::{Goal, Row, Section};
use crate::stats::{Samples, fmt_num};

/// What one daemon (HTTP or HTTPS) gave.
#[derive(Debug)]
pub struct Variant {
    pub gate: Vec<LoadRun>,
    /// Latency of a gate request on a client with an empty pool, µs (connect, handshake, answer).
    pub new_connection_us: Samples,
    pub delivery: Delivery,
}

/// The gate load, the new-connection probe and the delivery of one degrading change.
pub async fn measure_variant(
    http: &Http,
    receiver: &crate::daemon::Receiver,
    standards: &std::path::Path,
    org: &Org,
    runs: ApiRuns,
    new_connections: usize,
) -> anyhow::Result<Variant> {
    let paths = api::gate_paths(org);
    let gate = api::gate_runs(http, &paths, runs).await?;
    let mut new_connection_us = Samples::new();
    for i in 0..new_connections {
        // One request per empty pool: sequential, so nothing else shares the daemon's CPU.
        let fresh = http.fresh();
        let sent = Instant::now();
        let (status, _) = fresh
            .send(http::Method::GET, &paths[i % paths.len()], None, None)
            .await?;
        if !status.is_success() {
            return Err(anyhow!(
                "a gate request on a new connection answered {status}"
            ));
        }
        new_connection_us.push(sent.elapsed().as_secs_f64() * 1e6);
    }
    let delivery =
        automation::deliver(http, receiver, standards, org.degraded_group_size()).await?;
    Ok(Variant {
        gate,
        new_connection_us,
        delivery,
    })
}

fn ratio(https: f64, http: f64) -> String {
    if http > 0.0 {
        format!("{:.2} ×", https / http)
    } else {
        "–".into()
    }
}

/// The section from both variants; a variant that failed becomes rows saying why.
pub fn section(
    plain: anyhow::Result<Variant>,
    https: anyhow::Result<Variant>,
    entities: usize,
    degraded: usize,
    runs: ApiRuns,
    new_connections: usize,
) -> Section {
    let mut section = Section::new(
        "TLS: HTTPS against HTTP (child daemons, loopback)",
        format!(
            "Two child daemons (`readyd-bench daemon`, as in the HTTP API section) on the same \
             store and {entities} entities, one after the other: one plain HTTP, one serving \
             HTTPS (`tls_cert_file`/`tls_key_file`: a server certificate for 127.0.0.1 from a \
             throwaway CA the harness makes with rcgen at every run; rustls, ring, TLS 1.3). \
             Gate: the open-loop generator of the HTTP API section at {} req/s, {} run(s) of {} \
             s after a 1 s warm-up, over HTTPS through readyd's own client (`readyd::net`, the \
             one `readyd gate --ca-file` uses) trusting that CA. The client pools and keeps its \
             connections alive like a CI runner's HTTP client: the handshakes are paid once per \
             pooled connection (during the warm-up and whenever the open loop needs one more \
             connection), not per request; what a handshake costs a request is the \
             new-connection row ({new_connections} sequential gate requests, each on a client \
             with an empty pool: TCP connect, TLS handshake over HTTPS, answer). Delivery: the \
             degrading change of the Automation section (the notifications of {degraded} newly \
             failing entities) delivered by the daemon's outbox (its pooled client, connections kept alive) to a receiver on \
             127.0.0.1 in this process — plain HTTP, or HTTPS with the same CA's certificate, \
             trusted by the daemon through `tls_ca_file`; throughput from first to last \
             notification. One delivery run per variant: the change can be made once per store.",
            fmt_num(GATE_RATE),
            runs.runs,
            runs.duration.as_secs_f64(),
        ),
    );
    let gate_what = |scheme: &str| {
        format!(
            "GET /v1/gate/{{id}} p99 at {} req/s over {scheme}",
            fmt_num(GATE_RATE)
        )
    };
    let mut p99 = [None, None];
    let mut throughput = [None, None];
    let mut handshake = [None, None];
    for (k, (scheme, variant)) in [("HTTP", &plain), ("HTTPS", &https)]
        .into_iter()
        .enumerate()
    {
        match variant {
            Ok(v) => {
                let mut runs_p99 = Samples::from_values(
                    v.gate
                        .iter()
                        .map(|r| r.latency_us.clone())
                        .map(|mut l| l.percentile(99.0) / 1e3),
                );
                let mut runs_p50 = Samples::from_values(
                    v.gate
                        .iter()
                        .map(|r| r.latency_us.clone())
                        .map(|mut l| l.percentile(50.0) / 1e3),
                );
                p99[k] = Some(runs_p99.median());
                section.rows.push(Row::target(
                    &gate_what(scheme),
                    Goal::Below(2.0),
                    "ms",
                    &mut runs_p99,
                ));
                section.rows.push(Row::info(
                    &format!("GET /v1/gate/{{id}} p50 over {scheme}"),
                    "ms",
                    &mut runs_p50,
                ));
                let failed: usize = v.gate.iter().map(|r| r.failed).sum();
                let sent: usize = v.gate.iter().map(|r| r.sent).sum();
                section.rows.push(Row::value(
                    &format!("gate requests failed over {scheme}"),
                    format!("{failed} of {sent}"),
                ));
                let lag = v.gate.iter().map(|r| r.max_lag).max().unwrap_or_default();
                section.notes.push(format!(
                    "{scheme}: the sender was at most {:.1} ms behind its schedule.",
                    lag.as_secs_f64() * 1e3
                ));
                let mut fresh_ms =
                    Samples::from_values(v.new_connection_us.values().iter().map(|us| us / 1e3));
                handshake[k] = Some(fresh_ms.median());
                section.rows.push(Row::info(
                    &format!("gate request on a new connection over {scheme}"),
                    "ms",
                    &mut fresh_ms,
                ));
                match v.delivery.throughput() {
                    Some(rate) => {
                        throughput[k] = Some(rate);
                        section.rows.push(Row::value(
                            &format!("deliveries/s over {scheme}"),
                            format!(
                                "{}/s ({} notifications)",
                                fmt_num(rate),
                                v.delivery.arrivals.len()
                            ),
                        ));
                    }
                    None => section.rows.push(Row::not_measured(
                        &format!("deliveries/s over {scheme}"),
                        "–",
                        format!(
                            "{} notification(s) reached the receiver",
                            v.delivery.arrivals.len()
                        ),
                    )),
                }
                section.rows.push(Row::value(
                    &format!("change → tasks committed ({scheme} daemon)"),
                    format!("{} ms", fmt_num(v.delivery.committed.as_secs_f64() * 1e3)),
                ));
            }
            Err(e) => {
                section.rows.push(Row::not_measured(
                    &gate_what(scheme),
                    "< 2 ms",
                    format!("{e:#}"),
                ));
                section.rows.push(Row::not_measured(
                    &format!("deliveries/s over {scheme}"),
                    "–",
                    format!("{e:#}"),
                ));
            }
        }
    }
    if let [Some(http), Some(https)] = p99 {
        section
            .rows
            .push(Row::value("gate p99, HTTPS / HTTP", ratio(https, http)));
    }
    if let [Some(http), Some(https)] = handshake {
        section.rows.push(Row::value(
            "request on a new connection, HTTPS / HTTP",
            ratio(https, http),
        ));
    }
    if let [Some(http), Some(https)] = throughput {
        section
            .rows
            .push(Row::value("deliveries/s, HTTPS / HTTP", ratio(https, http)));
    }
    section
}

/// How long the HTTPS daemon may take to answer its first `/readyz` (as for the HTTP one).
pub const READY_WITHIN: Duration = Duration::from_secs(120);
