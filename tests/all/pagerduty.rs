//! The `pagerduty` data source end to end: the built component in the daemon's plugin host,
//! against a local stand-in that speaks PagerDuty's REST API v2 (token auth, the v2 `Accept`
//! header, `offset`/`limit`/`more` paging, `…_ids[]` filters, `include[]`, the one-month
//! default window of `/incidents`, `{"error": {...}}` answers). Its data are the plugin's own
//! fixtures (`plugins/pagerduty/fixtures/`), served page by page as the real API would.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use readyd::plugin::{HostConfig, Manifest, PluginHost};
use readyd_plugin_artifacts as artifacts;
use readyd_tests::{RecordedRequest, entity, temp_dir, write_file};
use serde_json::{Value, json};

use crate::json_stand_in::{JsonStandIn, split_query};

const TOKEN: &str = "u+Pd8xZr-test-token";
const ENV_VAR: &str = "READYD_TEST_PAGERDUTY_TOKEN";

fn fixture(name: &str) -> Value {
    let text = match name {
        "services-page-1" => include_str!("../../plugins/pagerduty/fixtures/services-page-1.json"),
        "services-page-2" => include_str!("../../plugins/pagerduty/fixtures/services-page-2.json"),
        "escalation-policy" => {
            include_str!("../../plugins/pagerduty/fixtures/escalation-policy-PEP0002.json")
        }
        "oncalls" => include_str!("../../plugins/pagerduty/fixtures/oncalls.json"),
        "oncalls-page-2" => include_str!("../../plugins/pagerduty/fixtures/oncalls-page-2.json"),
        "incidents" => include_str!("../../plugins/pagerduty/fixtures/incidents.json"),
        other => panic!("no fixture {other}"),
    };
    serde_json::from_str(text).unwrap()
}

fn items(name: &str, key: &str) -> Vec<Value> {
    fixture(name)[key].as_array().unwrap().clone()
}

/// One PagerDuty account: the fixtures' services, policies, on-calls and incidents.
struct Account {
    services: Vec<Value>,
    policies: BTreeMap<String, Value>,
    oncalls: Vec<Value>,
    incidents: Vec<Value>,
}

impl Account {
    fn from_fixtures() -> Account {
        let policy = fixture("escalation-policy")["escalation_policy"].clone();
        Account {
            services: [
                items("services-page-1", "services"),
                items("services-page-2", "services"),
            ]
            .concat(),
            policies: BTreeMap::from([(policy["id"].as_str().unwrap().to_string(), policy)]),
            oncalls: [
                items("oncalls", "oncalls"),
                items("oncalls-page-2", "oncalls"),
            ]
            .concat(),
            incidents: items("incidents", "incidents"),
        }
    }

    fn answer(&self, request: &RecordedRequest) -> (u16, Value) {
        let error = |status: u16, message: &str, code: u32| {
            (status, json!({"error": {"message": message, "code": code}}))
        };
        if request.header("authorization") != Some(format!("Token token={TOKEN}").as_str()) {
            return error(401, "Unauthorized", 2006);
        }
        if request.header("accept") != Some("application/vnd.pagerduty+json;version=2") {
            return error(400, "Invalid Input Provided", 2001);
        }
        let (path, query) = split_query(&request.path);
        let all = |name: &str| -> Vec<String> {
            query
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .collect()
        };
        let one = |name: &str| all(name).into_iter().next();
        let limit: usize = one("limit")
            .and_then(|l| l.parse().ok())
            .unwrap_or(25)
            .min(100);
        let offset: usize = one("offset").and_then(|o| o.parse().ok()).unwrap_or(0);
        let page = |key: &str, list: Vec<Value>| {
            let more = offset + limit < list.len();
            let slice: Vec<Value> = list.into_iter().skip(offset).take(limit).collect();
            let mut body = json!({"limit": limit, "offset": offset, "total": null, "more": more});
            body[key] = Value::Array(slice);
            (200, body)
        };
        match path.as_str() {
            "/services" => {
                let include = all("include[]").iter().any(|v| v == "escalation_policies");
                let services = self
                    .services
                    .iter()
                    .map(|s| {
                        let mut s = s.clone();
                        if !include {
                            let p = &s["escalation_policy"];
                            s["escalation_policy"] = json!({"id": p["id"], "type": "escalation_policy_reference", "summary": p["summary"]});
                        }
                        s
                    })
                    .collect();
                page("services", services)
            }
            "/oncalls" => {
                let ids = all("escalation_policy_ids[]");
                let list = self
                    .oncalls
                    .iter()
                    .filter(|o| {
                        ids.is_empty()
                            || ids
                                .iter()
                                .any(|id| o["escalation_policy"]["id"] == id.as_str())
                    })
                    .cloned()
                    .collect();
                page("oncalls", list)
            }
            "/incidents" => {
                let (ids, statuses) = (all("service_ids[]"), all("statuses[]"));
                // Without date_range=all the API searches the last month only.
                let window_start =
                    (one("date_range").as_deref() != Some("all")).then_some("2026-11-03");
                let list = self
                    .incidents
                    .iter()
                    .filter(|i| {
                        ids.is_empty() || ids.iter().any(|id| i["service"]["id"] == id.as_str())
                    })
                    .filter(|i| {
                        statuses.is_empty() || statuses.iter().any(|s| i["status"] == s.as_str())
                    })
                    .filter(|i| {
                        window_start.is_none_or(|start| i["created_at"].as_str().unwrap() >= start)
                    })
                    .cloned()
                    .collect();
                page("incidents", list)
            }
            other => match other
                .strip_prefix("/escalation_policies/")
                .and_then(|id| self.policies.get(id))
            {
                Some(policy) => (200, json!({"escalation_policy": policy})),
                None => error(404, "Not Found", 2100),
            },
        }
    }
}

async fn stand_in() -> JsonStandIn {
    let account = Arc::new(Account::from_fixtures());
    JsonStandIn::start(Arc::new(move |r: &RecordedRequest| account.answer(r))).await
}

fn manifest(dir: &Path, stand_in: &JsonStandIn, token: &str) -> Manifest {
    let text = format!(
        "name = \"pagerduty\"\nkind = \"data-source\"\nwasm = \"{wasm}\"\ntimeout_ms = 20000\n\
         [capabilities]\nhttp = [\"{authority}\"]\nsecrets = {{ pd_token = \"{ENV_VAR}\" }}\n\
         [config]\nbase_url = \"{url}\"\ntoken_secret = \"pd_token\"\npage_limit = 1\n",
        wasm = artifacts::PAGERDUTY,
        authority = stand_in.authority(),
        url = stand_in.url(),
    );
    let path = write_file(dir, "pagerduty.toml", &text);
    let token = token.to_string();
    Manifest::parse(&text, &path, &move |var: &str| {
        (var == ENV_VAR).then(|| token.clone())
    })
    .unwrap()
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
    let mut payments = entity("payments-api");
    payments
        .properties
        .insert("pagerduty".into(), json!({"service_id": "PSVC001"}));
    let mut checkout = entity("checkout-web");
    checkout.properties.insert(
        "annotations".into(),
        json!({"pagerduty.com/service-id": "PSVC002"}),
    );
    vec![payments, checkout, entity("no-pager")]
}

#[tokio::test]
async fn the_component_collects_on_call_and_incidents_from_paged_lists() {
    let dir = temp_dir();
    let stand_in = stand_in().await;
    let host = host();
    let plugin = host
        .load(manifest(dir.path(), &stand_in, TOKEN))
        .await
        .expect("loads");
    let facts: BTreeMap<String, Value> = plugin
        .collect(&entities())
        .await
        .expect("collects")
        .into_iter()
        .map(|(id, f)| (id, Value::Object(f)))
        .collect();

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
            // The acknowledged incident from September counts: it is still open.
            "incidents": {"triggered": 1, "acknowledged": 1, "open": 2},
            "last_incident_at": "2026-11-28T17:42:10Z",
        })
    );
    assert_eq!(facts["checkout-web"]["escalation_levels"], 3);
    assert_eq!(facts["checkout-web"]["oncall_count"], 1);
    assert_eq!(facts["checkout-web"]["incidents"]["open"], 1);
    assert_eq!(
        facts["checkout-web"]["last_incident_at"],
        "2026-12-02T23:15:00Z"
    );
    assert_eq!(facts["no-pager"]["found"], false);

    // One item per page: 3 service pages, 4 on-call pages, 3 incident pages, and one policy
    // fetched because its service brought only a reference.
    let paths: Vec<String> = stand_in.requests().iter().map(|r| r.path.clone()).collect();
    let count = |prefix: &str| paths.iter().filter(|p| p.starts_with(prefix)).count();
    assert_eq!(count("/services?"), 3, "{paths:#?}");
    assert_eq!(count("/oncalls?"), 4, "{paths:#?}");
    assert_eq!(count("/incidents?"), 3, "{paths:#?}");
    assert_eq!(
        count("/escalation_policies/"),
        1,
        "PEP0002 comes as a reference: {paths:#?}"
    );
    assert!(stand_in.requests().iter().all(|r| r.answered == 200));
}

#[tokio::test]
async fn a_rejected_key_is_a_config_error_that_never_shows_the_key() {
    let dir = temp_dir();
    let stand_in = stand_in().await;
    let host = host();
    let wrong = "u+wrong-key-0000";
    let plugin = host
        .load(manifest(dir.path(), &stand_in, wrong))
        .await
        .expect("loads");
    let err = plugin.collect(&entities()).await.unwrap_err().to_string();
    assert!(err.contains("invalid config"), "{err}");
    assert!(
        err.contains("rejected the API key (401 Unauthorized: Unauthorized (code 2006))"),
        "{err}"
    );
    assert!(!err.contains(wrong), "{err}");
    assert_eq!(
        stand_in.requests().len(),
        1,
        "the round stops at the first refusal"
    );
}

#[tokio::test]
async fn the_example_manifest_loads_with_only_its_host_and_secret() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/pagerduty/pagerduty.example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let m = Manifest::parse(&text, &path, &|var: &str| {
        (var == "PAGERDUTY_TOKEN").then(|| "x".to_string())
    })
    .expect("the example manifest is valid");
    let hosts: Vec<String> = m.capabilities.http.iter().map(|g| g.to_string()).collect();
    assert_eq!(hosts, ["api.pagerduty.com"]);
    assert_eq!(m.capabilities.secrets.len(), 1);
    assert!(m.capabilities.dirs.is_empty());
    host()
        .load(m)
        .await
        .expect("init accepts the example config");
}
