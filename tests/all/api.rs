//! The HTTP API against a real daemon on `127.0.0.1:0`: permissions per route and role, the
//! error contract (400/401/403/404/405/408/413/415 as JSON), the OpenAPI document's completeness,
//! probes and metrics, slow clients, graceful shutdown, the `readyd gate` client, and the
//! workflows that cross the HTTP layer into the engine.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use readyd::http::{ROUTES, ask_gate, gate_command};
use readyd_tests::{
    HASHED_CI, TOKENS, TestDaemon, UNKNOWN_TOKEN, fixture_dir, readyd_bin, start_daemon, token_for,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bound on waits for something that must happen (a closed connection, readiness): generous
/// for a loaded machine; reaching it is a failure, not a measurement.
const PATIENCE: Duration = Duration::from_secs(60);

/// The permission classes of the HTTP module's documentation, written out independently of the
/// route table so that a route whose permission changes fails this test.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Class {
    Public,
    Read,
    Gate,
    OwnerAction,
    Decide,
    Admin,
}

use Class::*;

/// Every route readyd must serve, and who may call it.
const EXPECTED: &[(&str, &str, Class)] = &[
    ("GET", "/v1/entities", Read),
    ("GET", "/v1/entities/{id}", Read),
    ("PUT", "/v1/entities/{id}", Admin),
    ("DELETE", "/v1/entities/{id}", Admin),
    ("GET", "/v1/entities/{id}/scores", Read),
    ("GET", "/v1/entities/{id}/facts", Read),
    ("GET", "/v1/entities/{id}/history", Read),
    ("POST", "/v1/entities/{id}/refresh", OwnerAction),
    ("POST", "/v1/entities/{id}/nudge", OwnerAction),
    ("POST", "/v1/entities/{id}/lock", OwnerAction),
    ("POST", "/v1/entities/{id}/unlock", OwnerAction),
    ("GET", "/v1/scorecards", Read),
    ("GET", "/v1/scorecards/{id}", Read),
    ("GET", "/v1/scores", Read),
    ("GET", "/v1/gate/{id}", Gate),
    ("POST", "/v1/exemptions", OwnerAction),
    ("GET", "/v1/exemptions", Read),
    ("GET", "/v1/exemptions/{id}", Read),
    ("POST", "/v1/exemptions/{id}/approve", Decide),
    ("POST", "/v1/exemptions/{id}/deny", Decide),
    ("POST", "/v1/exemptions/{id}/revoke", Decide),
    ("POST", "/v1/tier-requests", OwnerAction),
    ("GET", "/v1/tier-requests", Read),
    ("POST", "/v1/tier-requests/{id}/approve", Decide),
    ("POST", "/v1/tier-requests/{id}/deny", Decide),
    ("GET", "/v1/tasks", Read),
    ("GET", "/v1/initiatives", Read),
    ("GET", "/v1/initiatives/{id}", Read),
    ("GET", "/v1/dead-letters", Read),
    ("GET", "/v1/status", Read),
    ("POST", "/v1/reload", Admin),
    ("GET", "/livez", Public),
    ("GET", "/readyz", Public),
    ("GET", "/metrics", Public),
    ("GET", "/openapi.json", Public),
    ("GET", "/", Public),
    ("GET", "/assets/{file}", Public),
];

fn role_may(role: &str, class: Class) -> bool {
    match class {
        Public | Read | Gate => true,
        OwnerAction => role.starts_with("owner:") || role == "admin",
        Decide => role == "approver" || role == "admin",
        Admin => role == "admin",
    }
}

/// A concrete path for a pattern. Owner actions name an entity of the `payments` team (the
/// owner token's own); everything else names something that does not exist, so that a walk
/// over every route as every role changes nothing (a 404 from the engine is "allowed").
fn concrete(pattern: &str, class: Class) -> String {
    let id = if class == OwnerAction {
        "payments-api"
    } else {
        "walk-ghost"
    };
    pattern.replace("{id}", id).replace("{file}", "app.js")
}

fn is_bearer_challenge(response: &readyd_tests::HttpResponse) -> bool {
    response
        .header("www-authenticate")
        .is_some_and(|v| v.starts_with("Bearer "))
}

#[tokio::test]
async fn route_table_is_the_documented_one() {
    let served: BTreeSet<(String, &str)> = ROUTES
        .iter()
        .map(|r| (r.method.to_string(), r.pattern))
        .collect();
    let expected: BTreeSet<(String, &str)> = EXPECTED
        .iter()
        .map(|(m, p, _)| ((*m).to_owned(), *p))
        .collect();
    assert_eq!(served, expected);
}

/// Every route × every caller: anonymous, an unknown token, each role's token and a token
/// configured by its SHA-256. Allowed means neither 401 nor 403 (the engine may still say 404
/// or 400); refused means exactly 403 for a known token and 401 with a Bearer challenge for
/// the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_every_role_as_the_permission_table_says() {
    let daemon = start_daemon(|_| {}).await;
    let mut failures = Vec::new();
    for (method, pattern, class) in EXPECTED {
        let path = concrete(pattern, *class);

        let anonymous = daemon.request(method, &path, None, None).await;
        let ok = if *class == Public {
            !matches!(anonymous.status, 401 | 403)
        } else {
            anonymous.status == 401 && is_bearer_challenge(&anonymous)
        };
        if !ok {
            failures.push(format!("{method} {path} anonymous → {}", anonymous.status));
        }

        let unknown = daemon
            .request(method, &path, Some(UNKNOWN_TOKEN), None)
            .await;
        if unknown.status != 401 || !is_bearer_challenge(&unknown) {
            failures.push(format!(
                "{method} {path} unknown token → {}",
                unknown.status
            ));
        }

        for token in TOKENS {
            // The other team's owner is refused by the engine's team check, not by the route's
            // class: `owners_act_only_on_their_own_teams_entities` covers it.
            if token.role == "owner:identity" {
                continue;
            }
            let response = daemon
                .request(method, &path, Some(token.secret), None)
                .await;
            let allowed = role_may(token.role, *class);
            let ok = if allowed {
                !matches!(response.status, 401 | 403)
            } else {
                response.status == 403 && response.error_code() == "forbidden"
            };
            if !ok {
                failures.push(format!(
                    "{method} {path} as {} → {} (expected {}): {}",
                    token.role,
                    response.status,
                    if allowed { "allowed" } else { "403" },
                    response.text()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    daemon.stop().await.unwrap();
}

#[tokio::test]
async fn anonymous_reads_follow_the_configuration_and_unknown_tokens_never_pass() {
    let daemon = start_daemon(|c| c.anonymous_read = true).await;
    let read = daemon.get("/v1/entities", None).await;
    assert!(!matches!(read.status, 401 | 403), "{}", read.text());
    let gate = daemon.get("/v1/gate/payments-api", None).await;
    assert!(!matches!(gate.status, 401 | 403), "{}", gate.text());

    let write = daemon.request("POST", "/v1/reload", None, None).await;
    assert_eq!(write.status, 401);
    assert!(is_bearer_challenge(&write));
    assert_eq!(write.error_code(), "unauthenticated");

    // A wrong token is an error even where no token is needed.
    for path in ["/v1/entities", "/livez"] {
        let wrong = daemon.get(path, Some(UNKNOWN_TOKEN)).await;
        assert_eq!(wrong.status, 401, "{path}");
        assert!(
            wrong
                .header("www-authenticate")
                .unwrap()
                .contains("invalid_token")
        );
    }
    let basic = readyd_tests::send(
        daemon.addr,
        "GET",
        "/v1/entities",
        &[("authorization", "Basic dmlld2VyOnNlY3JldA==")],
        Vec::new(),
    )
    .await;
    assert_eq!(basic.status, 401);
    daemon.stop().await.unwrap();
}

#[tokio::test]
async fn a_token_configured_by_its_digest_authenticates() {
    let daemon = start_daemon(|_| {}).await;
    assert!(HASHED_CI.sha256.is_some());
    let response = daemon.get("/v1/status", Some(HASHED_CI.secret)).await;
    assert_eq!(response.status, 200, "{}", response.text());
    // The digest itself is not a token.
    let digest = daemon.get("/v1/status", HASHED_CI.sha256).await;
    assert_eq!(digest.status, 401);
    daemon.stop().await.unwrap();
}

#[tokio::test]
async fn malformed_requests_get_json_errors_that_say_what_is_wrong() {
    let daemon = start_daemon(|_| {}).await;
    let admin = Some(token_for("admin"));

    let truncated = readyd_tests::send(
        daemon.addr,
        "POST",
        "/v1/exemptions",
        &[
            ("authorization", "Bearer admin-secret-0001"),
            ("content-type", "application/json"),
        ],
        b"{\"entity\": ".to_vec(),
    )
    .await;
    assert_eq!(truncated.status, 400);
    assert_eq!(truncated.error_code(), "invalid_json");
    let message = truncated.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("line 1 column"), "{message}");

    let unknown_field = daemon
        .post(
            "/v1/exemptions",
            admin,
            json!({"entity": "payments-api", "scorecard": "readiness", "reason": "r",
                   "until": "2030-01-01T00:00:00Z", "colour": "red"}),
        )
        .await;
    assert_eq!(unknown_field.status, 400);
    assert!(
        unknown_field.text().contains("unknown field `colour`"),
        "{}",
        unknown_field.text()
    );

    let missing = daemon
        .post("/v1/entities/payments-api/lock", admin, json!({}))
        .await;
    assert_eq!(missing.status, 400);
    assert!(
        missing.text().contains("missing field `reason`"),
        "{}",
        missing.text()
    );

    let empty = daemon
        .request("PUT", "/v1/entities/new-one", admin, None)
        .await;
    assert_eq!(empty.status, 400);
    assert_eq!(empty.error_code(), "invalid_body");

    let form = readyd_tests::send(
        daemon.addr,
        "POST",
        "/v1/exemptions",
        &[
            ("authorization", "Bearer admin-secret-0001"),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        b"entity=payments-api".to_vec(),
    )
    .await;
    assert_eq!(form.status, 415);
    assert_eq!(form.error_code(), "unsupported_media_type");

    let body_on_reload = daemon
        .post("/v1/reload", admin, json!({"everything": true}))
        .await;
    assert_eq!(body_on_reload.status, 400);
    assert_eq!(body_on_reload.error_code(), "invalid_body");

    for query in [
        "/v1/entities?tier=9",
        "/v1/entities?teem=payments",
        "/v1/entities?team=a&team=b",
        "/v1/exemptions?status=maybe",
        "/v1/tasks?status=",
        "/v1/status?verbose=1",
    ] {
        let response = daemon.get(query, admin).await;
        assert_eq!(response.status, 400, "{query}: {}", response.text());
        assert_eq!(response.error_code(), "invalid_query", "{query}");
    }

    let no_route = daemon.get("/v2/entities", admin).await;
    assert_eq!(no_route.status, 404);
    assert_eq!(no_route.error_code(), "no_route");

    let wrong_method = daemon.request("PATCH", "/v1/entities/x", admin, None).await;
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.header("allow"), Some("GET, PUT, DELETE"));
    assert_eq!(wrong_method.error_code(), "method_not_allowed");
    daemon.stop().await.unwrap();
}

/// Write a raw request and read until the server closes the connection.
async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    read_until_closed(&mut stream).await
}

async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    match tokio::time::timeout(PATIENCE, stream.read_to_end(&mut answer)).await {
        Ok(Ok(_)) => {}
        // A reset after the answer is a close too.
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Ok(Err(e)) => panic!("read failed: {e}"),
        Err(_) => panic!(
            "the server kept the connection open; read so far: {}",
            String::from_utf8_lossy(&answer)
        ),
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn bodies_over_the_limit_get_413() {
    let daemon = start_daemon(|c| c.limits.body_bytes = 1024).await;
    // Declared too large: refused before the body is sent.
    let declared = raw_exchange(
        daemon.addr,
        b"POST /v1/exemptions HTTP/1.1\r\nhost: t\r\nauthorization: Bearer admin-secret-0001\r\n\
          content-type: application/json\r\ncontent-length: 4096\r\n\r\n",
    )
    .await;
    assert!(declared.starts_with("HTTP/1.1 413"), "{declared}");
    assert!(declared.contains("payload_too_large"), "{declared}");

    // Chunked, so the size is only known while reading.
    let chunk = "x".repeat(2000);
    let request = format!(
        "POST /v1/exemptions HTTP/1.1\r\nhost: t\r\nauthorization: Bearer admin-secret-0001\r\n\
         content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n\
         {:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len()
    );
    let streamed = raw_exchange(daemon.addr, request.as_bytes()).await;
    assert!(streamed.starts_with("HTTP/1.1 413"), "{streamed}");
    assert!(streamed.contains("payload_too_large"), "{streamed}");

    // At the limit is fine (it is then judged as JSON).
    let fits = daemon
        .post(
            "/v1/exemptions",
            Some(token_for("admin")),
            json!({ "reason": "y".repeat(900) }),
        )
        .await;
    assert_eq!(fits.status, 400, "{}", fits.text());
    assert!(fits.text().contains("missing field"), "{}", fits.text());
    daemon.stop().await.unwrap();
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let daemon = start_daemon(|c| c.limits.header_timeout_ms = 200).await;
    let answer = raw_exchange(daemon.addr, b"GET /livez HTTP/1.1\r\nhost: t\r\n").await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    // The server still serves others.
    assert_eq!(daemon.get("/livez", None).await.status, 200);
    daemon.stop().await.unwrap();
}

#[tokio::test]
async fn a_body_that_never_arrives_gets_408() {
    let daemon = start_daemon(|c| c.limits.body_timeout_ms = 200).await;
    let answer = raw_exchange(
        daemon.addr,
        b"POST /v1/exemptions HTTP/1.1\r\nhost: t\r\nauthorization: Bearer admin-secret-0001\r\n\
          content-type: application/json\r\ncontent-length: 100\r\n\r\n{\"entity\"",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    daemon.stop().await.unwrap();
}

/// A request whose handler is already reading its body when shutdown begins still gets its
/// answer; new connections are refused; `serve` returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_the_request_in_flight() {
    let mut daemon = start_daemon(|_| {}).await;
    let addr = daemon.addr;
    // Within `exemptions.max_days` (365 by default) of today.
    let until = (chrono::Utc::now() + chrono::Duration::days(90)).to_rfc3339();
    let body = json!({"entity": "payments-api", "scorecard": "readiness", "reason": "drain",
                      "until": until})
    .to_string();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/exemptions HTTP/1.1\r\nhost: t\r\n\
         authorization: Bearer payments-owner-secret-0001\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nexpect: 100-continue\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // hyper answers 100 Continue only once the handler polls the body: the request is in flight.
    let mut interim = [0u8; 25];
    tokio::time::timeout(PATIENCE, stream.read_exact(&mut interim))
        .await
        .expect("100 Continue")
        .unwrap();
    assert!(
        interim.starts_with(b"HTTP/1.1 100 Continue\r\n\r\n"),
        "{}",
        String::from_utf8_lossy(&interim)
    );

    daemon.begin_shutdown();
    // Wait until the listener is gone, so the drain has begun before the body is sent.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while TcpStream::connect(addr).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "still accepting after shutdown"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    stream.write_all(body.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut stream).await;
    let status: u16 = answer
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer}"));
    assert_ne!(status, 408, "{answer}");
    let json_body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str::<Value>(json_body).unwrap_or_else(|e| panic!("{e}: {answer}"));
    daemon.stop().await.unwrap();
}

/// The document lists every route of the table, and everything it lists is served: a request
/// to each documented operation never meets "no such route" or "wrong method".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_is_complete() {
    let daemon = start_daemon(|_| {}).await;
    let response = daemon.get("/openapi.json", None).await;
    assert_eq!(response.status, 200);
    assert!(
        response
            .header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let document = response.json();
    assert_eq!(document["openapi"], "3.0.3");
    let paths = document["paths"].as_object().unwrap();

    for route in ROUTES {
        let method = route.method.as_str().to_ascii_lowercase();
        assert!(
            paths
                .get(route.pattern)
                .and_then(|item| item.get(&method))
                .is_some(),
            "{} {} is served but not documented",
            route.method,
            route.pattern
        );
    }
    let admin = Some(token_for("admin"));
    let mut documented = 0;
    for (pattern, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            documented += 1;
            assert!(operation["responses"].is_object(), "{method} {pattern}");
            let path = pattern
                .replace("{id}", "walk-ghost")
                .replace("{file}", "app.js");
            let method = method.to_ascii_uppercase();
            let answer = daemon.request(&method, &path, admin, None).await;
            let unserved =
                answer.status == 405 || (answer.status == 404 && answer.error_code() == "no_route");
            assert!(!unserved, "{method} {pattern} is documented but not served");
        }
    }
    assert_eq!(documented, ROUTES.len());
    daemon.stop().await.unwrap();
}

#[tokio::test]
async fn probes_metrics_and_dashboard() {
    let daemon = start_daemon(|_| {}).await;
    let live = daemon.get("/livez", None).await;
    assert_eq!(live.status, 200);
    assert_eq!(live.json(), json!({"status": "ok"}));

    let ready = daemon.get("/readyz", None).await;
    match ready.status {
        200 => assert_eq!(ready.json(), json!({"ready": true})),
        503 => assert_eq!(ready.error_code(), "not_ready"),
        other => panic!("/readyz answered {other}"),
    }

    // A request to a concrete path is counted under its pattern, never the raw path.
    daemon
        .get("/v1/entities/metrics-ghost", Some(token_for("viewer")))
        .await;
    let metrics = daemon.get("/metrics", None).await;
    assert_eq!(metrics.status, 200);
    assert_eq!(
        metrics.header("content-type"),
        Some(readyd::http::OPENMETRICS_CONTENT_TYPE)
    );
    let text = metrics.text();
    assert!(
        text.contains(r#"readyd_http_requests_total{route="/livez",method="GET",status="200"}"#),
        "{text}"
    );
    assert!(
        text.contains(r#"route="/v1/entities/{id}",method="GET""#),
        "{text}"
    );
    assert!(!text.contains("metrics-ghost"), "{text}");
    assert!(
        text.contains("readyd_http_request_seconds_bucket"),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"));

    let page = daemon.get("/", None).await;
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.header("content-security-policy").is_some());
    assert_eq!(daemon.get("/assets/app.js", None).await.status, 200);
    let missing = daemon.get("/assets/missing.js", None).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.error_code(), "not_found");
    daemon.stop().await.unwrap();
}

#[tokio::test]
async fn gate_client_reports_errors_with_exit_code_2() {
    let daemon = start_daemon(|_| {}).await;
    let url = daemon.url("");
    match ask_gate(&url, Some(UNKNOWN_TOKEN), "payments-api").await {
        Err(readyd::http::client::GateError::Refused { status, code, .. }) => {
            assert_eq!(status, 401);
            assert_eq!(code, "unauthenticated");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        gate_command(&url, Some(UNKNOWN_TOKEN), "payments-api")
            .await
            .unwrap(),
        2
    );
    assert_eq!(gate_command(&url, None, "payments-api").await.unwrap(), 2);
    daemon.stop().await.unwrap();
}

#[test]
fn the_fixture_organisation_is_valid() {
    let dir = fixture_dir("api");
    let catalog = readyd::catalog::load_dir(&dir.join("catalog"))
        .unwrap_or_else(|e| panic!("catalog: {e:?}"));
    drop(catalog);
    readyd::standards::load_dir(&dir.join("standards"), &readyd::standards::NoPlugins)
        .unwrap_or_else(|e| panic!("standards: {e:?}"));
}

#[test]
fn the_readyd_binary_is_built_and_runs() {
    let output = std::process::Command::new(readyd_bin())
        .arg("--version")
        .output()
        .expect("run readyd --version");
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.starts_with("readyd "), "{stdout}");
}

// ---- through the engine ----------------------------------------------------------------------
// These need the engine's method bodies; they describe the final behaviour of the API.

/// Wait until `/readyz` says ready.
async fn wait_ready(daemon: &TestDaemon) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if daemon.get("/readyz", None).await.status == 200 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not ready within {PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn readyz_turns_ready_after_the_first_evaluation() {
    let daemon = start_daemon(|_| {}).await;
    wait_ready(&daemon).await;
    assert!(daemon.engine.is_ready());
    daemon.stop().await.unwrap();
}

#[tokio::test]
async fn catalog_scores_and_filters_over_http() {
    let daemon = start_daemon(|_| {}).await;
    wait_ready(&daemon).await;
    let viewer = Some(token_for("viewer"));

    let all = daemon.get("/v1/entities", viewer).await;
    assert_eq!(all.status, 200, "{}", all.text());
    let ids: BTreeSet<String> = all
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["identifier"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        ids,
        ["docs-site", "identity-api", "payments-api"]
            .map(String::from)
            .into()
    );
    let payments = daemon
        .get("/v1/entities?team=payments&tier=1", viewer)
        .await;
    assert_eq!(payments.json().as_array().unwrap().len(), 1);

    let entity = daemon.get("/v1/entities/payments-api", viewer).await;
    assert_eq!(entity.status, 200);
    assert_eq!(entity.json()["team"], "payments");
    assert_eq!(daemon.get("/v1/entities/nope", viewer).await.status, 404);

    let scores = daemon.get("/v1/entities/payments-api/scores", viewer).await;
    assert_eq!(scores.status, 200, "{}", scores.text());
    let readiness = &scores.json()[0];
    assert_eq!(readiness["scorecard"], "readiness");
    assert_eq!(readiness["level"], "Silver");

    let card = daemon.get("/v1/scorecards/readiness", viewer).await;
    assert_eq!(card.status, 200);
    assert_eq!(card.json()["levels"], json!(["Basic", "Bronze", "Silver"]));

    let below = daemon
        .get("/v1/scores?scorecard=readiness&below=Silver", viewer)
        .await;
    assert_eq!(below.status, 200, "{}", below.text());
    let below: BTreeSet<String> = below
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["entity"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        below,
        ["docs-site", "identity-api"].map(String::from).into()
    );

    let gate = daemon
        .get("/v1/gate/payments-api", Some(token_for("ci")))
        .await;
    assert_eq!(gate.status, 200);
    assert_eq!(gate.json()["allowed"], true);
    let gate = daemon
        .get("/v1/gate/identity-api", Some(token_for("ci")))
        .await;
    assert_eq!(
        gate.json()["allowed"],
        false,
        "identity-api lacks a runbook"
    );
    daemon.stop().await.unwrap();
}

async fn entity_json(daemon: &TestDaemon, id: &str) -> Value {
    let answer = daemon
        .get(&format!("/v1/entities/{id}"), Some(token_for("viewer")))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()
}

/// Issue 17: `catalog_tier` was only shown beside an approved override, although the README
/// says it is the file's tier. It is the file's tier whenever the file has one.
#[tokio::test]
async fn catalog_tier_is_the_files_tier_whenever_the_file_has_one() {
    let daemon = start_daemon(|_| {}).await;
    wait_ready(&daemon).await;
    let payments = entity_json(&daemon, "payments-api").await;
    assert_eq!(payments["tier"], 1, "{payments}");
    assert_eq!(payments["catalog_tier"], 1, "{payments}");
    // The file gives docs-site no tier, and nothing overrides it: nothing to show.
    let docs = entity_json(&daemon, "docs-site").await;
    assert!(docs.get("catalog_tier").is_none(), "{docs}");

    // Approved tier changes: the effective tier moves, `catalog_tier` stays the file's.
    for (id, requester, to) in [
        ("identity-api", "owner:identity", 1),
        ("docs-site", "admin", 3),
    ] {
        let request = daemon
            .post(
                "/v1/tier-requests",
                Some(token_for(requester)),
                json!({"entity": id, "to": to, "reason": "issue 17"}),
            )
            .await;
        assert_eq!(request.status, 201, "{}", request.text());
        let request_id = request.json()["id"].as_str().unwrap().to_owned();
        let approved = daemon
            .post(
                &format!("/v1/tier-requests/{request_id}/approve"),
                Some(token_for("approver")),
                json!({}),
            )
            .await;
        assert_eq!(approved.status, 200, "{}", approved.text());
    }
    let identity = entity_json(&daemon, "identity-api").await;
    assert_eq!(identity["tier"], 1, "{identity}");
    assert_eq!(identity["catalog_tier"], 2, "{identity}");
    let docs = entity_json(&daemon, "docs-site").await;
    assert_eq!(docs["tier"], 3, "{docs}");
    assert_eq!(docs["catalog_tier"], Value::Null, "{docs}");
    assert!(docs.get("catalog_tier").is_some(), "{docs}");
    daemon.stop().await.unwrap();
}

#[tokio::test]
async fn exemption_workflow_over_http() {
    let daemon = start_daemon(|_| {}).await;
    wait_ready(&daemon).await;
    let owner = Some(token_for("owner:identity"));
    let approver = Some(token_for("approver"));

    let requested = daemon
        .post(
            "/v1/exemptions",
            owner,
            json!({"entity": "identity-api", "scorecard": "readiness", "rule": "has-runbook",
                   "reason": "runbook being written",
                   "until": (chrono::Utc::now() + chrono::Duration::days(90)).to_rfc3339()}),
        )
        .await;
    assert_eq!(requested.status, 201, "{}", requested.text());
    let exemption = requested.json();
    assert_eq!(exemption["status"], "pending");
    assert_eq!(exemption["requested_by"], "ines");
    let id = exemption["id"].as_str().unwrap().to_owned();

    let pending = daemon
        .get("/v1/exemptions?status=pending", approver)
        .await
        .json();
    assert!(
        pending
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["id"] == id.as_str())
    );

    let approve = format!("/v1/exemptions/{id}/approve");
    let approved = daemon
        .post(&approve, approver, json!({"note": "fine until then"}))
        .await;
    assert_eq!(approved.status, 200, "{}", approved.text());
    assert_eq!(approved.json()["status"], "approved");
    let again = daemon.post(&approve, approver, json!({})).await;
    assert_eq!(again.status, 409, "{}", again.text());
    assert_eq!(again.error_code(), "conflict");

    let gate = daemon
        .get("/v1/gate/identity-api", Some(token_for("ci")))
        .await;
    assert_eq!(gate.json()["allowed"], true, "{}", gate.text());
    daemon.stop().await.unwrap();
}

#[tokio::test]
async fn owners_act_only_on_their_own_teams_entities() {
    let daemon = start_daemon(|_| {}).await;
    wait_ready(&daemon).await;
    let other_owner = Some(token_for("owner:identity"));
    let lock = daemon
        .post(
            "/v1/entities/payments-api/lock",
            other_owner,
            json!({"reason": "not mine"}),
        )
        .await;
    assert_eq!(lock.status, 403, "{}", lock.text());
    let exemption = daemon
        .post(
            "/v1/exemptions",
            other_owner,
            json!({"entity": "payments-api", "scorecard": "readiness", "reason": "r",
                   "until": "2030-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(exemption.status, 403, "{}", exemption.text());

    // An approver may not approve a request it made itself (an admin requests, then approves).
    let admin = Some(token_for("admin"));
    let own = daemon
        .post(
            "/v1/tier-requests",
            admin,
            json!({"entity": "docs-site", "to": 3, "reason": "public docs"}),
        )
        .await;
    assert_eq!(own.status, 201, "{}", own.text());
    let id = own.json()["id"].as_str().unwrap().to_owned();
    let self_approval = daemon
        .post(&format!("/v1/tier-requests/{id}/approve"), admin, json!({}))
        .await;
    assert_eq!(self_approval.status, 403, "{}", self_approval.text());
    daemon.stop().await.unwrap();
}

#[tokio::test]
async fn a_lock_refuses_the_gate_and_the_client_exits_1() {
    let daemon = start_daemon(|_| {}).await;
    wait_ready(&daemon).await;
    let url = daemon.url("");
    let ci = Some(token_for("ci"));
    assert_eq!(gate_command(&url, ci, "payments-api").await.unwrap(), 0);

    let locked = daemon
        .post(
            "/v1/entities/payments-api/lock",
            Some(token_for("owner:payments")),
            json!({"reason": "incident 42"}),
        )
        .await;
    assert_eq!(locked.status, 200, "{}", locked.text());
    let answer = ask_gate(&url, ci, "payments-api").await.unwrap();
    assert!(!answer.allowed);
    assert!(
        answer.reasons.iter().any(|r| r.contains("incident 42")),
        "{:?}",
        answer.reasons
    );
    assert_eq!(gate_command(&url, ci, "payments-api").await.unwrap(), 1);

    let unlocked = daemon
        .request(
            "POST",
            "/v1/entities/payments-api/unlock",
            Some(token_for("owner:payments")),
            None,
        )
        .await;
    assert_eq!(unlocked.status, 204, "{}", unlocked.text());
    assert_eq!(gate_command(&url, ci, "payments-api").await.unwrap(), 0);
    let unknown = ask_gate(&url, ci, "nope").await;
    assert!(matches!(
        unknown,
        Err(readyd::http::client::GateError::Refused { status: 404, .. })
    ));
    daemon.stop().await.unwrap();
}

/// `readyd gate` as CI runs it: the real binary against a real daemon, judged by exit code.
#[tokio::test]
async fn the_gate_command_of_the_binary_exits_0_1_or_2() {
    let daemon = start_daemon(|_| {}).await;
    wait_ready(&daemon).await;
    let bin = readyd_bin();
    let gate = |id: &'static str, token: &'static str| {
        let mut command = tokio::process::Command::new(&bin);
        command
            .args(["gate", id, "--url", &daemon.url(""), "--token", token])
            .env_remove("READYD_URL")
            .env_remove("READYD_TOKEN");
        async move { command.output().await.expect("run readyd gate") }
    };
    let allowed = gate("payments-api", token_for("ci")).await;
    assert_eq!(allowed.status.code(), Some(0), "{allowed:?}");
    assert!(String::from_utf8_lossy(&allowed.stdout).contains("payments-api: allowed"));
    let refused = gate("identity-api", token_for("ci")).await;
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    assert!(String::from_utf8_lossy(&refused.stdout).contains("identity-api: refused"));
    let error = gate("payments-api", UNKNOWN_TOKEN).await;
    assert_eq!(error.status.code(), Some(2), "{error:?}");
    assert!(String::from_utf8_lossy(&error.stderr).contains("401"));
    daemon.stop().await.unwrap();
}
