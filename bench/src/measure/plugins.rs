//! The plugin host: loading each shipped plugin (cold compile, and from the on-disk cache),
//! instantiation, a warm call of a trivial check against the same logic as a native Rust
//! function, and calls per second on every core — all through `readyd::plugin`'s public API.
//!
//! Instantiation is not a public operation of the host, so it is observed: a host sized for one
//! running instance keeps no idle instance, so each of its calls instantiates a fresh store from
//! the pool, runs `init` and calls; that time minus a warm call's is the instantiation (with
//! `init`, which a no-op plugin makes negligible).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, anyhow};
use readyd::model::{CheckOutcome, Entity, RuleStatus};
use readyd::plugin::{CheckInput, HostConfig, Manifest, Plugin, PluginHost};
use serde_json::{Value, json};

use crate::org::Org;
use crate::report::{Goal, Row, Section};
use crate::stats::{Samples, fmt_num};

/// Shipped plugins (package name, manifest name), then the no-op fixture.
pub const PLUGINS: [(&str, &str); 6] = [
    ("dependency-policy", "dependency-policy"),
    ("http-json", "http-json"),
    ("prometheus", "prometheus"),
    ("repo-scan", "repo-scan"),
    ("slo-budget", "slo-budget"),
    ("fixture-noop-check", "noop-check"),
];

/// The compiled component of a plugin package.
pub fn artifact(package: &str) -> anyhow::Result<PathBuf> {
    readyd_plugin_artifacts::ALL
        .iter()
        .find(|(name, _)| *name == package)
        .map(|(_, path)| PathBuf::from(path))
        .ok_or_else(|| anyhow!("no compiled component for plugin package {package}"))
}

/// Writes a manifest per plugin of [`PLUGINS`] into `dir`, with the configuration its `init`
/// needs (data sources point at 127.0.0.1:9, which is never called: loading does not collect).
pub fn write_manifests(dir: &Path) -> anyhow::Result<()> {
    let repos = dir.join("repos");
    std::fs::create_dir_all(&repos).with_context(|| format!("creating {}", repos.display()))?;
    for (package, name) in PLUGINS {
        let wasm = artifact(package)?;
        let wasm = wasm.display();
        let text = match name {
            "http-json" => format!(
                "name = \"{name}\"\nkind = \"data-source\"\nwasm = \"{wasm}\"\n\n[capabilities]\nhttp = [\"127.0.0.1:9\"]\n\n[config]\nurl = \"http://127.0.0.1:9/status/{{identifier}}\"\nfacts = {{ status = \"/status\" }}\n"
            ),
            "prometheus" => format!(
                "name = \"{name}\"\nkind = \"data-source\"\nwasm = \"{wasm}\"\n\n[capabilities]\nhttp = [\"127.0.0.1:9\"]\n\n[config]\nurl = \"http://127.0.0.1:9\"\n\n[config.queries]\navailability = 'avg_over_time(up{{service=\"{{identifier}}\"}}[30d])'\n"
            ),
            "repo-scan" => format!(
                "name = \"{name}\"\nkind = \"data-source\"\nwasm = \"{wasm}\"\n\n[capabilities]\ndirs = {{ \"/repos\" = \"repos\" }}\n\n[config]\nroot = \"/repos\"\n"
            ),
            _ => format!("name = \"{name}\"\nkind = \"check\"\nwasm = \"{wasm}\"\n"),
        };
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The manifest `name` written by [`write_manifests`].
pub fn manifest_for(dir: &Path, name: &str) -> anyhow::Result<Manifest> {
    Manifest::from_file(&dir.join(format!("{name}.toml"))).map_err(|e| anyhow!("{e}"))
}

/// The no-op check's logic as a native function: what the wasm call is compared with.
pub fn native_noop(_entity: &Entity, _facts: &Value, params: &Value) -> CheckOutcome {
    let message = params
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("noop")
        .to_owned();
    let status = match params.get("status").and_then(Value::as_str) {
        None | Some("pass") => RuleStatus::Pass,
        Some("fail") => RuleStatus::Fail,
        Some("warn") => RuleStatus::Warn,
        Some("not_applicable") => RuleStatus::NotApplicable,
        Some(_) => RuleStatus::Error,
    };
    CheckOutcome {
        status,
        message: Some(message),
        details: None,
    }
}

/// How many of each measurement.
#[derive(Clone, Copy, Debug)]
pub struct PluginRuns {
    pub cold: usize,
    pub cached: usize,
    pub rounds: usize,
    pub calls: usize,
}

async fn load(host: &PluginHost, dir: &Path, name: &str) -> anyhow::Result<Arc<Plugin>> {
    let manifest = manifest_for(dir, name)?;
    host.load(manifest)
        .await
        .map_err(|e| anyhow!("loading {name}: {e}"))
}

/// Every plugin measurement. `manifests` holds [`write_manifests`]'s output; `scratch` is for
/// caches.
pub async fn measure(
    org: &Org,
    manifests: &Path,
    scratch: &Path,
    runs: PluginRuns,
) -> anyhow::Result<Section> {
    let mut section = Section::new(
        "Plugins",
        format!(
            "Through `readyd::plugin::PluginHost` (one wasmtime engine, pooling allocator, epoch \
             deadlines). A load is `PluginHost::load`: read, hash, compile or load the cached \
             artifact, check the contract, pre-instantiate, and the smoke test (instantiate + \
             `init`). Cold: {} load(s) per plugin without a cache; cached: {} loads per plugin \
             from a warm on-disk cache. Calls use a real entity of the organisation with its facts. \
             In a batch, as the evaluator calls, the entity (properties and facts) is encoded for \
             the wire once per pass and a rule's params once per pass, so a batched call is the \
             call itself; that encoding is measured on its own row. `Plugin::evaluate` encodes \
             per call. The SDK parses properties and facts inside the plugin only when the check \
             reads them: {} rounds of {} calls.",
            runs.cold, runs.cached, runs.rounds, runs.calls
        ),
    );
    let cold_host = PluginHost::new(HostConfig::default()).map_err(|e| anyhow!("{e}"))?;
    let cache = scratch.join("plugin-cache");
    let cached_host = PluginHost::new(HostConfig {
        cache_dir: Some(cache.clone()),
        ..HostConfig::default()
    })
    .map_err(|e| anyhow!("{e}"))?;
    for (package, name) in PLUGINS {
        let size = std::fs::metadata(artifact(package)?)
            .map(|m| m.len())
            .unwrap_or(0);
        let mut cold = Samples::new();
        for _ in 0..runs.cold {
            let started = Instant::now();
            let plugin = load(&cold_host, manifests, name).await?;
            cold.push(started.elapsed().as_secs_f64() * 1e3);
            drop(plugin);
        }
        section.rows.push(Row::info(
            &format!(
                "{name} ({} KiB): cold load, compile included",
                fmt_num(size as f64 / 1024.0)
            ),
            "ms",
            &mut cold,
        ));
        drop(load(&cached_host, manifests, name).await?);
        let mut cached = Samples::new();
        for _ in 0..runs.cached {
            let started = Instant::now();
            let plugin = load(&cached_host, manifests, name).await?;
            cached.push(started.elapsed().as_secs_f64() * 1e3);
            if !plugin.loaded_from_cache() {
                return Err(anyhow!(
                    "{name} was compiled again although its artifact is cached"
                ));
            }
        }
        section.rows.push(Row::target(
            &format!("{name}: cached load"),
            Goal::Below(10.0),
            "ms",
            &mut cached,
        ));
    }

    let entity = org
        .entities
        .iter()
        .find(|e| e.kind == "service" && org.facts.get(&e.identifier).is_some_and(|f| f.len() == 3))
        .or_else(|| org.entities.first())
        .ok_or_else(|| anyhow!("the organisation has no entity"))?
        .clone();
    let facts = crate::measure::evaluation::facts_as_json(org.facts_of(&entity.identifier));
    let params = json!({});

    // Warm: the default host keeps instances warm between calls.
    let noop = load(&cached_host, manifests, "noop-check").await?;
    let slo = load(&cached_host, manifests, "slo-budget").await?;
    let slo_params = json!({ "source": "prometheus" });
    // A batch as the evaluator makes it: the entity encoded for the wire once per pass, the
    // params once per rule; the encoding is measured on its own below.
    let input = CheckInput::with_facts_json(
        &entity,
        readyd::engine::facts_json_text(org.facts_of(&entity.identifier)),
    )
    .map_err(|e| anyhow!("{e}"))?;
    let params_text = readyd::plugin::encode_params(&params).map_err(|e| anyhow!("{e}"))?;
    let slo_params_text = readyd::plugin::encode_params(&slo_params).map_err(|e| anyhow!("{e}"))?;
    let calls: Vec<_> = (0..runs.calls).map(|_| (&input, &params_text)).collect();
    let slo_calls: Vec<_> = (0..runs.calls)
        .map(|_| (&input, &slo_params_text))
        .collect();
    let mut encoding = Samples::new();
    let (mut single, mut batch, mut slo_batch, mut native) = (
        Samples::new(),
        Samples::new(),
        Samples::new(),
        Samples::new(),
    );
    for _ in 0..runs.rounds {
        let started = Instant::now();
        for _ in 0..runs.calls {
            let outcome = noop
                .evaluate(&entity, &facts, &params)
                .await
                .map_err(|e| anyhow!("{e}"))?;
            std::hint::black_box(outcome);
        }
        single.push(started.elapsed().as_secs_f64() * 1e6 / runs.calls as f64);

        let started = Instant::now();
        for _ in 0..runs.calls {
            let facts = readyd::engine::facts_json_text(org.facts_of(&entity.identifier));
            std::hint::black_box(
                CheckInput::with_facts_json(std::hint::black_box(&entity), facts)
                    .map_err(|e| anyhow!("{e}"))?,
            );
        }
        encoding.push(started.elapsed().as_secs_f64() * 1e6 / runs.calls as f64);

        let started = Instant::now();
        let answers = noop.evaluate_batch(&calls).await;
        batch.push(started.elapsed().as_secs_f64() * 1e6 / runs.calls as f64);
        if let Some(Err(e)) = answers.iter().find(|a| a.is_err()) {
            return Err(anyhow!("noop-check failed in a batch: {e}"));
        }

        let started = Instant::now();
        let answers = slo.evaluate_batch(&slo_calls).await;
        slo_batch.push(started.elapsed().as_secs_f64() * 1e6 / runs.calls as f64);
        if let Some(Err(e)) = answers.iter().find(|a| a.is_err()) {
            return Err(anyhow!("slo-budget failed in a batch: {e}"));
        }

        let started = Instant::now();
        for _ in 0..runs.calls {
            std::hint::black_box(native_noop(
                std::hint::black_box(&entity),
                &facts,
                std::hint::black_box(&params),
            ));
        }
        native.push(started.elapsed().as_secs_f64() * 1e6 / runs.calls as f64);
    }

    // Fresh: a host with room for one running instance and none idle.
    let fresh_host = PluginHost::new(HostConfig {
        cache_dir: Some(cache),
        max_instances: 1,
        ..HostConfig::default()
    })
    .map_err(|e| anyhow!("{e}"))?;
    let fresh_noop = load(&fresh_host, manifests, "noop-check").await?;
    let fresh_calls = (runs.calls / 10).max(10);
    let mut fresh = Samples::new();
    for _ in 0..runs.rounds {
        let started = Instant::now();
        for _ in 0..fresh_calls {
            let outcome = fresh_noop
                .evaluate(&entity, &facts, &params)
                .await
                .map_err(|e| anyhow!("{e}"))?;
            std::hint::black_box(outcome);
        }
        fresh.push(started.elapsed().as_secs_f64() * 1e6 / fresh_calls as f64);
    }
    let warm_single = single.median();
    let mut instantiation = Samples::from_values(fresh.values().iter().map(|f| f - warm_single));

    // Every core: two callers at once, each with its own warm instance.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut throughput = Samples::new();
    for _ in 0..runs.rounds {
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..cores {
            let plugin = noop.clone();
            let input = input.clone();
            let n = runs.calls;
            tasks.spawn(async move {
                let params = "{}".to_string();
                let calls: Vec<_> = (0..n).map(|_| (&input, &params)).collect();
                plugin
                    .evaluate_batch(&calls)
                    .await
                    .iter()
                    .filter(|a| a.is_ok())
                    .count()
            });
        }
        let mut ok = 0;
        while let Some(done) = tasks.join_next().await {
            ok += done.context("a calling task failed")?;
        }
        throughput.push(ok as f64 / started.elapsed().as_secs_f64() / 1e6);
    }

    let mut ratio = Samples::from_values([batch.median() / native.median()]);
    section.rows.push(Row::target(
        "noop-check: warm call (in a batch, as the evaluator calls)",
        Goal::Below(2.0),
        "µs",
        &mut batch,
    ));
    section.rows.push(Row::info(
        "encoding one entity and its facts for the wire (once per entity and pass)",
        "µs",
        &mut encoding,
    ));
    section.rows.push(Row::info(
        "noop-check: warm call (`Plugin::evaluate`, one at a time, encoding included)",
        "µs",
        &mut single,
    ));
    section.rows.push(Row::info(
        "the same logic as a native Rust function",
        "µs",
        &mut native,
    ));
    section
        .rows
        .push(Row::info("warm wasm call / native call", "×", &mut ratio));
    section.rows.push(Row::info(
        "slo-budget: warm call (in a batch)",
        "µs",
        &mut slo_batch,
    ));
    section.rows.push(Row::info(
        "noop-check: call on a fresh instance (instantiate + `init` + call)",
        "µs",
        &mut fresh,
    ));
    section.rows.push(Row::target(
        "instantiation from the pool (fresh call − warm call)",
        Goal::Below(50.0),
        "µs",
        &mut instantiation,
    ));
    section.rows.push(Row::info(
        &format!("noop-check calls per second, {cores} concurrent callers"),
        "M/s",
        &mut throughput,
    ));
    Ok(section)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_noop_mirrors_the_fixture() {
        let e = Entity {
            identifier: "a".into(),
            kind: "service".into(),
            title: "a".into(),
            team: None,
            tier: None,
            properties: Default::default(),
            relations: Default::default(),
        };
        let pass = native_noop(&e, &json!({}), &json!({}));
        assert_eq!(
            (pass.status, pass.message.as_deref()),
            (RuleStatus::Pass, Some("noop"))
        );
        let fail = native_noop(&e, &json!({}), &json!({ "status": "fail", "message": "m" }));
        assert_eq!(
            (fail.status, fail.message.as_deref()),
            (RuleStatus::Fail, Some("m"))
        );
    }
}
