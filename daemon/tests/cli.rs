//! The `readyd` binary itself, run as a user runs it.
//!
//! Besides what it checks, this test has a second job: because the `readyd` package has an
//! integration test, `cargo test --workspace` builds `target/<profile>/readyd` with the same
//! features as every other test target. `readyd_tests::readyd_bin()` relies on that instead of
//! running a `cargo build -p readyd` whose different feature set would rebuild wasmtime.

use std::path::Path;
use std::process::Command;

fn readyd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_readyd"))
}

fn examples() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples"))
}

#[test]
fn version_names_the_binary() {
    let output = readyd().arg("--version").output().expect("run readyd");
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.starts_with("readyd "), "{stdout}");
}

#[test]
fn validate_accepts_the_example_organisation_and_refuses_a_broken_scorecard() {
    let ex = examples();
    let ok = readyd()
        .arg("validate")
        .arg("--standards")
        .arg(ex.join("standards"))
        .arg("--catalog")
        .arg(ex.join("catalog"))
        .arg("--plugins")
        .arg(ex.join("plugins"))
        .output()
        .expect("run readyd validate");
    assert!(ok.status.success(), "{ok:?}");

    let dir = tempfile::tempdir().expect("temporary directory");
    let scorecards = dir.path().join("scorecards");
    std::fs::create_dir_all(&scorecards).unwrap();
    std::fs::write(
        scorecards.join("broken.yaml"),
        "identifier: broken\ntitle: Broken\nlevels:\n  - title: Basic\nrules:\n  - identifier: r1\n    \
         level: Basic\n    query:\n      combinator: and\n      conditions:\n        - property: $team\n          \
         operator: resemblesVaguely\n",
    )
    .unwrap();
    let bad = readyd()
        .arg("validate")
        .arg("--standards")
        .arg(dir.path())
        .output()
        .expect("run readyd validate");
    assert!(!bad.status.success(), "{bad:?}");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&bad.stdout),
        String::from_utf8_lossy(&bad.stderr)
    );
    assert!(said.contains("broken.yaml"), "{said}");
    assert!(said.contains("resemblesVaguely"), "{said}");
}
