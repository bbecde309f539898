//! The plugin sandbox end to end, with the real compiled fixtures of `plugins/fixtures/`.
//!
//! Each hostile fixture (endless loop, allocation bomb, trap, file and environment snooping,
//! sockets, a host off the allow list, garbage, huge and endless output, a hanging `init`, a
//! component of the wrong world) must be contained with the right typed error, and the next
//! call on another plugin of the same host must still succeed. Also: the circuit breaker, the
//! compiled-artifact cache, and secrets that never reach a log. The only timing assertion is
//! the bound the contract demands: an interrupted call returns within twice its budget.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use readyd::model::{CheckOutcome, RuleStatus};
use readyd::plugin::{
    CheckInput, HostConfig, Manifest, Plugin, PluginError, PluginHost, PluginKind, PluginRegistry,
    PluginState,
};
use readyd_plugin_artifacts as artifacts;
use readyd_tests::{CannedResponse, Receiver, entity, log_capture, temp_dir, write_file};
use serde_json::{Value, json};

/// A host small enough that many tests can each have one.
fn host_config() -> HostConfig {
    HostConfig {
        max_instances: 8,
        max_memory_mb: 256,
        ..HostConfig::default()
    }
}

fn host() -> PluginHost {
    PluginHost::new(host_config()).expect("plugin host")
}

/// Write `<name>.toml` in `dir` for the component at `wasm`, with `extra` TOML appended.
fn manifest(dir: &Path, name: &str, kind: PluginKind, wasm: &str, extra: &str) -> Manifest {
    let text = format!("name = \"{name}\"\nkind = \"{kind}\"\nwasm = \"{wasm}\"\n{extra}");
    let path = write_file(dir, &format!("{name}.toml"), text);
    Manifest::from_file(&path).expect("valid manifest")
}

async fn load(host: &PluginHost, dir: &Path, name: &str, wasm: &str, extra: &str) -> Arc<Plugin> {
    let kind = kind_of(wasm);
    host.load(manifest(dir, name, kind, wasm, extra))
        .await
        .expect("plugin loads")
}

fn kind_of(wasm: &str) -> PluginKind {
    let sources = [
        artifacts::FIXTURE_NOOP_SOURCE,
        artifacts::FIXTURE_MALFORMED,
        artifacts::FIXTURE_HUGE,
        artifacts::FIXTURE_MILLION_FACTS,
    ];
    if sources.contains(&wasm) {
        PluginKind::DataSource
    } else {
        PluginKind::Check
    }
}

async fn evaluate(plugin: &Plugin, params: Value) -> Result<CheckOutcome, PluginError> {
    plugin
        .evaluate(&entity("payments"), &json!({}), &params)
        .await
}

/// The proof that a failure was contained: a healthy plugin on the same host still answers.
async fn healthy_call_succeeds(host: &PluginHost, dir: &Path) {
    let noop = load(host, dir, "healthy", artifacts::FIXTURE_NOOP_CHECK, "").await;
    let outcome = evaluate(&noop, json!({"status": "fail", "message": "still here"})).await;
    assert_eq!(
        outcome.expect("the healthy plugin answers").status,
        RuleStatus::Fail
    );
}

#[tokio::test]
async fn a_check_answers_and_a_data_source_collects() {
    let dir = temp_dir();
    let host = host();
    let check = load(
        &host,
        dir.path(),
        "noop",
        artifacts::FIXTURE_NOOP_CHECK,
        "[config]\nmarker = \"v1\"\n",
    )
    .await;
    assert_eq!(check.kind(), PluginKind::Check);
    assert_eq!(check.version.len(), 12);
    let outcome = evaluate(&check, json!({"status": "warn", "message": "hello"}))
        .await
        .unwrap();
    assert_eq!(outcome.status, RuleStatus::Warn);
    assert_eq!(
        outcome.message.as_deref(),
        Some("hello (v1)"),
        "init saw the [config] table"
    );

    // The guest's own error is a typed, expected failure.
    let err = evaluate(&check, json!({"status": "error", "message": "upstream"}))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        PluginError::Plugin {
            plugin: "noop".into(),
            error: "failed: upstream (v1)".into()
        }
    );

    let source = load(
        &host,
        dir.path(),
        "noop-source",
        artifacts::FIXTURE_NOOP_SOURCE,
        "",
    )
    .await;
    let facts = source.collect(&[entity("a"), entity("b")]).await.unwrap();
    assert_eq!(facts.len(), 2);
    assert_eq!(facts[0].0, "a");
    assert_eq!(Value::Object(facts[1].1.clone()), json!({"n": 1}));

    // The other world's call is refused without running.
    assert!(matches!(
        source.evaluate(&entity("a"), &json!({}), &json!({})).await,
        Err(PluginError::WrongCall { .. })
    ));
    assert!(matches!(
        check.collect(&[entity("a")]).await,
        Err(PluginError::WrongCall { .. })
    ));
}

#[tokio::test]
async fn a_batch_runs_on_one_instance_and_survives_a_failing_call() {
    let dir = temp_dir();
    let host = host();
    let check = load(&host, dir.path(), "noop", artifacts::FIXTURE_NOOP_CHECK, "").await;
    let entities: Vec<_> = (0..50).map(|i| entity(&format!("e{i}"))).collect();
    let inputs: Vec<_> = entities
        .iter()
        .map(|e| CheckInput::new(e, &json!({})).unwrap())
        .collect();
    let pass = json!({"status": "pass"}).to_string();
    let error = json!({"status": "error", "message": "nope"}).to_string();
    let calls: Vec<_> = inputs
        .iter()
        .enumerate()
        .map(|(i, e)| (e, if i == 10 { &error } else { &pass }))
        .collect();
    let results = check.evaluate_batch(&calls).await;
    assert_eq!(results.len(), 50);
    assert!(matches!(results[10], Err(PluginError::Plugin { .. })));
    assert!(
        results
            .iter()
            .enumerate()
            .all(|(i, r)| i == 10 || r.as_ref().is_ok_and(|o| o.status == RuleStatus::Pass))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_loop_times_out_within_twice_its_budget() {
    let dir = temp_dir();
    let host = host();
    let looping = load(
        &host,
        dir.path(),
        "loop",
        artifacts::FIXTURE_INFINITE_LOOP,
        "timeout_ms = 1000\n",
    )
    .await;
    let started = Instant::now();
    let err = evaluate(&looping, json!({})).await.unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(
        err,
        PluginError::Timeout {
            plugin: "loop".into(),
            timeout_ms: 1000
        }
    );
    assert!(
        elapsed < Duration::from_millis(2000),
        "interrupted after {elapsed:?}"
    );
    healthy_call_succeeds(&host, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_init_times_out_at_load() {
    let dir = temp_dir();
    let cache = temp_dir();
    let host = PluginHost::new(HostConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        ..host_config()
    })
    .unwrap();
    let m = manifest(
        dir.path(),
        "init-hang",
        PluginKind::Check,
        artifacts::FIXTURE_INIT_HANG,
        "timeout_ms = 500\n",
    );
    let expected = PluginError::Timeout {
        plugin: "init-hang".into(),
        timeout_ms: 500,
    };
    // The first load compiles (not part of any call budget) and caches the artifact.
    assert_eq!(host.load(m.clone()).await.unwrap_err(), expected);
    // The second load is all `init`: it must be interrupted within twice its budget.
    let started = Instant::now();
    let err = host.load(m).await.unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(err, expected);
    assert!(
        elapsed < Duration::from_millis(1000),
        "interrupted after {elapsed:?}"
    );
    healthy_call_succeeds(&host, dir.path()).await;
}

#[tokio::test]
async fn an_allocation_bomb_is_out_of_memory() {
    let dir = temp_dir();
    let host = host();
    let bomb = load(
        &host,
        dir.path(),
        "bomb",
        artifacts::FIXTURE_ALLOC_BOMB,
        "memory_mb = 32\ntimeout_ms = 10000\n",
    )
    .await;
    let err = evaluate(&bomb, json!({})).await.unwrap_err();
    assert_eq!(
        err,
        PluginError::OutOfMemory {
            plugin: "bomb".into(),
            limit_mb: 32
        }
    );
    healthy_call_succeeds(&host, dir.path()).await;
    // The failed instance was dropped; the plugin itself still instantiates afresh.
    let again = evaluate(&bomb, json!({})).await.unwrap_err();
    assert!(matches!(again, PluginError::OutOfMemory { .. }));
}

#[tokio::test]
async fn a_trap_is_reported_and_its_panic_message_logged() {
    let logs = log_capture();
    let dir = temp_dir();
    let host = host();
    let trap = load(&host, dir.path(), "trapper", artifacts::FIXTURE_TRAP, "").await;
    let err = evaluate(&trap, json!({})).await.unwrap_err();
    assert!(
        matches!(&err, PluginError::Trap { plugin, .. } if plugin == "trapper"),
        "{err:?}"
    );
    let panic_lines = logs.lines_containing("deliberate panic while evaluating payments");
    assert!(
        panic_lines.iter().any(|l| l.contains("trapper")),
        "guest stderr reaches the log, tagged"
    );
    healthy_call_succeeds(&host, dir.path()).await;
}

#[tokio::test]
async fn files_outside_granted_dirs_are_invisible() {
    let dir = temp_dir();
    let granted = temp_dir();
    write_file(granted.path(), "hello.txt", "hello from the host");
    let extra = format!(
        "[capabilities]\ndirs = {{ \"/data\" = {:?} }}\n",
        granted.path().display().to_string()
    );
    let host = host();
    let reader = load(
        &host,
        dir.path(),
        "reader",
        artifacts::FIXTURE_READ_FILE,
        &extra,
    )
    .await;

    let outcome = evaluate(&reader, json!({"path": "/data/hello.txt"}))
        .await
        .unwrap();
    let details = outcome.details.unwrap();
    assert_eq!(details["etc_passwd"]["ok"], false, "{details}");
    assert_eq!(details["granted"]["ok"], true, "{details}");
    assert_eq!(details["granted"]["bytes"], 19);

    for escape in [
        "/data/../etc/passwd",
        "/data/../../../../etc/passwd",
        "/etc/passwd",
    ] {
        let outcome = evaluate(&reader, json!({"path": escape})).await.unwrap();
        assert_eq!(
            outcome.details.unwrap()["granted"]["ok"],
            false,
            "{escape} was readable"
        );
    }
    // Read-only: the sandbox grants no writes even under a granted dir (checked by the host
    // side: the file is unchanged after all the calls).
    assert_eq!(
        std::fs::read_to_string(granted.path().join("hello.txt")).unwrap(),
        "hello from the host"
    );
    healthy_call_succeeds(&host, dir.path()).await;
}

#[tokio::test]
async fn no_environment_variable_is_visible() {
    assert!(
        std::env::vars_os().next().is_some(),
        "the test process itself has an environment"
    );
    let dir = temp_dir();
    let host = host();
    let env = load(&host, dir.path(), "env", artifacts::FIXTURE_READ_ENV, "").await;
    let outcome = evaluate(&env, json!({})).await.unwrap();
    assert_eq!(outcome.details.unwrap()["count"], 0);
    healthy_call_succeeds(&host, dir.path()).await;
}

#[tokio::test]
async fn sockets_are_refused() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = temp_dir();
    let host = host();
    let socket = load(
        &host,
        dir.path(),
        "socket",
        artifacts::FIXTURE_OPEN_SOCKET,
        "",
    )
    .await;
    let outcome = evaluate(&socket, json!({"port": port})).await.unwrap();
    assert_eq!(outcome.details.unwrap()["connected"], false);
    // Nothing connected: accept would have a connection ready.
    let accepted = tokio::time::timeout(Duration::from_millis(100), listener.accept()).await;
    assert!(accepted.is_err(), "the plugin reached the listener");
    healthy_call_succeeds(&host, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_goes_only_to_allowed_hosts() {
    let allowed = Receiver::serving(CannedResponse::json(&json!({"ok": true}))).await;
    let forbidden = Receiver::start().await;
    let dir = temp_dir();
    let host = host();
    let extra = format!(
        "timeout_ms = 10000\n[capabilities]\nhttp = [\"{}\"]\n",
        allowed.addr()
    );
    let client = load(
        &host,
        dir.path(),
        "client",
        artifacts::FIXTURE_DENIED_HOST,
        &extra,
    )
    .await;

    let denied = evaluate(&client, json!({"url": forbidden.url("/secret")}))
        .await
        .unwrap();
    assert_eq!(
        denied.details.as_ref().unwrap()["denied"],
        true,
        "{denied:?}"
    );
    assert_eq!(
        forbidden.connections(),
        0,
        "a denied request must not even connect"
    );
    assert!(forbidden.requests().is_empty());

    // Same host, other port: still denied (ports are part of the grant).
    let other_port = format!("http://127.0.0.1:{}/", forbidden.addr().port());
    let denied = evaluate(&client, json!({"url": other_port})).await.unwrap();
    assert_eq!(denied.details.unwrap()["denied"], true);

    let answered = evaluate(&client, json!({"url": allowed.url("/v1/things?x=1")}))
        .await
        .unwrap();
    assert_eq!(
        answered.details.as_ref().unwrap()["status"],
        200,
        "{answered:?}"
    );
    let requests = allowed.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].path, "/v1/things?x=1");
    assert_eq!(
        requests[0].header("host"),
        Some(allowed.addr().to_string().as_str())
    );
    assert_eq!(forbidden.connections(), 0);
    healthy_call_succeeds(&host, dir.path()).await;
}

#[tokio::test]
async fn facts_that_are_not_json_are_malformed_output() {
    let dir = temp_dir();
    let host = host();
    let source = load(
        &host,
        dir.path(),
        "garbage",
        artifacts::FIXTURE_MALFORMED,
        "",
    )
    .await;
    let err = source.collect(&[entity("a")]).await.unwrap_err();
    assert!(
        matches!(&err, PluginError::MalformedOutput { plugin, reason } if plugin == "garbage" && reason.contains("`a`")),
        "{err:?}"
    );
    healthy_call_succeeds(&host, dir.path()).await;
}

#[tokio::test]
async fn huge_output_is_refused_whichever_limit_it_hits() {
    let dir = temp_dir();
    let host = host();
    // 100 MiB of facts in a 64 MiB sandbox: the guest runs out of memory building them.
    let huge = load(&host, dir.path(), "huge", artifacts::FIXTURE_HUGE, "").await;
    let err = huge.collect(&[entity("a")]).await.unwrap_err();
    assert_eq!(
        err,
        PluginError::OutOfMemory {
            plugin: "huge".into(),
            limit_mb: 64
        }
    );

    // 20 MiB of facts with room to build them: the host refuses output over 16 MiB.
    let extra = "memory_mb = 128\n[config]\nbytes = 20971520\n";
    let roomy = load(
        &host,
        dir.path(),
        "huge-roomy",
        artifacts::FIXTURE_HUGE,
        extra,
    )
    .await;
    let err = roomy.collect(&[entity("a")]).await.unwrap_err();
    assert!(
        matches!(&err, PluginError::MalformedOutput { reason, .. } if reason.contains("exceed the limit")),
        "{err:?}"
    );

    // A small document from the same plugin is fine.
    let small = load(
        &host,
        dir.path(),
        "huge-small",
        artifacts::FIXTURE_HUGE,
        "[config]\nbytes = 10\n",
    )
    .await;
    let facts = small.collect(&[entity("a")]).await.unwrap();
    assert_eq!(facts[0].1["blob"], "xxxxxxxxxx");
    healthy_call_succeeds(&host, dir.path()).await;
}

#[tokio::test]
async fn a_million_facts_are_contained() {
    let dir = temp_dir();
    let host = host();
    let extra = "memory_mb = 256\ntimeout_ms = 30000\n";
    let flood = load(
        &host,
        dir.path(),
        "million",
        artifacts::FIXTURE_MILLION_FACTS,
        extra,
    )
    .await;
    let err = flood.collect(&[entity("e1")]).await.unwrap_err();
    assert!(
        matches!(
            &err,
            PluginError::MalformedOutput { .. } | PluginError::OutOfMemory { .. }
        ),
        "{err:?}"
    );

    // A smaller flood: only the entities asked about are kept.
    let few = load(
        &host,
        dir.path(),
        "thousand",
        artifacts::FIXTURE_MILLION_FACTS,
        "[config]\ncount = 1000\n",
    )
    .await;
    let facts = few
        .collect(&[entity("e3"), entity("e999"), entity("zz")])
        .await
        .unwrap();
    let ids: Vec<&str> = facts.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["e3", "e999"]);
    assert_eq!(facts[1].1["i"], 999);
    healthy_call_succeeds(&host, dir.path()).await;
}

#[tokio::test]
async fn a_log_flood_is_capped_per_call() {
    let logs = log_capture();
    let dir = temp_dir();
    let host = PluginHost::new(HostConfig {
        max_log_lines_per_call: 25,
        ..host_config()
    })
    .unwrap();
    let flood = load(
        &host,
        dir.path(),
        "flood",
        artifacts::FIXTURE_LOG_FLOOD,
        "timeout_ms = 30000\n",
    )
    .await;
    let outcome = flood
        .evaluate(
            &entity("flooded-entity"),
            &json!({}),
            &json!({"lines": 100000}),
        )
        .await
        .unwrap();
    assert_eq!(outcome.status, RuleStatus::Pass);
    assert_eq!(flood.log_lines_dropped(), 100_000 - 25);
    let forwarded = logs.lines_containing("for flooded-entity");
    assert_eq!(
        forwarded.len(),
        25,
        "only the per-call budget reaches the log"
    );
    assert!(!logs.lines_containing("plugin log lines dropped").is_empty());
    healthy_call_succeeds(&host, dir.path()).await;
}

#[tokio::test]
async fn a_component_of_another_world_is_refused_with_a_clear_message() {
    let dir = temp_dir();
    let host = host();
    let m = manifest(
        dir.path(),
        "command",
        PluginKind::Check,
        artifacts::FIXTURE_WRONG_WORLD,
        "",
    );
    let err = host.load(m).await.unwrap_err();
    match &err {
        PluginError::WrongWorld {
            plugin,
            expected,
            found,
        } => {
            assert_eq!((plugin.as_str(), expected.as_str()), ("command", "check"));
            assert!(found.contains("wasi:cli/run"), "{found}");
        }
        other => panic!("expected WrongWorld, got {other:?}"),
    }
    // A check declared as a data source is refused too, naming what it really is.
    let m = manifest(
        dir.path(),
        "mislabelled",
        PluginKind::DataSource,
        artifacts::FIXTURE_NOOP_CHECK,
        "",
    );
    let err = host.load(m).await.unwrap_err();
    assert!(
        matches!(&err, PluginError::WrongWorld { found, .. } if found.contains("`check`")),
        "{err:?}"
    );
    assert!(err.to_string().contains("mislabelled"));
    healthy_call_succeeds(&host, dir.path()).await;
}

#[tokio::test]
async fn repeated_faults_park_a_plugin_until_it_is_reloaded() {
    let dir = temp_dir();
    let host = host();
    let registry = PluginRegistry::new(3);
    let trap = load(&host, dir.path(), "flaky", artifacts::FIXTURE_TRAP, "").await;
    assert!(!registry.insert(trap));
    for _ in 0..3 {
        let err = registry
            .evaluate("flaky", &entity("a"), &json!({}), &json!({}))
            .await
            .unwrap_err();
        assert!(matches!(err, PluginError::Trap { .. }), "{err:?}");
    }
    let err = registry
        .evaluate("flaky", &entity("a"), &json!({}), &json!({}))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        PluginError::Parked {
            plugin: "flaky".into(),
            failures: 3
        }
    );
    // A batch is refused call by call without running.
    let (e, v) = (
        CheckInput::new(&entity("b"), &json!({})).unwrap(),
        "{}".to_string(),
    );
    let batch = registry
        .evaluate_batch("flaky", &[(&e, &v), (&e, &v)])
        .await;
    assert!(
        batch
            .iter()
            .all(|r| matches!(r, Err(PluginError::Parked { .. })))
    );

    let status = registry.status();
    assert_eq!(status.len(), 1);
    assert!(
        matches!(status[0].state, PluginState::Parked { failures: 3, .. }),
        "{:?}",
        status[0]
    );
    assert_eq!((status[0].calls, status[0].failures), (3, 3));
    assert!(status[0].last_error.as_deref().unwrap().contains("trapped"));

    // Reloading (a new version under the same name) closes the breaker.
    let noop = load(
        &host,
        dir.path(),
        "flaky",
        artifacts::FIXTURE_NOOP_CHECK,
        "",
    )
    .await;
    assert!(registry.insert(noop));
    let outcome = registry
        .evaluate("flaky", &entity("a"), &json!({}), &json!({}))
        .await
        .unwrap();
    assert_eq!(outcome.status, RuleStatus::Pass);
    assert_eq!(registry.status()[0].state, PluginState::Active);
}

#[tokio::test]
async fn a_second_host_loads_from_the_artifact_cache() {
    let dir = temp_dir();
    let cache = temp_dir();
    let config = HostConfig {
        cache_dir: Some(cache.path().join("artifacts")),
        ..host_config()
    };
    let m = manifest(
        dir.path(),
        "cached",
        PluginKind::Check,
        artifacts::FIXTURE_NOOP_CHECK,
        "",
    );

    let first = PluginHost::new(config.clone())
        .unwrap()
        .load(m.clone())
        .await
        .unwrap();
    assert!(!first.loaded_from_cache(), "nothing cached yet: compiled");
    let artifacts_written: Vec<PathBuf> = std::fs::read_dir(cache.path().join("artifacts"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(artifacts_written.len(), 1, "{artifacts_written:?}");
    assert!(
        artifacts_written[0]
            .extension()
            .is_some_and(|e| e == "cwasm")
    );

    let second = PluginHost::new(config.clone())
        .unwrap()
        .load(m.clone())
        .await
        .unwrap();
    assert!(
        second.loaded_from_cache(),
        "same wasm, same engine: no compilation"
    );
    assert_eq!(second.version, first.version);
    assert_eq!(
        evaluate(&second, json!({})).await.unwrap().status,
        RuleStatus::Pass
    );

    // An artifact damaged on disk (a crash mid-write by another tool, a bad disk) is discarded
    // and recompiled, never executed. A new file, as a writer would: the old one stays mapped.
    std::fs::remove_file(&artifacts_written[0]).unwrap();
    std::fs::write(&artifacts_written[0], b"not an artifact").unwrap();
    let third = PluginHost::new(config).unwrap().load(m).await.unwrap();
    assert!(!third.loaded_from_cache());
    assert_eq!(
        evaluate(&third, json!({})).await.unwrap().status,
        RuleStatus::Pass
    );
    assert!(std::fs::read(&artifacts_written[0]).unwrap().len() > 1000);
}

#[tokio::test]
async fn secrets_reach_the_plugin_but_never_a_log() {
    const SECRET: &str = "tok-4f9c2d81e7b3";
    let logs = log_capture();
    let dir = temp_dir();
    // The manifest names an environment variable; the lookup stands in for the environment.
    let text = format!(
        "name = \"secretive\"\nkind = \"check\"\nwasm = \"{}\"\n[capabilities]\nsecrets = {{ marker = \"READYD_TEST_TOKEN\" }}\n",
        artifacts::FIXTURE_NOOP_CHECK
    );
    let path = write_file(dir.path(), "secretive.toml", &text);
    let env = |var: &str| (var == "READYD_TEST_TOKEN").then(|| SECRET.to_string());
    let m = Manifest::parse(&text, &path, &env).unwrap();

    let host = host();
    let plugin = host.load(m.clone()).await.unwrap();
    // The guest got it (it echoes its `marker` config), and the host blanks it on the way out.
    let outcome = evaluate(&plugin, json!({"message": "using"}))
        .await
        .unwrap();
    assert_eq!(outcome.message.as_deref(), Some("using ([redacted])"));
    let err = evaluate(&plugin, json!({"status": "error", "message": "rejected"}))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "plugin `secretive`: failed: rejected ([redacted])"
    );

    let registry = PluginRegistry::new(5);
    registry.insert(plugin.clone());
    let shown = [
        format!("{m:?}"),
        format!("{m:#?}"),
        serde_json::to_string(&m).unwrap(),
        format!("{plugin:?}"),
        format!("{host:?}"),
        format!("{registry:?}"),
        serde_json::to_string(&registry.status()).unwrap(),
        logs.contents(),
    ];
    for text in shown {
        assert!(!text.contains(SECRET), "secret leaked into: {text}");
    }
}

#[tokio::test]
async fn calls_run_concurrently_on_one_plugin() {
    let dir = temp_dir();
    let host = host();
    let check = load(&host, dir.path(), "noop", artifacts::FIXTURE_NOOP_CHECK, "").await;
    let calls = (0..32).map(|i| {
        let check = check.clone();
        tokio::spawn(async move {
            let params = json!({"message": format!("call {i}")});
            check.evaluate(&entity("x"), &json!({}), &params).await
        })
    });
    for (i, call) in futures_util_join_all(calls).await.into_iter().enumerate() {
        let outcome = call.unwrap().unwrap();
        assert_eq!(outcome.message, Some(format!("call {i}")));
    }
}

/// `join_all` without a futures dependency: await the handles in order.
async fn futures_util_join_all<T>(
    handles: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<Result<T, tokio::task::JoinError>> {
    let mut out = Vec::new();
    for handle in handles.collect::<Vec<_>>() {
        out.push(handle.await);
    }
    out
}

#[tokio::test]
async fn plugin_check_reports_every_plugin_and_every_error() {
    use readyd::plugin::cli::{PluginCommand, run};
    let dir = temp_dir();
    manifest(
        dir.path(),
        "good",
        PluginKind::Check,
        artifacts::FIXTURE_NOOP_CHECK,
        "",
    );
    let all_good = run(PluginCommand::Check {
        dir: dir.path().to_path_buf(),
    })
    .await
    .unwrap();
    assert_eq!(all_good, 0);
    write_file(
        dir.path(),
        "bad.toml",
        "name = \"bad\"\nkind = \"check\"\nwasm = \"missing.wasm\"\n",
    );
    let with_bad = run(PluginCommand::Check {
        dir: dir.path().to_path_buf(),
    })
    .await
    .unwrap();
    assert_eq!(with_bad, 1);
}

#[tokio::test]
async fn plugin_run_runs_one_plugin_once() {
    use readyd::plugin::cli::{PluginCommand, run};
    let dir = temp_dir();
    manifest(
        dir.path(),
        "noop",
        PluginKind::Check,
        artifacts::FIXTURE_NOOP_CHECK,
        "",
    );
    let entity_file = write_file(
        dir.path(),
        "entity.yaml",
        "identifier: payments\nkind: service\ntitle: Payments\n",
    );
    let code = run(PluginCommand::Run {
        manifest: dir.path().join("noop.toml"),
        entity: entity_file.clone(),
        facts: None,
        params: Some(r#"{"status": "fail"}"#.into()),
    })
    .await
    .unwrap();
    assert_eq!(code, 0);
    let code = run(PluginCommand::Run {
        manifest: dir.path().join("noop.toml"),
        entity: entity_file,
        facts: None,
        params: Some(r#"{"status": "error"}"#.into()),
    })
    .await
    .unwrap();
    assert_eq!(code, 1, "a failing plugin call exits 1");
}

#[tokio::test]
async fn a_plugin_built_against_another_contract_version_is_refused() {
    // The noop check with its import of `readyd:plugin/types@0.1.0` renamed to `@0.9.0`, as a
    // plugin built against a future contract would be (same length: the binary stays valid).
    let original = std::fs::read(artifacts::FIXTURE_NOOP_CHECK).unwrap();
    let (from, to) = (b"readyd:plugin/types@0.1.0", b"readyd:plugin/types@0.9.0");
    let mut patched = original.clone();
    let mut renamed = 0;
    for i in 0..patched.len().saturating_sub(from.len()) {
        if &patched[i..i + from.len()] == from {
            patched[i..i + to.len()].copy_from_slice(to);
            renamed += 1;
        }
    }
    assert!(renamed > 0, "the fixture imports readyd:plugin/types@0.1.0");
    let dir = temp_dir();
    write_file(dir.path(), "future.wasm", &patched);
    let m = manifest(dir.path(), "future", PluginKind::Check, "future.wasm", "");
    let err = host().load(m).await.unwrap_err();
    assert_eq!(
        err,
        PluginError::UnsupportedVersion {
            plugin: "future".into(),
            found: "readyd:plugin@0.9.0".into(),
            supported: "readyd:plugin@0.1.0".into(),
        }
    );
    assert_eq!(
        err.to_string(),
        "plugin `future`: built against readyd:plugin@0.9.0; this daemon serves readyd:plugin@0.1.0"
    );
}

#[test]
fn plugins_load_where_address_space_is_limited() {
    // Each pooled memory slot normally reserves 4 GiB of address space (no bounds checks in
    // guest code): about 800 GB for the default pool. Under a 128 GiB `ulimit -v` that is
    // refused and the host falls back to slots of `max_memory_mb`; the plugin still loads,
    // passes its smoke test and answers.
    let dir = temp_dir();
    manifest(
        dir.path(),
        "noop",
        PluginKind::Check,
        artifacts::FIXTURE_NOOP_CHECK,
        "",
    );
    let entity_file = write_file(
        dir.path(),
        "entity.yaml",
        "identifier: payments\nkind: service\ntitle: Payments\n",
    );
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 134217728 && exec \"$0\" \"$@\"")
        .arg(readyd_tests::readyd_bin())
        .args(["plugin", "run"])
        .arg(dir.path().join("noop.toml"))
        .arg("--entity")
        .arg(&entity_file)
        .output()
        .expect("run readyd under ulimit -v");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{said}");
    assert!(said.contains("\"pass\""), "{said}");
}
