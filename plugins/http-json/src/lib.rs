//! `http-json`: a data source that turns any JSON HTTP API into facts.
//!
//! Config:
//! `{ "url": "http://127.0.0.1:8080/oncall/{identifier}", "facts": { "oncall_count":
//! "/data/oncall/count" }, "bearer_secret": "token", "headers": {..}, "timeout_ms": 5000 }`.
//! For each entity the URL template is filled (`{identifier}`, `{kind}`, `{title}`, `{team}`,
//! `{tier}`, `{properties.X}`, each percent-encoded) and fetched with `GET`. A `2xx` JSON answer
//! becomes `{"found": true, <fact>: <value at its JSON pointer>, ...}` (a pointer that matches
//! nothing leaves its fact out; with no `facts` map the whole body, if an object, is the facts);
//! a `404` becomes `{"found": false}`. Any other answer, or no answer, leaves the entity out and
//! is logged; when every request fails the whole collection fails as `unavailable`. The bearer
//! token is read from the secret named by `bearer_secret` and is never logged.

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
    #[serde(default)]
    facts: BTreeMap<String, String>,
    #[serde(default)]
    bearer_secret: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
}

fn default_timeout_ms() -> u64 {
    5000
}

/// The JSON-over-HTTP data source.
#[derive(Debug)]
pub struct HttpJson {
    url: String,
    facts: BTreeMap<String, String>,
    bearer: Option<String>,
    headers: BTreeMap<String, String>,
    timeout: Duration,
}

impl DataSource for HttpJson {
    fn init(config: Config) -> Result<Self, PluginError> {
        let settings: Settings = config.deserialize()?;
        if !settings.url.starts_with("http://") && !settings.url.starts_with("https://") {
            return Err(PluginError::invalid_config(format!(
                "url {:?} must start with http:// or https://",
                settings.url
            )));
        }
        for (name, pointer) in &settings.facts {
            if !pointer.is_empty() && !pointer.starts_with('/') {
                return Err(PluginError::invalid_config(format!(
                    "fact {name}: {pointer:?} is not a JSON pointer (it must start with /)"
                )));
            }
        }
        let bearer = match &settings.bearer_secret {
            None => None,
            Some(name) => Some(config.secret(name).map(str::to_string).ok_or_else(|| {
                PluginError::invalid_config(format!(
                    "bearer_secret names {name:?}, but no such secret was granted"
                ))
            })?),
        };
        Ok(HttpJson {
            url: settings.url,
            facts: settings.facts,
            bearer,
            headers: settings.headers,
            timeout: Duration::from_millis(settings.timeout_ms.max(1)),
        })
    }

    fn collect(&self, entities: &[Entity]) -> Result<Vec<(String, Value)>, PluginError> {
        let mut collected = Vec::new();
        let mut attempted = 0usize;
        let mut first_failure = None;
        for entity in entities {
            let url = match render(&self.url, entity) {
                Ok(url) => url,
                Err(missing) => {
                    readyd_plugin_sdk::debug!(
                        "{}: skipped, it has no {missing}",
                        entity.identifier
                    );
                    continue;
                }
            };
            attempted += 1;
            match self.fetch(&url) {
                Ok(facts) => collected.push((entity.identifier.clone(), facts)),
                Err(reason) => {
                    readyd_plugin_sdk::warn!("{}: {reason}", entity.identifier);
                    first_failure.get_or_insert(reason);
                }
            }
        }
        if attempted > 0 && collected.is_empty() {
            let reason = first_failure.unwrap_or_default();
            return Err(PluginError::unavailable(format!(
                "all {attempted} requests failed; the first: {reason}"
            )));
        }
        Ok(collected)
    }
}

impl HttpJson {
    /// The facts for one URL, or why there are none.
    fn fetch(&self, url: &str) -> Result<Value, String> {
        let mut request = Request::get(url)
            .header("accept", "application/json")
            .timeout(self.timeout);
        for (name, value) in &self.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        if let Some(token) = &self.bearer {
            request = request.bearer_auth(token);
        }
        let response = request.send().map_err(|e| e.to_string())?;
        match response.status() {
            404 => return Ok(json!({ "found": false })),
            status if !response.is_success() => {
                return Err(format!("GET {url} answered {status}"));
            }
            _ => {}
        }
        let body: Value = response.json().map_err(|e| e.to_string())?;
        Ok(self.extract(&body))
    }

    /// The configured facts out of a response body.
    fn extract(&self, body: &Value) -> Value {
        let mut facts = Map::new();
        facts.insert("found".into(), Value::Bool(true));
        if let (true, Value::Object(all)) = (self.facts.is_empty(), body) {
            facts.extend(all.clone());
        }
        for (name, pointer) in &self.facts {
            if let Some(value) = body.pointer(pointer) {
                facts.insert(name.clone(), value.clone());
            }
        }
        Value::Object(facts)
    }
}

/// Fill the `{placeholder}`s of a URL template from the entity, percent-encoding each value;
/// `Err` names the first placeholder the entity has no value for.
fn render(template: &str, entity: &Entity) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        out.push_str(&rest[..start]);
        let name = &rest[start + 1..start + len];
        let value = entity.field_text(name).ok_or_else(|| name.to_string())?;
        out.push_str(&encode_component(&value));
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

readyd_plugin_sdk::export!(HttpJson as data_source);

#[cfg(test)]
mod tests {
    use super::*;
    use readyd_plugin_sdk::http::{HttpError, Response};
    use readyd_plugin_sdk::testing::MockHttp;

    const BASE: &str = "http://127.0.0.1:8080/oncall";

    fn plugin(extra: Value) -> HttpJson {
        let mut config = json!({
            "url": format!("{BASE}/{{identifier}}"),
            "facts": { "oncall_count": "/data/oncall/count", "primary": "/data/oncall/primary/0" },
            "token": "s3cret",
            "bearer_secret": "token",
        });
        config
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        HttpJson::init(Config::from_json(config)).unwrap()
    }

    #[test]
    fn maps_pointers_to_facts_and_404_to_not_found() {
        let mock = MockHttp::new()
            .on_get(
                format!("{BASE}/payments"),
                Response::json_body(&json!({"data": {"oncall": {"count": 3, "primary": ["ana"]}}})),
            )
            .on_get(
                format!("{BASE}/search"),
                Response::json_body(&json!({"data": {}})),
            )
            .on_get(format!("{BASE}/ghost"), Response::new(404));
        let _installed = mock.install();
        let entities = ["payments", "search", "ghost"].map(|id| Entity::new(id, "service"));
        let facts = plugin(json!({})).collect(&entities).unwrap();
        assert_eq!(
            facts,
            [
                (
                    "payments".into(),
                    json!({"found": true, "oncall_count": 3, "primary": "ana"})
                ),
                ("search".into(), json!({"found": true})),
                ("ghost".into(), json!({"found": false})),
            ]
        );
        let request = &mock.requests()[0];
        assert_eq!(request.header_value("authorization"), Some("Bearer s3cret"));
        assert_eq!(request.timeout_value(), Some(Duration::from_millis(5000)));
    }

    #[test]
    fn failures_leave_entities_out_unless_all_fail() {
        let mock = MockHttp::new()
            .on_get(
                format!("{BASE}/a"),
                Response::json_body(&json!({"data": {"oncall": {"count": 1}}})),
            )
            .on_get(format!("{BASE}/b"), Response::new(500))
            .on_get(format!("{BASE}/c"), Response::new(200).with_body("<html>"));
        let _installed = mock.install();
        let entities = ["a", "b", "c", "d"].map(|id| Entity::new(id, "service"));
        let facts = plugin(json!({})).collect(&entities).unwrap();
        assert_eq!(facts.len(), 1);
        assert_eq!(facts[0].0, "a");

        let err = plugin(json!({})).collect(&entities[1..]).unwrap_err();
        assert!(
            matches!(&err, PluginError::Unavailable(m) if m.contains("all 3 requests failed")),
            "{err}"
        );
    }

    #[test]
    fn templates_use_entity_fields_and_skip_entities_without_them() {
        let url = "http://127.0.0.1:8080/teams/{team}/svc/{identifier}?region={properties.region}";
        let mock = MockHttp::new()
            .on_get(
                "http://127.0.0.1:8080/teams/core%20infra/svc/api?region=eu",
                Response::json_body(&json!({"x": 1})),
            )
            .fail(
                "http://127.0.0.1:8080/never",
                HttpError::Timeout {
                    url: "never".into(),
                },
            );
        let _installed = mock.install();
        let plugin = plugin(json!({"url": url, "facts": {}}));
        let with = Entity::new("api", "service")
            .with_team("core infra")
            .with_property("region", "eu");
        let without = Entity::new("web", "service");
        let facts = plugin.collect(&[with, without]).unwrap();
        assert_eq!(facts, [("api".into(), json!({"found": true, "x": 1}))]);
        assert_eq!(mock.requests().len(), 1);
    }

    #[test]
    fn rejects_bad_config() {
        let bad = |config: Value| HttpJson::init(Config::from_json(config)).unwrap_err();
        assert!(matches!(bad(json!({})), PluginError::InvalidConfig(_)));
        assert!(bad(json!({"url": "ftp://x"})).message().contains("http://"));
        assert!(
            bad(json!({"url": "http://x", "facts": {"a": "data.a"}}))
                .message()
                .contains("JSON pointer")
        );
        assert!(
            bad(json!({"url": "http://x", "bearer_secret": "tok"}))
                .message()
                .contains("no such secret")
        );
    }
}
