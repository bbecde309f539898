//! The `github` data source, compiled, loaded in the daemon's plugin host, against a local
//! stand-in of GitHub's REST API (GitHub Enterprise Server layout, `/api/v3`).
//!
//! The stand-in answers in the shapes of the API description (the plugin's own fixtures,
//! `plugins/github/fixtures/`): `ETag`s and `304 Not Modified` for a matching `If-None-Match`
//! (not counted against its rate limit, as GitHub does), `X-RateLimit-*` headers, `Link`
//! paging with cursors on `/repositories/{id}/...` as GitHub writes its next links, `404`s for
//! what does not exist, and `403` rate-limit answers (primary: `X-RateLimit-Remaining: 0`;
//! secondary: `Retry-After`) when told to.

use std::collections::HashMap;
use std::convert::Infallible;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use readyd::plugin::{HostConfig, Manifest, Plugin, PluginHost};
use readyd_plugin_artifacts as artifacts;
use readyd_tests::{entity, log_capture, temp_dir, write_file};
use serde_json::{Value, json};

const TOKEN: &str = "ghs_standin7c1f9e2a44d0";

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/github/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap()
}

/// One canned answer of the stand-in.
#[derive(Clone)]
struct Route {
    status: u16,
    body: String,
    /// Path and query of the next page, if any (written as an absolute `Link`).
    next: Option<String>,
}

fn found(body: impl Into<String>) -> Route {
    Route {
        status: 200,
        body: body.into(),
        next: None,
    }
}

fn answer(status: u16, fixture_name: &str) -> Route {
    Route {
        status,
        body: fixture(fixture_name),
        next: None,
    }
}

/// A request as the stand-in saw it, with its answer.
#[derive(Clone, Debug)]
struct Seen {
    path: String,
    if_none_match: Option<String>,
    authorization: Option<String>,
    accept: Option<String>,
    api_version: Option<String>,
    status: u16,
}

struct State {
    routes: HashMap<String, Route>,
    seen: Vec<Seen>,
    /// The primary rate limit left; `304`s do not spend it.
    remaining: u64,
    reset: u64,
    /// After this many more requests, answer `403` with `Retry-After` (a secondary limit).
    secondary_after: Option<usize>,
}

struct StandIn {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn etag_of(body: &str) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut hasher);
    format!("W/\"{:016x}\"", hasher.finish())
}

impl StandIn {
    async fn start(routes: HashMap<String, Route>) -> StandIn {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let reset = chrono::Utc::now().timestamp() as u64 + 3600;
        let state = Arc::new(Mutex::new(State {
            routes,
            seen: Vec::new(),
            remaining: 5000,
            reset,
            secondary_after: None,
        }));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let shared = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(respond(&shared, addr, &req)) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        StandIn { addr, state, task }
    }

    fn api_url(&self) -> String {
        format!("http://{}/api/v3", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    fn set(&self, path: &str, route: Route) {
        self.state
            .lock()
            .unwrap()
            .routes
            .insert(format!("/api/v3{path}"), route);
    }
}

fn respond(
    state: &Mutex<State>,
    addr: SocketAddr,
    req: &hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let mut state = state.lock().unwrap();
    let if_none_match = header("if-none-match");
    let mut builder = hyper::Response::builder()
        .header("content-type", "application/json; charset=utf-8")
        .header("x-github-api-version-selected", "2022-11-28")
        .header("x-ratelimit-limit", "5000")
        .header("x-ratelimit-resource", "core");
    let secondary = match &mut state.secondary_after {
        Some(0) => true,
        Some(n) => {
            *n -= 1;
            false
        }
        None => false,
    };
    let (status, body) = if secondary {
        builder = builder.header("retry-after", "60");
        (403, fixture("secondary-rate-limit.json"))
    } else if state.remaining == 0 {
        (403, fixture("rate-limited.json"))
    } else {
        let route = state
            .routes
            .get(&path)
            .cloned()
            .unwrap_or_else(|| answer(404, "not-found.json"));
        let etag = (route.status == 200).then(|| etag_of(&route.body));
        if let Some(etag) = &etag {
            builder = builder.header("etag", etag.as_str());
        }
        if let Some(next) = &route.next {
            builder = builder.header(
                "link",
                format!(
                    "<http://{addr}{next}>; rel=\"next\", <http://{addr}{path}>; rel=\"first\""
                ),
            );
        }
        if etag.is_some() && etag == if_none_match {
            (304, String::new())
        } else {
            state.remaining -= 1;
            (route.status, route.body)
        }
    };
    let remaining = state.remaining;
    let reset = state.reset;
    state.seen.push(Seen {
        path,
        if_none_match,
        authorization: header("authorization"),
        accept: header("accept"),
        api_version: header("x-github-api-version"),
        status,
    });
    builder
        .status(status)
        .header("x-ratelimit-remaining", remaining.to_string())
        .header("x-ratelimit-used", (5000 - remaining).to_string())
        .header("x-ratelimit-reset", reset.to_string())
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

/// 150 open alerts in the shape of the fixtures: severity by `i % 5` (critical, high, medium,
/// low, high), every even one with a patched version.
fn alerts(range: std::ops::Range<usize>) -> String {
    let template = fixture_json("dependabot-alerts-1.json")[0].clone();
    let severities = ["critical", "high", "medium", "low", "high"];
    let list: Vec<Value> = range
        .map(|i| {
            let mut alert = template.clone();
            alert["number"] = json!(i + 1);
            alert["security_advisory"]["severity"] = json!(severities[i % 5]);
            alert["security_vulnerability"]["severity"] = json!(severities[i % 5]);
            if i % 2 == 1 {
                alert["security_vulnerability"]["first_patched_version"] = Value::Null;
            }
            alert
        })
        .collect();
    Value::Array(list).to_string()
}

/// acme/payments (everything set, two alert pages), acme/legacy (nothing set, Dependabot
/// off), and nothing for acme/gone.
fn organisation() -> HashMap<String, Route> {
    let mut legacy = fixture_json("repository.json");
    legacy["name"] = json!("legacy");
    legacy["full_name"] = json!("acme/legacy");
    legacy["default_branch"] = json!("master");
    legacy["visibility"] = json!("public");
    legacy["private"] = json!(false);
    let page2 = "/api/v3/repositories/1296269/dependabot/alerts?state=open&per_page=100&after=Y3Vyc29yOjEwMA%3D%3D";
    let routes = [
        ("/repos/acme/payments", found(fixture("repository.json"))),
        (
            "/repos/acme/payments/branches/main/protection",
            found(fixture("branch-protection.json")),
        ),
        (
            "/repos/acme/payments/contents/.github/CODEOWNERS",
            found(fixture("content-file.json")),
        ),
        (
            "/repos/acme/payments/actions/workflows?per_page=1",
            found(fixture("workflows.json")),
        ),
        (
            "/repos/acme/payments/dependabot/alerts?state=open&per_page=100",
            Route {
                next: Some(page2.to_string()),
                ..found(alerts(0..100))
            },
        ),
        (
            "/repos/acme/payments/releases/latest",
            found(fixture("release.json")),
        ),
        (
            "/repos/acme/payments/deployments?per_page=1",
            found(fixture("deployments.json")),
        ),
        ("/repos/acme/legacy", found(legacy.to_string())),
        (
            "/repos/acme/legacy/branches/master/protection",
            answer(404, "not-protected.json"),
        ),
        (
            "/repos/acme/legacy/actions/workflows?per_page=1",
            found(r#"{"total_count": 0, "workflows": []}"#),
        ),
        (
            "/repos/acme/legacy/dependabot/alerts?state=open&per_page=100",
            answer(403, "dependabot-disabled.json"),
        ),
        ("/repos/acme/legacy/deployments?per_page=1", found("[]")),
    ];
    let mut map: HashMap<String, Route> = routes
        .into_iter()
        .map(|(path, route)| (format!("/api/v3{path}"), route))
        .collect();
    map.insert(page2.to_string(), found(alerts(100..150)));
    map
}

fn entities() -> Vec<readyd::model::Entity> {
    let mut payments = entity("payments-api");
    payments
        .properties
        .insert("github".into(), json!({"repo": "acme/payments"}));
    // A Backstage component: the slug comes from its annotation.
    let mut legacy = entity("legacy-batch");
    legacy.properties.insert(
        "annotations".into(),
        json!({"github.com/project-slug": "acme/legacy"}),
    );
    let mut gone = entity("gone");
    gone.properties
        .insert("github".into(), json!({"repo": "acme/gone"}));
    vec![payments, legacy, gone, entity("no-repository")]
}

async fn load(stand_in: &StandIn, dir: &Path, extra_config: &str) -> Arc<Plugin> {
    let text = format!(
        "name = \"github\"\nkind = \"data-source\"\nwasm = \"{wasm}\"\ntimeout_ms = 30000\nmemory_mb = 64\n\
         [capabilities]\nhttp = [\"{addr}\"]\nsecrets = {{ token = \"READYD_TEST_GITHUB_TOKEN\" }}\n\
         [config]\napi_url = \"{api}\"\nrate_limit_reserve = 0\n{extra_config}",
        wasm = artifacts::GITHUB,
        addr = stand_in.addr,
        api = stand_in.api_url(),
    );
    let path = write_file(dir, "github.toml", &text);
    let env = |var: &str| (var == "READYD_TEST_GITHUB_TOKEN").then(|| TOKEN.to_string());
    let manifest = Manifest::parse(&text, &path, &env).expect("valid manifest");
    let host = PluginHost::new(HostConfig {
        max_instances: 4,
        max_memory_mb: 256,
        ..HostConfig::default()
    })
    .expect("plugin host");
    host.load(manifest).await.expect("the github plugin loads")
}

async fn collect(plugin: &Plugin) -> HashMap<String, Value> {
    plugin
        .collect(&entities())
        .await
        .expect("the collection succeeds")
        .into_iter()
        .map(|(id, facts)| (id, Value::Object(facts)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_facts_then_mostly_304s_then_deferral_under_a_secondary_limit() {
    let logs = log_capture();
    let stand_in = StandIn::start(organisation()).await;
    let dir = temp_dir();
    let plugin = load(&stand_in, dir.path(), "").await;

    // Round one: everything in full.
    let facts = collect(&plugin).await;
    let payments = &facts["payments-api"];
    assert_eq!(payments["repository"], "acme/payments");
    assert_eq!(payments["found"], true);
    assert_eq!(payments["default_branch"], "main");
    assert_eq!(payments["visibility"], "internal");
    assert_eq!(payments["archived"], false);
    assert_eq!(payments["branch_protected"], true);
    assert_eq!(
        payments["branch_protection"],
        json!({
            "required_reviews": true, "required_review_count": 2,
            "require_code_owner_reviews": true, "dismiss_stale_reviews": true,
            "required_status_checks": true, "status_checks": ["ci/build", "security/trivy"],
            "strict_status_checks": true, "enforce_admins": true,
            "force_pushes_allowed": false, "deletions_allowed": false,
        })
    );
    assert_eq!(payments["has_codeowners"], true);
    assert_eq!(payments["codeowners_path"], ".github/CODEOWNERS");
    assert_eq!(payments["workflows"], 3);
    assert_eq!(
        payments["dependabot_alerts"],
        json!({"critical": 30, "high": 60, "medium": 30, "low": 30, "total": 150, "fixable": 75}),
        "both pages counted"
    );
    assert_eq!(payments["last_release_at"], "2026-11-20T09:30:00Z");
    assert_eq!(payments["last_deployment_at"], "2026-11-28T14:00:00Z");
    assert_eq!(
        payments["last_release_or_deployment_at"],
        "2026-11-28T14:00:00Z"
    );
    assert!(payments["days_since_last_release_or_deployment"].is_u64());

    let legacy = &facts["legacy-batch"];
    assert_eq!(legacy["repository"], "acme/legacy");
    assert_eq!(legacy["visibility"], "public");
    assert_eq!(legacy["branch_protected"], false);
    assert_eq!(legacy["branch_protection"]["force_pushes_allowed"], true);
    assert_eq!(legacy["branch_protection"]["required_review_count"], 0);
    assert_eq!(legacy["has_codeowners"], false);
    assert_eq!(legacy["has_workflows"], false);
    assert_eq!(legacy["dependabot_alerts_enabled"], false);
    assert_eq!(legacy["last_release_or_deployment_at"], Value::Null);
    assert!(legacy.get("unreadable").is_none(), "{legacy}");
    assert_eq!(
        facts["gone"],
        json!({"repository": "acme/gone", "found": false})
    );
    assert!(
        !facts.contains_key("no-repository"),
        "an entity without a repository is left out"
    );

    let first = stand_in.seen();
    // payments 8 (2 alert pages), legacy 9 (3 CODEOWNERS places), gone 1.
    assert_eq!(first.len(), 18, "{first:#?}");
    assert!(first.iter().any(|s| {
        s.path
            .starts_with("/api/v3/repositories/1296269/dependabot/alerts")
    }));
    for seen in &first {
        assert_eq!(
            seen.authorization.as_deref(),
            Some(&*format!("Bearer {TOKEN}"))
        );
        assert_eq!(seen.accept.as_deref(), Some("application/vnd.github+json"));
        assert_eq!(seen.api_version.as_deref(), Some("2022-11-28"));
        assert_eq!(
            seen.if_none_match, None,
            "nothing remembered before round one"
        );
    }
    let spent_first = 5000 - stand_in.state.lock().unwrap().remaining;
    assert_eq!(spent_first, 18);

    // Round two, nothing changed: every answer that had an ETag is asked conditionally and
    // comes back 304 (free); only the 404s and the 403 (which carry none) are asked again.
    let again = collect(&plugin).await;
    assert_eq!(again, facts, "304s reuse the previous values");
    let second = stand_in.seen()[first.len()..].to_vec();
    assert_eq!(second.len(), 18);
    let not_modified = second.iter().filter(|s| s.status == 304).count();
    assert_eq!(not_modified, 11, "{second:#?}");
    for (before, now) in first.iter().zip(&second) {
        assert_eq!(before.path, now.path, "the same requests in the same order");
        if before.status == 200 {
            assert!(
                now.if_none_match.is_some(),
                "{} was not conditional",
                now.path
            );
            assert_eq!(now.status, 304, "{}", now.path);
        } else {
            assert_eq!(now.if_none_match, None, "{}", now.path);
        }
    }
    let payments_second: Vec<_> = second
        .iter()
        .filter(|s| s.path.contains("acme/payments") || s.path.contains("/repositories/"))
        .collect();
    assert_eq!(payments_second.len(), 8);
    assert!(
        payments_second.iter().all(|s| s.status == 304),
        "payments unchanged: all 304"
    );
    let spent_second = 5000 - stand_in.state.lock().unwrap().remaining - spent_first;
    assert_eq!(spent_second, 7, "the 304s did not count against the limit");

    // Round three: payments was archived, and GitHub's secondary limit hits right after the
    // payments requests. Payments gets its new facts; the others are deferred, not failed.
    let mut archived = fixture_json("repository.json");
    archived["archived"] = json!(true);
    stand_in.set("/repos/acme/payments", found(archived.to_string()));
    stand_in.state.lock().unwrap().secondary_after = Some(8);
    let third = collect(&plugin).await;
    assert_eq!(third.len(), 1, "{third:?}");
    assert_eq!(third["payments-api"]["archived"], true);
    assert_eq!(
        third["payments-api"]["dependabot_alerts"]["total"], 150,
        "the pages were 304s"
    );
    let round_three = stand_in.seen()[36..].to_vec();
    assert_eq!(round_three.len(), 9, "{round_three:#?}");
    assert_eq!(round_three[8].status, 403);
    assert!(round_three[8].path.contains("acme/legacy"));

    // Round four, within Retry-After: nothing is sent, and that is no error either.
    let fourth = collect(&plugin).await;
    assert!(fourth.is_empty(), "{fourth:?}");
    assert_eq!(stand_in.seen().len(), 45);

    let logs = logs.contents();
    assert!(logs.contains("2 of 3 repositories deferred"), "{logs}");
    assert!(!logs.contains(TOKEN), "the token reached a log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_a_spent_rate_limit_defers_the_whole_round() {
    let stand_in = StandIn::start(organisation()).await;
    // Another client of the same token spent the limit.
    stand_in.state.lock().unwrap().remaining = 0;
    let dir = temp_dir();
    let plugin = load(&stand_in, dir.path(), "").await;
    let facts = collect(&plugin).await;
    assert!(facts.is_empty(), "{facts:?}");
    let seen = stand_in.seen();
    assert_eq!(
        seen.len(),
        1,
        "nothing more is sent after the 403: {seen:#?}"
    );
    assert_eq!(seen[0].status, 403);
    // Until X-RateLimit-Reset (an hour away), the next round sends nothing at all.
    assert!(collect(&plugin).await.is_empty());
    assert_eq!(stand_in.seen().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_bad_credentials_fail_as_invalid_config() {
    let mut routes = organisation();
    routes.insert(
        "/api/v3/repos/acme/payments".into(),
        answer(401, "bad-credentials.json"),
    );
    let stand_in = StandIn::start(routes).await;
    let dir = temp_dir();
    let plugin = load(&stand_in, dir.path(), "").await;
    let err = plugin.collect(&entities()).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("invalid") && text.contains("401"), "{text}");
    assert!(!text.contains(TOKEN));
}

#[tokio::test]
async fn github_example_manifest_is_least_privilege_and_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/github/github.example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let env = |var: &str| (var == "GITHUB_TOKEN").then(|| TOKEN.to_string());
    let manifest = Manifest::parse(&text, &path, &env).expect("the example manifest is valid");
    let hosts: Vec<_> = manifest
        .capabilities
        .http
        .iter()
        .map(|g| (g.host.as_str(), g.port))
        .collect();
    assert_eq!(hosts, [("api.github.com", None)]);
    let secrets: Vec<_> = manifest
        .capabilities
        .secrets
        .iter()
        .map(|s| (s.name.as_str(), s.env_var.as_str()))
        .collect();
    assert_eq!(secrets, [("token", "GITHUB_TOKEN")]);
    assert!(manifest.capabilities.dirs.is_empty());
    assert_eq!(
        manifest.wasm.canonicalize().unwrap(),
        Path::new(artifacts::GITHUB).canonicalize().unwrap()
    );
    // Its config is accepted by the plugin (init runs at load; nothing is sent yet).
    let host = PluginHost::new(HostConfig {
        max_instances: 2,
        max_memory_mb: 256,
        ..HostConfig::default()
    })
    .unwrap();
    host.load(manifest).await.expect("the example loads");
}
