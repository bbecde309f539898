//! `prometheus`: a data source that runs PromQL instant queries per entity.
//!
//! Config:
//! `{ "url": "http://127.0.0.1:9090", "queries": { "availability":
//! "avg_over_time(up{service=\"{identifier}\"}[30d])", ... }, "slo_objective": 99.9,
//! "timeout_ms": 5000, "bearer_secret": "token" }`.
//! For each entity and query the `{placeholder}`s (`{identifier}`, `{team}`, `{properties.X}`,
//! ...) are filled, the query is sent as `GET <url>/api/v1/query?query=<percent-encoded>`, and
//! the first sample of the `vector` (or the `scalar`) becomes the number fact named after the
//! query. An empty result or a non-finite value leaves that fact out. With `slo_objective` (a
//! percentage) and an `availability` fact, the entity also gets
//! `slo: {objective, availability, error_budget_remaining}`, where the remaining budget is
//! `1 - (1 - availability) / (1 - objective / 100)` (negative once the budget is overspent).
//! A query that fails is logged and left out; when every query for every entity fails the
//! collection fails as `unavailable`.

use std::collections::BTreeMap;
use std::time::Duration;

use readyd_plugin_sdk::http::{Request, encode_component};
use readyd_plugin_sdk::{Config, DataSource, Entity, PluginError};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// No `deny_unknown_fields`: the daemon adds granted secrets to the config under their names.
#[derive(Debug, Deserialize)]
struct Settings {
    url: String,
    queries: BTreeMap<String, String>,
    #[serde(default)]
    slo_objective: Option<f64>,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    #[serde(default)]
    bearer_secret: Option<String>,
}

fn default_timeout_ms() -> u64 {
    5000
}

/// The Prometheus data source.
#[derive(Debug)]
pub struct Prometheus {
    base: String,
    queries: BTreeMap<String, String>,
    slo_objective: Option<f64>,
    timeout: Duration,
    bearer: Option<String>,
}

/// The body of `/api/v1/query`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryResponse {
    status: String,
    #[serde(default)]
    data: Option<QueryData>,
    #[serde(default)]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryData {
    result_type: String,
    result: Value,
}

impl DataSource for Prometheus {
    fn init(config: Config) -> Result<Self, PluginError> {
        let settings: Settings = config.deserialize()?;
        if !settings.url.starts_with("http://") && !settings.url.starts_with("https://") {
            return Err(PluginError::invalid_config(format!(
                "url {:?} must start with http:// or https://",
                settings.url
            )));
        }
        if settings.queries.is_empty() {
            return Err(PluginError::invalid_config(
                "queries must name at least one query",
            ));
        }
        if let Some(objective) = settings.slo_objective
            && !(objective > 0.0 && objective < 100.0)
        {
            return Err(PluginError::invalid_config(format!(
                "slo_objective {objective} must be a percentage between 0 and 100, like 99.9"
            )));
        }
        let bearer = match &settings.bearer_secret {
            None => None,
            Some(name) => Some(config.secret(name).map(str::to_string).ok_or_else(|| {
                PluginError::invalid_config(format!(
                    "bearer_secret names {name:?}, but no such secret was granted"
                ))
            })?),
        };
        Ok(Prometheus {
            base: settings.url.trim_end_matches('/').to_string(),
            queries: settings.queries,
            slo_objective: settings.slo_objective,
            timeout: Duration::from_millis(settings.timeout_ms.max(1)),
            bearer,
        })
    }

    fn collect(&self, entities: &[Entity]) -> Result<Vec<(String, Value)>, PluginError> {
        let mut collected = Vec::new();
        let (mut attempted, mut failed) = (0usize, 0usize);
        let mut first_failure = None;
        for entity in entities {
            let mut facts = Map::new();
            let mut answered = false;
            for (name, template) in &self.queries {
                let Some(query) = render(template, entity) else {
                    readyd_plugin_sdk::debug!(
                        "{}: query {name} skipped, a placeholder has no value",
                        entity.identifier
                    );
                    continue;
                };
                attempted += 1;
                match self.query(&query) {
                    Ok(value) => {
                        answered = true;
                        if let Some(number) = value.and_then(serde_json::Number::from_f64) {
                            facts.insert(name.clone(), Value::Number(number));
                        }
                    }
                    Err(reason) => {
                        failed += 1;
                        readyd_plugin_sdk::warn!("{}: query {name}: {reason}", entity.identifier);
                        first_failure.get_or_insert(reason);
                    }
                }
            }
            if let (Some(objective), Some(availability)) = (
                self.slo_objective,
                facts.get("availability").and_then(Value::as_f64),
            ) {
                facts.insert("slo".into(), slo(objective, availability));
            }
            if answered {
                collected.push((entity.identifier.clone(), Value::Object(facts)));
            }
        }
        if attempted > 0 && failed == attempted {
            return Err(PluginError::unavailable(format!(
                "all {attempted} queries failed; the first: {}",
                first_failure.unwrap_or_default()
            )));
        }
        Ok(collected)
    }
}

impl Prometheus {
    /// The value of one instant query: `Ok(None)` when Prometheus has no sample.
    fn query(&self, query: &str) -> Result<Option<f64>, String> {
        let url = format!(
            "{}/api/v1/query?query={}",
            self.base,
            encode_component(query)
        );
        let mut request = Request::get(&url)
            .header("accept", "application/json")
            .timeout(self.timeout);
        if let Some(token) = &self.bearer {
            request = request.bearer_auth(token);
        }
        let response = request.send().map_err(|e| e.to_string())?;
        // Prometheus answers bad queries with 400 and a JSON error body worth reporting.
        let body: QueryResponse = response.json().map_err(|e| {
            format!(
                "answered {} with an unexpected body: {e}",
                response.status()
            )
        })?;
        parse_result(body)
    }
}

fn parse_result(body: QueryResponse) -> Result<Option<f64>, String> {
    if body.status != "success" {
        return Err(format!(
            "Prometheus error {}: {}",
            body.error_type.unwrap_or_else(|| "unknown".into()),
            body.error.unwrap_or_default()
        ));
    }
    let data = body.data.ok_or("success without data")?;
    let sample = match data.result_type.as_str() {
        "vector" => match data.result.as_array().and_then(|r| r.first()) {
            None => return Ok(None),
            Some(series) => series
                .get("value")
                .cloned()
                .ok_or("vector sample without value")?,
        },
        "scalar" => data.result,
        other => {
            return Err(format!(
                "result type {other} is not supported; use an instant vector or scalar"
            ));
        }
    };
    let text = sample
        .get(1)
        .and_then(Value::as_str)
        .ok_or("sample is not [time, \"value\"]")?;
    let value: f64 = text
        .parse()
        .map_err(|_| format!("sample value {text:?} is not a number"))?;
    Ok(value.is_finite().then_some(value))
}

/// The SLO facts for an availability (a fraction) against an objective (a percentage).
fn slo(objective: f64, availability: f64) -> Value {
    let allowed = 1.0 - objective / 100.0;
    let remaining = 1.0 - (1.0 - availability) / allowed;
    json!({ "objective": objective, "availability": availability, "error_budget_remaining": remaining })
}

/// Fill the `{placeholder}`s of a PromQL template; `None` when the entity lacks one. Only a brace
/// around a bare name (`{identifier}`, `{properties.repo}`) is a placeholder, so label matchers
/// such as `up{job="api"}` stay as written. Values are escaped for a double-quoted PromQL
/// string, where they usually sit.
fn render(template: &str, entity: &Entity) -> Option<String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let name_len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
            .unwrap_or(after.len());
        if name_len > 0 && after[name_len..].starts_with('}') {
            let value = entity.field_text(&after[..name_len])?;
            out.push_str(&value.replace('\\', "\\\\").replace('"', "\\\""));
            rest = &after[name_len + 1..];
        } else {
            out.push('{');
            rest = after;
        }
    }
    out.push_str(rest);
    Some(out)
}

readyd_plugin_sdk::export!(Prometheus as data_source);

#[cfg(test)]
mod tests {
    use super::*;
    use readyd_plugin_sdk::http::Response;
    use readyd_plugin_sdk::testing::MockHttp;

    const BASE: &str = "http://127.0.0.1:9090";

    fn query_url(query: &str) -> String {
        format!("{BASE}/api/v1/query?query={}", encode_component(query))
    }

    fn vector(value: &str) -> Response {
        Response::json_body(
            &json!({"status": "success", "data": {"resultType": "vector",
            "result": [{"metric": {"service": "x"}, "value": [1_700_000_000.123, value]}]}}),
        )
    }

    fn plugin() -> Prometheus {
        Prometheus::init(Config::from_json(json!({
            "url": format!("{BASE}/"),
            "queries": {
                "availability": "avg_over_time(up{service=\"{identifier}\"}[30d])",
                "latency_p99_ms": "scalar(p99{service=\"{identifier}\"})",
            },
            "slo_objective": 99.9,
        })))
        .unwrap()
    }

    #[test]
    fn numbers_per_query_and_the_error_budget() {
        let mock = MockHttp::new()
            .on_get(query_url("avg_over_time(up{service=\"payments\"}[30d])"), vector("0.9995"))
            .on_get(
                query_url("scalar(p99{service=\"payments\"})"),
                Response::json_body(&json!({"status": "success", "data": {"resultType": "scalar", "result": [1.5, "250"]}})),
            );
        let _installed = mock.install();
        let facts = plugin()
            .collect(&[Entity::new("payments", "service")])
            .unwrap();
        let facts = &facts[0].1;
        assert_eq!(facts["availability"], 0.9995);
        assert_eq!(facts["latency_p99_ms"], 250.0);
        assert_eq!(facts["slo"]["objective"], 99.9);
        let remaining = facts["slo"]["error_budget_remaining"].as_f64().unwrap();
        assert!((remaining - 0.5).abs() < 1e-9, "{remaining}");
        let sent = mock.requests()[0].url().to_string();
        assert!(sent.starts_with("http://127.0.0.1:9090/api/v1/query?query=avg_over_time%28up%7Bservice%3D%22payments%22%7D%5B30d%5D%29"), "{sent}");
    }

    #[test]
    fn templates_fill_placeholders_and_keep_label_matchers() {
        let entity = Entity::new("api", "service").with_property("job", "a\"b");
        let rendered = render(
            r#"sum(up{service="{identifier}",job="{properties.job}"}) by (x)"#,
            &entity,
        );
        assert_eq!(
            rendered.as_deref(),
            Some(r#"sum(up{service="api",job="a\"b"}) by (x)"#)
        );
        assert_eq!(
            render(r#"up{job="x"}"#, &entity).as_deref(),
            Some(r#"up{job="x"}"#)
        );
        assert_eq!(render("up{team=\"{team}\"}", &entity), None);
    }

    #[test]
    fn overspent_budgets_go_negative() {
        let remaining = slo(99.9, 0.997)["error_budget_remaining"].as_f64().unwrap();
        assert!((remaining + 2.0).abs() < 1e-9, "{remaining}");
    }

    #[test]
    fn empty_results_and_errors_leave_facts_out() {
        let mock = MockHttp::new()
            .on_get(
                query_url("avg_over_time(up{service=\"quiet\"}[30d])"),
                Response::json_body(
                    &json!({"status": "success", "data": {"resultType": "vector", "result": []}}),
                ),
            )
            .on_get(
                query_url("scalar(p99{service=\"quiet\"})"),
                Response::new(400).with_body(
                    r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#,
                ),
            );
        let _installed = mock.install();
        let facts = plugin()
            .collect(&[Entity::new("quiet", "service")])
            .unwrap();
        assert_eq!(facts, [("quiet".into(), json!({}))]);
    }

    #[test]
    fn all_failures_make_the_source_unavailable() {
        let _installed = MockHttp::new().install();
        let err = plugin()
            .collect(&[Entity::new("a", "service")])
            .unwrap_err();
        assert!(
            matches!(&err, PluginError::Unavailable(m) if m.contains("all 2 queries failed")),
            "{err}"
        );
    }

    #[test]
    fn parses_the_real_response_shapes() {
        let parse = |v: Value| parse_result(serde_json::from_value(v).unwrap());
        assert_eq!(
            parse(
                json!({"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"NaN"]}]}})
            ),
            Ok(None)
        );
        assert!(
            parse(json!({"status":"success","data":{"resultType":"matrix","result":[]}}))
                .unwrap_err()
                .contains("matrix")
        );
        assert!(
            parse(json!({"status":"error","errorType":"timeout","error":"query timed out"}))
                .unwrap_err()
                .contains("query timed out")
        );
    }

    #[test]
    fn rejects_bad_config() {
        let bad = |config: Value| Prometheus::init(Config::from_json(config)).unwrap_err();
        assert!(
            bad(json!({"url": BASE, "queries": {}}))
                .message()
                .contains("at least one")
        );
        assert!(
            bad(json!({"url": BASE, "queries": {"a": "up"}, "slo_objective": 100}))
                .message()
                .contains("percentage")
        );
        assert!(
            bad(json!({"url": "localhost:9090", "queries": {"a": "up"}}))
                .message()
                .contains("http://")
        );
    }
}
