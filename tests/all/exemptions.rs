//! Exemption bounds (security review finding): `until` at most `exemptions.max_days` ahead, on
//! request and on approval, and always printable as RFC 3339 (before: year 9999 and
//! `+10000-01-01` were accepted, and the latter printed back as non-RFC 3339).

use chrono::{DateTime, Duration, Utc};
use readyd::clock::Clock;
use readyd::engine::{DecisionInput, EngineError, ExemptionInput};
use readyd_tests::{DemoOrg, actor, start_daemon, start_engine, token_for};
use serde_json::json;

fn body(until: &str) -> serde_json::Value {
    json!({"entity": "payments-api", "scorecard": "readiness", "reason": "migration",
           "until": until})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn until_is_bounded_by_max_days_and_rfc_3339() {
    let daemon = start_daemon(|_| {}).await;
    let owner = Some(token_for("owner:payments"));
    for until in [
        (Utc::now() + Duration::days(400)).to_rfc3339(),
        "9999-12-31T00:00:00Z".to_owned(),
    ] {
        let reply = daemon.post("/v1/exemptions", owner, body(&until)).await;
        assert_eq!(reply.status, 400, "{until}: {}", reply.text());
        let message = reply.json()["error"]["message"].to_string();
        assert!(
            message.contains("`until`") && message.contains("365 days ahead (exemptions.max_days)"),
            "{message}"
        );
    }
    let listed = daemon.get("/v1/exemptions", owner).await.json();
    assert_eq!(listed, json!([]), "a refused request created nothing");

    let within = (Utc::now() + Duration::days(300)).to_rfc3339();
    let reply = daemon.post("/v1/exemptions", owner, body(&within)).await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    let served = reply.json()["until"].as_str().unwrap().to_owned();
    DateTime::parse_from_rfc3339(&served).unwrap_or_else(|e| panic!("{served}: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_year_rfc_3339_cannot_print_is_refused_naming_the_field() {
    // A bound far enough that only the year check stands in the way.
    let daemon = start_daemon(|c| c.exemptions.max_days = u32::MAX).await;
    let owner = Some(token_for("owner:payments"));
    let reply = daemon
        .post("/v1/exemptions", owner, body("+10000-01-01T00:00:00Z"))
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    let message = reply.json()["error"]["message"].to_string();
    assert!(
        message.contains("`until`") && message.contains("RFC 3339"),
        "{message}"
    );
    // The largest printable year is accepted and printed as RFC 3339.
    let reply = daemon
        .post("/v1/exemptions", owner, body("9999-12-31T23:59:59Z"))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    assert_eq!(reply.json()["until"], "9999-12-31T23:59:59Z");
}

/// The bound is checked again on approval: a request made under a larger `max_days` cannot be
/// approved once the bound was lowered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_checks_the_bound_in_force() {
    let org = DemoOrg::new().await;
    let engine = start_engine(org.config(), Clock::system()).await;
    let requested = engine
        .request_exemption(
            &actor("pat", "owner:payments"),
            ExemptionInput {
                entity: "payments-ledger".into(),
                scorecard: "production-readiness".into(),
                rule: None,
                reason: "migration".into(),
                until: Utc::now() + Duration::days(200),
            },
        )
        .await
        .unwrap();
    engine.shutdown().await;
    // The engine's store readers hold the file until the engine is dropped.
    drop(engine);

    let mut config = org.config();
    config.exemptions.max_days = 30;
    let engine = start_engine(config, Clock::system()).await;
    let refused = engine
        .approve_exemption(
            &actor("sam", "approver"),
            &requested.id,
            DecisionInput::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, EngineError::Conflict(m) if m.contains("30 days ahead (exemptions.max_days)")),
        "{refused:?}"
    );
    engine.shutdown().await;
}
