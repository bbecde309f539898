//! Automation in the child daemon: a standards change that degrades one entity in ten, until
//! every task (and the outbox entries committed in the same transaction) is committed, then
//! the delivery of the notifications to a local receiver on 127.0.0.1.
//!
//! The change replaces the `canary` scorecard, which every tier requires at Bronze, with a
//! version whose Bronze rule fails for the entities of `bench_group` 7. The daemon routes the
//! `canary` scorecard's events to a generic webhook channel pointing at the receiver.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};

use crate::client::Http;
use crate::daemon::Receiver;
use crate::org::{canary_scorecard, to_yaml};
use crate::report::{Row, Section};
use crate::stats::{Samples, fmt_num};

async fn open_tasks(http: &Http) -> anyhow::Result<u64> {
    let status = http.get_json("/v1/status").await?;
    status["open_tasks"]
        .as_u64()
        .ok_or_else(|| anyhow!("/v1/status has no `open_tasks`: {status}"))
}

async fn outbox_pending(http: &Http) -> anyhow::Result<f64> {
    let text = http.get_text("/metrics").await?;
    Ok(text
        .lines()
        .find_map(|l| {
            l.strip_prefix("readyd_outbox_pending")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0.0))
}

/// What one degrading change caused: when its tasks were committed and when each notification
/// reached the receiver.
#[derive(Debug)]
pub struct Delivery {
    /// Change → every task and outbox entry committed.
    pub committed: Duration,
    /// The moment of the rename.
    pub started: Instant,
    /// Arrival of each notification at the receiver, in order.
    pub arrivals: Vec<Instant>,
}

impl Delivery {
    /// Notifications per second, first to last (none with fewer than two).
    pub fn throughput(&self) -> Option<f64> {
        match (self.arrivals.first(), self.arrivals.last()) {
            (Some(first), Some(last)) if self.arrivals.len() > 1 => {
                let span = last.duration_since(*first).as_secs_f64();
                Some(self.arrivals.len() as f64 / span.max(1e-6))
            }
            _ => None,
        }
    }
}

/// Makes the degrading change and waits for its tasks, then for its notifications: until the
/// outbox is empty and nothing arrived for 2 s (at most 300 s). `degraded` is how many entities
/// the change makes fail (the size of `bench_group` 7).
pub async fn deliver(
    http: &Http,
    receiver: &Receiver,
    standards: &Path,
    degraded: usize,
) -> anyhow::Result<Delivery> {
    let baseline = open_tasks(http).await?;
    let file = standards.join("scorecards").join("canary.yaml");
    let tmp = file.with_file_name(".canary.yaml.tmp");
    std::fs::write(&tmp, to_yaml(&canary_scorecard(true))?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    let before = receiver.arrivals("/hook").len();
    let started = Instant::now();
    std::fs::rename(&tmp, &file).with_context(|| format!("renaming onto {}", file.display()))?;
    let target = baseline + degraded as u64;
    let deadline = started + Duration::from_secs(120);
    let committed = loop {
        let now = open_tasks(http).await?;
        if now >= target {
            break started.elapsed();
        }
        if Instant::now() > deadline {
            return Err(anyhow!(
                "{} of {degraded} tasks were committed within 120 s",
                now.saturating_sub(baseline)
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    // Deliveries: until the outbox is empty and nothing arrived for 2 s.
    let deadline = started + Duration::from_secs(300);
    let mut last_count = 0;
    let mut quiet_since = Instant::now();
    loop {
        let count = receiver.arrivals("/hook").len() - before;
        if count != last_count {
            last_count = count;
            quiet_since = Instant::now();
        }
        if count > 0
            && quiet_since.elapsed() > Duration::from_secs(2)
            && outbox_pending(http).await? == 0.0
        {
            break;
        }
        if Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let arrivals: Vec<Instant> = receiver
        .arrivals("/hook")
        .into_iter()
        .skip(before)
        .collect();
    Ok(Delivery {
        committed,
        started,
        arrivals,
    })
}

/// The degrading change and the deliveries it causes. `degraded` is how many entities the
/// change makes fail (the size of `bench_group` 7).
pub async fn measure(
    http: &Http,
    receiver: &Receiver,
    standards: &Path,
    entities: usize,
    degraded: usize,
) -> anyhow::Result<Section> {
    let mut section = Section::new(
        "Automation",
        format!(
            "`canary.yaml` (required at Bronze by every tier) replaced by rename with a version \
             whose Bronze rule fails for {degraded} of {entities} entities. Committed: when \
             `/v1/status` counts the {degraded} new open tasks (tasks, events and outbox entries \
             are committed in one transaction with the results). Delivery: the `canary` events \
             go to a generic JSON webhook (HMAC-signed) served on 127.0.0.1 by this process; \
             counted until the outbox is empty and no notification arrived for 2 s."
        ),
    );
    let Delivery {
        committed,
        started,
        arrivals,
    } = deliver(http, receiver, standards, degraded).await?;
    let mut committed_ms = Samples::from_values([committed.as_secs_f64() * 1e3]);
    section.rows.push(Row::info(
        &format!("change → {degraded} tasks and their outbox entries committed"),
        "ms",
        &mut committed_ms,
    ));
    match (arrivals.first(), arrivals.last()) {
        (Some(first), Some(last)) if arrivals.len() > 1 => {
            let span = last.duration_since(*first).as_secs_f64();
            section.rows.push(Row::value(
                "notifications delivered",
                fmt_num(arrivals.len() as f64),
            ));
            section.rows.push(Row::value(
                "first notification after the change",
                format!(
                    "{} ms",
                    fmt_num(first.duration_since(started).as_secs_f64() * 1e3)
                ),
            ));
            section.rows.push(Row::value(
                "delivery throughput (first to last notification)",
                format!("{}/s", fmt_num(arrivals.len() as f64 / span.max(1e-6))),
            ));
        }
        _ => section.rows.push(Row::not_measured(
            "delivery throughput",
            "–",
            format!("{} notification(s) reached the receiver", arrivals.len()),
        )),
    }
    Ok(section)
}
