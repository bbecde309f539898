//! The parts of the Kubernetes objects this source reads (apps/v1 Deployment and StatefulSet,
//! policy/v1 PodDisruptionBudget, autoscaling/v2 HorizontalPodAutoscaler), and the per-workload
//! checks: replicas, probes, resources, pinned images.
//!
//! Only the fields used are declared; everything else in the API's objects is ignored, so a
//! newer API server's additions do not break parsing. A missing optional field reads as the
//! API's default (`spec.replicas` 1, `status.readyReplicas` 0).

use std::collections::BTreeMap;

use readyd_plugin_sdk::PluginError;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

pub(crate) fn parse<T: DeserializeOwned>(item: Value, kind: &str) -> Result<T, PluginError> {
    serde_json::from_value(item).map_err(|e| {
        PluginError::failed(format!(
            "the API server listed a {kind} of an unexpected shape: {e}"
        ))
    })
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ObjectMeta {
    name: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// `metav1.LabelSelector`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LabelSelector {
    #[serde(default)]
    match_labels: BTreeMap<String, String>,
    #[serde(default)]
    match_expressions: Vec<SelectorRequirement>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct SelectorRequirement {
    key: String,
    operator: String,
    #[serde(default)]
    values: Vec<String>,
}

impl LabelSelector {
    /// Whether `labels` satisfy every `matchLabels` pair and every `matchExpressions` entry; an
    /// unknown operator matches nothing (it cannot be decided, so it does not count as cover).
    pub(crate) fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| {
                let value = labels.get(&r.key);
                match r.operator.as_str() {
                    "In" => value.is_some_and(|v| r.values.contains(v)),
                    "NotIn" => value.is_none_or(|v| !r.values.contains(v)),
                    "Exists" => value.is_some(),
                    "DoesNotExist" => value.is_none(),
                    _ => false,
                }
            })
    }
}

/// A Deployment or StatefulSet (their shared fields).
#[derive(Debug, Clone)]
pub(crate) struct Workload {
    pub(crate) kind: &'static str,
    object: WorkloadObject,
}

#[derive(Debug, Clone, Deserialize)]
struct WorkloadObject {
    metadata: ObjectMeta,
    spec: WorkloadSpec,
    #[serde(default)]
    status: WorkloadStatus,
}

#[derive(Debug, Clone, Deserialize)]
struct WorkloadSpec {
    #[serde(default)]
    replicas: Option<i64>,
    template: PodTemplate,
}

#[derive(Debug, Clone, Deserialize)]
struct PodTemplate {
    #[serde(default)]
    metadata: TemplateMeta,
    spec: PodSpec,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct TemplateMeta {
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodSpec {
    #[serde(default)]
    containers: Vec<Container>,
    #[serde(default)]
    init_containers: Vec<Container>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Container {
    name: String,
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    liveness_probe: Option<Value>,
    #[serde(default)]
    readiness_probe: Option<Value>,
    #[serde(default)]
    resources: Resources,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct Resources {
    #[serde(default)]
    requests: BTreeMap<String, Value>,
    #[serde(default)]
    limits: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WorkloadStatus {
    #[serde(default)]
    ready_replicas: Option<i64>,
}

/// Which of the four resource settings every container has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ResourcesSet {
    pub(crate) cpu_requests: bool,
    pub(crate) memory_requests: bool,
    pub(crate) cpu_limits: bool,
    pub(crate) memory_limits: bool,
}

impl ResourcesSet {
    pub(crate) fn all() -> Self {
        Self {
            cpu_requests: true,
            memory_requests: true,
            cpu_limits: true,
            memory_limits: true,
        }
    }

    pub(crate) fn and(self, other: Self) -> Self {
        Self {
            cpu_requests: self.cpu_requests && other.cpu_requests,
            memory_requests: self.memory_requests && other.memory_requests,
            cpu_limits: self.cpu_limits && other.cpu_limits,
            memory_limits: self.memory_limits && other.memory_limits,
        }
    }

    pub(crate) fn to_json(self) -> Value {
        json!({
            "cpu_requests": self.cpu_requests,
            "memory_requests": self.memory_requests,
            "cpu_limits": self.cpu_limits,
            "memory_limits": self.memory_limits,
        })
    }
}

/// What one workload's checks found.
#[derive(Debug, Clone)]
pub(crate) struct WorkloadCheck {
    pub(crate) desired: i64,
    pub(crate) ready: i64,
    pub(crate) containers: usize,
    pub(crate) liveness: bool,
    pub(crate) readiness: bool,
    pub(crate) resources: ResourcesSet,
    /// Images (of containers and init containers) without a tag, tagged `latest`, and no digest.
    pub(crate) unpinned: Vec<String>,
    /// `(container, what it lacks)` for containers missing a probe or a resource setting.
    pub(crate) missing: Vec<(String, Vec<&'static str>)>,
}

impl Workload {
    pub(crate) fn parse(kind: &'static str, item: Value) -> Result<Self, PluginError> {
        Ok(Workload {
            kind,
            object: parse(item, kind)?,
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.object.metadata.name
    }

    pub(crate) fn namespace(&self) -> &str {
        &self.object.metadata.namespace
    }

    /// The workload object's own labels (what a list's `labelSelector` matched).
    pub(crate) fn labels(&self) -> &BTreeMap<String, String> {
        &self.object.metadata.labels
    }

    /// The labels its pods get (what a PodDisruptionBudget selects).
    pub(crate) fn pod_labels(&self) -> &BTreeMap<String, String> {
        &self.object.spec.template.metadata.labels
    }

    /// Probes and resources are required of the long-running `containers`; init containers run
    /// to completion and are only held to pinned images.
    pub(crate) fn check(&self) -> WorkloadCheck {
        let pod = &self.object.spec.template.spec;
        let mut resources = ResourcesSet::all();
        let (mut liveness, mut readiness) = (true, true);
        let mut missing = Vec::new();
        for container in &pod.containers {
            let has = |map: &BTreeMap<String, Value>, key: &str| {
                map.get(key)
                    .is_some_and(|v| !v.is_null() && v.as_str() != Some(""))
            };
            let this = ResourcesSet {
                cpu_requests: has(&container.resources.requests, "cpu"),
                memory_requests: has(&container.resources.requests, "memory"),
                cpu_limits: has(&container.resources.limits, "cpu"),
                memory_limits: has(&container.resources.limits, "memory"),
            };
            resources = resources.and(this);
            let mut lacks = Vec::new();
            if container.liveness_probe.is_none() {
                liveness = false;
                lacks.push("liveness probe");
            }
            if container.readiness_probe.is_none() {
                readiness = false;
                lacks.push("readiness probe");
            }
            for (set, name) in [
                (this.cpu_requests, "cpu request"),
                (this.memory_requests, "memory request"),
                (this.cpu_limits, "cpu limit"),
                (this.memory_limits, "memory limit"),
            ] {
                if !set {
                    lacks.push(name);
                }
            }
            if !lacks.is_empty() {
                missing.push((container.name.clone(), lacks));
            }
        }
        let unpinned = pod
            .init_containers
            .iter()
            .chain(&pod.containers)
            .filter(|c| !c.image.as_deref().is_some_and(image_pinned))
            .map(|c| {
                c.image
                    .clone()
                    .unwrap_or_else(|| format!("(none, container {})", c.name))
            })
            .collect();
        WorkloadCheck {
            desired: self.object.spec.replicas.unwrap_or(1),
            ready: self.object.status.ready_replicas.unwrap_or(0),
            containers: pod.containers.len(),
            liveness,
            readiness,
            resources,
            unpinned,
            missing,
        }
    }
}

/// Whether an image reference names one build: a digest (`@sha256:…`), or a tag other than
/// `latest`. `registry:5000/app` has no tag (the colon belongs to the registry's port).
pub(crate) fn image_pinned(image: &str) -> bool {
    let image = image.trim();
    if let Some((_, digest)) = image.split_once('@') {
        return digest.contains(':') && !digest.ends_with(':');
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((name, tag)) => !name.is_empty() && !tag.is_empty() && tag != "latest",
        None => false,
    }
}

/// A policy/v1 PodDisruptionBudget.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Pdb {
    metadata: ObjectMeta,
    #[serde(default)]
    spec: PdbSpec,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct PdbSpec {
    #[serde(default)]
    selector: Option<LabelSelector>,
}

impl Pdb {
    pub(crate) fn name(&self) -> &str {
        &self.metadata.name
    }
    pub(crate) fn namespace(&self) -> &str {
        &self.metadata.namespace
    }
    pub(crate) fn selector(&self) -> Option<&LabelSelector> {
        self.spec.selector.as_ref()
    }
}

/// An autoscaling/v2 HorizontalPodAutoscaler.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Hpa {
    metadata: ObjectMeta,
    spec: HpaSpec,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HpaSpec {
    scale_target_ref: CrossVersionObjectReference,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CrossVersionObjectReference {
    kind: String,
    name: String,
    #[serde(default)]
    api_version: Option<String>,
}

impl Hpa {
    pub(crate) fn name(&self) -> &str {
        &self.metadata.name
    }
    pub(crate) fn namespace(&self) -> &str {
        &self.metadata.namespace
    }
    /// Whether it scales this workload (same kind and name, group `apps` when given).
    pub(crate) fn targets(&self, workload: &Workload) -> bool {
        let target = &self.spec.scale_target_ref;
        target.kind == workload.kind
            && target.name == workload.name()
            && target
                .api_version
                .as_deref()
                .is_none_or(|v| v.starts_with("apps/"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_images() {
        for pinned in [
            "nginx:1.27.2",
            "ghcr.io/acme/payments-api:v2.4.1",
            "registry.local:5000/team/app:2024.11",
            "busybox@sha256:9ae97d36d26566ff84e8893c64a6dc4fe8ca6d1144bf5b87b2b85a32def253c7",
            "repo/app:latest@sha256:9ae97d36d26566ff84e8893c64a6dc4fe8ca6d1144bf5b87b2b85a32def253c7",
        ] {
            assert!(image_pinned(pinned), "{pinned}");
        }
        for unpinned in [
            "nginx",
            "nginx:latest",
            "registry.local:5000/team/app",
            "app:",
            "repo/app@sha256:",
            "",
        ] {
            assert!(!image_pinned(unpinned), "{unpinned}");
        }
    }

    #[test]
    fn selectors_match_like_the_api_server() {
        let labels: BTreeMap<String, String> = [
            ("app".to_string(), "pay".to_string()),
            ("tier".into(), "web".into()),
        ]
        .into();
        let selector = |v: Value| -> LabelSelector { serde_json::from_value(v).unwrap() };
        assert!(
            selector(json!({})).matches(&labels),
            "empty selects everything"
        );
        assert!(selector(json!({"matchLabels": {"app": "pay"}})).matches(&labels));
        assert!(!selector(json!({"matchLabels": {"app": "pay", "x": "y"}})).matches(&labels));
        let expr = |op: &str, values: &[&str]| {
            selector(
                json!({"matchExpressions": [{"key": "tier", "operator": op, "values": values}]}),
            )
        };
        assert!(expr("In", &["web", "api"]).matches(&labels));
        assert!(!expr("NotIn", &["web"]).matches(&labels));
        assert!(expr("Exists", &[]).matches(&labels));
        assert!(!expr("DoesNotExist", &[]).matches(&labels));
        assert!(
            !expr("Gt", &["1"]).matches(&labels),
            "unknown operators match nothing"
        );
    }
}
