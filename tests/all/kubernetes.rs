//! The `kubernetes` data source end to end: the built component in the daemon's plugin host,
//! reading its bearer token from a granted service-account directory (as in a pod), against a
//! local stand-in of the API server (plain HTTP, as `kubectl proxy` serves it) that answers in
//! the API's shapes: typed lists without item `kind`s, `labelSelector` filtering (equality and
//! set-based), `limit` + opaque `continue` tokens, `Status` bodies for 401 and 403. Its objects
//! are the plugin's own fixtures (`plugins/kubernetes/fixtures/`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use readyd::plugin::{HostConfig, Manifest, PluginHost};
use readyd_plugin_artifacts as artifacts;
use readyd_tests::{RecordedRequest, entity, temp_dir, write_file};
use serde_json::{Value, json};

use crate::json_stand_in::{JsonStandIn, split_query};

const TOKEN: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6InRlc3QifQ.c2EtdG9rZW4.sig";
const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

fn fixture(name: &str) -> Value {
    let text = match name {
        "deployments-page-1" => {
            include_str!("../../plugins/kubernetes/fixtures/deployments-page-1.json")
        }
        "deployments-page-2" => {
            include_str!("../../plugins/kubernetes/fixtures/deployments-page-2.json")
        }
        "statefulsets" => include_str!("../../plugins/kubernetes/fixtures/statefulsets.json"),
        "poddisruptionbudgets" => {
            include_str!("../../plugins/kubernetes/fixtures/poddisruptionbudgets.json")
        }
        "horizontalpodautoscalers" => {
            include_str!("../../plugins/kubernetes/fixtures/horizontalpodautoscalers.json")
        }
        other => panic!("no fixture {other}"),
    };
    serde_json::from_str(text).unwrap()
}

fn items(name: &str) -> Vec<Value> {
    fixture(name)["items"].as_array().unwrap().clone()
}

/// One cluster: the fixtures' objects by resource, and a resource the token may not list.
struct Cluster {
    objects: BTreeMap<&'static str, (&'static str, &'static str, Vec<Value>)>,
    forbidden: Option<&'static str>,
}

fn status(code: u16, reason: &str, message: &str) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code}),
    )
}

impl Cluster {
    fn from_fixtures(forbidden: Option<&'static str>) -> Cluster {
        let deployments = [items("deployments-page-1"), items("deployments-page-2")].concat();
        Cluster {
            objects: BTreeMap::from([
                ("deployments", ("apps/v1", "DeploymentList", deployments)),
                (
                    "statefulsets",
                    ("apps/v1", "StatefulSetList", items("statefulsets")),
                ),
                (
                    "poddisruptionbudgets",
                    (
                        "policy/v1",
                        "PodDisruptionBudgetList",
                        items("poddisruptionbudgets"),
                    ),
                ),
                (
                    "horizontalpodautoscalers",
                    (
                        "autoscaling/v2",
                        "HorizontalPodAutoscalerList",
                        items("horizontalpodautoscalers"),
                    ),
                ),
            ]),
            forbidden,
        }
    }

    fn answer(&self, request: &RecordedRequest) -> (u16, Value) {
        if request.header("authorization") != Some(format!("Bearer {TOKEN}").as_str()) {
            return status(401, "Unauthorized", "Unauthorized");
        }
        let (path, query) = split_query(&request.path);
        let one = |name: &str| {
            query
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        // /apis/<group>/<version>[/namespaces/<ns>]/<resource>
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let (namespace, resource) = match parts.as_slice() {
            ["apis", _, _, resource] => (None, *resource),
            ["apis", _, _, "namespaces", ns, resource] => (Some(*ns), *resource),
            _ => {
                return status(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                );
            }
        };
        let Some((api_version, kind, objects)) = self.objects.get(resource) else {
            return status(
                404,
                "NotFound",
                "the server could not find the requested resource",
            );
        };
        if self.forbidden == Some(resource) {
            let scope = namespace.map_or("at the cluster scope".to_string(), |ns| {
                format!("in the namespace \"{ns}\"")
            });
            let group = api_version.split('/').next().unwrap();
            return status(
                403,
                "Forbidden",
                &format!(
                    "{resource}.{group} is forbidden: User \"system:serviceaccount:readyd:readyd\" cannot list resource \"{resource}\" in API group \"{group}\" {scope}"
                ),
            );
        }
        let selector = one("labelSelector").unwrap_or_default();
        let matching: Vec<Value> = objects
            .iter()
            .filter(|o| namespace.is_none_or(|ns| o["metadata"]["namespace"] == ns))
            .filter(|o| selects(&selector, &o["metadata"]["labels"]))
            .cloned()
            .collect();
        let limit: usize = one("limit")
            .and_then(|l| l.parse().ok())
            .unwrap_or(usize::MAX);
        // An opaque token with characters that must be percent-encoded on the way back.
        let start: usize = match one("continue") {
            None => 0,
            Some(token) => match token
                .strip_prefix("rv:48213377/start=")
                .and_then(|s| s.parse().ok())
            {
                Some(start) => start,
                None => return status(400, "BadRequest", "continue key is not valid"),
            },
        };
        let end = start.saturating_add(limit).min(matching.len());
        let mut metadata = json!({"resourceVersion": "48213377"});
        if end < matching.len() {
            metadata["continue"] = json!(format!("rv:48213377/start={end}"));
            metadata["remainingItemCount"] = json!(matching.len() - end);
        }
        (
            200,
            json!({"kind": kind, "apiVersion": api_version, "metadata": metadata, "items": matching[start..end]}),
        )
    }
}

/// Equality (`k=v`, `k==v`, `k!=v`) and set-based (`k in (a,b)`) selectors, as the API server
/// reads them; requirements are and-ed.
fn selects(selector: &str, labels: &Value) -> bool {
    let mut requirements = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                requirements.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    requirements.push(&selector[start..]);
    requirements
        .into_iter()
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .all(|r| {
            let label = |key: &str| labels.get(key.trim()).and_then(Value::as_str);
            if let Some((key, set)) = r.split_once(" in ") {
                let set = set.trim().trim_start_matches('(').trim_end_matches(')');
                label(key).is_some_and(|v| set.split(',').any(|s| s.trim() == v))
            } else if let Some((key, value)) = r.split_once("!=") {
                label(key) != Some(value.trim())
            } else if let Some((key, value)) = r.split_once("==").or_else(|| r.split_once('=')) {
                label(key) == Some(value.trim())
            } else {
                panic!("the stand-in does not read the requirement {r:?}")
            }
        })
}

async fn stand_in(forbidden: Option<&'static str>) -> JsonStandIn {
    let cluster = Arc::new(Cluster::from_fixtures(forbidden));
    JsonStandIn::start(Arc::new(move |r: &RecordedRequest| cluster.answer(r))).await
}

/// A service-account directory as the kubelet mounts it.
fn service_account(dir: &Path, token: &str) -> std::path::PathBuf {
    write_file(dir, "sa/token", token);
    write_file(dir, "sa/namespace", "readyd");
    write_file(
        dir,
        "sa/ca.crt",
        "-----BEGIN CERTIFICATE-----\n(not read by the plugin)\n-----END CERTIFICATE-----\n",
    );
    dir.join("sa")
}

fn manifest(dir: &Path, stand_in: &JsonStandIn, token: &str, extra_config: &str) -> Manifest {
    let sa = service_account(dir, token);
    let text = format!(
        "name = \"kubernetes\"\nkind = \"data-source\"\nwasm = \"{wasm}\"\ntimeout_ms = 20000\n\
         [capabilities]\nhttp = [\"{authority}\"]\ndirs = {{ \"{SA_DIR}\" = {sa:?} }}\n\
         [config]\napi_url = \"{url}\"\npage_limit = 1\n{extra_config}",
        wasm = artifacts::KUBERNETES,
        authority = stand_in.authority(),
        url = stand_in.url(),
    );
    let path = write_file(dir, "kubernetes.toml", &text);
    Manifest::from_file(&path).unwrap()
}

fn host() -> PluginHost {
    PluginHost::new(HostConfig {
        max_instances: 4,
        max_memory_mb: 128,
        ..HostConfig::default()
    })
    .expect("plugin host")
}

fn entities() -> Vec<readyd::model::Entity> {
    ["payments-api", "payments-ledger", "checkout-web", "ghost"]
        .into_iter()
        .map(entity)
        .collect()
}

#[tokio::test]
async fn the_component_reports_each_entitys_workloads_from_paged_lists() {
    let dir = temp_dir();
    let stand_in = stand_in(None).await;
    let host = host();
    let plugin = host
        .load(manifest(dir.path(), &stand_in, TOKEN, ""))
        .await
        .expect("loads");
    let facts: BTreeMap<String, Value> = plugin
        .collect(&entities())
        .await
        .expect("collects")
        .into_iter()
        .map(|(id, f)| (id, Value::Object(f)))
        .collect();

    let api = &facts["payments-api"];
    assert_eq!(api["found"], true);
    assert_eq!(api["all_replicas_ready"], true);
    assert_eq!(api["probes"], json!({"liveness": true, "readiness": true}));
    assert_eq!(api["images_pinned"], true);
    assert_eq!(
        (api["pdb_covered"].clone(), api["hpa_targeted"].clone()),
        (json!(true), json!(true))
    );
    assert_eq!(api["problems"], json!([]));

    let ledger = &facts["payments-ledger"];
    assert_eq!(ledger["workloads"][0]["kind"], "StatefulSet");
    assert_eq!(
        (
            ledger["replicas_desired"].clone(),
            ledger["replicas_ready"].clone()
        ),
        (json!(3), json!(2))
    );
    assert_eq!(ledger["probes"]["liveness"], false);
    assert_eq!(ledger["pdb_covered"], true);
    assert_eq!(ledger["hpa_targeted"], false);

    let web = &facts["checkout-web"];
    assert_eq!(web["workload_count"], 2, "the canary came on the last page");
    assert_eq!(web["resources"]["memory_limits"], false);
    assert_eq!(
        web["unpinned_images"],
        json!(["acme/checkout-web", "acme/checkout-web:latest"])
    );
    assert_eq!(
        web["pdb_covered"], false,
        "the PDB of that name is in another namespace"
    );

    assert_eq!(facts["ghost"], json!({"found": false, "workload_count": 0}));

    // One batched selector for all four entities; one item per page.
    let requests = stand_in.requests();
    let paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    let count = |prefix: &str| paths.iter().filter(|p| p.starts_with(prefix)).count();
    assert_eq!(count("/apis/apps/v1/deployments?"), 3, "{paths:#?}");
    assert_eq!(count("/apis/apps/v1/statefulsets?"), 1, "{paths:#?}");
    assert_eq!(
        count("/apis/policy/v1/poddisruptionbudgets?"),
        3,
        "{paths:#?}"
    );
    assert_eq!(
        count("/apis/autoscaling/v2/horizontalpodautoscalers?"),
        2,
        "{paths:#?}"
    );
    assert_eq!(requests.len(), 9, "{paths:#?}");
    assert!(requests.iter().all(|r| r.answered == 200), "{paths:#?}");
    let (_, query) = split_query(paths[0]);
    assert!(
        query.contains(&(
            "labelSelector".to_string(),
            "app.kubernetes.io/name in (checkout-web,ghost,payments-api,payments-ledger)"
                .to_string()
        )),
        "{query:?}"
    );
}

#[tokio::test]
async fn missing_rbac_is_a_config_error_naming_what_to_grant() {
    let dir = temp_dir();
    let stand_in = stand_in(Some("poddisruptionbudgets")).await;
    let host = host();
    let plugin = host
        .load(manifest(
            dir.path(),
            &stand_in,
            TOKEN,
            "namespaces = [\"payments\"]\n",
        ))
        .await
        .expect("loads");
    let err = plugin.collect(&entities()).await.unwrap_err().to_string();
    assert!(err.contains("invalid config"), "{err}");
    assert!(
        err.contains("cannot list resource \"poddisruptionbudgets\" in API group \"policy\" in the namespace \"payments\""),
        "{err}"
    );
    assert!(err.contains("needs get and list"), "{err}");
    let paths: Vec<String> = stand_in.requests().iter().map(|r| r.path.clone()).collect();
    assert!(
        paths
            .iter()
            .all(|p| p.starts_with("/apis/") && p.contains("/namespaces/payments/")),
        "{paths:#?}"
    );
}

#[tokio::test]
async fn a_rejected_token_is_unavailable_and_never_shown() {
    let dir = temp_dir();
    let stand_in = stand_in(None).await;
    let host = host();
    let stale = "stale-token-4f9c2d81";
    let plugin = host
        .load(manifest(dir.path(), &stand_in, stale, ""))
        .await
        .expect("loads");
    let err = plugin.collect(&entities()).await.unwrap_err().to_string();
    assert!(err.contains("unavailable"), "{err}");
    assert!(
        err.contains("rejected the token (401 Unauthorized: Unauthorized)"),
        "{err}"
    );
    assert!(!err.contains(stale), "{err}");
    assert_eq!(stand_in.requests().len(), 1);
}

#[tokio::test]
async fn the_example_manifest_loads_with_only_its_host_and_directory() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/kubernetes/kubernetes.example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    // The example grants the pod's service-account directory; here a stand-in of it.
    let dir = temp_dir();
    let sa = service_account(dir.path(), TOKEN);
    let text = text.replace(
        &format!("\"{SA_DIR}\" = \"{SA_DIR}\""),
        &format!("\"{SA_DIR}\" = {sa:?}"),
    );
    let m = Manifest::parse(&text, &path, &|_: &str| None).expect("the example manifest is valid");
    let hosts: Vec<String> = m.capabilities.http.iter().map(|g| g.to_string()).collect();
    assert_eq!(hosts, ["kubernetes.default.svc"]);
    assert!(m.capabilities.secrets.is_empty());
    assert_eq!(m.capabilities.dirs.len(), 1);
    host()
        .load(m)
        .await
        .expect("init reads the token from the granted directory");
}
