//! The HTTP API of the child daemon under load: the deploy gate at 5,000 requests per second
//! (open loop), entity scores, wrk's closed-loop maximum, an exemption's approval until the
//! new level is served, and the daemon's resident memory.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use readyd::model::ScorecardResult;
use serde_json::json;

use crate::client::{Http, LoadRun, open_loop};
use crate::daemon::{APPROVER_TOKEN, DaemonChild, owner_token, rss_kib};
use crate::org::Org;
use crate::report::{Goal, Row, Section};
use crate::stats::{Samples, fmt_num};

/// How much of each measurement.
#[derive(Clone, Copy, Debug)]
pub struct ApiRuns {
    /// Open-loop runs per endpoint, and the length of each.
    pub runs: usize,
    pub duration: Duration,
    pub exemptions: usize,
    /// Run wrk (when installed) for the closed-loop maximum.
    pub wrk: bool,
}

/// The gate's rate (DESIGN.md section 11).
pub const GATE_RATE: f64 = 5_000.0;
/// The scores endpoint's rate (no target: a dashboard's order of magnitude, times ten).
pub const SCORES_RATE: f64 = 1_000.0;

fn ms(us: f64) -> f64 {
    us / 1e3
}

pub(crate) fn load_rows(
    section: &mut Section,
    label: &str,
    rate: f64,
    runs: &mut [LoadRun],
    p99_target: Option<f64>,
) {
    let mut p50 = Samples::from_values(runs.iter_mut().map(|r| ms(r.latency_us.percentile(50.0))));
    let mut p99 = Samples::from_values(runs.iter_mut().map(|r| ms(r.latency_us.percentile(99.0))));
    let mut p999 = Samples::from_values(runs.iter_mut().map(|r| ms(r.latency_us.percentile(99.9))));
    let mut achieved = Samples::from_values(runs.iter().map(|r| r.achieved_rate));
    let failed: usize = runs.iter().map(|r| r.failed).sum();
    let sent: usize = runs.iter().map(|r| r.sent).sum();
    let lag = runs.iter().map(|r| r.max_lag).max().unwrap_or_default();
    let what = format!("{label} p99 at {} req/s", fmt_num(rate));
    section.rows.push(match p99_target {
        Some(t) => Row::target(&what, Goal::Below(t), "ms", &mut p99),
        None => Row::info(&what, "ms", &mut p99),
    });
    section
        .rows
        .push(Row::info(&format!("{label} p50"), "ms", &mut p50));
    section
        .rows
        .push(Row::info(&format!("{label} p99.9"), "ms", &mut p999));
    section.rows.push(Row::info(
        &format!("{label} achieved rate"),
        "req/s",
        &mut achieved,
    ));
    section.rows.push(Row::value(
        &format!("{label} failed requests"),
        format!("{failed} of {sent}"),
    ));
    section.notes.push(format!(
        "{label}: the sender was at most {:.1} ms behind its schedule.",
        lag.as_secs_f64() * 1e3
    ));
}

/// wrk's `Requests/sec` and 99th percentile (ms) from its `--latency` output.
fn parse_wrk(text: &str) -> Option<(f64, f64)> {
    let rate = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))?
        .trim()
        .parse::<f64>()
        .ok()?;
    let p99 = text.lines().find_map(|l| {
        let mut parts = l.split_whitespace();
        (parts.next()? == "99%").then(|| parts.next()).flatten()
    })?;
    let p99_ms = if let Some(v) = p99.strip_suffix("us") {
        v.parse::<f64>().ok()? / 1e3
    } else if let Some(v) = p99.strip_suffix("ms") {
        v.parse::<f64>().ok()?
    } else if let Some(v) = p99.strip_suffix('s') {
        v.parse::<f64>().ok()? * 1e3
    } else {
        return None;
    };
    Some((rate, p99_ms))
}

fn wrk_installed() -> bool {
    Command::new("wrk").arg("--version").output().is_ok()
}

/// `/v1/gate/{id}` of every entity, the paths the gate load cycles over.
pub fn gate_paths(org: &Org) -> Arc<Vec<String>> {
    Arc::new(
        org.entities
            .iter()
            .map(|e| format!("/v1/gate/{}", e.identifier))
            .collect(),
    )
}

/// The gate at [`GATE_RATE`]: one probe (the answer has `allowed`), a 1 s warm-up at 1,000 req/s
/// (which also fills the client's pool), then `runs.runs` open-loop runs.
pub async fn gate_runs(
    http: &Http,
    gate_paths: &Arc<Vec<String>>,
    runs: ApiRuns,
) -> anyhow::Result<Vec<LoadRun>> {
    let probe = http
        .get_json(&gate_paths[0])
        .await
        .context("the gate does not answer")?;
    if probe.get("allowed").is_none() {
        return Err(anyhow!("the gate answered {probe} without `allowed`"));
    }
    let warm = open_loop(http, gate_paths.clone(), 1_000.0, Duration::from_secs(1)).await;
    if warm.ok == 0 {
        return Err(anyhow!("no gate request succeeded during the warm-up"));
    }
    let mut gate = Vec::new();
    for _ in 0..runs.runs {
        gate.push(open_loop(http, gate_paths.clone(), GATE_RATE, runs.duration).await);
    }
    Ok(gate)
}

/// The load measurements and the daemon's memory.
pub async fn measure(
    http: &Http,
    daemon: &DaemonChild,
    org: &Org,
    runs: ApiRuns,
) -> anyhow::Result<Section> {
    let n = org.entities.len();
    let mut section = Section::new(
        "HTTP API (child daemon, loopback)",
        format!(
            "The daemon runs as a child process (`readyd-bench daemon`: `Engine::start` + \
             `readyd::http::serve`, file watching on) on the organisation plus the `canary` \
             scorecard ({n} entities, 6 scorecards), started from the store the engine phase \
             left. Load comes from this process: an open-loop generator (hyper client, request \
             `i` sent at `i / rate` on its own task whatever earlier answers do; latency from \
             send to complete answer) cycling over every entity, {} run(s) of {} s per endpoint \
             after a 1 s warm-up.",
            runs.runs,
            runs.duration.as_secs_f64()
        ),
    );
    let gate_paths = gate_paths(org);
    let score_paths: Arc<Vec<String>> = Arc::new(
        org.entities
            .iter()
            .map(|e| format!("/v1/entities/{}/scores", e.identifier))
            .collect(),
    );
    let mut gate = gate_runs(http, &gate_paths, runs).await?;
    load_rows(
        &mut section,
        "GET /v1/gate/{id}",
        GATE_RATE,
        &mut gate,
        Some(2.0),
    );
    let mut scores = Vec::new();
    for _ in 0..runs.runs {
        scores.push(open_loop(http, score_paths.clone(), SCORES_RATE, runs.duration).await);
    }
    load_rows(
        &mut section,
        "GET /v1/entities/{id}/scores",
        SCORES_RATE,
        &mut scores,
        None,
    );

    if runs.wrk && wrk_installed() {
        let url = format!("http://{}{}", daemon.addr, gate_paths[n / 2]);
        let out = tokio::task::spawn_blocking(move || {
            Command::new("wrk")
                .args(["-t2", "-c50", "-d10s", "--latency", &url])
                .output()
        })
        .await??;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        match parse_wrk(&text) {
            Some((rate, p99)) => {
                section.rows.push(Row::value(
                    "wrk -t2 -c50 -d10s (closed loop, one entity): max throughput",
                    format!("{} req/s", fmt_num(rate)),
                ));
                section.rows.push(Row::value(
                    "wrk: p99 at that throughput",
                    format!("{} ms", fmt_num(p99)),
                ));
            }
            None => section.rows.push(Row::not_measured(
                "wrk max throughput",
                "–",
                format!(
                    "could not read wrk's output: {}",
                    text.lines().next().unwrap_or("")
                ),
            )),
        }
    } else {
        section.rows.push(Row::not_measured(
            "wrk max throughput (closed loop)",
            "–",
            if runs.wrk {
                "wrk is not installed"
            } else {
                "skipped in --quick mode"
            },
        ));
    }

    match rss_kib(daemon.pid) {
        Some((rss, hwm)) => {
            let mut rss_mb = Samples::from_values([rss as f64 / 1024.0]);
            section.rows.push(Row::target(
                &format!("daemon RSS with {n} entities (VmRSS after the load)"),
                Goal::Below(300.0),
                "MB",
                &mut rss_mb,
            ));
            section.rows.push(Row::value(
                "daemon peak RSS (VmHWM)",
                format!("{} MB", fmt_num(hwm as f64 / 1024.0)),
            ));
        }
        None => section.rows.push(Row::not_measured(
            "daemon RSS",
            "< 300 MB",
            "/proc/<pid>/status unreadable",
        )),
    }
    section.rows.push(Row::value(
        "daemon start until listening (restore + evaluate all + commit)",
        format!("{} s", fmt_num(daemon.started_in.as_secs_f64())),
    ));
    Ok(section)
}

/// A (entity, scorecard, rule) whose exemption raises the entity's level: the only rule that
/// does not count as passed at the level just above the one reached.
struct Candidate {
    entity: String,
    team: String,
    scorecard: String,
    rule: String,
    /// The level index the exemption should reach.
    target: usize,
}

fn candidate(org: &Org, team: &str, results: &[ScorecardResult]) -> Option<Candidate> {
    for result in results.iter().filter(|r| r.scorecard != "canary") {
        let card = org.standards_daemon.scorecard(&result.scorecard)?;
        let next = result.level_index + 1;
        let blocking: Vec<_> = result
            .rules
            .iter()
            .filter(|r| r.status.is_applicable() && !r.status.counts_as_passed())
            .filter(|r| card.level_index(&r.level) == Some(next))
            .collect();
        if next < card.levels.len() && blocking.len() == 1 {
            return Some(Candidate {
                entity: result.entity.clone(),
                team: team.to_owned(),
                scorecard: result.scorecard.to_string(),
                rule: blocking[0].rule.to_string(),
                target: next,
            });
        }
    }
    None
}

/// Exemption approval → the new level served by `GET /v1/entities/{id}/scores`.
pub async fn exemptions(http: &Http, org: &Org, count: usize) -> anyhow::Result<Section> {
    let mut section = Section::new(
        "Exemption approval",
        format!(
            "{count} entities, each with exactly one failing rule at the level above the one it \
             reached: an owner requests an exemption for that rule (`POST /v1/exemptions`), then \
             the clock starts and an approver approves it (`POST /v1/exemptions/{{id}}/approve`, \
             committed with fsync before it answers); the clock stops when `GET \
             /v1/entities/{{id}}/scores` shows the higher level."
        ),
    );
    let mut candidates = Vec::new();
    for entity in org.entities.iter().filter(|e| e.team.is_some()) {
        if candidates.len() >= count {
            break;
        }
        let answer = http
            .get_json(&format!("/v1/entities/{}/scores", entity.identifier))
            .await?;
        let results: Vec<ScorecardResult> = serde_json::from_value(answer)?;
        if let Some(c) = candidate(org, entity.team.as_deref().unwrap_or_default(), &results) {
            candidates.push(c);
        }
    }
    if candidates.is_empty() {
        return Err(anyhow!("no entity has a single blocking rule"));
    }
    let until = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339();
    let (mut visible, mut answered) = (Samples::new(), Samples::new());
    for c in &candidates {
        let requested = http
            .post_json(
                "/v1/exemptions",
                &owner_token(&c.team),
                &json!({ "entity": c.entity, "scorecard": c.scorecard, "rule": c.rule, "reason": "benchmark", "until": until }),
            )
            .await?;
        let id = requested["id"]
            .as_str()
            .ok_or_else(|| anyhow!("the exemption has no id: {requested}"))?;
        let started = Instant::now();
        http.post_json(
            &format!("/v1/exemptions/{id}/approve"),
            APPROVER_TOKEN,
            &json!({ "note": "benchmark" }),
        )
        .await?;
        answered.push(started.elapsed().as_secs_f64() * 1e3);
        let deadline = started + Duration::from_secs(10);
        loop {
            let answer = http
                .get_json(&format!("/v1/entities/{}/scores", c.entity))
                .await?;
            let results: Vec<ScorecardResult> = serde_json::from_value(answer)?;
            if results
                .iter()
                .any(|r| r.scorecard == c.scorecard && r.level_index >= c.target)
            {
                break;
            }
            if Instant::now() > deadline {
                return Err(anyhow!(
                    "{}: {} did not reach level #{} within 10 s of the approval",
                    c.entity,
                    c.scorecard,
                    c.target
                ));
            }
        }
        visible.push(started.elapsed().as_secs_f64() * 1e3);
    }
    section.rows.push(Row::info(
        "approve → new level served by the API",
        "ms",
        &mut visible,
    ));
    section.rows.push(Row::info(
        "of which: the approval's answer (durable commit)",
        "ms",
        &mut answered,
    ));
    Ok(section)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrk_output() {
        let text = "Running 10s test @ http://127.0.0.1:1/v1/gate/x\n  2 threads and 50 connections\n  Latency Distribution\n     50%  512.00us\n     99%    2.31ms\n  100 requests in 10.00s\nRequests/sec:  41234.56\nTransfer/sec:      9.70MB\n";
        assert_eq!(parse_wrk(text), Some((41234.56, 2.31)));
        assert_eq!(
            parse_wrk("99%  870.00us\nRequests/sec: 10"),
            Some((10.0, 0.87))
        );
        assert_eq!(parse_wrk("nothing"), None);
    }
}
