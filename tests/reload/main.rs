//! Hot deploy under load (issue 5): a real daemon (in-process, real HTTP on 127.0.0.1, real
//! redb, real wasm plugins) with its file watcher on, real files renamed into place, and a
//! continuous request loop that must never see a failure.
//!
//! - [`a_plugin_and_a_scorecard_replaced_twenty_times_each_under_load`]: 20 swaps of a check
//!   plugin and 20 of a scorecard, good and broken alternately; every good one is visible
//!   through the API (version hash, results, levels, gate), every broken one is reported in
//!   `/v1/status` while the previous version keeps answering; the loop sees zero failures and
//!   `/metrics` counts the reloads and the failures.
//! - [`an_infinite_loop_swapped_in_while_calls_run_does_not_stall_other_plugins`].
//! - [`a_removed_plugin_turns_its_rules_into_errors_not_the_service`].
//! - [`the_watcher_picks_up_renamed_files_without_a_reload_call`].
//! - [`post_reload_rescans_and_the_metrics_count_each_outcome`] (watching off).
//!
//! Tests of this binary run one at a time (`SERIAL`): the metrics are process-wide, and each
//! test loads the machine on purpose.

mod load;
mod org;
mod poll;

use std::collections::BTreeMap;
use std::path::Path;

use readyd::config::Config;
use readyd::plugin::PluginError;
use readyd_plugin_artifacts as artifacts;
use readyd_tests::{TestDaemon, entity, shared_plugin_cache, start_daemon_in, temp_dir, token_for};
use serde_json::{Value, json};

use load::{Load, Target};
use org::{SERVICES, put};
use poll::eventually;

/// One test at a time in this binary (see the module docs).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn viewer() -> &'static str {
    token_for("viewer")
}

fn admin() -> &'static str {
    token_for("admin")
}

/// A daemon on a copy of `fixture`, with the shared compiled-plugin cache and, if `watch`,
/// its file watcher on with a short debounce.
async fn start(fixture: &Path, watch: bool, tweak: impl FnOnce(&mut Config)) -> TestDaemon {
    start_daemon_in(fixture, |config| {
        config.cache_dir = shared_plugin_cache();
        config.watch.enabled = watch;
        config.watch.debounce_ms = 100;
        tweak(config);
    })
    .await
}

/// `GET path` as a viewer; must answer 200 with JSON.
async fn get_json(daemon: &TestDaemon, path: &str) -> Value {
    let answer = daemon.get(path, Some(viewer())).await;
    assert_eq!(answer.status, 200, "GET {path}: {}", answer.text());
    answer.json()
}

async fn status(daemon: &TestDaemon) -> Value {
    get_json(daemon, "/v1/status").await
}

/// The status line of plugin `name`, if listed.
fn plugin_line(status: &Value, name: &str) -> Option<Value> {
    status["plugins"]
        .as_array()
        .expect("status.plugins is a list")
        .iter()
        .find(|p| p["name"] == name)
        .cloned()
}

/// Every service's result on `scorecard`, by entity.
async fn scores(daemon: &TestDaemon, scorecard: &str) -> BTreeMap<String, Value> {
    let list = get_json(daemon, &format!("/v1/scores?scorecard={scorecard}")).await;
    list.as_array()
        .expect("scores are a list")
        .iter()
        .map(|r| (r["entity"].as_str().expect("entity").to_owned(), r.clone()))
        .collect()
}

/// Rule `rule` of a scorecard result.
fn rule<'a>(result: &'a Value, rule: &str) -> &'a Value {
    result["rules"]
        .as_array()
        .expect("rules are a list")
        .iter()
        .find(|r| r["rule"] == rule)
        .unwrap_or_else(|| panic!("no rule {rule} in {result}"))
}

/// `Ok` when every service's rule `rule_id` on `checks` has `status` and a message containing
/// `fragment`; `Err` says which one does not.
async fn check_rules_are(
    daemon: &TestDaemon,
    rule_id: &str,
    status: &str,
    fragment: &str,
) -> Result<(), String> {
    let all = scores(daemon, "checks").await;
    for id in SERVICES {
        let result = all.get(id).ok_or(format!("{id} has no checks result"))?;
        let r = rule(result, rule_id);
        let message = r["message"].as_str().unwrap_or("");
        if r["status"] != status || !message.contains(fragment) {
            return Err(format!("{id}: {r}"));
        }
    }
    Ok(())
}

/// The `quality` levels of every service and the gate's answers agree with `threshold`.
async fn assert_quality_follows(daemon: &TestDaemon, threshold: u64) {
    let covered = org::covered(threshold);
    let all = scores(daemon, "quality").await;
    for id in SERVICES {
        let expected = if covered.contains(&id) {
            "Covered"
        } else {
            "Basic"
        };
        assert_eq!(
            all[id]["level"], expected,
            "{id} at threshold {threshold}: {}",
            all[id]
        );
        let gate = daemon
            .get(&format!("/v1/gate/{id}"), Some(token_for("ci")))
            .await;
        assert_eq!(gate.status, 200, "{}", gate.text());
        assert_eq!(
            gate.json()["allowed"],
            covered.contains(&id),
            "gate of {id} at threshold {threshold}: {}",
            gate.text()
        );
    }
}

/// `readyd_reloads_total` by (part, outcome), read from `/metrics`.
async fn reload_metrics(daemon: &TestDaemon) -> BTreeMap<(String, String), u64> {
    let answer = daemon.get("/metrics", None).await;
    assert_eq!(answer.status, 200);
    let mut out = BTreeMap::new();
    for line in answer.text().lines() {
        let Some(rest) = line.strip_prefix("readyd_reloads_total{") else {
            continue;
        };
        let (labels, value) = rest.split_once("} ").expect("a sample line");
        let label = |name: &str| {
            labels
                .split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=\"")))
                .map(|v| v.trim_end_matches('"').to_owned())
                .expect("label present")
        };
        let value: f64 = value.trim().parse().expect("a number");
        out.insert((label("part"), label("outcome")), value as u64);
    }
    out
}

/// How much a reload counter grew between two readings.
fn grew(
    before: &BTreeMap<(String, String), u64>,
    after: &BTreeMap<(String, String), u64>,
    part: &str,
    outcome: &str,
) -> u64 {
    let key = (part.to_owned(), outcome.to_owned());
    after.get(&key).copied().unwrap_or(0) - before.get(&key).copied().unwrap_or(0)
}

/// A broken replacement of plugin `noop` (the `n`th kind): put it in place in `plugins` and
/// return a fragment the reported error must contain. Each is one file renamed into place.
fn break_noop(plugins: &Path, n: usize, marker: &str) -> &'static str {
    let good_manifest = org::manifest("noop", marker, 1000);
    match n % 10 {
        0 => {
            put(plugins, "noop.wasm", b"this is not a wasm component at all");
            "cannot compile"
        }
        1 => {
            let current = std::fs::read(plugins.join("noop.wasm")).expect("current wasm");
            put(plugins, "noop.wasm", &current[..current.len() / 2]);
            "cannot compile"
        }
        2 => {
            put(
                plugins,
                "noop.wasm",
                org::wasm(artifacts::FIXTURE_WRONG_WORLD),
            );
            "wasi:cli/run"
        }
        3 => {
            put(
                plugins,
                "noop.wasm",
                org::wasm(artifacts::FIXTURE_NOOP_SOURCE),
            );
            "`data-source` plugin"
        }
        4 => {
            // `init` never returns: it is bounded by the call budget like any call.
            put(
                plugins,
                "noop.wasm",
                org::wasm(artifacts::FIXTURE_INIT_HANG),
            );
            "timed out"
        }
        5 => {
            put(
                plugins,
                "noop.toml",
                "name = \"noop\"\nkind = \"check\nwasm = ",
            );
            "noop.toml"
        }
        6 => {
            put(
                plugins,
                "noop.toml",
                good_manifest.replace("noop.wasm", "missing.wasm"),
            );
            "missing.wasm"
        }
        7 => {
            put(
                plugins,
                "noop.toml",
                good_manifest.replace("kind = \"check\"", "kind = \"sideways\""),
            );
            "sideways"
        }
        8 => {
            put(
                plugins,
                "noop.toml",
                good_manifest.replace("memory_mb = 16", "memory_mb = 100000"),
            );
            "memory_mb"
        }
        _ => {
            put(plugins, "noop.wasm", b"");
            "cannot compile"
        }
    }
}

/// The request loop of the swap tests: every kind of read, the gate, the probes, and a
/// refresh that evaluates the check plugins (calls in flight during plugin swaps).
fn swap_targets() -> Vec<Target> {
    vec![
        Target::get("/v1/scores", viewer()),
        Target::get("/v1/scores?scorecard=quality", viewer()),
        Target::get("/v1/entities/svc-3", viewer()),
        Target::get("/v1/entities/svc-3/scores", viewer()),
        Target::get("/v1/gate/svc-3", token_for("ci")),
        Target::get("/v1/status", viewer()),
        Target::get("/v1/scorecards/quality", viewer()),
        Target::get("/v1/scorecards/checks", viewer()),
        Target::public("/readyz"),
        Target::public("/metrics"),
        Target::post("/v1/entities/svc-5/refresh", admin()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_and_a_scorecard_replaced_twenty_times_each_under_load() {
    let _serial = SERIAL.lock().await;
    let fixture = temp_dir();
    org::lay_out(fixture.path(), 35, &["noop"]);
    let daemon = start(fixture.path(), true, |_| {}).await;
    let scorecards = daemon.dir.path().join("standards/scorecards");
    let plugins = daemon.dir.path().join("plugins");
    let metrics_before = reload_metrics(&daemon).await;

    // The starting point.
    assert_quality_follows(&daemon, 35).await;
    check_rules_are(&daemon, "noop", "pass", "(noop-0)")
        .await
        .expect("the first build answers");
    let first = status(&daemon).await;
    let mut revision = first["standards"]["revision"].clone();
    assert!(revision.is_string(), "{first}");
    let mut version = org::version_of(&org::noop_build("noop-0"));
    let noop = plugin_line(&first, "noop").expect("noop listed");
    assert_eq!(noop["version"], version.as_str(), "{noop}");
    let mut loaded_at = noop["loaded_at"].clone();
    assert!(loaded_at.is_string(), "{noop}");

    let load = Load::start(daemon.addr, swap_targets(), 3);
    load.wait_past(0, 20).await;

    // ---- the scorecard, 20 times: good and broken alternately.
    let thresholds = [10, 40, 20, 60, 0, 30, 50, 15, 45, 25];
    let mut threshold = 35;
    let mut title = "Quality v0".to_owned();
    for swap in 0..20 {
        let since = load.completed();
        if swap % 2 == 0 {
            let k = swap / 2;
            threshold = thresholds[k];
            title = format!("Quality v{}", k + 1);
            put(
                &scorecards,
                "quality.yaml",
                org::quality(&format!("v{}", k + 1), threshold),
            );
            eventually(&format!("scorecard swap {swap}: {title}"), || async {
                let card = get_json(&daemon, "/v1/scorecards/quality").await;
                (card["title"] == title.as_str())
                    .then_some(())
                    .ok_or_else(|| card["title"].to_string())
            })
            .await;
            // Standards and the results they produce are swapped together: once the new
            // title shows, every level and every gate answer already follows it.
            assert_quality_follows(&daemon, threshold).await;
            let now = status(&daemon).await;
            assert_ne!(now["standards"]["revision"], revision, "swap {swap}");
            assert!(
                now["standards"]["last_error"].is_null(),
                "swap {swap}: {now}"
            );
            assert!(now["standards"]["loaded_at"].is_string(), "{now}");
            revision = now["standards"]["revision"].clone();
        } else {
            let (text, fragment) = org::broken_quality(swap / 2);
            put(&scorecards, "quality.yaml", text);
            let error = eventually(&format!("scorecard swap {swap} reported"), || async {
                let now = status(&daemon).await;
                now["standards"]["last_error"]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| now["standards"].to_string())
            })
            .await;
            eprintln!("scorecard swap {swap} refused: {error}");
            assert!(
                error.contains("quality.yaml") && error.contains(fragment),
                "swap {swap}: expected `{fragment}` in {error}"
            );
            // The previous standards stay in force, with their results.
            let now = status(&daemon).await;
            assert_eq!(now["standards"]["revision"], revision, "swap {swap}");
            assert!(
                now["standards"]["errors"]
                    .as_array()
                    .is_some_and(|e| !e.is_empty()),
                "{now}"
            );
            let card = get_json(&daemon, "/v1/scorecards/quality").await;
            assert_eq!(card["title"], title.as_str(), "swap {swap}");
            assert_quality_follows(&daemon, threshold).await;
        }
        load.wait_past(since, 5).await;
    }

    // ---- the plugin, 20 times: good and broken alternately.
    let mut marker = "noop-0".to_owned();
    for swap in 0..20 {
        let since = load.completed();
        if swap % 2 == 0 {
            marker = format!("noop-{}", swap / 2 + 1);
            let build = org::noop_build(&marker);
            version = org::version_of(&build);
            // The component, then its manifest (new marker): both renamed into place.
            put(&plugins, "noop.wasm", &build);
            put(&plugins, "noop.toml", org::manifest("noop", &marker, 1000));
            eventually(&format!("plugin swap {swap}: {marker}"), || async {
                let now = status(&daemon).await;
                let line = plugin_line(&now, "noop").ok_or("noop not listed")?;
                if line["version"] != version.as_str() {
                    return Err(line.to_string());
                }
                check_rules_are(&daemon, "noop", "pass", &format!("({marker})")).await
            })
            .await;
            let now = status(&daemon).await;
            let line = plugin_line(&now, "noop").expect("noop listed");
            assert_eq!(line["state"]["state"], "active", "{line}");
            assert!(line["last_error"].is_null(), "swap {swap}: {line}");
            assert!(now["plugin_errors"].is_null(), "swap {swap}: {now}");
            assert_ne!(line["loaded_at"], loaded_at, "swap {swap}: {line}");
            loaded_at = line["loaded_at"].clone();
        } else {
            let fragment = break_noop(&plugins, swap / 2, &marker);
            let error = eventually(&format!("plugin swap {swap} reported"), || async {
                let now = status(&daemon).await;
                now["plugin_errors"]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| now["plugins"].to_string())
            })
            .await;
            eprintln!("plugin swap {swap} refused: {error}");
            assert!(
                error.contains(fragment),
                "swap {swap}: expected `{fragment}` in {error}"
            );
            // The previous build keeps serving, and says that a reload failed.
            let now = status(&daemon).await;
            let line = plugin_line(&now, "noop").unwrap_or_else(|| {
                panic!("swap {swap}: the previous build was unloaded: {error}; {now}")
            });
            assert_eq!(line["version"], version.as_str(), "swap {swap}: {line}");
            assert_eq!(line["loaded_at"], loaded_at, "swap {swap}: {line}");
            assert_eq!(line["state"]["state"], "active", "swap {swap}: {line}");
            let last = line["last_error"].as_str().unwrap_or_default();
            assert!(
                last.starts_with("reload failed, previous version serving")
                    && last.contains(fragment),
                "swap {swap}: {line}"
            );
            check_rules_are(&daemon, "noop", "pass", &format!("({marker})"))
                .await
                .unwrap_or_else(|e| panic!("swap {swap}: {e}"));
            // Not only its old results: a fresh evaluation calls it.
            let refreshed = daemon
                .request("POST", "/v1/entities/svc-0/refresh", Some(admin()), None)
                .await;
            assert_eq!(refreshed.status, 200, "{}", refreshed.text());
            let answer = refreshed.json();
            let checks = answer["scores"]
                .as_array()
                .expect("scores")
                .iter()
                .find(|r| r["scorecard"] == "checks")
                .expect("checks result")
                .clone();
            let noop_rule = rule(&checks, "noop");
            assert_eq!(noop_rule["status"], "pass", "swap {swap}: {noop_rule}");
            assert!(
                noop_rule["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(&format!("({marker})"))),
                "swap {swap}: {noop_rule}"
            );
        }
        load.wait_past(since, 5).await;
    }

    let report = load.finish().await;
    assert!(
        report.failures.is_empty(),
        "{} failed requests of {}: {:#?}",
        report.failures.len(),
        report.ok + report.failures.len() as u64,
        report.failures
    );
    assert!(report.ok >= 200, "the loop ran: {report:?}");

    // Every reload and every refused one was counted.
    let metrics_after = reload_metrics(&daemon).await;
    for (part, outcome) in [
        ("standards", "ok"),
        ("standards", "failed"),
        ("plugins", "ok"),
        ("plugins", "failed"),
    ] {
        let n = grew(&metrics_before, &metrics_after, part, outcome);
        assert!(
            n >= 10,
            "reloads of {part} {outcome}: {n}, {metrics_after:?}"
        );
    }
    daemon.stop().await.expect("clean shutdown");
}

/// What a direct batch of calls to the spinner returned.
#[derive(Debug)]
enum Batch {
    /// Every call answered, on the build marked `spinner-0`.
    Answered,
    /// Every call was interrupted at its budget.
    TimedOut,
    /// Anything else (a mix would mean a swap in the middle of a batch).
    Other(String),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_infinite_loop_swapped_in_while_calls_run_does_not_stall_other_plugins() {
    let _serial = SERIAL.lock().await;
    let fixture = temp_dir();
    org::lay_out(fixture.path(), 35, &["spinner", "quick"]);
    std::fs::write(
        fixture.path().join("plugins/spinner.toml"),
        org::manifest("spinner", "spinner-0", 300),
    )
    .expect("spinner manifest");
    // Never park the spinner: every call to it runs the loop to its budget.
    let daemon = start(fixture.path(), true, |c| {
        c.limits.park_after_failures = 1_000_000;
    })
    .await;
    let plugins = daemon.dir.path().join("plugins");
    check_rules_are(&daemon, "spinner", "pass", "(spinner-0)")
        .await
        .expect("spinner answers");
    check_rules_are(&daemon, "quick", "pass", "(quick-0)")
        .await
        .expect("quick answers");

    let mut targets = swap_targets();
    targets.push(Target::post("/v1/entities/svc-0/refresh", admin()));
    let load = Load::start(daemon.addr, targets, 3);

    // Calls running: two callers send batches of four calls to the spinner, back to back.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let batches = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Batch>::new()));
    let callers: Vec<_> = (0..2)
        .map(|_| {
            let (engine, stop, batches) = (daemon.engine.clone(), stop.clone(), batches.clone());
            tokio::spawn(async move {
                let target = readyd::plugin::CheckInput::new(&entity("svc-1"), &json!({})).unwrap();
                let params = json!({"message": "direct"}).to_string();
                let calls = vec![(&target, &params); 4];
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let results = engine.plugins().evaluate_batch("spinner", &calls).await;
                    let batch = if results.iter().all(|r| {
                        r.as_ref()
                            .is_ok_and(|o| o.message.as_deref() == Some("direct (spinner-0)"))
                    }) {
                        Batch::Answered
                    } else if results
                        .iter()
                        .all(|r| matches!(r, Err(PluginError::Timeout { .. })))
                    {
                        Batch::TimedOut
                    } else {
                        Batch::Other(format!("{results:?}"))
                    };
                    batches.lock().unwrap().push(batch);
                }
            })
        })
        .collect();
    let count =
        |wanted: fn(&Batch) -> bool| batches.lock().unwrap().iter().filter(|b| wanted(b)).count();
    eventually("direct calls to the first spinner build", || async {
        (count(|b| matches!(b, Batch::Answered)) >= 2)
            .then_some(())
            .ok_or_else(|| format!("{:?}", batches.lock().unwrap()))
    })
    .await;

    // Swap the infinite loop in under the same name, while those calls run.
    let endless = org::wasm(artifacts::FIXTURE_INFINITE_LOOP);
    put(&plugins, "spinner.wasm", &endless);
    let endless_version = org::version_of(&endless);
    eventually("the infinite loop in force", || async {
        let now = status(&daemon).await;
        let line = plugin_line(&now, "spinner").ok_or("spinner not listed")?;
        (line["version"] == endless_version.as_str())
            .then_some(())
            .ok_or_else(|| line.to_string())
    })
    .await;
    // Its rules report the interrupted calls; the calls keep coming and keep being cut off.
    eventually("spinner rules in error", || async {
        check_rules_are(&daemon, "spinner", "error", "timed out").await
    })
    .await;
    let timed_out = count(|b| matches!(b, Batch::TimedOut));
    eventually("more interrupted batches", || async {
        (count(|b| matches!(b, Batch::TimedOut)) >= timed_out + 2)
            .then_some(())
            .ok_or_else(|| format!("{} batches", batches.lock().unwrap().len()))
    })
    .await;

    // Meanwhile the other plugin answers every call, keeps its results, and its own swap goes
    // through and is visible.
    check_rules_are(&daemon, "quick", "pass", "(quick-0)")
        .await
        .expect("quick keeps its results");
    for i in 0..20 {
        let outcome = daemon
            .engine
            .plugins()
            .evaluate(
                "quick",
                &entity(SERVICES[i % 6]),
                &json!({}),
                &json!({"message": "direct"}),
            )
            .await
            .expect("quick answers while the spinner loops");
        assert_eq!(outcome.message.as_deref(), Some("direct (quick-0)"));
    }
    let quick_build = org::noop_build("quick-1");
    let quick_version = org::version_of(&quick_build);
    put(&plugins, "quick.wasm", &quick_build);
    put(
        &plugins,
        "quick.toml",
        org::manifest("quick", "quick-1", 1000),
    );
    eventually("the new quick build visible", || async {
        let now = status(&daemon).await;
        let line = plugin_line(&now, "quick").ok_or("quick not listed")?;
        if line["version"] != quick_version.as_str() {
            return Err(line.to_string());
        }
        check_rules_are(&daemon, "quick", "pass", "(quick-1)").await
    })
    .await;
    let now = status(&daemon).await;
    let spinner = plugin_line(&now, "spinner").expect("spinner listed");
    assert_eq!(spinner["state"]["state"], "failed", "{spinner}");
    assert!(
        spinner["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("timed out")),
        "{spinner}"
    );
    let quick = plugin_line(&now, "quick").expect("quick listed");
    assert_eq!(quick["state"]["state"], "active", "{quick}");
    // The spinner was still being called (and cut off) after all that.
    let timed_out = count(|b| matches!(b, Batch::TimedOut));
    eventually("the spinner still called", || async {
        (count(|b| matches!(b, Batch::TimedOut)) > timed_out)
            .then_some(())
            .ok_or_else(|| "no new batch".to_owned())
    })
    .await;

    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for caller in callers {
        caller.await.expect("a caller does not panic");
    }
    // A batch runs whole on the build it started on: all answered, or all interrupted.
    let batches = std::mem::take(&mut *batches.lock().unwrap());
    let odd: Vec<&String> = batches
        .iter()
        .filter_map(|b| match b {
            Batch::Other(what) => Some(what),
            Batch::Answered | Batch::TimedOut => None,
        })
        .collect();
    assert!(odd.is_empty(), "{odd:?}");

    // A good build again: the spinner recovers.
    put(&plugins, "spinner.wasm", org::noop_build("spinner-0"));
    eventually("the spinner recovered", || async {
        check_rules_are(&daemon, "spinner", "pass", "(spinner-0)").await
    })
    .await;

    let report = load.finish().await;
    assert!(report.failures.is_empty(), "{:#?}", report.failures);
    assert!(report.ok > 0);
    daemon.stop().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_plugin_turns_its_rules_into_errors_not_the_service() {
    let _serial = SERIAL.lock().await;
    let fixture = temp_dir();
    org::lay_out(fixture.path(), 35, &["noop", "other"]);
    let daemon = start(fixture.path(), true, |_| {}).await;
    let plugins = daemon.dir.path().join("plugins");
    check_rules_are(&daemon, "noop", "pass", "(noop-0)")
        .await
        .expect("noop answers");
    let load = Load::start(daemon.addr, swap_targets(), 2);

    let manifest = std::fs::read(plugins.join("noop.toml")).expect("manifest");
    std::fs::remove_file(plugins.join("noop.toml")).expect("remove the manifest");
    eventually("noop unloaded and its rules in error", || async {
        let now = status(&daemon).await;
        if plugin_line(&now, "noop").is_some() {
            return Err("noop still listed".into());
        }
        check_rules_are(&daemon, "noop", "error", "not loaded").await
    })
    .await;
    // Only the rules that use it: the rest of the scorecard, the other scorecard, the gate
    // and the service go on.
    check_rules_are(&daemon, "other", "pass", "(other-0)")
        .await
        .expect("other plugin unaffected");
    check_rules_are(&daemon, "owned", "pass", "")
        .await
        .expect("query rule unaffected");
    let checks = scores(&daemon, "checks").await;
    for id in SERVICES {
        assert_eq!(checks[id]["level"], "Unchecked", "{}", checks[id]);
        let message = rule(&checks[id], "noop")["message"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        assert!(message.contains("noop"), "{message}");
    }
    assert_quality_follows(&daemon, 35).await;
    let refreshed = daemon
        .request("POST", "/v1/entities/svc-0/refresh", Some(admin()), None)
        .await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text());
    assert!(
        refreshed.text().contains("not loaded"),
        "{}",
        refreshed.text()
    );
    assert_eq!(daemon.get("/readyz", None).await.status, 200);

    // Put back, it serves again.
    put(&plugins, "noop.toml", manifest);
    eventually("noop back", || async {
        check_rules_are(&daemon, "noop", "pass", "(noop-0)").await
    })
    .await;
    let report = load.finish().await;
    assert!(report.failures.is_empty(), "{:#?}", report.failures);
    daemon.stop().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watcher_picks_up_renamed_files_without_a_reload_call() {
    let _serial = SERIAL.lock().await;
    let fixture = temp_dir();
    org::lay_out(fixture.path(), 35, &["noop"]);
    let daemon = start(fixture.path(), true, |_| {}).await;
    let root = daemon.dir.path().to_owned();
    let metrics_before = reload_metrics(&daemon).await;
    let first = status(&daemon).await;

    // A catalog file written under a temporary name and renamed into place.
    assert_eq!(
        daemon
            .get("/v1/entities/svc-new", Some(viewer()))
            .await
            .status,
        404
    );
    put(
        &root.join("catalog"),
        "extra.yaml",
        "- identifier: svc-new\n  kind: service\n  team: core\n  tier: 2\n  properties: { coverage: 99 }\n",
    );
    let scored = eventually("the new entity scored", || async {
        let answer = daemon
            .get("/v1/entities/svc-new/scores", Some(viewer()))
            .await;
        (answer.status == 200)
            .then(|| answer.json())
            .ok_or_else(|| answer.text())
    })
    .await;
    let quality = scored
        .as_array()
        .expect("scores")
        .iter()
        .find(|r| r["scorecard"] == "quality")
        .expect("quality applies")
        .clone();
    assert_eq!(quality["level"], "Covered", "{quality}");
    let now = status(&daemon).await;
    assert_ne!(now["catalog"]["revision"], first["catalog"]["revision"]);
    assert!(now["catalog"]["last_error"].is_null(), "{now}");

    // Editors' litter next to the definitions is never loaded.
    let scorecards = root.join("standards/scorecards");
    for name in [
        ".quality.yaml.swp",
        "quality.yaml~",
        "#quality.yaml#",
        "4913",
    ] {
        std::fs::write(scorecards.join(name), "identifier: [ garbage").expect("litter");
    }
    std::fs::write(root.join("catalog/.extra.yaml.swp"), "- [ garbage").expect("litter");

    // A new plugin (component, then manifest), then a scorecard that uses it.
    let plugins = root.join("plugins");
    let fresh = org::noop_build("fresh-1");
    put(&plugins, "fresh.wasm", &fresh);
    put(
        &plugins,
        "fresh.toml",
        org::manifest("fresh", "fresh-1", 1000),
    );
    let line = eventually("the new plugin loaded", || async {
        let now = status(&daemon).await;
        plugin_line(&now, "fresh").ok_or_else(|| now["plugins"].to_string())
    })
    .await;
    assert_eq!(line["version"], org::version_of(&fresh).as_str(), "{line}");
    assert_eq!(line["state"]["state"], "active", "{line}");
    assert_eq!(line["kind"], "check", "{line}");
    assert!(line["loaded_at"].is_string(), "{line}");
    assert!(line["last_error"].is_null(), "{line}");
    put(
        &scorecards,
        "fresh.yaml",
        "identifier: fresh\ntitle: Fresh\nlevels: [ { title: Stale }, { title: Fresh } ]\nrules:\n  - identifier: fresh\n    title: Fresh check\n    level: Fresh\n    check: { plugin: fresh, params: { message: hello } }\n",
    );
    eventually("the new scorecard scored with the new plugin", || async {
        let answer = daemon
            .get("/v1/entities/svc-0/scores", Some(viewer()))
            .await;
        let all = answer.json();
        let r = all
            .as_array()
            .and_then(|list| list.iter().find(|r| r["scorecard"] == "fresh"))
            .ok_or_else(|| answer.text())?;
        (r["level"] == "Fresh" && rule(r, "fresh")["message"] == "hello (fresh-1)")
            .then_some(())
            .ok_or_else(|| r.to_string())
    })
    .await;

    // A writer that does not rename: the file is written in place in two steps. Whatever the
    // watcher saw in between, the finished file is what ends up in force.
    let text = org::quality("in place", 50);
    std::fs::write(scorecards.join("quality.yaml"), &text[..text.len() / 2]).expect("half");
    std::fs::write(scorecards.join("quality.yaml"), &text).expect("whole");
    eventually("the file written in place in force", || async {
        let card = get_json(&daemon, "/v1/scorecards/quality").await;
        let now = status(&daemon).await;
        (card["title"] == "Quality in place" && now["standards"]["last_error"].is_null())
            .then_some(())
            .ok_or_else(|| format!("{} / {}", card["title"], now["standards"]))
    })
    .await;
    assert_quality_follows(&daemon, 50).await;

    // The litter never produced an error.
    let now = status(&daemon).await;
    assert!(now["standards"]["last_error"].is_null(), "{now}");
    assert_eq!(now["standards"]["errors"], json!([]), "{now}");
    assert!(now["catalog"]["last_error"].is_null(), "{now}");
    assert!(now["plugin_errors"].is_null(), "{now}");

    // Removing a catalog file removes its entity.
    std::fs::remove_file(root.join("catalog/extra.yaml")).expect("remove");
    eventually("the entity gone", || async {
        let answer = daemon.get("/v1/entities/svc-new", Some(viewer())).await;
        (answer.status == 404)
            .then_some(())
            .ok_or_else(|| answer.status.to_string())
    })
    .await;

    let metrics_after = reload_metrics(&daemon).await;
    assert!(
        grew(&metrics_before, &metrics_after, "catalog", "ok") >= 2,
        "{metrics_after:?}"
    );
    assert!(
        grew(&metrics_before, &metrics_after, "standards", "ok") >= 2,
        "{metrics_after:?}"
    );
    assert!(
        grew(&metrics_before, &metrics_after, "plugins", "ok") >= 1,
        "{metrics_after:?}"
    );
    daemon.stop().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_reload_rescans_and_the_metrics_count_each_outcome() {
    let _serial = SERIAL.lock().await;
    let fixture = temp_dir();
    org::lay_out(fixture.path(), 35, &["noop"]);
    // Watching off: only the explicit reload puts changes in force, so counts are exact.
    let daemon = start(fixture.path(), false, |_| {}).await;
    let root = daemon.dir.path().to_owned();
    let scorecards = root.join("standards/scorecards");
    let plugins = root.join("plugins");
    let first = status(&daemon).await;
    let version = plugin_line(&first, "noop").expect("noop")["version"].clone();

    for (token, code) in [
        (None, 401),
        (Some(viewer()), 403),
        (Some(token_for("ci")), 403),
        (Some(token_for("approver")), 403),
    ] {
        let answer = daemon.request("POST", "/v1/reload", token, None).await;
        assert_eq!(answer.status, code, "{token:?}: {}", answer.text());
    }

    // A good scorecard change.
    let m0 = reload_metrics(&daemon).await;
    put(&scorecards, "quality.yaml", org::quality("v1", 10));
    let answer = daemon
        .request("POST", "/v1/reload", Some(admin()), None)
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let report = answer.json();
    assert_eq!(report["errors"], json!([]), "{report}");
    assert!(
        report["changes"].to_string().contains("quality"),
        "the answer says what changed: {report}"
    );
    // In force when the answer comes.
    let card = get_json(&daemon, "/v1/scorecards/quality").await;
    assert_eq!(card["title"], "Quality v1");
    assert_quality_follows(&daemon, 10).await;
    let m1 = reload_metrics(&daemon).await;
    assert_eq!(grew(&m0, &m1, "standards", "ok"), 1, "{m1:?}");
    assert_eq!(grew(&m0, &m1, "standards", "failed"), 0, "{m1:?}");
    assert_eq!(
        grew(&m0, &m1, "plugins", "ok"),
        0,
        "unchanged plugin: {m1:?}"
    );
    assert_eq!(grew(&m0, &m1, "plugins", "failed"), 0, "{m1:?}");
    assert_eq!(grew(&m0, &m1, "catalog", "ok"), 1, "{m1:?}");
    let after_good = status(&daemon).await;
    assert_ne!(
        after_good["standards"]["revision"],
        first["standards"]["revision"]
    );

    // A broken scorecard and a broken plugin build: both refused, both reported, both counted.
    put(&scorecards, "quality.yaml", org::broken_quality(0).0);
    put(&plugins, "noop.wasm", b"\0asm garbage");
    let answer = daemon
        .request("POST", "/v1/reload", Some(admin()), None)
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let report = answer.json();
    let errors = report["errors"].to_string();
    assert!(
        errors.contains("looksLike") && errors.contains("noop"),
        "{report}"
    );
    let now = status(&daemon).await;
    assert_eq!(
        now["standards"]["revision"],
        after_good["standards"]["revision"]
    );
    assert!(
        now["standards"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("looksLike")),
        "{now}"
    );
    let line = plugin_line(&now, "noop").expect("noop");
    assert_eq!(line["version"], version, "{line}");
    assert_eq!(line["state"]["state"], "active", "{line}");
    assert!(
        line["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("reload failed, previous version serving")),
        "{line}"
    );
    assert_quality_follows(&daemon, 10).await;
    check_rules_are(&daemon, "noop", "pass", "(noop-0)")
        .await
        .expect("previous build still in force");
    let m2 = reload_metrics(&daemon).await;
    assert_eq!(grew(&m1, &m2, "standards", "ok"), 0, "{m2:?}");
    assert_eq!(grew(&m1, &m2, "standards", "failed"), 1, "{m2:?}");
    assert_eq!(grew(&m1, &m2, "plugins", "ok"), 0, "{m2:?}");
    assert_eq!(grew(&m1, &m2, "plugins", "failed"), 1, "{m2:?}");
    assert_eq!(grew(&m1, &m2, "catalog", "ok"), 1, "{m2:?}");
    daemon.stop().await.expect("clean shutdown");
}
