//! Backstage `catalog-info.yaml` documents (`apiVersion: backstage.io/…`) read as readyd
//! entities.
//!
//! Mapping (the decisions where DESIGN.md §4 leaves room):
//! - Only `kind: Component` and `kind: API` become entities; every other Backstage kind (System,
//!   Group, User, Resource, Location, …) is skipped without error, so a whole Backstage catalog
//!   can be pointed at readyd.
//! - `metadata.name` → `identifier`; it must already be a readyd identifier (lowercase): it is
//!   never rewritten, so two spellings cannot silently merge. The namespace is ignored for the
//!   identifier (kept as the property `namespace`), so the same name in two namespaces is a
//!   duplicate.
//! - Component: `spec.type` → `kind` (`component` when absent). API: `kind` is always `api` (the
//!   API's `spec.type`, e.g. `openapi`, stays readable as the property `type`).
//! - `spec.owner` → `team`, with a `group:` prefix and a `default/` namespace removed
//!   (`group:default/payments` → `payments`); any other owner reference is kept as written.
//! - `metadata.title` → `title` (the identifier when absent).
//! - Properties: every key of `spec` at the top level (so `lifecycle` reads the same in both
//!   catalog forms), plus `labels`, `annotations`, `tags`, `links`, `description` and `namespace`
//!   from `metadata` when present (these win over a `spec` key of the same name). An annotation
//!   such as `pagerduty.com/service-id` is read with the path `annotations.pagerduty.com/service-id`
//!   (property paths match dotted keys).
//! - Tier: the label or annotation `tier` (`1`–`3` or `tier-1`–`tier-3`); both present and
//!   different is an error.
//! - Relations: `spec.dependsOn`, `spec.providesApis`, `spec.consumesApis` → relations of the same
//!   names, each entity reference reduced to its name (`resource:default/payments-db` →
//!   `payments-db`).

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Fault, parse_tier};
use crate::model::{Entity, JsonObject};

/// The `apiVersion` prefix of Backstage documents.
const API_VERSION_PREFIX: &str = "backstage.io/";

/// Relations read from `spec`.
const RELATIONS: [&str; 3] = ["dependsOn", "providesApis", "consumesApis"];

/// Metadata keys copied into properties.
const METADATA_PROPERTIES: [&str; 6] = [
    "labels",
    "annotations",
    "tags",
    "links",
    "description",
    "namespace",
];

/// Whether a document declares itself a Backstage entity.
pub(super) fn is_backstage(doc: &Value) -> bool {
    doc.get("apiVersion")
        .and_then(Value::as_str)
        .is_some_and(|v| v.starts_with(API_VERSION_PREFIX))
}

/// `metadata.name`, used to find the document's line.
pub(super) fn name(doc: &Value) -> Option<&str> {
    doc.get("metadata")?.get("name")?.as_str()
}

/// Converts one Backstage document; `Ok(None)` for kinds readyd does not score.
pub(super) fn to_entity(doc: &Value) -> Result<Option<Entity>, Vec<Fault>> {
    let kind = match doc.get("kind").and_then(Value::as_str) {
        Some("Component") => None,
        Some("API") => Some("api".to_owned()),
        Some(_) => return Ok(None),
        None => {
            return Err(vec![Fault::at_key(
                "kind",
                "a Backstage document needs a `kind`",
            )]);
        }
    };
    let mut faults = Vec::new();
    let metadata = doc.get("metadata").and_then(Value::as_object);
    let spec = doc.get("spec").and_then(Value::as_object);

    let identifier = match metadata.and_then(|m| m.get("name")).and_then(Value::as_str) {
        Some(name) => name.to_owned(),
        None => {
            faults.push(Fault::at_key(
                "metadata",
                "metadata.name is required (a string)",
            ));
            String::new()
        }
    };
    let kind = match kind {
        Some(kind) => kind,
        None => match spec.and_then(|s| s.get("type")) {
            None | Some(Value::Null) => "component".to_owned(),
            Some(Value::String(t)) if t.is_empty() => "component".to_owned(),
            Some(Value::String(t)) => t.clone(),
            Some(other) => {
                faults.push(Fault::at_key(
                    "type",
                    format!("spec.type must be a string, got {other}"),
                ));
                String::new()
            }
        },
    };
    let title = match metadata.and_then(|m| m.get("title")) {
        None | Some(Value::Null) => identifier.clone(),
        Some(Value::String(t)) => t.clone(),
        Some(other) => {
            faults.push(Fault::at_key(
                "title",
                format!("metadata.title must be a string, got {other}"),
            ));
            identifier.clone()
        }
    };
    let team = match spec.and_then(|s| s.get("owner")) {
        None | Some(Value::Null) => None,
        Some(Value::String(owner)) => Some(owner_team(owner)),
        Some(other) => {
            faults.push(Fault::at_key(
                "owner",
                format!("spec.owner must be a string, got {other}"),
            ));
            None
        }
    };

    let tier = tier(metadata).unwrap_or_else(|fault| {
        faults.push(fault);
        None
    });

    let mut properties = JsonObject::new();
    if let Some(spec) = spec {
        for (k, v) in spec {
            properties.insert(k.clone(), v.clone());
        }
    }
    if let Some(metadata) = metadata {
        for key in METADATA_PROPERTIES {
            if let Some(v) = metadata.get(key) {
                properties.insert(key.to_owned(), v.clone());
            }
        }
    }

    let mut relations = BTreeMap::new();
    for name in RELATIONS {
        match spec.and_then(|s| s.get(name)) {
            None | Some(Value::Null) => {}
            Some(Value::Array(refs)) => {
                let mut targets = Vec::with_capacity(refs.len());
                for r in refs {
                    match r.as_str() {
                        Some(r) => targets.push(reference_name(r).to_owned()),
                        None => faults.push(Fault::at_key(
                            name,
                            format!("spec.{name} must list entity references (strings), got {r}"),
                        )),
                    }
                }
                relations.insert(name.to_owned(), targets);
            }
            Some(other) => faults.push(Fault::at_key(
                name,
                format!("spec.{name} must be a list of entity references, got {other}"),
            )),
        }
    }

    if !faults.is_empty() {
        return Err(faults);
    }
    Ok(Some(Entity {
        identifier,
        kind,
        title,
        team,
        tier,
        properties,
        relations,
    }))
}

/// The tier from the `tier` label or annotation.
fn tier(metadata: Option<&JsonObject>) -> Result<Option<u8>, Fault> {
    let read = |section: &str| -> Result<Option<u8>, Fault> {
        match metadata
            .and_then(|m| m.get(section))
            .and_then(|s| s.get("tier"))
        {
            None => Ok(None),
            Some(v) => parse_tier(v).map_err(|m| Fault::at_key("tier", m)),
        }
    };
    let label = read("labels")?;
    let annotation = read("annotations")?;
    match (label, annotation) {
        (Some(l), Some(a)) if l != a => Err(Fault::at_key(
            "tier",
            format!("the tier label says {l} but the tier annotation says {a}"),
        )),
        (l, a) => Ok(l.or(a)),
    }
}

/// `group:default/payments` → `payments`; `group:platform/sre` → `platform/sre`;
/// `user:jane` stays.
fn owner_team(owner: &str) -> String {
    let owner = owner.trim();
    let without_kind = match owner.split_once(':') {
        Some((kind, rest)) if kind.eq_ignore_ascii_case("group") => rest,
        _ => return owner.to_owned(),
    };
    without_kind
        .strip_prefix("default/")
        .unwrap_or(without_kind)
        .to_owned()
}

/// `resource:default/payments-db` → `payments-db`.
fn reference_name(reference: &str) -> &str {
    let r = reference.trim();
    let r = r.split_once(':').map_or(r, |(_, rest)| rest);
    r.rsplit_once('/').map_or(r, |(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn owners_and_references() {
        assert_eq!(owner_team("group:payments"), "payments");
        assert_eq!(owner_team("Group:default/payments"), "payments");
        assert_eq!(owner_team("group:platform/sre"), "platform/sre");
        assert_eq!(owner_team("user:jane"), "user:jane");
        assert_eq!(owner_team("payments"), "payments");
        assert_eq!(
            reference_name("resource:default/payments-db"),
            "payments-db"
        );
        assert_eq!(reference_name("component:ledger"), "ledger");
        assert_eq!(reference_name("ledger"), "ledger");
    }

    #[test]
    fn other_kinds_are_skipped() {
        let doc = json!({"apiVersion": "backstage.io/v1alpha1", "kind": "Group", "metadata": {"name": "x"}});
        assert_eq!(to_entity(&doc).unwrap(), None);
    }

    #[test]
    fn conflicting_tier_label_and_annotation() {
        let doc = json!({"apiVersion": "backstage.io/v1alpha1", "kind": "Component",
            "metadata": {"name": "x", "labels": {"tier": "1"}, "annotations": {"tier": "tier-2"}}});
        let faults = to_entity(&doc).unwrap_err();
        assert!(faults[0].message.contains("label says 1"), "{faults:?}");
        let doc = json!({"apiVersion": "backstage.io/v1alpha1", "kind": "Component",
            "metadata": {"name": "x", "labels": {"tier": "1"}, "annotations": {"tier": "tier-1"}}});
        assert_eq!(to_entity(&doc).unwrap().unwrap().tier, Some(1));
    }
}
