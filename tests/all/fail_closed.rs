//! The gate fails closed (issue 17, item 3; DESIGN.md section 12), on the real `readyd serve`
//! binary over a copy of the example organisation with its real plugins:
//!
//! - a plugin whose manifest is there but whose wasm is missing or broken turns its rules into
//!   `error` with the load failure, the rest of the standards apply, and the gate refuses the
//!   tier-1 entity naming that rule (before the fix: the whole standards set was refused and
//!   the gate answered allowed);
//! - with standards files that fail on a fresh state, `/readyz` and the gate answer 503
//!   `not_ready` and `readyd gate` exits 2, until the files are fixed;
//! - a restart whose files fail after a good start serves the stored set, says so in
//!   `/v1/status` and `/metrics`, and the gate answers from it; fixing the files replaces it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use readyd_tests::{DemoOrg, HttpResponse, readyd_bin, send, shared_plugin_cache};

/// Bound on a start or a hot reload on a loaded 2-core machine (a wait, never an assertion
/// on time).
const BOUND: Duration = Duration::from_secs(120);

/// `readyd serve --config` as a child process; killed when dropped.
struct Serve {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    /// Start it and wait until it prints its address (the engine's start is over by then:
    /// the HTTP listener opens after it).
    async fn start(config: &Path, log: &Path) -> Serve {
        let file = std::fs::File::create(log).expect("create the log file");
        let mut command = Command::new(readyd_bin());
        command
            .arg("serve")
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("clone the log file"))
            .stderr(file);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("READYD_") || name == "RUST_LOG" {
                command.env_remove(name);
            }
        }
        let mut child = command.spawn().expect("start readyd serve");
        let deadline = tokio::time::Instant::now() + BOUND;
        let addr = loop {
            if let Some(addr) = std::fs::read_to_string(log)
                .unwrap_or_default()
                .lines()
                .find_map(|l| l.trim().strip_prefix("dashboard: http://"))
                .and_then(|rest| rest.trim_end_matches('/').parse::<SocketAddr>().ok())
            {
                break addr;
            }
            if let Some(status) = child.try_wait().expect("poll readyd") {
                panic!(
                    "readyd exited during start ({status}):\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "readyd did not start within {BOUND:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        Serve {
            child,
            addr,
            log: log.to_owned(),
        }
    }

    async fn get(&self, path: &str) -> HttpResponse {
        send(self.addr, "GET", path, &[], Vec::new()).await
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Poll `GET path` until `done` accepts the answer (bounded).
    async fn wait_for(&self, path: &str, what: &str, done: impl Fn(&HttpResponse) -> bool) {
        let deadline = tokio::time::Instant::now() + BOUND;
        loop {
            let answer = self.get(path).await;
            if done(&answer) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: not within {BOUND:?}; last answer {} {}\nlog:\n{}",
                answer.status,
                answer.text(),
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM and wait for the clean exit.
    async fn terminate(mut self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill -TERM");
        assert!(sent.success());
        let deadline = tokio::time::Instant::now() + BOUND;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll readyd") {
                assert!(status.success(), "readyd stopped with {status}");
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "readyd did not stop"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The example organisation with its real plugins, a fresh state file, and the shared
/// compiled-plugin cache (compiling every plugin per test would dominate the run).
async fn demo_org() -> DemoOrg {
    let org = DemoOrg::new().await;
    let config = org.path().join("readyd.toml");
    let text = std::fs::read_to_string(&config).expect("readyd.toml");
    let text = text.replace(
        "cache_dir = \".readyd/cache\"",
        &format!("cache_dir = \"{}\"", shared_plugin_cache().display()),
    );
    std::fs::write(&config, text).expect("write readyd.toml");
    org
}

fn set_manifest_wasm(org: &DemoOrg, plugin: &str, wasm: &Path) {
    let path = org.path().join("plugins").join(format!("{plugin}.toml"));
    let text = std::fs::read_to_string(&path).expect("manifest");
    let text: Vec<String> = text
        .lines()
        .map(|line| {
            if line.starts_with("wasm = ") {
                format!("wasm = \"{}\"", wasm.display())
            } else {
                line.to_owned()
            }
        })
        .collect();
    std::fs::write(&path, text.join("\n") + "\n").expect("write manifest");
}

/// Replace a file the way editors and deploy tools should (write + rename).
fn replace_file(path: &Path, text: &str) {
    let temp = path.with_extension("tmp-fail-closed");
    std::fs::write(&temp, text).expect("write");
    std::fs::rename(&temp, path).expect("rename");
}

fn rule<'a>(scores: &'a serde_json::Value, scorecard: &str, rule: &str) -> &'a serde_json::Value {
    scores
        .as_array()
        .expect("a list of scorecard results")
        .iter()
        .find(|r| r["scorecard"] == scorecard)
        .and_then(|r| r["rules"].as_array())
        .and_then(|rules| rules.iter().find(|x| x["rule"] == rule))
        .unwrap_or_else(|| panic!("no rule {scorecard}/{rule} in {scores}"))
}

/// Regression: a plugin whose manifest is present but whose wasm is missing (the manifests'
/// relative paths miss once `examples/` is copied elsewhere) refused the whole standards set:
/// `scorecards: 0`, `/readyz` 200 and the tier-1 `payments-ledger` allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_fails_to_load_errors_its_rules_and_the_rest_applies() {
    let org = demo_org().await;
    // slo-budget: the wasm file is missing; dependency-policy: the file is not WebAssembly.
    set_manifest_wasm(&org, "slo-budget", &org.path().join("plugins/gone.wasm"));
    let garbage = org.path().join("plugins/broken.wasm");
    std::fs::write(&garbage, b"this is not a WebAssembly component").expect("write");
    set_manifest_wasm(&org, "dependency-policy", &garbage);
    let daemon = Serve::start(&org.path().join("readyd.toml"), &org.path().join("log")).await;

    let ready = daemon.get("/readyz").await;
    assert_eq!(ready.status, 200, "{}\n{}", ready.text(), daemon.log());
    let status = daemon.get("/v1/status").await.json();
    assert_eq!(status["scorecards"], 2, "{status:#}");
    assert_eq!(status["standards"]["errors"], serde_json::json!([]));
    assert_eq!(status["standards"]["serving"]["from"], "files");

    let scores = daemon
        .get("/v1/entities/payments-ledger/scores")
        .await
        .json();
    let slo = rule(&scores, "production-readiness", "slo-budget");
    assert_eq!(slo["status"], "error", "{slo}");
    let message = slo["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("slo-budget is not loaded") && message.contains("does not exist"),
        "{message}"
    );
    let policy = rule(&scores, "security", "dependency-policy");
    assert_eq!(policy["status"], "error", "{policy}");
    assert!(
        policy["message"]
            .as_str()
            .is_some_and(|m| m.contains("dependency-policy is not loaded")),
        "{policy}"
    );
    // The rest of the standards apply.
    assert_eq!(
        rule(&scores, "production-readiness", "has-owner")["status"],
        "pass"
    );

    let gate = daemon.get("/v1/gate/payments-ledger").await;
    assert_eq!(gate.status, 200, "{}", gate.text());
    let gate = gate.json();
    assert_eq!(gate["allowed"], false, "{gate}");
    assert!(
        gate["reasons"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r.as_str().is_some_and(|r| r.contains("slo-budget (error"))),
        "{gate}"
    );
}

/// A fresh state whose standards files fail: nothing may be answered as allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_start_with_broken_standards_is_not_ready_and_the_gate_refuses_to_answer() {
    let org = demo_org().await;
    let security = org.path().join("standards/scorecards/security.yaml");
    let good = std::fs::read_to_string(&security).expect("security.yaml");
    std::fs::write(&security, good.replace("level: Silver", "level: Platinum")).expect("write");
    let daemon = Serve::start(&org.path().join("readyd.toml"), &org.path().join("log")).await;

    let ready = daemon.get("/readyz").await;
    assert_eq!(ready.status, 503, "{}", ready.text());
    assert_eq!(ready.error_code(), "not_ready");
    let gate = daemon.get("/v1/gate/payments-ledger").await;
    assert_eq!(gate.status, 503, "{}", gate.text());
    assert_eq!(gate.error_code(), "not_ready");
    let message = gate.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(message.contains("security.yaml"), "{message}");
    let status = daemon.get("/v1/status").await.json();
    assert_eq!(status["ready"], false);
    assert_eq!(status["standards"]["serving"]["from"], "none", "{status:#}");
    assert!(
        status["standards"]["serving"]["files_refused"]
            .as_str()
            .is_some_and(|r| r.contains("Platinum")),
        "{status:#}"
    );
    let metrics = daemon.get("/metrics").await.text();
    assert!(metrics.contains("readyd_ready 0"), "{metrics}");

    // The CI client cannot get an answer: exit 2, the reason on stderr.
    let url = format!("http://{}", daemon.addr);
    let client = tokio::task::spawn_blocking(move || {
        Command::new(readyd_bin())
            .args(["gate", "payments-ledger", "--url", &url, "--token"])
            .arg("demo-ci-token")
            .output()
            .expect("run readyd gate")
    })
    .await
    .expect("readyd gate ran");
    assert_eq!(client.status.code(), Some(2), "{client:?}");
    let stderr = String::from_utf8_lossy(&client.stderr);
    assert!(stderr.contains("not_ready"), "{stderr}");

    // Fixed (hot reload): ready, and the gate answers.
    replace_file(&security, &good);
    daemon
        .wait_for("/readyz", "ready after the fix", |r| r.status == 200)
        .await;
    let gate = daemon.get("/v1/gate/payments-ledger").await;
    assert_eq!(gate.status, 200, "{}", gate.text());
    assert_eq!(gate.json()["allowed"], false);
}

/// A restart whose standards files fail after a good start serves the stored set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_broken_standards_serves_the_stored_set() {
    let org = demo_org().await;
    let config = org.path().join("readyd.toml");
    let first = Serve::start(&config, &org.path().join("log-1")).await;
    first
        .wait_for("/readyz", "first start ready", |r| r.status == 200)
        .await;
    let status = first.get("/v1/status").await.json();
    let revision = status["standards"]["revision"]
        .as_str()
        .expect("a revision")
        .to_owned();
    assert_eq!(status["standards"]["serving"]["from"], "files");
    let gate_before = first.get("/v1/gate/payments-ledger").await.json();
    assert_eq!(gate_before["allowed"], false, "{gate_before}");
    first.terminate().await;

    let security = org.path().join("standards/scorecards/security.yaml");
    let good = std::fs::read_to_string(&security).expect("security.yaml");
    std::fs::write(&security, "identifier: security\nlevels: [ {title: Basic\n").expect("write");
    let second = Serve::start(&config, &org.path().join("log-2")).await;

    let ready = second.get("/readyz").await;
    assert_eq!(ready.status, 200, "{}\n{}", ready.text(), second.log());
    let status = second.get("/v1/status").await.json();
    let serving = &status["standards"]["serving"];
    assert_eq!(serving["from"], "stored", "{status:#}");
    assert_eq!(serving["revision"], revision.as_str());
    assert!(serving["loaded_at"].is_string(), "{serving}");
    assert!(
        serving["files_refused"]
            .as_str()
            .is_some_and(|r| r.contains("security.yaml")),
        "{serving}"
    );
    assert_eq!(status["scorecards"], 2);
    assert_eq!(status["standards"]["revision"], revision.as_str());
    assert!(
        second
            .get("/metrics")
            .await
            .text()
            .contains("readyd_standards_serving_stored 1")
    );
    let gate = second.get("/v1/gate/payments-ledger").await;
    assert_eq!(gate.status, 200, "{}", gate.text());
    let gate = gate.json();
    assert_eq!(gate["allowed"], false, "{gate}");
    assert!(
        gate["reasons"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r
                .as_str()
                .is_some_and(|r| r.contains("production-readiness")))),
        "{gate}"
    );

    // Fixed: the fresh set from the files replaces the stored one, and status says so.
    replace_file(&security, &good.replace("Licence", "License"));
    second
        .wait_for("/v1/status", "the files serve again", |r| {
            r.status == 200 && r.json()["standards"]["serving"]["from"] == "files"
        })
        .await;
    let status = second.get("/v1/status").await.json();
    assert_ne!(status["standards"]["revision"], revision.as_str());
    assert_eq!(
        status["standards"]["serving"]["files_refused"],
        serde_json::Value::Null
    );
    assert!(
        second
            .get("/metrics")
            .await
            .text()
            .contains("readyd_standards_serving_stored 0")
    );
}
