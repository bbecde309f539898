//! Native tests against canned answers in GitHub's documented shapes (`fixtures/`).

use std::cell::Cell;
use std::rc::Rc;

use readyd_plugin_sdk::http::Response;
use readyd_plugin_sdk::testing::{LogCapture, MockHttp};
use readyd_plugin_sdk::{Config, DataSource, Entity, PluginError};
use serde_json::{Value, json};

use super::*;

const API: &str = "http://127.0.0.1:9/api/v3";
const TOKEN: &str = "ghs_test0123456789";
/// 2026-12-03T09:00:00Z.
const NOW: u64 = 1_796_288_400;

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("../fixtures/", $name))
    };
}

fn json_fixture(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

/// A `200` with a body, an `ETag` and the rate-limit headers GitHub sends.
fn ok(body: &str, etag: &str) -> Response {
    Response::new(200)
        .with_header("content-type", "application/json; charset=utf-8")
        .with_header("etag", etag)
        .with_header("x-ratelimit-limit", "5000")
        .with_header("x-ratelimit-remaining", "4990")
        .with_header("x-ratelimit-reset", (NOW + 3000).to_string())
        .with_body(body.to_string())
}

/// An answer without rate-limit headers (tests add their own).
fn status(code: u16, body: &str) -> Response {
    Response::new(code)
        .with_header("content-type", "application/json; charset=utf-8")
        .with_body(body.to_string())
}

fn not_modified(etag: &str) -> Response {
    Response::new(304)
        .with_header("etag", etag)
        .with_header("x-ratelimit-remaining", "4990")
        .with_header("x-ratelimit-reset", (NOW + 3000).to_string())
}

fn url(path: &str) -> String {
    format!("{API}{path}")
}

/// A plugin on a clock the test moves (Unix seconds in the cell).
fn plugin_at(extra: Value, clock: Rc<Cell<u64>>) -> GitHub {
    let mut config = json!({"api_url": API, "token": TOKEN});
    config
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    GitHub::with_clock(
        Config::from_json(config),
        Box::new(move || clock.get() * 1000),
    )
    .unwrap()
}

fn plugin(extra: Value) -> GitHub {
    plugin_at(extra, Rc::new(Cell::new(NOW)))
}

fn service(id: &str, repo: &str) -> Entity {
    Entity::new(id, "service").with_property("github", json!({"repo": repo}))
}

/// Every endpoint of acme/payments answering as in the fixtures (two alert pages).
fn full_repository(mock: MockHttp, repo: &str) -> MockHttp {
    let base = format!("/repos/{repo}");
    let page2 = url(&format!(
        "{base}/dependabot/alerts?state=open&per_page=100&after=Y3Vyc29yOjI="
    ));
    mock.on_get(url(&base), ok(fixture!("repository.json"), "W/\"repo-1\""))
        .on_get(
            url(&format!("{base}/branches/main/protection")),
            ok(fixture!("branch-protection.json"), "W/\"prot-1\""),
        )
        .on_get(
            url(&format!("{base}/contents/.github/CODEOWNERS")),
            status(404, fixture!("not-found.json")),
        )
        .on_get(
            url(&format!("{base}/contents/CODEOWNERS")),
            ok(fixture!("content-file.json"), "\"co-1\""),
        )
        .on_get(
            url(&format!("{base}/actions/workflows?per_page=1")),
            ok(fixture!("workflows.json"), "W/\"wf-1\""),
        )
        .on_get(
            url(&format!("{base}/dependabot/alerts?state=open&per_page=100")),
            ok(fixture!("dependabot-alerts-1.json"), "W/\"alerts-1\"")
                .with_header("link", format!("<{page2}>; rel=\"next\"")),
        )
        .on_get(
            page2,
            ok(fixture!("dependabot-alerts-2.json"), "W/\"alerts-2\""),
        )
        .on_get(
            url(&format!("{base}/releases/latest")),
            ok(fixture!("release.json"), "W/\"rel-1\""),
        )
        .on_get(
            url(&format!("{base}/deployments?per_page=1")),
            ok(fixture!("deployments.json"), "W/\"dep-1\""),
        )
}

fn expected_payments() -> Value {
    json!({
        "repository": "acme/payments",
        "found": true,
        "default_branch": "main",
        "archived": false,
        "visibility": "internal",
        "branch_protected": true,
        "branch_protection": {
            "required_reviews": true,
            "required_review_count": 2,
            "require_code_owner_reviews": true,
            "dismiss_stale_reviews": true,
            "required_status_checks": true,
            "status_checks": ["ci/build", "security/trivy"],
            "strict_status_checks": true,
            "enforce_admins": true,
            "force_pushes_allowed": false,
            "deletions_allowed": false,
        },
        "has_codeowners": true,
        "codeowners_path": "CODEOWNERS",
        "workflows": 3,
        "has_workflows": true,
        "dependabot_alerts_enabled": true,
        "dependabot_alerts": {"critical": 1, "high": 1, "medium": 1, "low": 0, "total": 3, "fixable": 2},
        "last_release_at": "2026-11-20T09:30:00Z",
        "last_deployment_at": "2026-11-28T14:00:00Z",
        "last_release_or_deployment_at": "2026-11-28T14:00:00Z",
        "days_since_last_release_or_deployment": 4,
    })
}

#[test]
fn collects_every_part_and_follows_pages() {
    let mock = full_repository(MockHttp::new(), "acme/payments");
    let _installed = mock.install();
    let facts = plugin(json!({}))
        .collect(&[service("payments", "acme/payments")])
        .unwrap();
    assert_eq!(facts, [("payments".to_string(), expected_payments())]);

    let requests = mock.requests();
    assert_eq!(
        requests.len(),
        9,
        "repo, protection, 2 CODEOWNERS, workflows, 2 alert pages, release, deployments"
    );
    assert!(
        requests
            .iter()
            .any(|r| r.url().ends_with("after=Y3Vyc29yOjI=")),
        "page 2 followed"
    );
    for request in &requests {
        assert_eq!(
            request.header_value("authorization"),
            Some(&*format!("Bearer {TOKEN}"))
        );
        assert_eq!(
            request.header_value("accept"),
            Some("application/vnd.github+json")
        );
        assert_eq!(
            request.header_value("x-github-api-version"),
            Some("2022-11-28")
        );
        assert_eq!(
            request.header_value("if-none-match"),
            None,
            "nothing remembered yet"
        );
    }
}

#[test]
fn a_second_round_asks_conditionally_and_reuses_304s() {
    let mock = full_repository(MockHttp::new(), "acme/payments");
    let _installed = mock.install();
    let github = plugin(json!({}));
    let entities = [service("payments", "acme/payments")];
    let first = github.collect(&entities).unwrap();

    // Round two: every remembered answer is "not modified" (later routes win).
    let base = "/repos/acme/payments";
    let page2 = url(&format!(
        "{base}/dependabot/alerts?state=open&per_page=100&after=Y3Vyc29yOjI="
    ));
    let mock = mock
        .on_get(url(base), not_modified("W/\"repo-1\""))
        .on_get(
            url(&format!("{base}/branches/main/protection")),
            not_modified("W/\"prot-1\""),
        )
        .on_get(
            url(&format!("{base}/contents/CODEOWNERS")),
            not_modified("\"co-1\""),
        )
        .on_get(
            url(&format!("{base}/actions/workflows?per_page=1")),
            not_modified("W/\"wf-1\""),
        )
        .on_get(
            url(&format!("{base}/dependabot/alerts?state=open&per_page=100")),
            not_modified("W/\"alerts-1\""),
        )
        .on_get(page2.clone(), not_modified("W/\"alerts-2\""))
        .on_get(
            url(&format!("{base}/releases/latest")),
            not_modified("W/\"rel-1\""),
        )
        .on_get(
            url(&format!("{base}/deployments?per_page=1")),
            not_modified("W/\"dep-1\""),
        );
    let logs = LogCapture::install();
    let second = github.collect(&entities).unwrap();
    assert_eq!(second, first, "304s reuse the remembered values");

    let round_two = &mock.requests()[9..];
    assert_eq!(round_two.len(), 9);
    let conditional: Vec<_> = round_two
        .iter()
        .map(|r| {
            (
                r.url().trim_start_matches(API).to_string(),
                r.header_value("if-none-match").map(str::to_string),
            )
        })
        .collect();
    assert!(conditional.contains(&(base.to_string(), Some("W/\"repo-1\"".into()))));
    assert!(conditional.contains(&(
        page2.trim_start_matches(API).to_string(),
        Some("W/\"alerts-2\"".into())
    )));
    // The 404 of .github/CODEOWNERS had no ETag: asked again without one.
    assert!(conditional.contains(&(format!("{base}/contents/.github/CODEOWNERS"), None)));
    assert_eq!(
        conditional
            .iter()
            .filter(|(_, etag)| etag.is_some())
            .count(),
        8
    );
    let lines: Vec<_> = logs.lines().into_iter().map(|(_, l)| l).collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("9 requests, 8 answered 304 Not Modified")),
        "{lines:?}"
    );
    assert!(lines.iter().all(|l| !l.contains(TOKEN)), "{lines:?}");
}

#[test]
fn a_changed_answer_replaces_the_remembered_one() {
    let mock = full_repository(MockHttp::new(), "acme/payments");
    let _installed = mock.install();
    let github = plugin(json!({"collect": []}));
    let entities = [service("payments", "acme/payments")];
    github.collect(&entities).unwrap();
    let mut archived = json_fixture(fixture!("repository.json"));
    archived["archived"] = json!(true);
    let mock = mock.on_get(
        url("/repos/acme/payments"),
        ok(&archived.to_string(), "W/\"repo-2\""),
    );
    let facts = github.collect(&entities).unwrap();
    assert_eq!(facts[0].1["archived"], true);
    let mock = mock.on_get(url("/repos/acme/payments"), not_modified("W/\"repo-2\""));
    let facts = github.collect(&entities).unwrap();
    assert_eq!(
        facts[0].1["archived"], true,
        "the new value is the one reused"
    );
    assert_eq!(
        mock.requests()[2].header_value("if-none-match"),
        Some("W/\"repo-2\"")
    );
}

#[test]
fn not_found_answers_are_facts() {
    let base = "/repos/acme/legacy";
    let mut repo = json_fixture(fixture!("repository.json"));
    repo["default_branch"] = json!("release/1.x");
    repo["visibility"] = json!("public");
    let mock = MockHttp::new()
        .on_get(url(base), ok(&repo.to_string(), "\"r\""))
        .on_get(
            url(&format!("{base}/branches/release%2F1.x/protection")),
            status(404, fixture!("not-protected.json")),
        )
        .on_get(
            url(&format!("{base}/contents/.github/CODEOWNERS")),
            status(404, fixture!("not-found.json")),
        )
        .on_get(
            url(&format!("{base}/contents/CODEOWNERS")),
            status(404, fixture!("not-found.json")),
        )
        .on_get(
            url(&format!("{base}/contents/docs/CODEOWNERS")),
            status(404, fixture!("not-found.json")),
        )
        .on_get(
            url(&format!("{base}/actions/workflows?per_page=1")),
            ok(r#"{"total_count": 0, "workflows": []}"#, "\"w\""),
        )
        .on_get(
            url(&format!("{base}/dependabot/alerts?state=open&per_page=100")),
            status(403, fixture!("dependabot-disabled.json")),
        )
        .on_get(
            url(&format!("{base}/releases/latest")),
            status(404, fixture!("not-found.json")),
        )
        .on_get(
            url(&format!("{base}/deployments?per_page=1")),
            ok("[]", "\"d\""),
        )
        .on_get(
            url("/repos/acme/gone"),
            status(404, fixture!("not-found.json")),
        );
    let _installed = mock.install();
    let facts = plugin(json!({}))
        .collect(&[
            service("legacy", "acme/legacy"),
            service("gone", "acme/gone"),
        ])
        .unwrap();
    assert_eq!(
        facts,
        [
            (
                "legacy".to_string(),
                json!({
                    "repository": "acme/legacy",
                    "found": true,
                    "default_branch": "release/1.x",
                    "archived": false,
                    "visibility": "public",
                    "branch_protected": false,
                    "branch_protection": {
                        "required_reviews": false,
                        "required_review_count": 0,
                        "require_code_owner_reviews": false,
                        "dismiss_stale_reviews": false,
                        "required_status_checks": false,
                        "status_checks": [],
                        "strict_status_checks": false,
                        "enforce_admins": false,
                        "force_pushes_allowed": true,
                        "deletions_allowed": true,
                    },
                    "has_codeowners": false,
                    "codeowners_path": null,
                    "workflows": 0,
                    "has_workflows": false,
                    "dependabot_alerts_enabled": false,
                    "last_release_at": null,
                    "last_deployment_at": null,
                    "last_release_or_deployment_at": null,
                    "days_since_last_release_or_deployment": null,
                })
            ),
            (
                "gone".to_string(),
                json!({"repository": "acme/gone", "found": false})
            ),
        ]
    );
}

#[test]
fn what_the_token_may_not_see_is_unreadable_not_false() {
    let base = "/repos/acme/payments";
    let denied = r#"{"message": "Resource not accessible by integration", "documentation_url": "https://docs.github.com/rest", "status": "403"}"#;
    let mock = MockHttp::new()
        .on_get(url(base), ok(fixture!("repository.json"), "\"r\""))
        // A token without admin rights gets a plain "Not Found" here, not "Branch not protected".
        .on_get(
            url(&format!("{base}/branches/main/protection")),
            status(404, fixture!("not-found.json")),
        )
        .on_get(
            url(&format!("{base}/dependabot/alerts?state=open&per_page=100")),
            status(403, denied),
        );
    let _installed = mock.install();
    let facts = plugin(json!({"collect": ["branch_protection", "dependabot_alerts"]}))
        .collect(&[service("payments", "acme/payments")])
        .unwrap();
    let facts = &facts[0].1;
    assert!(facts.get("branch_protected").is_none(), "{facts}");
    assert!(
        facts.get("dependabot_alerts").is_none()
            && facts.get("dependabot_alerts_enabled").is_none()
    );
    assert_eq!(
        facts["unreadable"],
        json!({"branch_protection": "Not Found", "dependabot_alerts": "Resource not accessible by integration"})
    );
}

#[test]
fn a_spent_rate_limit_defers_the_rest_and_they_go_first_next_time() {
    let clock = Rc::new(Cell::new(NOW));
    let reset = NOW + 600;
    let mock = MockHttp::new()
        .on_get(
            url("/repos/acme/a"),
            ok(fixture!("repository.json"), "\"a\""),
        )
        .on_get(
            url("/repos/acme/b"),
            status(403, fixture!("rate-limited.json"))
                .with_header("x-ratelimit-limit", "5000")
                .with_header("x-ratelimit-remaining", "0")
                .with_header("x-ratelimit-used", "5000")
                .with_header("x-ratelimit-reset", reset.to_string()),
        )
        .on_get(
            url("/repos/acme/c"),
            ok(fixture!("repository.json"), "\"c\""),
        );
    let _installed = mock.install();
    let github = plugin_at(json!({"collect": []}), clock.clone());
    let entities = [
        service("a", "acme/a"),
        service("b", "acme/b"),
        service("c", "acme/c"),
    ];
    let logs = LogCapture::install();
    let facts = github.collect(&entities).unwrap();
    assert_eq!(facts.len(), 1, "deferred, not failed: {facts:?}");
    assert_eq!(facts[0].0, "a");
    assert_eq!(mock.requests().len(), 2, "nothing is sent after the 403");
    assert!(
        logs.lines()
            .iter()
            .any(|(_, l)| l.contains("2 of 3 repositories deferred")
                && l.contains("2026-12-03T09:10:00Z")),
        "{:?}",
        logs.lines()
    );

    // Before the reset: nothing is sent at all, and that is not an error either.
    clock.set(reset - 1);
    assert_eq!(github.collect(&entities).unwrap(), []);
    assert_eq!(mock.requests().len(), 2);

    // After it: b and c (never collected) go before a.
    clock.set(reset + 1);
    let mock = mock.on_get(
        url("/repos/acme/b"),
        ok(fixture!("repository.json"), "\"b\""),
    );
    let facts = github.collect(&entities).unwrap();
    let order: Vec<_> = mock.requests()[2..]
        .iter()
        .map(|r| r.url().trim_start_matches(API).to_string())
        .collect();
    assert_eq!(order, ["/repos/acme/b", "/repos/acme/c", "/repos/acme/a"]);
    assert_eq!(facts.len(), 3);
}

#[test]
fn a_secondary_limit_waits_for_retry_after() {
    let clock = Rc::new(Cell::new(NOW));
    let mock = MockHttp::new().on_get(
        url("/repos/acme/a"),
        Response::new(429)
            .with_header("retry-after", "30")
            .with_body(fixture!("secondary-rate-limit.json")),
    );
    let _installed = mock.install();
    let github = plugin_at(json!({"collect": []}), clock.clone());
    let entities = [service("a", "acme/a"), service("b", "acme/b")];
    assert_eq!(github.collect(&entities).unwrap(), []);
    assert_eq!(mock.requests().len(), 1);
    clock.set(NOW + 29);
    assert_eq!(github.collect(&entities).unwrap(), []);
    assert_eq!(mock.requests().len(), 1, "still waiting");

    // A 403 secondary limit without Retry-After: GitHub says wait at least a minute.
    clock.set(NOW + 30);
    let mock = mock.on_get(
        url("/repos/acme/a"),
        status(403, fixture!("secondary-rate-limit.json")),
    );
    assert_eq!(github.collect(&entities).unwrap(), []);
    assert_eq!(mock.requests().len(), 2);
    clock.set(NOW + 89);
    assert_eq!(github.collect(&entities).unwrap(), []);
    assert_eq!(mock.requests().len(), 2);
    clock.set(NOW + 90);
    let mock = mock
        .on_get(
            url("/repos/acme/a"),
            ok(fixture!("repository.json"), "\"a\""),
        )
        .on_get(
            url("/repos/acme/b"),
            ok(fixture!("repository.json"), "\"b\""),
        );
    assert_eq!(github.collect(&entities).unwrap().len(), 2);
    assert_eq!(mock.requests().len(), 4);
}

#[test]
fn the_reserve_stops_early_and_keeps_the_answer_in_hand() {
    let mock = MockHttp::new()
        .on_get(
            url("/repos/acme/a"),
            status(200, fixture!("repository.json"))
                .with_header("etag", "\"a\"")
                .with_header("x-ratelimit-remaining", "100")
                .with_header("x-ratelimit-reset", (NOW + 3000).to_string()),
        )
        .on_get(
            url("/repos/acme/b"),
            ok(fixture!("repository.json"), "\"b\""),
        );
    let _installed = mock.install();
    let facts = plugin(json!({"collect": []}))
        .collect(&[service("a", "acme/a"), service("b", "acme/b")])
        .unwrap();
    assert_eq!(facts.len(), 1);
    assert_eq!(
        mock.requests().len(),
        1,
        "b waits for the reset: 100 left is the reserve"
    );
}

#[test]
fn what_does_not_fit_the_round_budget_is_deferred() {
    // Every read of this clock is a second later: the first repository starts within the
    // 1.5 s budget, the second one would not.
    let ticks = Rc::new(Cell::new(0u64));
    let clock = {
        let ticks = ticks.clone();
        Box::new(move || {
            let t = ticks.get();
            ticks.set(t + 1);
            NOW * 1000 + t * 1000
        })
    };
    let config = json!({"api_url": API, "token": TOKEN, "collect": [], "round_budget_ms": 1500});
    let github = GitHub::with_clock(Config::from_json(config), clock).unwrap();
    let mock = MockHttp::new()
        .on_get(
            url("/repos/acme/a"),
            ok(fixture!("repository.json"), "\"a\""),
        )
        .on_get(
            url("/repos/acme/b"),
            ok(fixture!("repository.json"), "\"b\""),
        );
    let _installed = mock.install();
    let logs = LogCapture::install();
    let facts = github
        .collect(&[service("a", "acme/a"), service("b", "acme/b")])
        .unwrap();
    assert_eq!(facts.len(), 1);
    assert_eq!(mock.requests().len(), 1);
    assert!(
        logs.lines().iter().any(|(_, l)| l.contains("1 of 2 repositories deferred (round budget of 1500 ms used)")),
        "{:?}",
        logs.lines()
    );
    // Next round, b goes first.
    github
        .collect(&[service("a", "acme/a"), service("b", "acme/b")])
        .unwrap();
    assert_eq!(mock.requests()[1].url(), url("/repos/acme/b"));
}

#[test]
fn bad_credentials_fail_the_collection() {
    let mock = MockHttp::new().on_get(
        url("/repos/acme/a"),
        status(401, fixture!("bad-credentials.json")),
    );
    let _installed = mock.install();
    let err = plugin(json!({}))
        .collect(&[service("a", "acme/a")])
        .unwrap_err();
    assert!(
        matches!(&err, PluginError::InvalidConfig(m) if m.contains("401 (Bad credentials)")),
        "{err}"
    );
    assert!(!err.message().contains(TOKEN));
}

#[test]
fn server_errors_leave_entities_out_unless_all_fail() {
    let mock = MockHttp::new()
        .on_get(
            url("/repos/acme/a"),
            ok(fixture!("repository.json"), "\"a\""),
        )
        .on_get(
            url("/repos/acme/b"),
            status(502, r#"{"message": "Server Error"}"#),
        );
    let _installed = mock.install();
    let github = plugin(json!({"collect": []}));
    let facts = github
        .collect(&[service("a", "acme/a"), service("b", "acme/b")])
        .unwrap();
    assert_eq!(facts.len(), 1);
    let err = github.collect(&[service("b", "acme/b")]).unwrap_err();
    assert!(
        matches!(&err, PluginError::Unavailable(m) if m.contains("502")),
        "{err}"
    );
}

#[test]
fn paging_never_leaves_the_api_origin() {
    let base = "/repos/acme/payments";
    let mock = MockHttp::new()
        .on_get(url(base), ok(fixture!("repository.json"), "\"r\""))
        .on_get(
            url(&format!("{base}/dependabot/alerts?state=open&per_page=100")),
            ok(fixture!("dependabot-alerts-1.json"), "\"p\"").with_header(
                "link",
                "<https://elsewhere.example/steal?after=x>; rel=\"next\"",
            ),
        );
    let _installed = mock.install();
    let github = plugin(json!({"collect": ["dependabot_alerts"]}));
    let err = github
        .collect(&[service("payments", "acme/payments")])
        .unwrap_err();
    assert!(err.message().contains("not followed"), "{err}");
    assert!(mock.requests().iter().all(|r| r.url().starts_with(API)));
}

#[test]
fn repositories_come_from_the_property_the_annotation_or_the_owner() {
    let github = plugin(json!({"owner": "acme"}));
    let mut annotated = Entity::new("checkout", "service");
    annotated.properties_mut().insert(
        "annotations".into(),
        json!({"github.com/project-slug": "acme/checkout-web"}),
    );
    let flat = Entity::new("flat", "service")
        .with_property("github.repo", "https://github.com/acme/flat.git");
    let cases = [
        (service("a", "acme/a"), Some(Ok("acme/a".to_string()))),
        (
            service("b", "git@github.com:acme/b.git"),
            Some(Ok("acme/b".to_string())),
        ),
        (annotated, Some(Ok("acme/checkout-web".to_string()))),
        (flat, Some(Ok("acme/flat".to_string()))),
        (
            Entity::new("search", "service"),
            Some(Ok("acme/search".to_string())),
        ),
    ];
    for (entity, expected) in cases {
        assert_eq!(
            github.repository_of(&entity),
            expected,
            "{}",
            entity.identifier
        );
    }
    let bad = plugin(json!({})).repository_of(&service("x", "not a repo"));
    assert!(matches!(bad, Some(Err(m)) if m.contains("github.repo")));
    assert_eq!(
        plugin(json!({})).repository_of(&Entity::new("none", "service")),
        None
    );
    let custom = plugin(json!({"repo_property": "scm.slug"}));
    let entity = Entity::new("x", "service").with_property("scm", json!({"slug": "acme/x"}));
    assert_eq!(
        custom.repository_of(&entity),
        Some(Ok("acme/x".to_string()))
    );
}

#[test]
fn rejects_bad_config() {
    let bad = |config: Value| match GitHub::init(Config::from_json(config)) {
        Err(e) => e,
        Ok(_) => panic!("accepted"),
    };
    assert!(bad(json!({})).message().contains("no such secret"));
    assert!(
        bad(json!({"token": "  "}))
            .message()
            .contains("no such secret")
    );
    assert!(
        bad(json!({"token": "t", "api_url": "ftp://x"}))
            .message()
            .contains("https://")
    );
    assert!(
        bad(json!({"token": "t", "collect": ["teams"]}))
            .message()
            .contains("teams")
    );
    assert!(
        bad(json!({"token": "t", "owner": "a/b"}))
            .message()
            .contains("owner")
    );
    let err = bad(json!({"token": TOKEN, "api_url": "nope"}));
    assert!(matches!(err, PluginError::InvalidConfig(_)));
    assert!(!err.message().contains(TOKEN));
    assert!(
        GitHub::init(Config::from_json(
            json!({"token": "t", "api_url": "https://ghe.example/api/v3/"})
        ))
        .is_ok()
    );
}
