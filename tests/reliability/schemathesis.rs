//! schemathesis (from PyPI) against `/openapi.json` of a throwaway daemon (issue 8, item 4):
//! property-based requests for every documented operation, valid and invalid ones (coverage,
//! fuzzing and stateful phases), with the admin token. The run must find no 5xx, no answer
//! outside the documented schema, no status, content type or header the document does not
//! list, no invalid input accepted, no protected operation served without a token, and no
//! unsupported method answered with anything but 405: every check of schemathesis except
//! `positive_data_acceptance`, which counts each 400 for a schema-valid but meaningless request
//! (an unknown scorecard, an `until` in the past, a tier the entity already has) as a failure.
//!
//! So that requests reach real state rather than 404s, a `schemathesis.toml` binds path, query
//! and body parameters to dictionaries of the fixture's identifiers (entities, scorecard, rules,
//! teams, levels, initiative, dashboard files) and to a pending exemption and tier request the
//! test creates first; each binding applies to a share of the examples, the rest stay random.
//!
//! The tool lives in a Python virtual environment under
//! `target/test-tools/schemathesis-venv`, created once with `python3 -m venv` and the exact
//! versions of `tests/reliability/requirements.txt` (recreated when that file changes). Without
//! `python3` or PyPI the test fails and says why; `READYD_SKIP_SCHEMATHESIS=1` skips it, saying so.
//!
//! Run: `cargo test --workspace --test reliability schemathesis -- --nocapture`.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use readyd_tests::{TestDaemon, start_daemon, token_for};
use serde_json::json;

/// The pinned tool set; its text also keys the cached environment.
const REQUIREMENTS: &str = include_str!("requirements.txt");
/// Examples per operation and phase: enough to try every parameter and body shape, small
/// enough for well under a minute in a debug build on two cores.
const MAX_EXAMPLES: &str = "25";
/// A fixed seed: the same requests every run.
const SEED: &str = "20260101";
/// Bound on the whole schemathesis run; reaching it is a failure.
const RUN_BOUND: Duration = Duration::from_secs(600);
const PATIENCE: Duration = Duration::from_secs(60);

/// `target/` of this build (the test binary is `target/<profile>/deps/reliability-<hash>`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.ancestors()
        .nth(3)
        .expect("target/<profile>/deps/<binary>")
        .to_path_buf()
}

fn run(command: &mut Command, what: &str) -> Result<(), String> {
    let output = command
        .output()
        .map_err(|e| format!("{what}: cannot run {command:?}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}):\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// The `st` executable of the cached environment, creating or renewing it when needed.
fn schemathesis() -> Result<PathBuf, String> {
    let venv = target_dir().join("test-tools/schemathesis-venv");
    let st = venv.join("bin/st");
    let marker = venv.join("readyd-requirements.txt");
    if st.is_file() && std::fs::read_to_string(&marker).is_ok_and(|m| m == REQUIREMENTS) {
        return Ok(st);
    }
    println!(
        "schemathesis: creating {} from tests/reliability/requirements.txt",
        venv.display()
    );
    if venv.exists() {
        std::fs::remove_dir_all(&venv).map_err(|e| format!("remove {}: {e}", venv.display()))?;
    }
    std::fs::create_dir_all(venv.parent().expect("test-tools"))
        .map_err(|e| format!("create {}: {e}", venv.display()))?;
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        "python3 -m venv (python3 with its venv module is needed for this test)",
    )?;
    let requirements = venv.join("requirements.txt");
    std::fs::write(&requirements, REQUIREMENTS).map_err(|e| format!("write: {e}"))?;
    run(
        Command::new(venv.join("bin/python"))
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-input",
                "-r",
            ])
            .arg(&requirements),
        "pip install -r tests/reliability/requirements.txt (PyPI must be reachable)",
    )?;
    if !st.is_file() {
        return Err(format!("{} was not installed", st.display()));
    }
    // Written last: an interrupted install is redone next time.
    std::fs::write(&marker, REQUIREMENTS).map_err(|e| format!("write: {e}"))?;
    Ok(st)
}

/// The configuration: dictionaries of identifiers that exist, bound to parameters.
fn config(exemption: &str, tier_request: &str) -> String {
    let mut text = String::from("# Written by tests/reliability/schemathesis.rs.\n");
    for (name, values) in [
        (
            "entities",
            &["payments-api", "identity-api", "docs-site"][..],
        ),
        ("scorecards", &["readiness"]),
        ("rules", &["has-owner", "has-runbook"]),
        ("teams", &["payments", "identity"]),
        ("kinds", &["service", "website"]),
        ("levels", &["Basic", "Bronze", "Silver"]),
        ("future", &["2099-01-01T00:00:00Z"]),
        ("initiatives", &["runbooks"]),
        ("assets", &["app.css", "app.js", "favicon.svg"]),
        ("exemptions", &[exemption]),
        ("tier-requests", &[tier_request]),
    ] {
        text.push_str(&format!(
            "[dictionaries.{name}]\nvalues = {}\n",
            json!(values)
        ));
    }
    let binding = |dictionary: &str, probability: f64| {
        format!("{{ dictionary = \"{dictionary}\", probability = {probability} }}")
    };
    text.push_str("[parameters]\n");
    for (parameter, dictionary) in [
        ("query.kind", "kinds"),
        ("query.team", "teams"),
        ("query.entity", "entities"),
        ("query.scorecard", "scorecards"),
        ("query.below", "levels"),
        ("body.entity", "entities"),
        ("body.scorecard", "scorecards"),
        ("body.rule", "rules"),
        ("body.until", "future"),
    ] {
        text.push_str(&format!("\"{parameter}\" = {}\n", binding(dictionary, 0.6)));
    }
    for (selector, parameter, dictionary) in [
        (
            "include-path-regex = \"^/v1/(entities|gate)/\"",
            "id",
            "entities",
        ),
        ("include-path = \"/v1/scorecards/{id}\"", "id", "scorecards"),
        (
            "include-path = \"/v1/initiatives/{id}\"",
            "id",
            "initiatives",
        ),
        (
            "include-path-regex = \"^/v1/exemptions/\"",
            "id",
            "exemptions",
        ),
        (
            "include-path-regex = \"^/v1/tier-requests/\"",
            "id",
            "tier-requests",
        ),
        ("include-path = \"/assets/{file}\"", "file", "assets"),
    ] {
        text.push_str(&format!(
            "[[operations]]\n{selector}\nparameters = {{ \"path.{parameter}\" = {} }}\n",
            binding(dictionary, 0.7)
        ));
    }
    text
}

/// A pending exemption and a pending tier request, made by the identity team's owner (so the
/// admin may decide them); their identifiers.
async fn pending_records(daemon: &TestDaemon) -> (String, String) {
    let owner = Some(token_for("owner:identity"));
    let exemption = daemon
        .post(
            "/v1/exemptions",
            owner,
            json!({"entity": "identity-api", "scorecard": "readiness", "rule": "has-runbook",
                   "reason": "schemathesis",
                   "until": (chrono::Utc::now() + chrono::Duration::days(90)).to_rfc3339()}),
        )
        .await;
    assert_eq!(exemption.status, 201, "{}", exemption.text());
    let tier = daemon
        .post(
            "/v1/tier-requests",
            owner,
            json!({"entity": "identity-api", "to": 1, "reason": "schemathesis"}),
        )
        .await;
    assert_eq!(tier.status, 201, "{}", tier.text());
    let id = |v: serde_json::Value| v["id"].as_str().expect("an id").to_owned();
    (id(exemption.json()), id(tier.json()))
}

async fn wait_ready(daemon: &TestDaemon) {
    let deadline = Instant::now() + PATIENCE;
    while daemon.get("/readyz", None).await.status != 200 {
        assert!(Instant::now() < deadline, "not ready within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_answer_outside_the_schema() {
    if std::env::var("READYD_SKIP_SCHEMATHESIS").as_deref() == Ok("1") {
        println!("schemathesis: SKIPPED (READYD_SKIP_SCHEMATHESIS=1)");
        return;
    }
    let st = tokio::task::spawn_blocking(schemathesis)
        .await
        .expect("the install does not panic")
        .unwrap_or_else(|e| {
            panic!(
                "schemathesis is not available: {e}\n(set READYD_SKIP_SCHEMATHESIS=1 to skip \
                 this test on a machine without python3 or PyPI)"
            )
        });

    let daemon = start_daemon(|_| {}).await;
    wait_ready(&daemon).await;
    let (exemption, tier_request) = pending_records(&daemon).await;
    let work = readyd_tests::temp_dir();
    let config_file = work.path().join("schemathesis.toml");
    std::fs::write(&config_file, config(&exemption, &tier_request)).expect("write the config");
    let authorization = format!("Authorization: Bearer {}", token_for("admin"));
    let mut command = tokio::process::Command::new(&st);
    command
        .current_dir(work.path())
        .env("NO_COLOR", "1")
        .arg("--config-file")
        .arg(&config_file)
        .args(["--no-color", "run"])
        .arg(daemon.url("/openapi.json"))
        .args([
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
            "--max-examples",
            MAX_EXAMPLES,
            "--seed",
            SEED,
            "--workers",
            "1",
            "--generation-database",
            "none",
            "--request-timeout",
            "30",
            "--output-truncate",
            "false",
            "--header",
            &authorization,
        ])
        .kill_on_drop(true);
    let started = Instant::now();
    let output = tokio::time::timeout(RUN_BOUND, command.output())
        .await
        .unwrap_or_else(|_| panic!("schemathesis did not finish within {RUN_BOUND:?}"))
        .expect("run st");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}\n{stderr}");
    println!(
        "schemathesis: exit {} after {:.1?}",
        output.status,
        started.elapsed()
    );
    assert!(
        output.status.success(),
        "schemathesis found failures (exit {}); its report is above",
        output.status
    );
    // It must have tested every operation but the document itself, not just read it.
    let count = |label: &str| {
        stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .and_then(|rest| rest.trim().split('/').next()?.trim().parse::<usize>().ok())
            .unwrap_or_else(|| panic!("no `{label}` line in the report:\n{stdout}"))
    };
    let operations = readyd::http::ROUTES.len() - 1;
    assert_eq!(count("Selected:"), operations, "operations selected");
    assert_eq!(count("Tested:"), operations, "operations tested");
    daemon.stop().await.unwrap();
}

#[test]
fn the_requirements_pin_every_package() {
    let pins: Vec<&str> = REQUIREMENTS
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert!(
        pins.iter().any(|l| l.starts_with("schemathesis==")),
        "{pins:?}"
    );
    for pin in pins {
        assert!(pin.contains("=="), "not pinned: {pin}");
    }
}
