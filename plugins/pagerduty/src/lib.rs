//! `pagerduty`: a data source over PagerDuty's REST API v2 — for each entity's PagerDuty
//! service, its escalation policy, who is on call now, its open incidents and its last incident.
//!
//! Config (every key but `token_secret` optional):
//! `{ "base_url": "https://api.pagerduty.com", "token_secret": "token",
//! "service_id_properties": ["pagerduty.service_id", "annotations.pagerduty.com/service-id"],
//! "timeout_ms": 10000, "page_limit": 100, "max_pages": 100 }`.
//!
//! A round makes a handful of list calls for all entities together instead of several per
//! entity (PagerDuty allows about 960 requests a minute per account key):
//! `GET /services?include[]=escalation_policies` (every service with its policy's rules),
//! `GET /oncalls?escalation_policy_ids[]=…` (who is on call now on those policies, 20 ids per
//! request) and `GET /incidents?service_ids[]=…&statuses[]=triggered&statuses[]=acknowledged
//! &date_range=all` (20 ids per request), each followed through `offset`/`limit`/`more` pages.
//! Every request carries `Authorization: Token token=<secret>` and
//! `Accept: application/vnd.pagerduty+json;version=2`.
//!
//! Facts per entity: `found`, `service_id`, `service_name`, `service_status`,
//! `escalation_policy {id, name}`, `escalation_levels`, `oncall_count` (distinct users on call
//! now, any level), `oncall_level1_count`, `incidents {triggered, acknowledged, open}` and
//! `last_incident_at` (RFC 3339, left out when PagerDuty has none). An entity that names no
//! service, or a service PagerDuty does not have, gets `{found: false, reason}`.
//!
//! Any failed request fails the whole round (`unavailable`, or `invalid-config` for a 401/403):
//! a partial answer such as "0 open incidents" because the incident list failed would be a lie,
//! and the daemon keeps the last good facts, marked stale. The token is never logged or put into
//! an error message.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use readyd_plugin_sdk::http::{Request, Response, encode_component};
use readyd_plugin_sdk::{Config, DataSource, Entity, PluginError};
use serde::Deserialize;
use serde_json::{Map, Value, json};

const DEFAULT_BASE_URL: &str = "https://api.pagerduty.com";
const ACCEPT: &str = "application/vnd.pagerduty+json;version=2";
/// Ids per `…_ids[]=` request: keeps URLs far below the 8 KB most proxies accept.
const IDS_PER_REQUEST: usize = 20;

/// No `deny_unknown_fields`: the daemon adds granted secrets to the config under their names.
#[derive(Debug, Deserialize)]
struct Settings {
    #[serde(default = "default_base_url")]
    base_url: String,
    token_secret: Option<String>,
    #[serde(default = "default_service_id_properties")]
    service_id_properties: Vec<String>,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    #[serde(default = "default_page_limit")]
    page_limit: u32,
    #[serde(default = "default_max_pages")]
    max_pages: u32,
}

fn default_base_url() -> String {
    DEFAULT_BASE_URL.into()
}

fn default_service_id_properties() -> Vec<String> {
    vec![
        "pagerduty.service_id".into(),
        "annotations.pagerduty.com/service-id".into(),
    ]
}

fn default_timeout_ms() -> u64 {
    10_000
}

fn default_page_limit() -> u32 {
    100
}

fn default_max_pages() -> u32 {
    100
}

/// The PagerDuty data source.
#[derive(Debug)]
pub struct PagerDuty {
    base: String,
    /// `Token token=<secret>`; never logged (the SDK's `Request` is not logged either).
    authorization: String,
    service_id_properties: Vec<String>,
    timeout: Duration,
    page_limit: u32,
    max_pages: u32,
}

/// A reference to another object (`{id, type, summary, self, html_url}`).
#[derive(Debug, Clone, Deserialize)]
struct Reference {
    id: String,
}

/// A service as `GET /services?include[]=escalation_policies` lists it.
#[derive(Debug, Deserialize)]
struct Service {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    last_incident_timestamp: Option<String>,
    #[serde(default)]
    escalation_policy: Option<EscalationPolicy>,
}

/// An escalation policy: a full object when included, a reference (no rules) otherwise.
#[derive(Debug, Clone, Deserialize)]
struct EscalationPolicy {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    escalation_rules: Option<Vec<Value>>,
}

#[derive(Debug, Deserialize)]
struct Oncall {
    escalation_policy: Reference,
    #[serde(default)]
    escalation_level: Option<u32>,
    #[serde(default)]
    user: Option<Reference>,
}

#[derive(Debug, Deserialize)]
struct Incident {
    status: String,
    service: Reference,
    #[serde(default)]
    created_at: Option<String>,
}

/// What the round learned about one escalation policy's on-call users.
#[derive(Debug, Default)]
struct OncallUsers {
    any_level: BTreeSet<String>,
    level1: BTreeSet<String>,
}

#[derive(Debug, Default)]
struct OpenIncidents {
    triggered: u64,
    acknowledged: u64,
    latest_created_at: Option<String>,
}

impl DataSource for PagerDuty {
    fn init(config: Config) -> Result<Self, PluginError> {
        let settings: Settings = config.deserialize()?;
        if !settings.base_url.starts_with("http://") && !settings.base_url.starts_with("https://") {
            return Err(PluginError::invalid_config(format!(
                "base_url {:?} must start with http:// or https://",
                settings.base_url
            )));
        }
        let name = settings.token_secret.as_deref().ok_or_else(|| {
            PluginError::invalid_config(
                "token_secret must name the granted secret holding the PagerDuty REST API key",
            )
        })?;
        let token = config.secret(name).filter(|t| !t.trim().is_empty()).ok_or_else(|| {
            PluginError::invalid_config(format!(
                "token_secret names {name:?}, but no such secret was granted (capabilities.secrets)"
            ))
        })?;
        if settings.service_id_properties.is_empty() {
            return Err(PluginError::invalid_config(
                "service_id_properties must name at least one property",
            ));
        }
        if !(1..=100).contains(&settings.page_limit) {
            return Err(PluginError::invalid_config(format!(
                "page_limit {} must be between 1 and 100 (PagerDuty's maximum)",
                settings.page_limit
            )));
        }
        Ok(PagerDuty {
            base: settings.base_url.trim_end_matches('/').to_string(),
            authorization: format!("Token token={}", token.trim()),
            service_id_properties: settings.service_id_properties,
            timeout: Duration::from_millis(settings.timeout_ms.max(1)),
            page_limit: settings.page_limit,
            max_pages: settings.max_pages.max(1),
        })
    }

    fn collect(&self, entities: &[Entity]) -> Result<Vec<(String, Value)>, PluginError> {
        let wanted: Vec<(&Entity, Option<String>)> = entities
            .iter()
            .map(|e| (e, self.service_id_of(e)))
            .collect();
        if wanted.iter().all(|(_, id)| id.is_none()) {
            return Ok(wanted
                .into_iter()
                .map(|(e, _)| (e.identifier.clone(), self.no_service_id()))
                .collect());
        }

        let wanted_ids: BTreeSet<&str> =
            wanted.iter().filter_map(|(_, id)| id.as_deref()).collect();
        let mut services: BTreeMap<String, Service> = BTreeMap::new();
        for item in self.list("services", "include%5B%5D=escalation_policies", "services")? {
            // Only the entities' services are read: an odd service elsewhere in the account
            // must not fail the round.
            if !item
                .get("id")
                .and_then(Value::as_str)
                .is_some_and(|id| wanted_ids.contains(id))
            {
                continue;
            }
            let service: Service = parse_item(item, "service")?;
            services.insert(service.id.clone(), service);
        }

        // Policies whose rules the include did not bring (an older API or a trimmed answer).
        let mut policies: BTreeMap<String, EscalationPolicy> = BTreeMap::new();
        for policy in services
            .values()
            .filter_map(|s| s.escalation_policy.as_ref())
        {
            if policies.contains_key(&policy.id) {
                continue;
            }
            let full = match policy.escalation_rules {
                Some(_) => policy.clone(),
                None => self.escalation_policy(&policy.id)?,
            };
            policies.insert(policy.id.clone(), full);
        }

        let oncalls = self.oncalls(policies.keys())?;
        let incidents = self.open_incidents(services.keys())?;

        Ok(wanted
            .into_iter()
            .map(|(entity, id)| {
                let facts = match id {
                    None => self.no_service_id(),
                    Some(id) => match services.get(&id) {
                        None => json!({
                            "found": false,
                            "service_id": id,
                            "reason": format!("PagerDuty has no service {id}"),
                        }),
                        Some(service) => service_facts(service, &policies, &oncalls, &incidents),
                    },
                };
                (entity.identifier.clone(), facts)
            })
            .collect())
    }
}

impl PagerDuty {
    /// The entity's service id: the first configured property that holds a non-empty string.
    fn service_id_of(&self, entity: &Entity) -> Option<String> {
        self.service_id_properties.iter().find_map(|path| {
            lookup_dotted(entity.properties(), path)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|id| !id.is_empty())
                .map(str::to_string)
        })
    }

    fn no_service_id(&self) -> Value {
        json!({
            "found": false,
            "reason": format!("no PagerDuty service id in {}", self.service_id_properties.join(", ")),
        })
    }

    /// Every item of a paged list: `GET <base>/<path>?<query>&limit=…&offset=…` until
    /// `more` is false, items under the key `key`.
    fn list(&self, path: &str, query: &str, key: &str) -> Result<Vec<Value>, PluginError> {
        let mut items = Vec::new();
        let mut offset: u64 = 0;
        for _ in 0..self.max_pages {
            let separator = if query.is_empty() { "" } else { "&" };
            let url = format!(
                "{}/{path}?{query}{separator}limit={}&offset={offset}",
                self.base, self.page_limit
            );
            let body: Value = self.get(&url)?;
            let page = body.get(key).and_then(Value::as_array).ok_or_else(|| {
                PluginError::failed(format!("GET /{path}: answer has no {key} list"))
            })?;
            let count = page.len() as u64;
            items.extend(page.iter().cloned());
            if !body.get("more").and_then(Value::as_bool).unwrap_or(false) || count == 0 {
                return Ok(items);
            }
            // PagerDuty echoes the offset it used; the next page starts after this one.
            offset = body.get("offset").and_then(Value::as_u64).unwrap_or(offset) + count;
        }
        Err(PluginError::unavailable(format!(
            "GET /{path}: still more after {} pages of {} (raise max_pages)",
            self.max_pages, self.page_limit
        )))
    }

    fn escalation_policy(&self, id: &str) -> Result<EscalationPolicy, PluginError> {
        let url = format!("{}/escalation_policies/{}", self.base, encode_component(id));
        let body: Value = self.get(&url)?;
        let policy = body.get("escalation_policy").cloned().ok_or_else(|| {
            PluginError::failed(format!(
                "GET /escalation_policies/{id}: no escalation_policy"
            ))
        })?;
        parse_item(policy, "escalation policy")
    }

    /// Distinct users on call now, per escalation policy (the API's default window is "now").
    fn oncalls<'a>(
        &self,
        policy_ids: impl Iterator<Item = &'a String>,
    ) -> Result<BTreeMap<String, OncallUsers>, PluginError> {
        let ids: Vec<&String> = policy_ids.collect();
        let mut by_policy: BTreeMap<String, OncallUsers> = BTreeMap::new();
        for chunk in ids.chunks(IDS_PER_REQUEST) {
            let query = ids_query("escalation_policy_ids", chunk);
            for item in self.list("oncalls", &query, "oncalls")? {
                let oncall: Oncall = parse_item(item, "on-call entry")?;
                let Some(user) = oncall.user else { continue };
                let entry = by_policy.entry(oncall.escalation_policy.id).or_default();
                if oncall.escalation_level == Some(1) {
                    entry.level1.insert(user.id.clone());
                }
                entry.any_level.insert(user.id);
            }
        }
        Ok(by_policy)
    }

    /// Triggered and acknowledged incidents per service, of any age (`date_range=all`; the
    /// default window is the last month and would hide an incident left open longer).
    fn open_incidents<'a>(
        &self,
        service_ids: impl Iterator<Item = &'a String>,
    ) -> Result<BTreeMap<String, OpenIncidents>, PluginError> {
        let ids: Vec<&String> = service_ids.collect();
        let mut by_service: BTreeMap<String, OpenIncidents> = BTreeMap::new();
        for chunk in ids.chunks(IDS_PER_REQUEST) {
            let query = format!(
                "{}&statuses%5B%5D=triggered&statuses%5B%5D=acknowledged&date_range=all",
                ids_query("service_ids", chunk)
            );
            for item in self.list("incidents", &query, "incidents")? {
                let incident: Incident = parse_item(item, "incident")?;
                let entry = by_service.entry(incident.service.id).or_default();
                match incident.status.as_str() {
                    "triggered" => entry.triggered += 1,
                    "acknowledged" => entry.acknowledged += 1,
                    _ => continue,
                }
                if let Some(created) = incident.created_at.as_deref().and_then(rfc3339) {
                    entry.latest_created_at = latest(entry.latest_created_at.take(), Some(created));
                }
            }
        }
        Ok(by_service)
    }

    fn get(&self, url: &str) -> Result<Value, PluginError> {
        let response = Request::get(url)
            .header("accept", ACCEPT)
            .header("authorization", &self.authorization)
            .timeout(self.timeout)
            .send()?;
        let path = path_of(url, &self.base);
        if !response.is_success() {
            return Err(status_error(&path, &response));
        }
        response
            .json()
            .map_err(|e| PluginError::failed(format!("GET {path}: {e}")))
    }
}

fn service_facts(
    service: &Service,
    policies: &BTreeMap<String, EscalationPolicy>,
    oncalls: &BTreeMap<String, OncallUsers>,
    incidents: &BTreeMap<String, OpenIncidents>,
) -> Value {
    let mut facts = Map::new();
    facts.insert("found".into(), json!(true));
    facts.insert("service_id".into(), json!(service.id));
    if let Some(name) = &service.name {
        facts.insert("service_name".into(), json!(name));
    }
    if let Some(status) = &service.status {
        facts.insert("service_status".into(), json!(status));
    }
    let open = incidents.get(&service.id);
    let (triggered, acknowledged) = open.map_or((0, 0), |o| (o.triggered, o.acknowledged));
    match service
        .escalation_policy
        .as_ref()
        .and_then(|p| policies.get(&p.id))
    {
        Some(policy) => {
            let name = policy.name.as_ref().or(policy.summary.as_ref());
            facts.insert(
                "escalation_policy".into(),
                json!({"id": policy.id, "name": name}),
            );
            let levels = policy.escalation_rules.as_ref().map_or(0, Vec::len);
            facts.insert("escalation_levels".into(), json!(levels));
            let users = oncalls.get(&policy.id);
            facts.insert(
                "oncall_count".into(),
                json!(users.map_or(0, |u| u.any_level.len())),
            );
            facts.insert(
                "oncall_level1_count".into(),
                json!(users.map_or(0, |u| u.level1.len())),
            );
        }
        // A service always has a policy in PagerDuty; say so rather than invent zeros.
        None => {
            facts.insert("escalation_levels".into(), json!(0));
            facts.insert("oncall_count".into(), json!(0));
            facts.insert("oncall_level1_count".into(), json!(0));
        }
    }
    facts.insert(
        "incidents".into(),
        json!({"triggered": triggered, "acknowledged": acknowledged, "open": triggered + acknowledged}),
    );
    let last = latest(
        service.last_incident_timestamp.as_deref().and_then(rfc3339),
        open.and_then(|o| o.latest_created_at.clone()),
    );
    if let Some(last) = last {
        facts.insert("last_incident_at".into(), json!(last));
    }
    Value::Object(facts)
}

/// `name%5B%5D=a&name%5B%5D=b`: PagerDuty's array parameters, brackets percent-encoded.
fn ids_query(name: &str, ids: &[&String]) -> String {
    ids.iter()
        .map(|id| format!("{name}%5B%5D={}", encode_component(id)))
        .collect::<Vec<_>>()
        .join("&")
}

fn parse_item<T: serde::de::DeserializeOwned>(item: Value, what: &str) -> Result<T, PluginError> {
    serde_json::from_value(item).map_err(|e| {
        PluginError::failed(format!(
            "PagerDuty answered a {what} of an unexpected shape: {e}"
        ))
    })
}

/// A timestamp normalised to RFC 3339 in UTC (`2026-01-02T03:04:05Z`); `None` if unreadable.
fn rfc3339(text: &str) -> Option<String> {
    chrono::DateTime::parse_from_rfc3339(text).ok().map(|t| {
        t.with_timezone(&chrono::Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    })
}

/// The later of two normalised timestamps (same format, so text order is time order).
fn latest(a: Option<String>, b: Option<String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// The path and query of `url` below the base, for messages (never the token: it is a header).
fn path_of(url: &str, base: &str) -> String {
    url.strip_prefix(base).unwrap_or(url).to_string()
}

/// A non-2xx answer as a plugin error; PagerDuty's `{"error": {"message", "code"}}` is quoted.
fn status_error(path: &str, response: &Response) -> PluginError {
    let status = response.status();
    let detail = response
        .json::<Value>()
        .ok()
        .and_then(|body| {
            let error = body.get("error")?;
            let message = error.get("message")?.as_str()?.to_string();
            Some(match error.get("code").and_then(Value::as_u64) {
                Some(code) => format!(": {message} (code {code})"),
                None => format!(": {message}"),
            })
        })
        .unwrap_or_default();
    match status {
        401 => PluginError::invalid_config(format!(
            "GET {path}: PagerDuty rejected the API key (401 Unauthorized{detail}); check the secret token_secret names"
        )),
        403 => PluginError::invalid_config(format!(
            "GET {path}: the API key may not read this (403 Forbidden{detail}); use a key with read access to services, on-calls and incidents"
        )),
        429 => PluginError::unavailable(format!(
            "GET {path}: rate limited by PagerDuty (429{detail}); a later round will try again"
        )),
        _ => PluginError::unavailable(format!("GET {path}: PagerDuty answered {status}{detail}")),
    }
}

/// The value at a dotted `path` whose keys may themselves contain dots, as Backstage annotation
/// names do (`annotations.pagerduty.com/service-id` reads `annotations` → `pagerduty.com/service-id`).
fn lookup_dotted<'a>(object: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(value) = object.get(path) {
        return Some(value);
    }
    path.match_indices('.').find_map(|(at, _)| {
        let inner = object.get(&path[..at])?.as_object()?;
        lookup_dotted(inner, &path[at + 1..])
    })
}

readyd_plugin_sdk::export!(PagerDuty as data_source);

#[cfg(test)]
mod tests;
