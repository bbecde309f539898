//! The `vuln-report` data source as the daemon runs it: the built component, a read-only `dirs`
//! grant over a temporary directory of real-shaped reports (the fixtures of
//! `plugins/vuln-report/fixtures/`), and the example manifest and scorecard in a running daemon.
//!
//! Ages depend on the wall clock the guest reads, so they are checked against the interval
//! between the test's own clock readings before and after the call, never against a duration.

use std::path::Path;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use readyd::plugin::{HostConfig, Manifest, PluginHost};
use readyd_plugin_artifacts as artifacts;
use readyd_tests::{entity, shared_plugin_cache, start_daemon_in, temp_dir, token_for, write_file};
use serde_json::{Value, json};

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/vuln-report/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The manifest of a vuln-report plugin named `vuln-report` granting `reports` as `/reports`.
fn manifest_text(reports: &Path, config: &str) -> String {
    format!(
        "name = \"vuln-report\"\nkind = \"data-source\"\nwasm = {:?}\ntimeout_ms = 10000\nmemory_mb = 128\n\
         [capabilities]\ndirs = {{ \"/reports\" = {:?} }}\n[config]\ndir = \"/reports\"\n{config}",
        artifacts::VULN_REPORT,
        reports.display().to_string(),
    )
}

/// `seconds` between `at` and each of the two clock readings: the age the guest computed must
/// lie between them.
fn age_between(at: &str, before: DateTime<Utc>, after: DateTime<Utc>) -> (i64, i64) {
    let at: DateTime<Utc> = at.parse().unwrap();
    (
        (before - at).num_seconds() - 1,
        (after - at).num_seconds() + 1,
    )
}

#[tokio::test]
async fn the_built_component_reads_each_entitys_report_from_the_granted_directory() {
    let reports = temp_dir();
    let r = reports.path();
    write_file(r, "payments-api.json", fixture("trivy-image.json"));
    write_file(
        r,
        "ledger/2026-11-20-grype.json",
        fixture("grype-image.json"),
    );
    write_file(r, "web.sarif", fixture("codeql.sarif"));
    write_file(r, "catalog.json", fixture("osv-scanner.json"));
    write_file(r, "broken.json", fixture("damaged-trivy.json"));
    write_file(r, "sbom.json", fixture("cyclonedx-sbom.json"));
    let outside = temp_dir();
    write_file(outside.path(), "secret.json", fixture("trivy-image.json"));

    let dir = temp_dir();
    let path = write_file(dir.path(), "vuln-report.toml", manifest_text(r, ""));
    let host = PluginHost::new(HostConfig {
        max_instances: 4,
        max_memory_mb: 256,
        ..HostConfig::default()
    })
    .unwrap();
    let plugin = host
        .load(Manifest::from_file(&path).unwrap())
        .await
        .expect("the built vuln-report component loads");

    let mut escaping = entity("escape");
    escaping.properties.insert(
        "vuln_report".into(),
        json!(format!("../{}/secret.json", outside.path().display())),
    );
    let entities = [
        entity("payments-api"),
        entity("ledger"),
        entity("web"),
        entity("catalog"),
        entity("broken"),
        entity("sbom"),
        entity("ghost"),
        escaping,
    ];
    let before = Utc::now();
    let out = plugin
        .collect(&entities)
        .await
        .expect("collection succeeds");
    let after = Utc::now();
    let facts: std::collections::BTreeMap<String, Value> = out
        .into_iter()
        .map(|(id, f)| (id, Value::Object(f)))
        .collect();
    assert_eq!(facts.len(), 8, "every entity gets facts: {facts:?}");

    let counts = |c: u64, h: u64, m: u64, l: u64, u: u64| json!({"critical": c, "high": h, "medium": m, "low": l, "unknown": u, "total": c + h + m + l + u});

    let trivy = &facts["payments-api"];
    assert_eq!(trivy["found"], true);
    assert_eq!(trivy["report_file"], "payments-api.json");
    assert_eq!(trivy["format"], "trivy");
    assert_eq!(trivy["scanner"], "trivy");
    assert_eq!(trivy["scanner_version"], "0.58.1");
    assert_eq!(trivy["artifact"], "registry.example.com/payments:1.4.2");
    assert_eq!(trivy["scanned_at"], "2026-11-29T08:15:42Z");
    assert_eq!(trivy["scanned_at_from"], "report");
    assert_eq!(trivy["vulnerabilities"], counts(2, 2, 2, 1, 1));
    assert_eq!(trivy["fixable"], counts(2, 1, 1, 1, 0));
    let (low, high) = age_between("2026-11-29T08:15:42Z", before, after);
    let age = trivy["report_age_seconds"].as_i64().unwrap();
    assert!((low..=high).contains(&age), "{age} not in {low}..={high}");
    assert_eq!(trivy["report_age_days"], age / 86_400);
    let (low, high) = age_between("2024-08-30T03:15:03Z", before, after);
    let oldest = trivy["oldest_critical_age_days"].as_i64().unwrap();
    assert!((low / 86_400..=high / 86_400).contains(&oldest), "{oldest}");

    let grype = &facts["ledger"];
    assert_eq!(grype["report_file"], "ledger/2026-11-20-grype.json");
    assert_eq!(grype["scanner"], "grype");
    assert_eq!(grype["scanner_version"], "0.86.1");
    assert_eq!(grype["scanned_at"], "2026-11-20T13:02:11Z");
    assert_eq!(grype["vulnerabilities"], counts(2, 1, 1, 1, 1));
    assert_eq!(grype["fixable"], counts(1, 1, 0, 0, 0));
    assert!(grype.get("oldest_critical_age_days").is_none(), "{grype}");

    let sarif = &facts["web"];
    assert_eq!(sarif["format"], "sarif");
    assert_eq!(sarif["scanner"], "codeql");
    assert_eq!(sarif["scanner_version"], "2.19.3");
    assert_eq!(sarif["vulnerabilities"], counts(1, 1, 1, 2, 0));
    assert_eq!(sarif["fixable"], counts(1, 0, 0, 0, 0));

    let osv = &facts["catalog"];
    assert_eq!(osv["format"], "osv-scanner");
    assert_eq!(osv["vulnerabilities"], counts(1, 2, 2, 0, 1));
    assert_eq!(osv["fixable"], counts(1, 2, 1, 0, 1));
    // No scan time in OSV-Scanner's JSON: the file's time, which the test just wrote.
    assert_eq!(osv["scanned_at_from"], "file_modified");
    let written: DateTime<Utc> = osv["scanned_at"].as_str().unwrap().parse().unwrap();
    assert!(
        written <= after && written >= before - Duration::minutes(10),
        "{osv}"
    );

    // Damaged and unknown reports: a clear error for that entity, no counts, nothing else spoilt.
    let broken = &facts["broken"];
    assert_eq!(broken["found"], true);
    assert!(broken.get("vulnerabilities").is_none(), "{broken}");
    let error = broken["error"].as_str().unwrap();
    assert!(
        error.starts_with("broken.json: not a JSON document: EOF while parsing"),
        "{error}"
    );
    let unknown = facts["sbom"]["error"].as_str().unwrap();
    assert!(
        unknown.starts_with("sbom.json: not a known report format"),
        "{unknown}"
    );

    assert_eq!(facts["ghost"], json!({"found": false}));
    // A property that climbs out of the granted directory reads nothing.
    let escape = &facts["escape"];
    assert_eq!(escape["found"], false, "{escape}");
    assert!(escape.get("vulnerabilities").is_none(), "{escape}");
}

/// A report in `reports` for `id`, scanned `age` ago: the Trivy fixture with another `CreatedAt`,
/// or (with `clean`) with no vulnerabilities at all.
fn trivy_report(reports: &Path, id: &str, age: Duration, clean: bool) {
    let mut doc: Value = serde_json::from_slice(&fixture("trivy-image.json")).unwrap();
    let at = Utc::now() - age;
    doc["CreatedAt"] = json!(at.to_rfc3339_opts(SecondsFormat::Nanos, true));
    if clean {
        doc["Results"] = json!([]);
    }
    write_file(reports, &format!("{id}.json"), doc.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_security_scorecard_scores_the_collected_reports() {
    let reports = temp_dir();
    let r = reports.path();
    // fixable criticals, scanned yesterday
    trivy_report(r, "payments-api", Duration::days(1), false);
    // clean, scanned two hours ago
    trivy_report(r, "search-api", Duration::hours(2), true);
    // clean, but the last scan is a month old
    trivy_report(r, "legacy-api", Duration::days(30), true);
    // a damaged report: no facts to pass on
    write_file(r, "identity-api.json", fixture("damaged-trivy.json"));

    let org = temp_dir();
    let o = org.path();
    let catalog: String = [
        "payments-api",
        "search-api",
        "legacy-api",
        "identity-api",
        "no-report",
    ]
    .iter()
    .map(|id| format!("- identifier: {id}\n  kind: service\n  title: {id}\n  team: platform\n"))
    .collect();
    write_file(o, "catalog/services.yaml", catalog);
    let scorecard = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/vuln-report/security.example.yaml"),
    )
    .unwrap();
    write_file(
        o,
        "standards/scorecards/vulnerability-scans.yaml",
        scorecard,
    );
    // The example manifest as shipped, pointed at the built component and the reports.
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../plugins/vuln-report/vuln-report.example.toml"),
    )
    .unwrap();
    let manifest: String = example
        .lines()
        .map(|line| {
            if line.starts_with("wasm = ") {
                format!("wasm = {:?}", artifacts::VULN_REPORT)
            } else {
                line.replace(
                    "\"/srv/scan-reports\"",
                    &format!("{:?}", r.display().to_string()),
                )
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(manifest.contains(&r.display().to_string()), "{manifest}");
    write_file(o, "plugins/vuln-report.toml", manifest);

    let daemon = start_daemon_in(o, |config| config.cache_dir = shared_plugin_cache()).await;
    daemon.engine.collect_once().await;
    let viewer = Some(token_for("viewer"));

    let facts = daemon.get("/v1/entities/payments-api/facts", viewer).await;
    assert_eq!(facts.status, 200, "{}", facts.text());
    let text = facts.text();
    assert!(text.contains("\"vuln-report\""), "{text}");
    assert!(text.contains("\"fixable\""), "{text}");

    let mut statuses = std::collections::BTreeMap::new();
    for id in [
        "payments-api",
        "search-api",
        "legacy-api",
        "identity-api",
        "no-report",
    ] {
        let scores = daemon
            .get(&format!("/v1/entities/{id}/scores"), viewer)
            .await;
        assert_eq!(scores.status, 200, "{}", scores.text());
        let card = scores
            .json()
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["scorecard"] == "vulnerability-scans")
            .cloned()
            .unwrap_or_else(|| panic!("{id}: no vulnerability-scans result: {}", scores.text()));
        for rule in card["rules"].as_array().unwrap() {
            statuses.insert(
                (id, rule["rule"].as_str().unwrap().to_string()),
                rule["status"].as_str().unwrap().to_string(),
            );
        }
    }
    let status = |id: &'static str, rule: &str| {
        statuses
            .get(&(id, rule.to_string()))
            .map(String::as_str)
            .unwrap_or_else(|| panic!("{id}/{rule} missing: {statuses:?}"))
            .to_string()
    };
    assert_eq!(status("payments-api", "scanned-within-7-days"), "pass");
    assert_eq!(status("payments-api", "no-fixable-critical"), "fail");
    assert_eq!(status("search-api", "scanned-within-7-days"), "pass");
    assert_eq!(status("search-api", "no-fixable-critical"), "pass");
    assert_eq!(status("legacy-api", "scanned-within-7-days"), "fail");
    assert_eq!(status("legacy-api", "no-fixable-critical"), "pass");
    // No readable report: neither rule passes.
    for id in ["identity-api", "no-report"] {
        assert_ne!(status(id, "scanned-within-7-days"), "pass", "{id}");
        assert_ne!(status(id, "no-fixable-critical"), "pass", "{id}");
    }
    daemon.stop().await.unwrap();
}
