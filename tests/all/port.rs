//! Port's published scorecard JSON in the running daemon: the examples of Port's scorecard
//! pages (tests/fixtures/port/, verbatim) load beside readyd's own scorecards, score the
//! catalog, and `GET /v1/scorecards/{id}` serves Port's presentational `color` back.

use readyd_tests::{copy_dir, fixture_dir, start_daemon_in, temp_dir, token_for};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ports_examples_load_score_and_serve_their_colours_back() {
    let fixture = temp_dir();
    copy_dir(&fixture_dir("api"), fixture.path());
    let scorecards = fixture.path().join("standards/scorecards");
    for name in [
        "use-cases-ownership.json",
        "use-cases-domain-definition.json",
        "use-cases-dora-metrics.json",
        "manage-ownership.json",
        "concepts-monitoring-maturity-custom-levels.json",
        "concepts-production-readiness-traffic-light.json",
    ] {
        std::fs::copy(fixture_dir("port").join(name), scorecards.join(name)).unwrap();
    }
    let daemon = start_daemon_in(fixture.path(), |_| {}).await;
    let viewer = Some(token_for("viewer"));

    let status = daemon.get("/v1/status", viewer).await.json();
    assert_eq!(status["standards"]["errors"], json!([]), "{status}");

    let card = daemon.get("/v1/scorecards/ownership", viewer).await;
    assert_eq!(card.status, 200, "{}", card.text());
    let card = card.json();
    let colours: Vec<_> = card["distribution"]
        .as_array()
        .unwrap()
        .iter()
        .map(|bar| bar["color"].clone())
        .collect();
    assert_eq!(
        colours,
        [
            json!("paleBlue"),
            json!("bronze"),
            json!("silver"),
            json!("gold")
        ]
    );
    assert_eq!(
        card["definition"]["levels"][3],
        json!({"title": "Gold", "color": "gold"})
    );
    assert_eq!(
        card["definition"]["rules"][1]["query"]["conditions"][0],
        json!({"relation": "team", "operator": "isNotEmpty"})
    );

    // Port's upper-case identifier, in the path; no `levels`: Port's default ladder.
    let manage = daemon.get("/v1/scorecards/Ownership", viewer).await;
    assert_eq!(manage.status, 200, "{}", manage.text());
    let manage = manage.json();
    assert_eq!(
        manage["levels"],
        json!(["Basic", "Bronze", "Silver", "Gold"])
    );
    // payments-api has a team and no slackChannel: Bronze (hasTeam) but not Silver.
    let scores = daemon
        .get("/v1/entities/payments-api/scores", viewer)
        .await
        .json();
    let level = |card: &str| {
        scores
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["scorecard"] == card)
            .map(|s| s["level"].clone())
    };
    assert_eq!(level("Ownership"), Some(json!("Bronze")), "{scores}");
    // No `is_production` property: the use-cases Ownership scorecard does not apply.
    assert_eq!(level("ownership"), None, "{scores}");
    // No domain relation, no deployment_frequency: the first level.
    assert_eq!(level("domain_definition"), Some(json!("Basic")), "{scores}");
    assert_eq!(level("dora_metrics"), Some(json!("Basic")), "{scores}");
    // No rules: every level is reached.
    assert_eq!(level("monitoringMaturity"), Some(json!("high")), "{scores}");
    assert_eq!(
        level("ProductionReadiness"),
        Some(json!("Green")),
        "{scores}"
    );
}
