//! The harness: one run of every measurement on one generated organisation, in an order that
//! lets each phase hand its state to the next, and the [`Report`] they make.
//!
//! Order: generate → peers (the agreement check first: a run whose engines disagree is a failed
//! run) → pure evaluator → seed a store → full pass with commit → plugins → plugin rules in a
//! pass → engine in process → child daemon (API, exemptions, hot reload, automation) → two more
//! child daemons, plain HTTP and HTTPS, for the TLS section (gate and delivery). An area
//! that cannot be measured (the engine not serving yet, a peer not installed) becomes rows that
//! say why; the run goes on. Only disagreements between engines, or between a plugin rule and its
//! built-in equivalent, fail the run.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow};

use crate::client::Http;
use crate::daemon::{DaemonChild, DaemonSetup, Receiver};
use crate::measure::{api, automation, engine, evaluation, plugins, reload, soak, tls};
use crate::org::{Org, OrgSpec};
use crate::peers::{self, jre, rego};
use crate::report::{Machine, PeerRow, Report, Row, Section};
use crate::stats::{Samples, fmt_num};

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    pub entities: usize,
    pub quick: bool,
    pub seed: u64,
    /// Run the json-rules-engine peer (when node and its module are installed).
    pub node: bool,
    /// Run wrk for the closed-loop maximum (when installed; never in quick mode).
    pub wrk: bool,
    /// Keep the generated organisation and the stores here instead of a temporary directory.
    pub keep: Option<PathBuf>,
    /// Run only these sections (empty: all).
    pub only: Vec<String>,
    /// The command line shown in the report.
    pub command: String,
}

/// Repetitions of everything, by mode.
#[derive(Clone, Copy, Debug)]
struct Plan {
    peer_runs: usize,
    eval_runs: usize,
    pass_runs: usize,
    wasm_runs: usize,
    plugin: plugins::PluginRuns,
    engine: engine::EngineRuns,
    api: api::ApiRuns,
    swaps: usize,
    /// Seconds of the mixed-load soak.
    soak_secs: u64,
    /// Sequential gate requests on new connections, per scheme (TLS section).
    new_connections: usize,
}

impl Plan {
    fn new(options: &Options) -> Plan {
        if options.quick {
            Plan {
                peer_runs: 3,
                eval_runs: 5,
                pass_runs: 3,
                wasm_runs: 2,
                plugin: plugins::PluginRuns {
                    cold: 1,
                    cached: 3,
                    rounds: 3,
                    calls: 2_000,
                },
                engine: engine::EngineRuns {
                    starts: 1,
                    rounds: 2,
                    incremental: 10,
                },
                api: api::ApiRuns {
                    runs: 1,
                    duration: Duration::from_secs(2),
                    exemptions: 5,
                    wrk: false,
                },
                swaps: 3,
                soak_secs: 5,
                new_connections: 20,
            }
        } else {
            Plan {
                peer_runs: 5,
                eval_runs: 15,
                pass_runs: 10,
                wasm_runs: 9,
                plugin: plugins::PluginRuns {
                    cold: 3,
                    cached: 10,
                    rounds: 10,
                    calls: 20_000,
                },
                engine: engine::EngineRuns {
                    starts: 3,
                    rounds: 6,
                    incremental: 50,
                },
                api: api::ApiRuns {
                    runs: 3,
                    duration: Duration::from_secs(5),
                    exemptions: 20,
                    wrk: options.wrk,
                },
                swaps: 10,
                soak_secs: 60,
                new_connections: 200,
            }
        }
    }
}

/// The targets of an area, as rows saying why they were not measured.
fn unmeasured(title: &str, targets: &[(&str, &str)], why: &anyhow::Error) -> Section {
    let reason = format!("{why:#}");
    let mut section = Section::new(title, "");
    for (what, target) in targets {
        section
            .rows
            .push(Row::not_measured(what, target, reason.clone()));
    }
    if targets.is_empty() {
        section.rows.push(Row::not_measured(
            "every measurement of this area",
            "–",
            reason,
        ));
    }
    section
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Whether `peer` gives readyd's answers; if not, the failure names examples.
fn check(
    readyd: &peers::Matrix,
    name: &str,
    peer: &peers::Matrix,
    failures: &mut Vec<String>,
) -> anyhow::Result<bool> {
    let found = peers::disagreements(readyd, peer)?;
    if found.is_empty() {
        return Ok(true);
    }
    let examples: Vec<String> = found
        .iter()
        .take(5)
        .map(|d| {
            format!(
                "{} {} (readyd: {})",
                d.entity,
                d.rule,
                if d.readyd { "pass" } else { "fail" }
            )
        })
        .collect();
    failures.push(format!(
        "{name} disagrees with readyd on {} (entity, rule) pairs, e.g. {}",
        found.len(),
        examples.join("; ")
    ));
    Ok(false)
}

/// The peer comparison: answers first, then rates.
fn peers(
    org: &Org,
    runs: usize,
    node: bool,
    failures: &mut Vec<String>,
) -> anyhow::Result<(Vec<PeerRow>, Vec<String>)> {
    let set = peers::shared_rule_set();
    let evaluations = (org.entities.len() * set.len()) as f64;
    let rate = |times: &[Duration]| {
        Samples::from_values(times.iter().map(|t| evaluations / t.as_secs_f64()))
    };
    let (matrix, times) =
        peers::readyd_matrix(&org.standards_peer, &set, &org.entities, &org.facts, runs)?;
    let mut rows = vec![PeerRow {
        engine: "readyd (`eval::evaluate_entity`)".into(),
        rate: rate(&times),
        agrees: None,
        skipped: None,
    }];
    let mut notes = vec![format!(
        "Shared rule set: 5 scorecards × 10 rules = {} rule evaluations per pass over {} entities; \
         operators `=`, `!=`, `<`, `<=`, `>`, `>=`, `in`, `notIn`, `contains` (list membership) \
         and nested `and`/`or` — the ones json-rules-engine has built in. Negations only on values \
         every entity has (json-rules-engine's `notEqual`/`notIn` are true on a missing fact, \
         readyd's and Rego's are false). Each engine on one thread, {runs} timed passes after a \
         warm-up; readyd builds full results (messages for failures), the peers only pass/fail. \
         The inputs are in the generated `peers/` folder (`jre-rules.json`, `jre-facts.json`, \
         `policy.rego`).",
        fmt_num(evaluations),
        org.entities.len()
    )];
    let inputs: Vec<serde_json::Value> = org
        .entities
        .iter()
        .map(|e| rego::input(e, org.facts_of(&e.identifier)))
        .collect();
    match rego::run(&set, &inputs, &matrix, runs) {
        Ok(run) => {
            let agrees = check(&matrix, "regorus", &run.matrix, failures)?;
            rows.push(PeerRow {
                engine: "regorus 0.14 (Rego interpreter, Rust)".into(),
                rate: rate(&run.times),
                agrees: Some(agrees),
                skipped: None,
            });
        }
        Err(e) => {
            failures.push(format!(
                "regorus could not evaluate the shared rule set: {e:#}"
            ));
            rows.push(PeerRow {
                engine: "regorus".into(),
                rate: Samples::new(),
                agrees: None,
                skipped: Some(format!("{e:#}")),
            });
        }
    }

    let unavailable = if node {
        jre::unavailable()
    } else {
        Some("skipped (`--no-node`)".into())
    };
    match unavailable {
        Some(why) => rows.push(PeerRow {
            engine: "json-rules-engine (node)".into(),
            rate: Samples::new(),
            agrees: None,
            skipped: Some(why),
        }),
        None => match jre::run(&org.dirs.peers, &matrix, runs) {
            Ok(run) => {
                let agrees = check(&matrix, "json-rules-engine", &run.matrix, failures)?;
                if run.evaluations as f64 != evaluations {
                    return Err(anyhow!(
                        "bench.js evaluated {} rules per pass, expected {evaluations}",
                        run.evaluations
                    ));
                }
                rows.push(PeerRow {
                    engine: run.label,
                    rate: rate(&run.times),
                    agrees: Some(agrees),
                    skipped: None,
                });
            }
            Err(e) => {
                failures.push(format!("json-rules-engine could not run: {e:#}"));
                rows.push(PeerRow {
                    engine: "json-rules-engine (node)".into(),
                    rate: Samples::new(),
                    agrees: None,
                    skipped: Some(format!("{e:#}")),
                });
            }
        },
    }
    notes.push(format!(
        "Answers checked before any rate is reported: {} pass/fail answers per engine, {:.0} % of them pass.",
        matrix.passed.len(),
        100.0 * matrix.passed.iter().filter(|p| **p).count() as f64 / matrix.passed.len().max(1) as f64
    ));
    Ok((rows, notes))
}

/// Runs everything and returns the report (the caller writes it).
pub fn run(options: &Options) -> anyhow::Result<Report> {
    let plan = Plan::new(options);
    let wants =
        |section: &str| options.only.is_empty() || options.only.iter().any(|s| s == section);
    let scratch = match &options.keep {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            None
        }
        None => Some(tempfile::Builder::new().prefix("readyd-bench-").tempdir()?),
    };
    let work: PathBuf = match (&options.keep, &scratch) {
        (Some(dir), _) => dir.clone(),
        (None, Some(t)) => t.path().to_owned(),
        _ => unreachable!("one of the two is set"),
    };
    eprintln!(
        "readyd-bench: generating {} entities in {}",
        options.entities,
        work.display()
    );
    let org = Arc::new(Org::generate(
        OrgSpec {
            entities: options.entities,
            seed: options.seed,
        },
        &work.join("org"),
    )?);
    let mut failures = Vec::new();
    let mut sections = Vec::new();

    let (peer_rows, peer_notes) = if wants("peers") {
        eprintln!("readyd-bench: peers");
        peers(&org, plan.peer_runs, options.node, &mut failures)?
    } else {
        (Vec::new(), Vec::new())
    };

    if wants("evaluator") {
        eprintln!("readyd-bench: pure evaluator");
        sections.push(evaluation::pure_evaluator(&org, plan.eval_runs));
    }

    let seeded = work.join("seeded.redb");
    let seed_time = if wants("pass") || wants("engine") || wants("daemon") || wants("tls") {
        eprintln!("readyd-bench: seeding a store");
        engine::seed_store(&org, &seeded)?
    } else {
        Duration::ZERO
    };
    let pass_store = work.join("full-pass.redb");
    let passed = if wants("pass") {
        eprintln!("readyd-bench: full pass with commit");
        std::fs::copy(&seeded, &pass_store)?;
        Some(evaluation::full_pass(&org, &pass_store, plan.pass_runs))
    } else {
        None
    };
    // The engine checks its results against the pure evaluator's count: one unreported pass.
    let unreported_count = if passed.is_none() && (wants("engine") || wants("daemon")) {
        std::fs::copy(&seeded, &pass_store)?;
        Some(evaluation::full_pass(&org, &pass_store, 1)?.1.len())
    } else {
        None
    };
    let expected_results = match passed {
        None => None,
        Some(passed) => match passed {
            Ok((mut section, results)) => {
                section.notes.push(format!(
                    "Seeding the store took {} s.",
                    fmt_num(seed_time.as_secs_f64())
                ));
                sections.push(section);
                Some(results.len())
            }
            Err(e) => {
                sections.push(unmeasured(
                    "Full pass with commit (evaluator + store)",
                    &[("full pass, commit included", "< 1 s")],
                    &e,
                ));
                None
            }
        },
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let manifests = work.join("plugin-manifests");
    std::fs::create_dir_all(&manifests)?;
    plugins::write_manifests(&manifests)?;
    runtime.block_on(async {
        if wants("plugins") {
        eprintln!("readyd-bench: plugins");
        match plugins::measure(&org, &manifests, &work, plan.plugin).await {
            Ok(s) => sections.push(s),
            Err(e) => sections.push(unmeasured(
                "Plugins",
                &[("cached load", "< 10 ms"), ("warm call", "< 2 µs"), ("instantiation", "< 50 µs")],
                &e,
            )),
        }
        }
        if wants("workload") {
        eprintln!("readyd-bench: plugin rules in a pass");
        let workload = async {
            let host = readyd::plugin::PluginHost::new(readyd::plugin::HostConfig {
                cache_dir: Some(work.join("plugin-cache")),
                ..readyd::plugin::HostConfig::default()
            })
            .map_err(|e| anyhow!("{e}"))?;
            let slo = evaluation::load_slo_budget(&host, &manifests).await?;
            evaluation::plugin_workload(&org, slo, plan.wasm_runs, &mut failures).await
        };
        match workload.await {
            Ok(s) => sections.push(s),
            Err(e) => sections.push(unmeasured(
                "Plugin rules in a pass",
                &[("cost of the plugin workload relative to all built-in", "< 5 ×")],
                &e,
            )),
        }
        }
        if !(wants("engine") || wants("daemon") || wants("tls")) {
            return Ok(());
        }

        let engine_work = work.join("engine");
        std::fs::create_dir_all(&engine_work)?;
        let engine_data = if !wants("engine") {
            None
        } else {
        eprintln!("readyd-bench: engine");
        match engine::measure(&org, &seeded, &engine_work, expected_results.or(unreported_count).unwrap_or(0), plan.engine).await {
            Ok(outcome) => {
                sections.push(outcome.section);
                outcome.data
            }
            Err(e) => {
                sections.push(unmeasured(
                    "Engine (in process)",
                    &[
                        ("engine start: evaluate all + commit", "< 1 s"),
                        ("data-source round: re-evaluate all + commit", "< 1 s"),
                        ("incremental: one entity's facts → new result in `Engine::entity_scores`", "< 10 ms"),
                        ("incremental: one entity's facts → new result through the API", "< 10 ms"),
                    ],
                    &e,
                ));
                None
            }
        }
        };

        if wants("daemon") {
            eprintln!("readyd-bench: daemon");
            daemon_phase(&org, &work, engine_data.as_deref().unwrap_or(&seeded), plan, &mut sections).await;
        }
        if wants("tls") {
            eprintln!("readyd-bench: tls");
            sections.push(tls_phase(&org, &work, engine_data.as_deref().unwrap_or(&seeded), plan).await);
        }
        Ok::<_, anyhow::Error>(())
    })?;
    runtime.shutdown_timeout(Duration::from_secs(5));

    let quick = if options.quick { ", quick mode" } else { "" };
    Ok(Report {
        machine: Machine::detect(),
        command: options.command.clone(),
        date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        workload: format!(
            "{} generated entities (services, APIs, libraries, websites; 40 teams; tiers 1–3 and \
             untiered), 5 scorecards × 10 rules, facts from 3 data sources (git, pagerduty, \
             prometheus), seed {}{quick}",
            fmt_num(options.entities as f64),
            options.seed
        ),
        sections,
        peers: peer_rows,
        peer_notes,
        failures,
    })
}

const API_TARGETS: [(&str, &str); 2] = [
    ("GET /v1/gate/{id} p99 at 5,000 req/s", "< 2 ms"),
    ("daemon RSS", "< 300 MB"),
];
const RELOAD_TARGETS: [(&str, &str); 3] = [
    (
        "scorecard replaced → in force for every entity",
        "< 1000 ms",
    ),
    (
        "plugin build replaced → in force for every entity",
        "< 1000 ms",
    ),
    ("failed API requests during the swaps", "0"),
];

/// Prepares `dir` for a child daemon (a copy of the store `data`, the daemon's standards, the
/// no-op plugin), its webhook pointing at `receiver` (`https` when `tls` is given, which also
/// makes the daemon serve HTTPS and trust the run's CA), and spawns it. The no-op plugin's
/// component path comes back for the hot-reload swaps.
async fn spawn_daemon(
    org: &Org,
    dir: &Path,
    data: &Path,
    receiver: &Receiver,
    tls: Option<&crate::tls::BenchTls>,
) -> anyhow::Result<(DaemonSetup, DaemonChild, PathBuf)> {
    std::fs::create_dir_all(dir)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let setup = DaemonSetup {
        dir: dir.to_owned(),
        data: dir.join("readyd.redb"),
        catalog: org.dirs.catalog.clone(),
        standards: dir.join("standards"),
        plugins: dir.join("plugins"),
        webhook: format!("{scheme}://{}/hook", receiver.addr),
        debounce_ms: 150,
        tls: tls.cloned(),
    };
    std::fs::copy(data, &setup.data).context("copying the store for the daemon")?;
    copy_dir(&org.dirs.standards_daemon, &setup.standards)?;
    std::fs::create_dir_all(&setup.plugins)?;
    let noop = plugins::artifact("fixture-noop-check")?;
    std::fs::copy(&noop, setup.plugins.join("noop-check-v0.wasm"))?;
    std::fs::write(
        setup.plugins.join("noop-check.toml"),
        reload::noop_manifest(0),
    )?;
    let child = DaemonChild::spawn(&setup).await?;
    Ok((setup, child, noop))
}

/// Until `/readyz` answers 200 (at most 120 s).
async fn ready(http: &Http) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + tls::READY_WITHIN;
    loop {
        if let Ok((status, _)) = http.send(http::Method::GET, "/readyz", None, None).await
            && status.is_success()
        {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(anyhow!(
                "/readyz did not answer 200 over {} within {} s",
                http.scheme(),
                tls::READY_WITHIN.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The TLS section: a plain daemon, then an HTTPS one, each measured and stopped before the
/// next starts (so they never share the CPU); failures become rows saying why.
async fn tls_phase(org: &Arc<Org>, work: &Path, data: &Path, plan: Plan) -> Section {
    let certificates = match crate::tls::BenchTls::generate(&work.join("tls-ca")) {
        Ok(c) => c,
        Err(e) => {
            let failed = || Err(anyhow!("making the test CA: {e:#}"));
            return tls::section(
                failed(),
                failed(),
                org.entities.len(),
                org.degraded_group_size(),
                plan.api,
                plan.new_connections,
            );
        }
    };
    let mut variants = Vec::new();
    for tls_files in [None, Some(&certificates)] {
        let scheme = if tls_files.is_some() { "https" } else { "http" };
        let dir = work.join(format!("tls-daemon-{scheme}"));
        let measured = async {
            let receiver = match tls_files {
                None => Receiver::start().await?,
                Some(t) => Receiver::start_tls(t.server_config()?).await?,
            };
            let (setup, child, _) = spawn_daemon(org, &dir, data, &receiver, tls_files).await?;
            let http = match tls_files {
                None => Http::new(child.addr),
                Some(t) => Http::new_tls(child.addr, &t.ca_file)?,
            };
            let result = async {
                ready(&http).await?;
                tls::measure_variant(
                    &http,
                    &receiver,
                    &setup.standards,
                    org,
                    plan.api,
                    plan.new_connections,
                )
                .await
            }
            .await;
            let stopped = child.stop().await;
            let variant = result?;
            stopped?;
            Ok::<_, anyhow::Error>(variant)
        };
        eprintln!("readyd-bench: tls: {scheme} daemon");
        variants.push(measured.await);
    }
    let https = variants.pop().expect("two variants");
    let plain = variants.pop().expect("two variants");
    tls::section(
        plain,
        https,
        org.entities.len(),
        org.degraded_group_size(),
        plan.api,
        plan.new_connections,
    )
}

/// The child daemon's measurements; every failure becomes rows saying why.
async fn daemon_phase(
    org: &Arc<Org>,
    work: &Path,
    data: &Path,
    plan: Plan,
    sections: &mut Vec<Section>,
) {
    let dir = work.join("daemon");
    let prepared = async {
        let receiver = Receiver::start().await?;
        let (setup, child, noop) = spawn_daemon(org, &dir, data, &receiver, None).await?;
        Ok::<_, anyhow::Error>((receiver, setup, child, noop))
    };
    let (receiver, setup, child, noop) = match prepared.await {
        Ok(x) => x,
        Err(e) => {
            sections.push(unmeasured(
                "HTTP API (child daemon, loopback)",
                &API_TARGETS,
                &e,
            ));
            sections.push(unmeasured(
                "Hot reload (child daemon, file watching)",
                &RELOAD_TARGETS,
                &e,
            ));
            sections.push(unmeasured("Automation", &[], &e));
            return;
        }
    };
    let http = Http::new(child.addr);
    if let Err(e) = ready(&http).await {
        sections.push(unmeasured(
            "HTTP API (child daemon, loopback)",
            &API_TARGETS,
            &e,
        ));
        let _ = child.stop().await;
        return;
    }
    eprintln!("readyd-bench: daemon: API load");
    match api::measure(&http, &child, org, plan.api).await {
        Ok(s) => sections.push(s),
        Err(e) => sections.push(unmeasured(
            "HTTP API (child daemon, loopback)",
            &API_TARGETS,
            &e,
        )),
    }
    eprintln!("readyd-bench: daemon: exemptions");
    match api::exemptions(&http, org, plan.api.exemptions).await {
        Ok(s) => sections.push(s),
        Err(e) => sections.push(unmeasured("Exemption approval", &[], &e)),
    }
    eprintln!("readyd-bench: daemon: hot reload");
    let reload_setup = reload::ReloadSetup {
        standards: setup.standards.clone(),
        plugins: setup.plugins.clone(),
        debounce_ms: setup.debounce_ms,
        sample: org.entities[org.entities.len() / 2].identifier.clone(),
        entities: org.entities.len(),
        noop_wasm: noop,
    };
    match reload::measure(&http, &reload_setup, plan.swaps).await {
        Ok(s) => sections.push(s),
        Err(e) => sections.push(unmeasured(
            "Hot reload (child daemon, file watching)",
            &RELOAD_TARGETS,
            &e,
        )),
    }
    eprintln!("readyd-bench: daemon: automation");
    match automation::measure(
        &http,
        &receiver,
        &setup.standards,
        org.entities.len(),
        org.degraded_group_size(),
    )
    .await
    {
        Ok(s) => sections.push(s),
        Err(e) => sections.push(unmeasured("Automation", &[], &e)),
    }
    eprintln!("readyd-bench: daemon: soak");
    match soak::measure(&http, child.pid, org, &setup.standards, plan.soak_secs).await {
        Ok(s) => sections.push(s),
        Err(e) => sections.push(unmeasured(
            "Soak: mixed load with a hot reload (child daemon)",
            &[],
            &e,
        )),
    }
    if let Err(e) = child.stop().await
        && let Some(last) = sections.last_mut()
    {
        last.notes
            .push(format!("The daemon did not stop cleanly: {e:#}"));
    }
}
