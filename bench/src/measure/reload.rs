//! Hot reload in the child daemon: a scorecard file replaced by rename, and a new build of a
//! check plugin put in place by rename, until the new results are served for every entity —
//! with gate traffic running throughout to count failed requests during the swaps.
//!
//! The split is what the daemon exposes: the debounce is its configuration; evaluation,
//! commit and (for a plugin) its load — compile, contract check, smoke test — are the growth
//! of `readyd_evaluation_pass_seconds_sum`, `readyd_store_commit_seconds_sum` and
//! `readyd_plugin_load_seconds_sum` on `/metrics` across the swap; the rest (detection,
//! parsing, planning tasks and alerts, swapping, answering) is the remainder.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use readyd::model::ScorecardResult;
use serde_json::Value;

use crate::client::{Http, open_loop};
use crate::org::{swapped_documentation, to_yaml};
use crate::report::{Goal, Row, Section};
use crate::stats::Samples;

/// What the swaps need to know about the child daemon.
pub struct ReloadSetup {
    pub standards: PathBuf,
    pub plugins: PathBuf,
    pub debounce_ms: u64,
    /// The entity whose results are watched.
    pub sample: String,
    pub entities: usize,
    /// The no-op check's component.
    pub noop_wasm: PathBuf,
}

/// The plugin manifest of build `k` of the no-op check (`noop-check-v<k>.wasm`, marker `v<k>`).
pub fn noop_manifest(k: usize) -> String {
    format!(
        "name = \"noop-check\"\nkind = \"check\"\nwasm = \"noop-check-v{k}.wasm\"\n\n[config]\nmarker = \"v{k}\"\n"
    )
}

/// The component with a custom section naming build `k` appended: the same code, another file
/// hash, so the daemon compiles it as a new plugin version rather than reusing its cache.
pub fn noop_build(wasm: &[u8], k: usize) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let name = b"readyd-bench-build";
    let payload = format!("v{k}");
    let mut content = Vec::new();
    leb(name.len(), &mut content);
    content.extend_from_slice(name);
    content.extend_from_slice(payload.as_bytes());
    let mut out = wasm.to_vec();
    out.push(0);
    leb(content.len(), &mut out);
    out.extend_from_slice(&content);
    out
}

/// Writes `bytes` beside `target` under a hidden temporary name (never loaded), then renames it
/// into place; returns the moment of the rename.
fn replace(target: &Path, bytes: &[u8]) -> anyhow::Result<Instant> {
    let name = target
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("file");
    let tmp = target.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    let at = Instant::now();
    std::fs::rename(&tmp, target).with_context(|| format!("renaming onto {}", target.display()))?;
    Ok(at)
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(name)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

/// (evaluation, commit, plugin load) seconds so far, from `/metrics`.
async fn counters(http: &Http) -> anyhow::Result<(f64, f64, f64)> {
    let text = http.get_text("/metrics").await?;
    Ok((
        metric(&text, "readyd_evaluation_pass_seconds_sum"),
        metric(&text, "readyd_store_commit_seconds_sum"),
        metric(&text, "readyd_plugin_load_seconds_sum"),
    ))
}

async fn sample_results(http: &Http, id: &str) -> anyhow::Result<Vec<ScorecardResult>> {
    let answer = http.get_json(&format!("/v1/entities/{id}/scores")).await?;
    serde_json::from_value(answer).context("reading a scores answer")
}

/// Polls the sample entity until `seen` holds; the time since `from`.
async fn wait_for(
    http: &Http,
    sample: &str,
    from: Instant,
    what: &str,
    seen: impl Fn(&[ScorecardResult]) -> bool,
) -> anyhow::Result<Duration> {
    let deadline = from + Duration::from_secs(30);
    loop {
        if seen(&sample_results(http, sample).await?) {
            return Ok(from.elapsed());
        }
        if Instant::now() > deadline {
            let status = http.get_json("/v1/status").await.unwrap_or(Value::Null);
            return Err(anyhow!(
                "{what} was not in force within 30 s; /v1/status: {status}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// One kind of swap's samples.
#[derive(Default)]
struct Swaps {
    total: Samples,
    evaluate: Samples,
    commit: Samples,
    /// Plugin loads (compile, checks, smoke test); zero for a scorecard swap.
    load: Samples,
    rest: Samples,
}

impl Swaps {
    fn record(
        &mut self,
        total: Duration,
        before: (f64, f64, f64),
        after: (f64, f64, f64),
        debounce_ms: u64,
    ) {
        let t = total.as_secs_f64() * 1e3;
        let e = (after.0 - before.0) * 1e3;
        let c = (after.1 - before.1) * 1e3;
        let l = (after.2 - before.2) * 1e3;
        self.total.push(t);
        self.evaluate.push(e);
        self.commit.push(c);
        self.load.push(l);
        self.rest.push(t - e - c - l - debounce_ms as f64);
    }

    fn rows(&mut self, section: &mut Section, what: &str, entities: usize, debounce_ms: u64) {
        let mut p99 = Samples::from_values([self.total.percentile(99.0)]);
        section.rows.push(Row::target(
            &format!("{what} → in force for {entities} entities, median"),
            Goal::Below(1000.0),
            "ms",
            &mut self.total,
        ));
        section.rows.push(Row::target(
            &format!("{what}: p99 of the swaps"),
            Goal::Below(1000.0),
            "ms",
            &mut p99,
        ));
        section.rows.push(Row::value(
            &format!("{what}: debounce (configured)"),
            format!("{debounce_ms} ms"),
        ));
        section.rows.push(Row::info(
            &format!("{what}: evaluate (from /metrics)"),
            "ms",
            &mut self.evaluate,
        ));
        section.rows.push(Row::info(
            &format!("{what}: commit (from /metrics)"),
            "ms",
            &mut self.commit,
        ));
        if self.load.values().iter().any(|l| *l > 0.0) {
            section.rows.push(Row::info(
                &format!("{what}: load — compile, checks, smoke test (from /metrics)"),
                "ms",
                &mut self.load,
            ));
        }
        section.rows.push(Row::info(
            &format!("{what}: detect, parse, plan, swap, serve (remainder)"),
            "ms",
            &mut self.rest,
        ));
    }
}

/// Replaced scorecards, then new plugin builds, `swaps` of each.
pub async fn measure(http: &Http, setup: &ReloadSetup, swaps: usize) -> anyhow::Result<Section> {
    let mut section = Section::new(
        "Hot reload (child daemon, file watching)",
        format!(
            "Scorecard: `documentation.yaml` replaced by rename (written as a hidden temporary \
             file first) with a version carrying one more rule, `swap-<k>`; in force when the \
             watched entity's results hold `swap-<k>`, then checked for all {} entities through \
             `GET /v1/scorecards/documentation`. Plugin: a new build of the no-op check (the same \
             code with a custom section naming the build, so a new hash and a real compile) put \
             in place by rename, then its manifest replaced by rename to point at it; in force \
             when the `canary/plugin-marker` message names the build. {swaps} swaps of each, \
             while gate requests run at 500 req/s.",
            setup.entities
        ),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let background = {
        let http = http.clone();
        let stop = stop.clone();
        let paths = Arc::new(vec![format!("/v1/gate/{}", setup.sample)]);
        tokio::spawn(async move {
            let (mut sent, mut failed) = (0usize, 0usize);
            while !stop.load(Ordering::Relaxed) {
                let run = open_loop(&http, paths.clone(), 500.0, Duration::from_millis(500)).await;
                sent += run.sent;
                failed += run.failed;
            }
            (sent, failed)
        })
    };

    let result = async {
        let mut scorecards = Swaps::default();
        let card_file = setup
            .standards
            .join("scorecards")
            .join("documentation.yaml");
        for k in 1..=swaps {
            let rule = format!("swap-{k}");
            let text = to_yaml(&swapped_documentation(k))?;
            let before = counters(http).await?;
            let at = replace(&card_file, text.as_bytes())?;
            let total = wait_for(http, &setup.sample, at, &rule, |results| {
                results.iter().any(|r| {
                    r.scorecard == "documentation" && r.rules.iter().any(|x| *x.rule == *rule)
                })
            })
            .await?;
            let after = counters(http).await?;
            scorecards.record(total, before, after, setup.debounce_ms);
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let view = http.get_json("/v1/scorecards/documentation").await?;
                let applicable = view["rules"]
                    .as_array()
                    .and_then(|rules| rules.iter().find(|r| r["identifier"] == rule.as_str()))
                    .and_then(|r| r["applicable"].as_u64())
                    .unwrap_or(0);
                if applicable as usize == setup.entities {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(anyhow!(
                        "{rule} applies to {applicable} of {} entities after 30 s",
                        setup.entities
                    ));
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            tokio::time::sleep(Duration::from_millis(2 * setup.debounce_ms)).await;
        }
        scorecards.rows(
            &mut section,
            "scorecard replaced",
            setup.entities,
            setup.debounce_ms,
        );

        let wasm = std::fs::read(&setup.noop_wasm)
            .with_context(|| format!("reading {}", setup.noop_wasm.display()))?;
        let mut plugins = Swaps::default();
        let manifest = setup.plugins.join("noop-check.toml");
        for k in 1..=swaps {
            replace(
                &setup.plugins.join(format!("noop-check-v{k}.wasm")),
                &noop_build(&wasm, k),
            )?;
            tokio::time::sleep(Duration::from_millis(2 * setup.debounce_ms)).await;
            let marker = format!("(v{k})");
            let before = counters(http).await?;
            let at = replace(&manifest, noop_manifest(k).as_bytes())?;
            let total = wait_for(
                http,
                &setup.sample,
                at,
                &format!("plugin build v{k}"),
                |results| {
                    results.iter().any(|r| {
                        r.scorecard == "canary"
                            && r.rules.iter().any(|x| {
                                &*x.rule == "plugin-marker"
                                    && x.message.as_deref().is_some_and(|m| m.contains(&marker))
                            })
                    })
                },
            )
            .await?;
            let after = counters(http).await?;
            plugins.record(total, before, after, setup.debounce_ms);
            tokio::time::sleep(Duration::from_millis(2 * setup.debounce_ms)).await;
        }
        plugins.rows(
            &mut section,
            "plugin build replaced",
            setup.entities,
            setup.debounce_ms,
        );
        Ok::<_, anyhow::Error>(())
    }
    .await;
    stop.store(true, Ordering::Relaxed);
    let (sent, failed) = background.await.context("the background load panicked")?;
    result?;
    let mut failures = Samples::from_values([failed as f64]);
    let mut row = Row::target(
        "failed API requests during the swaps",
        Goal::Below(0.5),
        "",
        &mut failures,
    );
    row.target = "0".into();
    row.median = format!("{failed} of {sent}");
    row.spread = "–".into();
    section.rows.push(row);
    Ok(section)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_differs_only_by_a_trailing_custom_section() {
        let base = b"\0asm\x0d\x00\x01\x00".to_vec();
        let built = noop_build(&base, 3);
        assert!(built.starts_with(&base));
        let section = &built[base.len()..];
        assert_eq!(section[0], 0, "custom section id");
        assert_eq!(
            section[1] as usize,
            section.len() - 2,
            "size covers the content"
        );
        assert_eq!(section[2] as usize, "readyd-bench-build".len());
        assert!(section.ends_with(b"v3"));
        assert_ne!(noop_build(&base, 1), noop_build(&base, 2));
        assert!(noop_manifest(2).contains("noop-check-v2.wasm"));
    }

    #[test]
    fn reads_prometheus_sums() {
        let text = "# HELP x\nreadyd_evaluation_pass_seconds_sum 1.5\nreadyd_evaluation_pass_seconds_count 3\n";
        assert_eq!(metric(text, "readyd_evaluation_pass_seconds_sum"), 1.5);
        assert_eq!(metric(text, "readyd_store_commit_seconds_sum"), 0.0);
    }
}
