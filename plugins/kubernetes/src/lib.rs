//! `kubernetes`: a data source over the Kubernetes API — for each entity's Deployments and
//! StatefulSets, whether they are ready, probed, resourced, pinned, protected by a
//! PodDisruptionBudget and scaled by a HorizontalPodAutoscaler.
//!
//! Config (all optional): `{ "api_url": "https://kubernetes.default.svc", "token_secret": null,
//! "service_account_dir": "/var/run/secrets/kubernetes.io/serviceaccount", "namespaces": [],
//! "selector": "app.kubernetes.io/name={identifier}", "page_limit": 500, "max_pages": 100,
//! "batch_size": 50, "timeout_ms": 10000 }`.
//!
//! Credentials: the secret `token_secret` names, or else the service-account token file
//! `<service_account_dir>/token`, granted read-only by the manifest (`capabilities.dirs`) and
//! re-read every round because projected tokens rotate. The plugin cannot choose TLS roots: the
//! daemon verifies the API server against its own trust (the OS store plus `tls_ca_file`), so a
//! cluster CA (`ca.crt` next to the token) is trusted by pointing `tls_ca_file` at it.
//!
//! A round lists, per namespace (or cluster-wide when `namespaces` is empty), Deployments and
//! StatefulSets once for all entities: when the selector has one requirement `key={placeholder}`
//! (the default), the entities' values go into one set-based selector
//! `key in (a,b,…)` (`batch_size` values per request) and each workload is matched back to its
//! entities by that label; any other selector with placeholders is sent once per entity. Then it
//! lists every PodDisruptionBudget and HorizontalPodAutoscaler of those namespaces (only when a
//! workload was found). Lists follow `limit` + `continue` pages; an expired continue token (410)
//! restarts the list once. A 401 is `unavailable` (a rotated or revoked token), a 403 is
//! `invalid-config` (the service account lacks RBAC), and any other failure fails the round:
//! half an answer ("no PDB") would be a lie, and the daemon keeps the last good facts. The token
//! is never logged or put into a message.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use readyd_plugin_sdk::http::{Request, Response, encode_component};
use readyd_plugin_sdk::{Config, DataSource, Entity, PluginError};
use serde::Deserialize;
use serde_json::{Map, Value, json};

mod model;
mod selector;

use model::{Hpa, LabelSelector, Pdb, Workload};
use selector::{Plan, Template};

const DEFAULT_API_URL: &str = "https://kubernetes.default.svc";
const DEFAULT_SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// At most this many problems are listed per entity; the booleans say the rest.
const MAX_PROBLEMS: usize = 20;

/// No `deny_unknown_fields`: the daemon adds granted secrets to the config under their names.
#[derive(Debug, Deserialize)]
struct Settings {
    #[serde(default = "default_api_url")]
    api_url: String,
    #[serde(default)]
    token_secret: Option<String>,
    #[serde(default = "default_service_account_dir")]
    service_account_dir: String,
    #[serde(default)]
    namespaces: Vec<String>,
    #[serde(default = "default_selector")]
    selector: String,
    #[serde(default = "default_page_limit")]
    page_limit: u32,
    #[serde(default = "default_max_pages")]
    max_pages: u32,
    #[serde(default = "default_batch_size")]
    batch_size: usize,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
}

fn default_api_url() -> String {
    DEFAULT_API_URL.into()
}
fn default_service_account_dir() -> String {
    DEFAULT_SERVICE_ACCOUNT_DIR.into()
}
fn default_selector() -> String {
    "app.kubernetes.io/name={identifier}".into()
}
fn default_page_limit() -> u32 {
    500
}
fn default_max_pages() -> u32 {
    100
}
fn default_batch_size() -> usize {
    50
}
fn default_timeout_ms() -> u64 {
    10_000
}

/// Where the bearer token comes from.
#[derive(Debug)]
enum TokenSource {
    /// A granted secret (read once: the daemon hands it over at `init`).
    Secret(String),
    /// The service-account token file, re-read every round.
    File(String),
}

/// The Kubernetes data source.
#[derive(Debug)]
pub struct Kubernetes {
    api: String,
    token: TokenSource,
    /// `None` means cluster-wide lists.
    scopes: Vec<Option<String>>,
    template: Template,
    page_limit: u32,
    max_pages: u32,
    batch_size: usize,
    timeout: Duration,
}

/// The kinds of workload listed, with their API path.
const WORKLOAD_KINDS: [(&str, &str); 2] = [
    ("Deployment", "apis/apps/v1/{ns}deployments"),
    ("StatefulSet", "apis/apps/v1/{ns}statefulsets"),
];
const PDB_PATH: &str = "apis/policy/v1/{ns}poddisruptionbudgets";
const HPA_PATH: &str = "apis/autoscaling/v2/{ns}horizontalpodautoscalers";

impl DataSource for Kubernetes {
    fn init(config: Config) -> Result<Self, PluginError> {
        let settings: Settings = config.deserialize()?;
        if !settings.api_url.starts_with("http://") && !settings.api_url.starts_with("https://") {
            return Err(PluginError::invalid_config(format!(
                "api_url {:?} must start with https:// (or http:// for a local proxy)",
                settings.api_url
            )));
        }
        let token = match &settings.token_secret {
            Some(name) => TokenSource::Secret(
                config
                    .secret(name)
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| {
                        PluginError::invalid_config(format!(
                            "token_secret names {name:?}, but no such secret was granted (capabilities.secrets)"
                        ))
                    })?
                    .to_string(),
            ),
            None => {
                let path = format!("{}/token", settings.service_account_dir.trim_end_matches('/'));
                read_token_file(&path).map_err(|e| {
                    PluginError::invalid_config(format!(
                        "no token_secret, and {e}; grant the service-account directory read-only \
                         (capabilities.dirs = {{ \"{}\" = \"…\" }}) or name a secret",
                        settings.service_account_dir
                    ))
                })?;
                TokenSource::File(path)
            }
        };
        for namespace in &settings.namespaces {
            if !is_dns_label(namespace) {
                return Err(PluginError::invalid_config(format!(
                    "namespaces: {namespace:?} is not a namespace name (lower-case letters, digits, '-')"
                )));
            }
        }
        let template = Template::parse(&settings.selector).map_err(|e| {
            PluginError::invalid_config(format!("selector {:?}: {e}", settings.selector))
        })?;
        if settings.page_limit == 0 || settings.batch_size == 0 {
            return Err(PluginError::invalid_config(
                "page_limit and batch_size must be at least 1",
            ));
        }
        let scopes = if settings.namespaces.is_empty() {
            vec![None]
        } else {
            let unique: BTreeSet<String> = settings.namespaces.into_iter().collect();
            unique.into_iter().map(Some).collect()
        };
        Ok(Kubernetes {
            api: settings.api_url.trim_end_matches('/').to_string(),
            token,
            scopes,
            template,
            page_limit: settings.page_limit,
            max_pages: settings.max_pages.max(1),
            batch_size: settings.batch_size,
            timeout: Duration::from_millis(settings.timeout_ms.max(1)),
        })
    }

    fn collect(&self, entities: &[Entity]) -> Result<Vec<(String, Value)>, PluginError> {
        let token = match &self.token {
            TokenSource::Secret(token) => token.clone(),
            TokenSource::File(path) => read_token_file(path).map_err(PluginError::unavailable)?,
        };
        let client = Client {
            source: self,
            authorization: format!("Bearer {token}"),
        };

        // Which entities each workload belongs to, by index into `entities`.
        let mut workloads: Vec<(Workload, BTreeSet<usize>)> = Vec::new();
        let mut unmatched: BTreeMap<usize, String> = BTreeMap::new();
        match self.template.plan() {
            Plan::Batched { fixed, key, value } => {
                let mut by_value: BTreeMap<String, Vec<usize>> = BTreeMap::new();
                for (i, entity) in entities.iter().enumerate() {
                    match selector::render_value(value, entity) {
                        Ok(v) => by_value.entry(v).or_default().push(i),
                        Err(reason) => {
                            unmatched.insert(i, reason);
                        }
                    }
                }
                let values: Vec<&String> = by_value.keys().collect();
                for chunk in values.chunks(self.batch_size) {
                    let mut requirements = fixed.to_vec();
                    let list: Vec<&str> = chunk.iter().map(|v| v.as_str()).collect();
                    requirements.push(format!("{key} in ({})", list.join(",")));
                    let selector = requirements.join(",");
                    for workload in client.workloads(&selector)? {
                        let owners: BTreeSet<usize> = workload
                            .labels()
                            .get(key)
                            .and_then(|v| by_value.get(v))
                            .into_iter()
                            .flatten()
                            .copied()
                            .collect();
                        if !owners.is_empty() {
                            workloads.push((workload, owners));
                        }
                    }
                }
            }
            Plan::PerEntity => {
                for (i, entity) in entities.iter().enumerate() {
                    let selector = match self.template.render(entity) {
                        Ok(s) => s,
                        Err(reason) => {
                            unmatched.insert(i, reason);
                            continue;
                        }
                    };
                    for workload in client.workloads(&selector)? {
                        workloads.push((workload, BTreeSet::from([i])));
                    }
                }
            }
        }

        let (pdbs, hpas) = if workloads.is_empty() {
            (Vec::new(), Vec::new())
        } else {
            (client.pdbs()?, client.hpas()?)
        };

        let mut per_entity: Vec<Vec<&Workload>> = vec![Vec::new(); entities.len()];
        // Duplicates (two scopes never overlap, but two entities may share a workload) are fine.
        for (workload, owners) in &workloads {
            for &i in owners {
                per_entity[i].push(workload);
            }
        }
        Ok(entities
            .iter()
            .enumerate()
            .map(|(i, entity)| {
                let facts = match unmatched.get(&i) {
                    Some(reason) => json!({"found": false, "workload_count": 0, "reason": reason}),
                    None => entity_facts(&per_entity[i], &pdbs, &hpas),
                };
                (entity.identifier.clone(), facts)
            })
            .collect())
    }
}

/// One round's requests, with the token read for it.
struct Client<'a> {
    source: &'a Kubernetes,
    /// `Bearer <token>`; never logged or shown.
    authorization: String,
}

impl Client<'_> {
    fn workloads(&self, selector: &str) -> Result<Vec<Workload>, PluginError> {
        let mut found = Vec::new();
        for scope in &self.source.scopes {
            for (kind, path) in WORKLOAD_KINDS {
                for item in self.list(&scoped(path, scope.as_deref()), Some(selector))? {
                    found.push(Workload::parse(kind, item)?);
                }
            }
        }
        Ok(found)
    }

    fn pdbs(&self) -> Result<Vec<Pdb>, PluginError> {
        let mut found = Vec::new();
        for scope in &self.source.scopes {
            for item in self.list(&scoped(PDB_PATH, scope.as_deref()), None)? {
                found.push(model::parse::<Pdb>(item, "PodDisruptionBudget")?);
            }
        }
        Ok(found)
    }

    fn hpas(&self) -> Result<Vec<Hpa>, PluginError> {
        let mut found = Vec::new();
        for scope in &self.source.scopes {
            for item in self.list(&scoped(HPA_PATH, scope.as_deref()), None)? {
                found.push(model::parse::<Hpa>(item, "HorizontalPodAutoscaler")?);
            }
        }
        Ok(found)
    }

    /// Every item of a list, following `metadata.continue`; restarts once on 410 Gone (the
    /// continue token expired because the list took longer than the server keeps snapshots).
    fn list(&self, path: &str, selector: Option<&str>) -> Result<Vec<Value>, PluginError> {
        let mut restarted = false;
        'restart: loop {
            let mut items = Vec::new();
            let mut next: Option<String> = None;
            for _ in 0..self.source.max_pages {
                let mut query = format!("limit={}", self.source.page_limit);
                if let Some(selector) = selector {
                    query.push_str(&format!("&labelSelector={}", encode_component(selector)));
                }
                if let Some(token) = &next {
                    query.push_str(&format!("&continue={}", encode_component(token)));
                }
                let shown = format!("/{path}?{query}");
                let response = Request::get(format!("{}/{path}?{query}", self.source.api))
                    .header("accept", "application/json")
                    .header("authorization", &self.authorization)
                    .timeout(self.source.timeout)
                    .send()?;
                if response.status() == 410 && next.is_some() && !restarted {
                    restarted = true;
                    readyd_plugin_sdk::info!("GET /{path}: continue token expired, listing again");
                    continue 'restart;
                }
                if !response.is_success() {
                    return Err(status_error(&shown, &response));
                }
                let body: Value = response
                    .json()
                    .map_err(|e| PluginError::failed(format!("GET {shown}: {e}")))?;
                let page = body.get("items").and_then(Value::as_array).ok_or_else(|| {
                    PluginError::failed(format!("GET {shown}: the answer is not a list (no items)"))
                })?;
                items.extend(page.iter().cloned());
                next = body
                    .pointer("/metadata/continue")
                    .and_then(Value::as_str)
                    .filter(|c| !c.is_empty())
                    .map(str::to_string);
                if next.is_none() {
                    return Ok(items);
                }
            }
            return Err(PluginError::unavailable(format!(
                "GET /{path}: still continuing after {} pages of {} (raise max_pages)",
                self.source.max_pages, self.source.page_limit
            )));
        }
    }
}

/// `apis/apps/v1/{ns}deployments` for one namespace or the whole cluster.
fn scoped(path: &str, namespace: Option<&str>) -> String {
    let ns = namespace.map_or(String::new(), |ns| format!("namespaces/{ns}/"));
    path.replace("{ns}", &ns)
}

fn entity_facts(workloads: &[&Workload], pdbs: &[Pdb], hpas: &[Hpa]) -> Value {
    if workloads.is_empty() {
        return json!({"found": false, "workload_count": 0});
    }
    let mut problems: Vec<String> = Vec::new();
    let mut details = Vec::with_capacity(workloads.len());
    let (mut desired, mut ready) = (0i64, 0i64);
    let mut all = Aggregate::default();
    let mut unpinned: BTreeSet<String> = BTreeSet::new();
    for workload in workloads {
        let label = format!(
            "{} {}/{}",
            workload.kind,
            workload.namespace(),
            workload.name()
        );
        let check = workload.check();
        let pdb = pdbs.iter().find(|p| {
            p.namespace() == workload.namespace() && covers(p.selector(), workload.pod_labels())
        });
        let hpa = hpas
            .iter()
            .find(|h| h.namespace() == workload.namespace() && h.targets(workload));
        desired += check.desired;
        ready += check.ready;
        all.add(&check, pdb.is_some(), hpa.is_some());
        if check.ready < check.desired {
            problems.push(format!(
                "{label}: {} of {} replicas ready",
                check.ready, check.desired
            ));
        }
        for (container, missing) in &check.missing {
            problems.push(format!(
                "{label} container {container}: no {}",
                missing.join(", no ")
            ));
        }
        for image in &check.unpinned {
            problems.push(format!("{label}: image {image} is not pinned"));
            unpinned.insert(image.clone());
        }
        if pdb.is_none() {
            problems.push(format!("{label}: no PodDisruptionBudget covers it"));
        }
        if hpa.is_none() {
            problems.push(format!("{label}: no HorizontalPodAutoscaler targets it"));
        }
        let mut detail = Map::new();
        detail.insert("kind".into(), json!(workload.kind));
        detail.insert("namespace".into(), json!(workload.namespace()));
        detail.insert("name".into(), json!(workload.name()));
        detail.insert("replicas_desired".into(), json!(check.desired));
        detail.insert("replicas_ready".into(), json!(check.ready));
        detail.insert("containers".into(), json!(check.containers));
        detail.insert(
            "probes".into(),
            json!({"liveness": check.liveness, "readiness": check.readiness}),
        );
        detail.insert("resources".into(), check.resources.to_json());
        detail.insert("images_pinned".into(), json!(check.unpinned.is_empty()));
        if let Some(pdb) = pdb {
            detail.insert("pdb".into(), json!(pdb.name()));
        }
        if let Some(hpa) = hpa {
            detail.insert("hpa".into(), json!(hpa.name()));
        }
        details.push(Value::Object(detail));
    }
    problems.truncate(MAX_PROBLEMS);
    json!({
        "found": true,
        "workload_count": workloads.len(),
        "replicas_desired": desired,
        "replicas_ready": ready,
        "all_replicas_ready": all.ready,
        "probes": {"liveness": all.liveness, "readiness": all.readiness},
        "resources": all.resources.to_json(),
        "images_pinned": unpinned.is_empty(),
        "unpinned_images": unpinned,
        "pdb_covered": all.pdb,
        "hpa_targeted": all.hpa,
        "problems": problems,
        "workloads": details,
    })
}

/// "Every workload / every container" booleans, starting true and and-ed down.
#[derive(Debug)]
struct Aggregate {
    ready: bool,
    liveness: bool,
    readiness: bool,
    resources: model::ResourcesSet,
    pdb: bool,
    hpa: bool,
}

impl Default for Aggregate {
    fn default() -> Self {
        Self {
            ready: true,
            liveness: true,
            readiness: true,
            resources: model::ResourcesSet::all(),
            pdb: true,
            hpa: true,
        }
    }
}

impl Aggregate {
    fn add(&mut self, check: &model::WorkloadCheck, pdb: bool, hpa: bool) {
        self.ready &= check.ready >= check.desired;
        self.liveness &= check.liveness;
        self.readiness &= check.readiness;
        self.resources = self.resources.and(check.resources);
        self.pdb &= pdb;
        self.hpa &= hpa;
    }
}

/// Whether a PDB's selector selects pods with `labels` (policy/v1: a null selector selects
/// nothing, an empty one every pod of the namespace).
fn covers(selector: Option<&LabelSelector>, labels: &BTreeMap<String, String>) -> bool {
    selector.is_some_and(|s| s.matches(labels))
}

fn read_token_file(path: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(format!("{path} is empty"));
    }
    Ok(token.to_string())
}

fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// A non-2xx answer as a plugin error, quoting the API server's `Status` message.
fn status_error(shown: &str, response: &Response) -> PluginError {
    let status = response.status();
    let message = response
        .json::<Value>()
        .ok()
        .and_then(|body| {
            body.get("message")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .map(|m| format!(": {m}"))
        .unwrap_or_default();
    match status {
        401 => PluginError::unavailable(format!(
            "GET {shown}: the API server rejected the token (401 Unauthorized{message}); \
             check the service-account token or the secret token_secret names"
        )),
        403 => PluginError::invalid_config(format!(
            "GET {shown}: forbidden (403{message}); the service account needs get and list on \
             deployments and statefulsets (apps), poddisruptionbudgets (policy) and \
             horizontalpodautoscalers (autoscaling)"
        )),
        _ => PluginError::unavailable(format!(
            "GET {shown}: the API server answered {status}{message}"
        )),
    }
}

readyd_plugin_sdk::export!(Kubernetes as data_source);

#[cfg(test)]
mod tests;
