//! Mixed load on the child daemon — the full version of `tests/reliability/load.rs`: gate
//! queries, score reads and scorecard listings from open-loop senders, exemption requests
//! (durable writes) at a steady rate, and a scorecard replaced by rename halfway through.
//! Reported: latency percentiles and errors per kind, and the daemon's resident memory sampled
//! every second (over time, not just at the end).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use http::Method;
use readyd::model::{RuleStatus, ScorecardResult};
use serde_json::json;

use crate::client::{Http, LoadRun, open_loop};
use crate::daemon::{owner_token, rss_kib};
use crate::org::{Org, swapped_documentation, to_yaml};
use crate::report::{Row, Section};
use crate::stats::{Samples, fmt_num};

/// Gate queries per second during the soak.
const GATE_RATE: f64 = 2000.0;
/// Score reads per second.
const SCORES_RATE: f64 = 500.0;
/// Scorecard listings per second (each aggregates every entity's results).
const LIST_RATE: f64 = 5.0;
/// Exemption requests per second.
const WRITE_RATE: f64 = 20.0;

/// One exemption request the soak may send: an owner asking for a rule that fails.
struct Write {
    entity: String,
    team: String,
    scorecard: String,
    rule: String,
}

/// Up to `count` distinct (entity, scorecard, failing rule) requests, from the daemon's answers.
async fn writes(http: &Http, org: &Org, count: usize) -> anyhow::Result<Vec<Write>> {
    let mut out = Vec::new();
    for entity in org.entities.iter().filter(|e| e.team.is_some()) {
        if out.len() >= count {
            break;
        }
        let answer = http
            .get_json(&format!("/v1/entities/{}/scores", entity.identifier))
            .await?;
        let results: Vec<ScorecardResult> = serde_json::from_value(answer)?;
        for result in &results {
            for rule in result.rules.iter().filter(|r| r.status == RuleStatus::Fail) {
                out.push(Write {
                    entity: entity.identifier.clone(),
                    team: entity.team.clone().unwrap_or_default(),
                    scorecard: result.scorecard.to_string(),
                    rule: rule.rule.to_string(),
                });
            }
        }
    }
    out.truncate(count);
    Ok(out)
}

/// What the write sender saw.
struct WriteRun {
    latency_ms: Samples,
    acknowledged: usize,
    failed: usize,
}

async fn send_writes(http: &Http, writes: Vec<Write>, duration: Duration) -> WriteRun {
    let interval = Duration::from_secs_f64(1.0 / WRITE_RATE);
    let until = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339();
    let start = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, w) in writes.into_iter().enumerate() {
        let at = start + interval * i as u32;
        if at.duration_since(start) >= duration {
            break;
        }
        tokio::time::sleep_until(at).await;
        let http = http.clone();
        let until = until.clone();
        tasks.spawn(async move {
            let body = json!({
                "entity": w.entity, "scorecard": w.scorecard, "rule": w.rule,
                "reason": "soak", "until": until,
            });
            let sent = Instant::now();
            let answer = http
                .send(
                    Method::POST,
                    "/v1/exemptions",
                    Some(&owner_token(&w.team)),
                    Some(&body),
                )
                .await;
            match answer {
                Ok((status, _)) if status.is_success() => Some(sent.elapsed()),
                _ => None,
            }
        });
    }
    let mut run = WriteRun {
        latency_ms: Samples::new(),
        acknowledged: 0,
        failed: 0,
    };
    while let Some(done) = tasks.join_next().await {
        match done.ok().flatten() {
            Some(latency) => {
                run.acknowledged += 1;
                run.latency_ms.push(latency.as_secs_f64() * 1e3);
            }
            None => run.failed += 1,
        }
    }
    run
}

fn load_rows(section: &mut Section, what: &str, run: &mut LoadRun) {
    let pct = |samples: &mut Samples, p: f64| samples.percentile(p) / 1e3;
    let (p50, p99, p999) = (
        pct(&mut run.latency_us, 50.0),
        pct(&mut run.latency_us, 99.0),
        pct(&mut run.latency_us, 99.9),
    );
    section.rows.push(Row::value(
        &format!("{what}: p50 / p99 / p99.9"),
        format!("{} / {} / {} ms", fmt_num(p50), fmt_num(p99), fmt_num(p999)),
    ));
    section.rows.push(Row::value(
        &format!("{what}: answered at"),
        format!("{} req/s", fmt_num(run.achieved_rate)),
    ));
    section.rows.push(Row::value(
        &format!("{what}: failed requests"),
        format!("{} of {}", run.failed, run.sent),
    ));
}

/// The soak: `seconds` of mixed load on the child daemon `pid`, a scorecard replaced halfway.
pub async fn measure(
    http: &Http,
    pid: u32,
    org: &Org,
    standards: &Path,
    seconds: u64,
) -> anyhow::Result<Section> {
    let duration = Duration::from_secs(seconds);
    let mut section = Section::new(
        "Soak: mixed load with a hot reload (child daemon)",
        format!(
            "{seconds} s of open-loop load at once: `GET /v1/gate/{{id}}` at {} req/s and `GET \
             /v1/entities/{{id}}/scores` at {} req/s over every entity, `GET /v1/scorecards` \
             (aggregates all results) at {} req/s, and `POST /v1/exemptions` by the owning team \
             at {} req/s (each a durable write, a distinct failing rule). Halfway through, \
             `documentation.yaml` is replaced by rename with a version carrying one more rule, \
             which re-evaluates every entity. The daemon's VmRSS is read every second.",
            fmt_num(GATE_RATE),
            fmt_num(SCORES_RATE),
            fmt_num(LIST_RATE),
            fmt_num(WRITE_RATE),
        ),
    );
    let wanted = (WRITE_RATE * seconds as f64).ceil() as usize;
    let writes = writes(http, org, wanted).await?;
    if writes.len() < wanted {
        section.notes.push(format!(
            "Only {} distinct failing rules were found for exemption requests; writes stopped \
             after them.",
            writes.len()
        ));
    }
    let gate: Arc<Vec<String>> = Arc::new(
        org.entities
            .iter()
            .map(|e| format!("/v1/gate/{}", e.identifier))
            .collect(),
    );
    let scores: Arc<Vec<String>> = Arc::new(
        org.entities
            .iter()
            .map(|e| format!("/v1/entities/{}/scores", e.identifier))
            .collect(),
    );
    let list: Arc<Vec<String>> = Arc::new(vec!["/v1/scorecards".to_owned()]);

    let rss_before = rss_kib(pid).map_or(0, |(rss, _)| rss);
    let sampling = {
        let stop = Instant::now() + duration + Duration::from_secs(1);
        tokio::spawn(async move {
            let mut samples: Vec<(u64, u64)> = Vec::new();
            let start = Instant::now();
            while Instant::now() < stop {
                if let Some((rss, _)) = rss_kib(pid) {
                    samples.push((start.elapsed().as_secs(), rss));
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            samples
        })
    };
    let reload = {
        let target = standards.join("scorecards").join("documentation.yaml");
        let text = to_yaml(&swapped_documentation(9_999))?;
        tokio::spawn(async move {
            tokio::time::sleep(duration / 2).await;
            let tmp = target.with_file_name(".documentation.yaml.soak");
            std::fs::write(&tmp, text.as_bytes())?;
            std::fs::rename(&tmp, &target)?;
            Ok::<_, std::io::Error>(())
        })
    };
    let (mut gate_run, mut scores_run, mut list_run, mut write_run) = tokio::join!(
        open_loop(http, gate, GATE_RATE, duration),
        open_loop(http, scores, SCORES_RATE, duration),
        open_loop(http, list, LIST_RATE, duration),
        send_writes(http, writes, duration),
    );
    reload
        .await
        .map_err(|e| anyhow!("the reload task: {e}"))?
        .map_err(|e| anyhow!("replacing documentation.yaml: {e}"))?;
    let rss = sampling
        .await
        .map_err(|e| anyhow!("the memory sampler: {e}"))?;

    // The replaced scorecard is in force (its new rule is listed) once the load is over.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let view = http.get_json("/v1/scorecards/documentation").await?;
        let has = view["rules"]
            .as_array()
            .is_some_and(|rules| rules.iter().any(|r| r["identifier"] == "swap-9999"));
        if has {
            break;
        }
        if Instant::now() > deadline {
            return Err(anyhow!(
                "the scorecard replaced during the soak was not in force"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    load_rows(&mut section, "GET /v1/gate/{id}", &mut gate_run);
    load_rows(
        &mut section,
        "GET /v1/entities/{id}/scores",
        &mut scores_run,
    );
    load_rows(&mut section, "GET /v1/scorecards", &mut list_run);
    section.rows.push(Row::value(
        "POST /v1/exemptions: p50 / p99 (durable commit)",
        format!(
            "{} / {} ms",
            fmt_num(write_run.latency_ms.percentile(50.0)),
            fmt_num(write_run.latency_ms.percentile(99.0))
        ),
    ));
    section.rows.push(Row::value(
        "POST /v1/exemptions: acknowledged / failed",
        format!("{} / {}", write_run.acknowledged, write_run.failed),
    ));
    let mib = |kib: u64| kib as f64 / 1024.0;
    let mut over_time = Samples::from_values(rss.iter().map(|(_, kib)| mib(*kib)));
    section.rows.push(Row::value(
        "daemon RSS before the soak",
        format!("{} MiB", fmt_num(mib(rss_before))),
    ));
    let (low, high) = over_time
        .values()
        .iter()
        .fold((f64::MAX, 0.0_f64), |(l, h), v| (l.min(*v), h.max(*v)));
    section.rows.push(Row::value(
        &format!(
            "daemon RSS during the soak: min / median / max of {} samples, 1 s apart",
            over_time.values().len()
        ),
        format!(
            "{} / {} / {} MiB",
            fmt_num(low),
            fmt_num(over_time.median()),
            fmt_num(high)
        ),
    ));
    if let Some((_, last)) = rss.last() {
        section.rows.push(Row::value(
            "daemon RSS at the end",
            format!("{} MiB", fmt_num(mib(*last))),
        ));
    }
    let step = (rss.len() / 12).max(1);
    let trace: Vec<String> = rss
        .iter()
        .step_by(step)
        .map(|(s, kib)| format!("{s} s: {} MiB", fmt_num(mib(*kib))))
        .collect();
    section
        .notes
        .push(format!("RSS over time: {}.", trace.join(", ")));
    Ok(section)
}
