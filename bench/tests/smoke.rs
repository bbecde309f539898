//! The harness works end to end: `readyd-bench --quick` on a tiny organisation (100 entities)
//! runs every phase, the peers give readyd's answers (a disagreement makes the binary exit
//! non-zero), and the report is written. Timings are not checked: only that each area produced
//! its table; the TLS section (a daemon serving HTTPS with a CA the harness made, deliveries to an
//! HTTPS receiver) must have measured both schemes, not fallen back to rows saying why. The node
//! peer is skipped, with a note, when node or json-rules-engine is missing.

use std::process::Command;

#[test]
fn quick_harness_on_a_tiny_org() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let out = dir.path().join("BENCHMARKS.md");
    let node = readyd_bench::peers::jre::unavailable();
    if let Some(why) = &node {
        println!("note: the json-rules-engine peer is skipped: {why}");
    }
    let status = Command::new(env!("CARGO_BIN_EXE_readyd-bench"))
        .args(["--quick", "--entities", "100", "--seed", "7", "--out"])
        .arg(&out)
        .status()
        .expect("run readyd-bench");
    let report = std::fs::read_to_string(&out).unwrap_or_default();
    assert!(
        status.success(),
        "readyd-bench failed ({status}); report:\n{report}"
    );
    for heading in [
        "## Pure evaluator",
        "## Full pass with commit",
        "## Plugins",
        "## Plugin rules in a pass",
        "## Engine (in process)",
        "## HTTP API (child daemon, loopback)",
        "## Hot reload",
        "## Automation",
        "## TLS: HTTPS against HTTP",
        "## Peers: the same rules on the same facts",
    ] {
        assert!(report.contains(heading), "missing {heading}:\n{report}");
    }
    let peer_line = |engine: &str| {
        report
            .lines()
            .find(|l| l.starts_with(&format!("| {engine}")))
            .map(str::to_owned)
    };
    let regorus = peer_line("regorus").expect("a regorus row");
    assert!(regorus.ends_with("| yes |"), "{regorus}");
    if node.is_none() {
        let jre = peer_line("json-rules-engine").expect("a json-rules-engine row");
        assert!(jre.ends_with("| yes |"), "{jre}");
    }
    for row in [
        "| GET /v1/gate/{id} p99 at 5,000 req/s over HTTPS |",
        "| deliveries/s over HTTP |",
        "| deliveries/s over HTTPS |",
        "| deliveries/s, HTTPS / HTTP |",
    ] {
        let line = report
            .lines()
            .find(|l| l.starts_with(row))
            .unwrap_or_else(|| panic!("missing the row {row}:\n{report}"));
        assert!(!line.contains("not measured"), "{line}");
    }
    assert!(!report.contains("## Run failed"), "{report}");
}
