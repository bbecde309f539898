//! Native tests of the Kubernetes source against canned answers in the API's shapes
//! (`fixtures/`, written from the apps/v1, policy/v1 and autoscaling/v2 types: typed lists with
//! `metadata.continue`, items without `kind`, `Status` bodies for 401, 403 and 410).

use super::*;
use readyd_plugin_sdk::http::Response;
use readyd_plugin_sdk::testing::MockHttp;

const API: &str = "https://127.0.0.1:6443";
const TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.sa-token.sig";

fn fixture(name: &str) -> Value {
    let text = match name {
        "deployments-page-1" => include_str!("../fixtures/deployments-page-1.json"),
        "deployments-page-2" => include_str!("../fixtures/deployments-page-2.json"),
        "statefulsets" => include_str!("../fixtures/statefulsets.json"),
        "poddisruptionbudgets" => include_str!("../fixtures/poddisruptionbudgets.json"),
        "horizontalpodautoscalers" => include_str!("../fixtures/horizontalpodautoscalers.json"),
        "status-401" => include_str!("../fixtures/status-401.json"),
        "status-403" => include_str!("../fixtures/status-403.json"),
        "status-410" => include_str!("../fixtures/status-410.json"),
        other => panic!("no fixture {other}"),
    };
    serde_json::from_str(text).unwrap()
}

fn status(code: u16, name: &str) -> Response {
    Response::new(code)
        .with_header("content-type", "application/json")
        .with_body(fixture(name).to_string())
}

fn plugin(extra: Value) -> Kubernetes {
    let mut config = json!({"api_url": API, "token_secret": "k8s", "k8s": TOKEN, "page_limit": 2});
    config
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    Kubernetes::init(Config::from_json(config)).unwrap()
}

const SELECTOR: &str =
    "app.kubernetes.io/name in (checkout-web,ghost,payments-api,payments-ledger)";

fn list_url(path: &str, selector: Option<&str>, continue_token: Option<&str>) -> String {
    let mut url = format!("{API}/{path}?limit=2");
    if let Some(s) = selector {
        url.push_str(&format!("&labelSelector={}", encode_component(s)));
    }
    if let Some(c) = continue_token {
        url.push_str(&format!("&continue={}", encode_component(c)));
    }
    url
}

fn continue_token() -> String {
    fixture("deployments-page-1")["metadata"]["continue"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A cluster whose Deployment list comes in two pages.
fn cluster() -> MockHttp {
    MockHttp::new()
        .on_get(
            list_url("apis/apps/v1/deployments", Some(SELECTOR), None),
            Response::json_body(&fixture("deployments-page-1")),
        )
        .on_get(
            list_url(
                "apis/apps/v1/deployments",
                Some(SELECTOR),
                Some(&continue_token()),
            ),
            Response::json_body(&fixture("deployments-page-2")),
        )
        .on_get(
            list_url("apis/apps/v1/statefulsets", Some(SELECTOR), None),
            Response::json_body(&fixture("statefulsets")),
        )
        .on_get(
            list_url("apis/policy/v1/poddisruptionbudgets", None, None),
            Response::json_body(&fixture("poddisruptionbudgets")),
        )
        .on_get(
            list_url("apis/autoscaling/v2/horizontalpodautoscalers", None, None),
            Response::json_body(&fixture("horizontalpodautoscalers")),
        )
}

fn entities() -> Vec<Entity> {
    ["payments-api", "payments-ledger", "checkout-web", "ghost"]
        .into_iter()
        .map(|id| Entity::new(id, "service"))
        .collect()
}

fn collect(source: &Kubernetes) -> BTreeMap<String, Value> {
    source.collect(&entities()).unwrap().into_iter().collect()
}

#[test]
fn one_batched_list_per_kind_answers_every_entity() {
    let mock = cluster();
    let _installed = mock.install();
    let facts = collect(&plugin(json!({})));

    let api = &facts["payments-api"];
    assert_eq!(api["found"], true);
    assert_eq!(api["workload_count"], 1);
    assert_eq!(
        (
            api["replicas_desired"].clone(),
            api["replicas_ready"].clone()
        ),
        (json!(3), json!(3))
    );
    assert_eq!(api["all_replicas_ready"], true);
    assert_eq!(api["probes"], json!({"liveness": true, "readiness": true}));
    assert_eq!(
        api["resources"],
        json!({"cpu_requests": true, "memory_requests": true, "cpu_limits": true, "memory_limits": true})
    );
    assert_eq!(
        api["images_pinned"], true,
        "a digest pins the init container"
    );
    assert_eq!(api["unpinned_images"], json!([]));
    assert_eq!(
        (api["pdb_covered"].clone(), api["hpa_targeted"].clone()),
        (json!(true), json!(true))
    );
    assert_eq!(api["problems"], json!([]));
    assert_eq!(
        api["workloads"][0],
        json!({
            "kind": "Deployment", "namespace": "payments", "name": "payments-api",
            "replicas_desired": 3, "replicas_ready": 3, "containers": 1,
            "probes": {"liveness": true, "readiness": true},
            "resources": {"cpu_requests": true, "memory_requests": true, "cpu_limits": true, "memory_limits": true},
            "images_pinned": true, "pdb": "payments-api", "hpa": "payments-api",
        })
    );

    let ledger = &facts["payments-ledger"];
    assert_eq!(ledger["workloads"][0]["kind"], "StatefulSet");
    assert_eq!(ledger["all_replicas_ready"], false);
    assert_eq!(
        ledger["probes"],
        json!({"liveness": false, "readiness": true})
    );
    assert_eq!(
        ledger["unpinned_images"],
        json!(["quay.io/prometheuscommunity/postgres-exporter:latest"])
    );
    assert_eq!(
        ledger["workloads"][0]["pdb"], "databases",
        "matchExpressions select role=db"
    );
    assert_eq!(ledger["pdb_covered"], true);
    assert_eq!(ledger["hpa_targeted"], false);
    assert_eq!(
        ledger["problems"],
        json!([
            "StatefulSet payments/payments-ledger: 2 of 3 replicas ready",
            "StatefulSet payments/payments-ledger container exporter: no liveness probe",
            "StatefulSet payments/payments-ledger: image quay.io/prometheuscommunity/postgres-exporter:latest is not pinned",
            "StatefulSet payments/payments-ledger: no HorizontalPodAutoscaler targets it",
        ])
    );

    // Two Deployments, the second from page 2; the PDB named after it lives in another namespace.
    let web = &facts["checkout-web"];
    assert_eq!(web["workload_count"], 2);
    assert_eq!(web["workloads"][1]["name"], "checkout-web-canary");
    assert_eq!(
        (
            web["replicas_desired"].clone(),
            web["replicas_ready"].clone()
        ),
        (json!(3), json!(2))
    );
    assert_eq!(web["probes"], json!({"liveness": false, "readiness": true}));
    assert_eq!(
        web["resources"],
        json!({"cpu_requests": true, "memory_requests": true, "cpu_limits": false, "memory_limits": false})
    );
    assert_eq!(
        web["unpinned_images"],
        json!(["acme/checkout-web", "acme/checkout-web:latest"])
    );
    assert_eq!(web["pdb_covered"], false);
    assert_eq!(
        web["hpa_targeted"], false,
        "only one of the two is autoscaled"
    );
    assert_eq!(web["workloads"][0]["hpa"], "checkout-web");

    assert_eq!(facts["ghost"], json!({"found": false, "workload_count": 0}));

    let requests = mock.requests();
    assert_eq!(
        requests.len(),
        5,
        "one list per kind, plus the second Deployment page"
    );
    for request in &requests {
        assert_eq!(
            request.header_value("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
    }
}

#[test]
fn namespaces_scope_every_list_and_batches_split() {
    // Namespaces `payments` and `web`, two values per batch: 2 namespaces × 2 kinds × 2 batches
    // workload lists (every answer empty), and no PDB or HPA list since nothing was found.
    let mut mock = MockHttp::new();
    let empty = json!({"kind": "DeploymentList", "apiVersion": "apps/v1", "metadata": {"resourceVersion": "1"}, "items": []});
    for ns in ["payments", "web"] {
        for kind in ["deployments", "statefulsets"] {
            for batch in [
                "app.kubernetes.io/name in (checkout-web,ghost)",
                "app.kubernetes.io/name in (payments-api,payments-ledger)",
            ] {
                mock = mock.on_get(
                    list_url(
                        &format!("apis/apps/v1/namespaces/{ns}/{kind}"),
                        Some(batch),
                        None,
                    ),
                    Response::json_body(&empty),
                );
            }
        }
    }
    let _installed = mock.install();
    let source = plugin(json!({"namespaces": ["web", "payments", "web"], "batch_size": 2}));
    let facts = collect(&source);
    assert!(facts.values().all(|f| f["found"] == false));
    assert_eq!(mock.requests().len(), 8);
}

#[test]
fn a_selector_that_cannot_be_batched_is_sent_per_entity() {
    let selector = "app={identifier},team={team}";
    let empty =
        json!({"kind": "StatefulSetList", "apiVersion": "apps/v1", "metadata": {}, "items": []});
    let mut one = fixture("deployments-page-1");
    one["metadata"] = json!({"resourceVersion": "9"});
    one["items"].as_array_mut().unwrap().truncate(1);
    let mock = MockHttp::new()
        .on_get(
            list_url(
                "apis/apps/v1/deployments",
                Some("app=pay,team=payments"),
                None,
            ),
            Response::json_body(&one),
        )
        .on_get(
            list_url(
                "apis/apps/v1/statefulsets",
                Some("app=pay,team=payments"),
                None,
            ),
            Response::json_body(&empty),
        )
        .on_get(
            list_url("apis/policy/v1/poddisruptionbudgets", None, None),
            Response::json_body(&fixture("poddisruptionbudgets")),
        )
        .on_get(
            list_url("apis/autoscaling/v2/horizontalpodautoscalers", None, None),
            Response::json_body(&fixture("horizontalpodautoscalers")),
        );
    let _installed = mock.install();
    let source = plugin(json!({"selector": selector}));
    let facts = source
        .collect(&[
            Entity::new("pay", "service").with_team("payments"),
            Entity::new("orphan", "service"),
        ])
        .unwrap();
    assert_eq!(facts[0].1["workload_count"], 1);
    assert_eq!(facts[0].1["workloads"][0]["name"], "payments-api");
    assert_eq!(facts[1].1["found"], false);
    assert!(facts[1].1["reason"].as_str().unwrap().contains("{team}"));
}

#[test]
fn an_expired_continue_token_restarts_the_list_once() {
    let mock = cluster().on_get(
        list_url(
            "apis/apps/v1/deployments",
            Some(SELECTOR),
            Some(&continue_token()),
        ),
        status(410, "status-410"),
    );
    let _installed = mock.install();
    let err = plugin(json!({})).collect(&entities()).unwrap_err();
    // The first page, the expired second, the first again, the expired second again: then stop.
    let urls: Vec<String> = mock
        .requests()
        .iter()
        .map(|r| r.url().to_string())
        .collect();
    assert_eq!(urls.len(), 4, "{urls:#?}");
    assert!(
        matches!(&err, PluginError::Unavailable(m) if m.contains("answered 410") && m.contains("too old")),
        "{err}"
    );
}

#[test]
fn paging_is_bounded() {
    let mut looping = fixture("deployments-page-1");
    looping["metadata"]["continue"] = json!("again");
    let mock = MockHttp::new()
        .on_get(
            list_url("apis/apps/v1/deployments", Some(SELECTOR), None),
            Response::json_body(&looping),
        )
        .on_get(
            list_url("apis/apps/v1/deployments", Some(SELECTOR), Some("again")),
            Response::json_body(&looping),
        );
    let _installed = mock.install();
    let err = plugin(json!({"max_pages": 4}))
        .collect(&entities())
        .unwrap_err();
    assert!(
        matches!(&err, PluginError::Unavailable(m) if m.contains("after 4 pages")),
        "{err}"
    );
    assert_eq!(mock.requests().len(), 4);
}

#[test]
fn unauthorized_is_unavailable_and_forbidden_is_a_config_error() {
    let mock = MockHttp::new().on_get(
        list_url("apis/apps/v1/deployments", Some(SELECTOR), None),
        status(401, "status-401"),
    );
    let _installed = mock.install();
    let err = plugin(json!({})).collect(&entities()).unwrap_err();
    assert!(
        matches!(&err, PluginError::Unavailable(m) if m.contains("rejected the token (401 Unauthorized: Unauthorized)")),
        "{err}"
    );
    assert!(!err.message().contains(TOKEN));

    // RBAC that allows the workloads but not the PDBs still fails the round, naming the fix.
    let mock = cluster().on_get(
        list_url("apis/policy/v1/poddisruptionbudgets", None, None),
        status(403, "status-403"),
    );
    let _installed = mock.install();
    let err = plugin(json!({})).collect(&entities()).unwrap_err();
    let PluginError::InvalidConfig(message) = &err else {
        panic!("{err:?}")
    };
    assert!(message.contains("cannot list resource"), "{message}");
    assert!(
        message.contains("poddisruptionbudgets (policy)"),
        "{message}"
    );
    assert!(!message.contains(TOKEN));
}

#[test]
fn the_service_account_token_file_is_read_every_round() {
    let dir = std::env::temp_dir().join(format!("readyd-k8s-sa-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("token"), "first-token\n").unwrap();
    let source = Kubernetes::init(Config::from_json(json!({
        "api_url": API, "service_account_dir": dir.to_str().unwrap(), "page_limit": 2,
    })))
    .unwrap();
    let mock = cluster();
    let _installed = mock.install();
    source.collect(&entities()).unwrap();
    std::fs::write(dir.join("token"), "rotated-token").unwrap();
    source.collect(&entities()).unwrap();
    let seen: BTreeSet<String> = mock
        .requests()
        .iter()
        .filter_map(|r| r.header_value("authorization").map(str::to_string))
        .collect();
    assert_eq!(
        seen,
        BTreeSet::from([
            "Bearer first-token".to_string(),
            "Bearer rotated-token".to_string()
        ])
    );
    std::fs::remove_file(dir.join("token")).unwrap();
    let err = source.collect(&entities()).unwrap_err();
    assert!(
        matches!(&err, PluginError::Unavailable(m) if m.contains("cannot read")),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn rejects_bad_config() {
    let bad = |config: Value| Kubernetes::init(Config::from_json(config)).unwrap_err();
    let err = bad(json!({"service_account_dir": "/nonexistent-sa"}));
    assert!(err.message().contains("capabilities.dirs"), "{err}");
    assert!(
        bad(json!({"token_secret": "k8s"}))
            .message()
            .contains("no such secret")
    );
    let ok = json!({"token_secret": "k8s", "k8s": "t"});
    let with = |extra: Value| {
        let mut c = ok.clone();
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        bad(c)
    };
    assert!(
        with(json!({"api_url": "kubernetes.default.svc"}))
            .message()
            .contains("https://")
    );
    assert!(
        with(json!({"namespaces": ["Payments"]}))
            .message()
            .contains("namespace name")
    );
    assert!(
        with(json!({"selector": "app=payments"}))
            .message()
            .contains("no placeholder")
    );
    assert!(
        with(json!({"page_limit": 0}))
            .message()
            .contains("at least 1")
    );
    let source = Kubernetes::init(Config::from_json(ok)).unwrap();
    assert_eq!(source.api, DEFAULT_API_URL);
    assert_eq!(source.scopes, vec![None]);
}
