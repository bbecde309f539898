//! Native tests of the PagerDuty source against canned answers in the REST API v2's shapes
//! (`fixtures/`, written from PagerDuty's API reference: services with included escalation
//! policies, on-calls, incidents, `offset`/`limit`/`more` paging, `{"error": {...}}` bodies).

use super::*;
use readyd_plugin_sdk::http::Response;
use readyd_plugin_sdk::testing::MockHttp;

const BASE: &str = "http://127.0.0.1:18090/pd";
const TOKEN: &str = "u+pd-secret-token";

fn fixture(name: &str) -> Value {
    let text = match name {
        "services-page-1" => include_str!("../fixtures/services-page-1.json"),
        "services-page-2" => include_str!("../fixtures/services-page-2.json"),
        "escalation-policy-PEP0002" => include_str!("../fixtures/escalation-policy-PEP0002.json"),
        "oncalls" => include_str!("../fixtures/oncalls.json"),
        "oncalls-page-2" => include_str!("../fixtures/oncalls-page-2.json"),
        "incidents" => include_str!("../fixtures/incidents.json"),
        other => panic!("no fixture {other}"),
    };
    serde_json::from_str(text).unwrap()
}

fn plugin() -> PagerDuty {
    PagerDuty::init(Config::from_json(json!({
        "base_url": format!("{BASE}/"),
        "token_secret": "pd_token",
        "pd_token": TOKEN,
        "page_limit": 2,
    })))
    .unwrap()
}

fn services_url(offset: u64) -> String {
    format!("{BASE}/services?include%5B%5D=escalation_policies&limit=2&offset={offset}")
}

fn oncalls_url(offset: u64) -> String {
    format!(
        "{BASE}/oncalls?escalation_policy_ids%5B%5D=PEP0001&escalation_policy_ids%5B%5D=PEP0002&limit=2&offset={offset}"
    )
}

fn incidents_url(offset: u64) -> String {
    format!(
        "{BASE}/incidents?service_ids%5B%5D=PSVC001&service_ids%5B%5D=PSVC002&statuses%5B%5D=triggered&statuses%5B%5D=acknowledged&date_range=all&limit=2&offset={offset}"
    )
}

/// The whole organisation's answers; the on-call list comes in two pages.
fn organisation() -> MockHttp {
    let mut oncalls = fixture("oncalls");
    oncalls["more"] = json!(true);
    MockHttp::new()
        .on_get(
            services_url(0),
            Response::json_body(&fixture("services-page-1")),
        )
        .on_get(
            services_url(2),
            Response::json_body(&fixture("services-page-2")),
        )
        .on_get(
            format!("{BASE}/escalation_policies/PEP0002"),
            Response::json_body(&fixture("escalation-policy-PEP0002")),
        )
        .on_get(oncalls_url(0), Response::json_body(&oncalls))
        .on_get(
            oncalls_url(3),
            Response::json_body(&fixture("oncalls-page-2")),
        )
        .on_get(incidents_url(0), Response::json_body(&fixture("incidents")))
}

fn entities() -> Vec<Entity> {
    vec![
        Entity::new("payments-api", "service")
            .with_property("pagerduty", json!({"service_id": "PSVC001"})),
        Entity::new("checkout-web", "website").with_property(
            "annotations",
            json!({"pagerduty.com/service-id": "PSVC002"}),
        ),
        Entity::new("ghost", "service")
            .with_property("pagerduty", json!({"service_id": "PSVC404"})),
        Entity::new("no-pager", "library"),
    ]
}

#[test]
fn a_round_answers_every_entity_from_four_paged_lists() {
    let mock = organisation();
    let _installed = mock.install();
    let facts: BTreeMap<String, Value> =
        plugin().collect(&entities()).unwrap().into_iter().collect();

    assert_eq!(
        facts["payments-api"],
        json!({
            "found": true,
            "service_id": "PSVC001",
            "service_name": "payments-api",
            "service_status": "active",
            "escalation_policy": {"id": "PEP0001", "name": "Payments on-call"},
            "escalation_levels": 2,
            "oncall_count": 2,
            "oncall_level1_count": 1,
            "incidents": {"triggered": 1, "acknowledged": 1, "open": 2},
            "last_incident_at": "2026-11-28T17:42:10Z",
        })
    );
    // Its policy came as a reference: the rules were fetched; the same user on two levels is
    // one person; an open incident newer than the service's timestamp is the last incident.
    assert_eq!(
        facts["checkout-web"],
        json!({
            "found": true,
            "service_id": "PSVC002",
            "service_name": "checkout-web",
            "service_status": "critical",
            "escalation_policy": {"id": "PEP0002", "name": "Web on-call"},
            "escalation_levels": 3,
            "oncall_count": 1,
            "oncall_level1_count": 1,
            "incidents": {"triggered": 0, "acknowledged": 1, "open": 1},
            "last_incident_at": "2026-12-02T23:15:00Z",
        })
    );
    assert_eq!(
        facts["ghost"],
        json!({"found": false, "service_id": "PSVC404", "reason": "PagerDuty has no service PSVC404"})
    );
    assert_eq!(facts["no-pager"]["found"], false);
    assert!(
        facts["no-pager"]["reason"]
            .as_str()
            .unwrap()
            .contains("pagerduty.service_id"),
        "{}",
        facts["no-pager"]
    );

    let requests = mock.requests();
    let urls: Vec<&str> = requests.iter().map(|r| r.url()).collect();
    assert_eq!(
        urls,
        [
            services_url(0).as_str(),
            &services_url(2),
            &format!("{BASE}/escalation_policies/PEP0002"),
            &oncalls_url(0),
            &oncalls_url(3),
            &incidents_url(0),
        ]
    );
    for request in &requests {
        assert_eq!(
            request.header_value("authorization"),
            Some(format!("Token token={TOKEN}").as_str())
        );
        assert_eq!(
            request.header_value("accept"),
            Some("application/vnd.pagerduty+json;version=2")
        );
    }
}

#[test]
fn entities_without_a_service_id_cost_no_request() {
    let mock = MockHttp::new();
    let _installed = mock.install();
    let facts = plugin()
        .collect(&[Entity::new("lib", "library"), Entity::new("web", "website")])
        .unwrap();
    assert_eq!(facts.len(), 2);
    assert!(facts.iter().all(|(_, f)| f["found"] == false));
    assert!(mock.requests().is_empty());
}

#[test]
fn paging_stops_when_more_is_false_and_is_bounded() {
    // A server that always says `more: true` is stopped at max_pages, as a clear error.
    let mut endless = fixture("services-page-2");
    endless["more"] = json!(true);
    let mut mock = MockHttp::new();
    for page in 0..3 {
        endless["offset"] = json!(page);
        mock = mock.on_get(
            format!("{BASE}/services?include%5B%5D=escalation_policies&limit=2&offset={page}"),
            Response::json_body(&endless),
        );
    }
    let _installed = mock.install();
    let source = PagerDuty::init(Config::from_json(json!({
        "base_url": BASE, "token_secret": "t", "t": TOKEN, "page_limit": 2, "max_pages": 3,
    })))
    .unwrap();
    let err = source.collect(&entities()).unwrap_err();
    assert!(
        matches!(&err, PluginError::Unavailable(m) if m.contains("still more after 3 pages")),
        "{err}"
    );
    assert_eq!(mock.requests().len(), 3);
}

#[test]
fn unauthorized_and_forbidden_are_config_errors_without_the_token() {
    for (status, needle) in [(401, "rejected the API key"), (403, "may not read")] {
        let body = json!({"error": {"message": "Access Denied", "code": 2010}});
        let mock = MockHttp::new().on_get(
            services_url(0),
            Response::new(status).with_body(body.to_string()),
        );
        let _installed = mock.install();
        let err = plugin().collect(&entities()).unwrap_err();
        let PluginError::InvalidConfig(message) = &err else {
            panic!("{status}: {err:?}")
        };
        assert!(message.contains(needle), "{message}");
        assert!(message.contains("Access Denied (code 2010)"), "{message}");
        assert!(!message.contains(TOKEN), "{message}");
    }
}

#[test]
fn a_failed_list_fails_the_round_rather_than_reporting_zero_incidents() {
    let mock = organisation().on_get(
        incidents_url(0),
        Response::new(429).with_body(r#"{"error":{"message":"Rate Limit Exceeded","code":2020}}"#),
    );
    let _installed = mock.install();
    let err = plugin().collect(&entities()).unwrap_err();
    assert!(
        matches!(&err, PluginError::Unavailable(m) if m.contains("rate limited") && m.contains("/incidents?")),
        "{err}"
    );
    let mock = organisation().on_get(oncalls_url(0), Response::new(200).with_body("<html>"));
    let _installed = mock.install();
    assert!(matches!(
        plugin().collect(&entities()),
        Err(PluginError::Failed(_))
    ));
}

#[test]
fn rejects_bad_config() {
    let bad = |config: Value| PagerDuty::init(Config::from_json(config)).unwrap_err();
    assert!(bad(json!({})).message().contains("token_secret"));
    assert!(
        bad(json!({"token_secret": "t"}))
            .message()
            .contains("no such secret")
    );
    assert!(
        bad(json!({"token_secret": "t", "t": "x", "base_url": "api.pagerduty.com"}))
            .message()
            .contains("http://")
    );
    assert!(
        bad(json!({"token_secret": "t", "t": "x", "page_limit": 500}))
            .message()
            .contains("page_limit")
    );
    let source =
        PagerDuty::init(Config::from_json(json!({"token_secret": "t", "t": "x"}))).unwrap();
    assert_eq!(source.base, DEFAULT_BASE_URL);
    assert_eq!(source.page_limit, 100);
}

#[test]
fn service_ids_come_from_dotted_property_paths() {
    let source = plugin();
    let by_annotation = Entity::new("a", "service")
        .with_property("annotations", json!({"pagerduty.com/service-id": " P123 "}));
    assert_eq!(
        source.service_id_of(&by_annotation).as_deref(),
        Some("P123")
    );
    let both = by_annotation.with_property("pagerduty", json!({"service_id": "P999"}));
    assert_eq!(
        source.service_id_of(&both).as_deref(),
        Some("P999"),
        "the first path wins"
    );
    let empty = Entity::new("b", "service").with_property("pagerduty", json!({"service_id": ""}));
    assert_eq!(source.service_id_of(&empty), None);
}
