//! The OpenAPI 3.0 document served at `/openapi.json`, generated from the route table.
//!
//! Paths, methods, parameters, permissions and the set of answers come from [`ROUTES`]; the
//! schemas of bodies and answers are written here by hand, next to each other, from the serde
//! types of `engine::api` and `model` (input schemas say `additionalProperties: false` because
//! those types deny unknown fields). The unit tests hold the schemas to the types: a sample of
//! every answer type must carry exactly the schema's properties, and every input type must accept
//! what the schema allows and refuse a body missing a required field. This module never serves
//! anything itself; it only builds the document once.

use std::sync::OnceLock;

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::query::ParamKind;
use super::router::{Answer, BodySpec, Endpoint, Permission, ROUTES, Route};

/// The document, built once and shared.
pub fn document_bytes() -> Bytes {
    static DOCUMENT: OnceLock<Bytes> = OnceLock::new();
    DOCUMENT
        .get_or_init(|| Bytes::from(document().to_string()))
        .clone()
}

/// Build the document from the route table.
pub fn document() -> Value {
    let mut paths = Map::new();
    for route in ROUTES {
        let item = paths
            .entry(route.pattern)
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(item) = item {
            item.insert(route.method.as_str().to_ascii_lowercase(), operation(route));
        }
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "readyd",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Production-readiness scores, gate, exemptions, tier changes and \
                tasks. Errors are `{\"error\": {\"code\", \"message\"}}`. Bearer tokens carry a \
                role (viewer, ci, owner:<team>, approver, admin); `x-readyd-permission` names \
                the permission class each operation needs. Reads work without a token only \
                when the daemon allows anonymous reads."
        },
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": schemas(),
        }
    })
}

fn operation(route: &Route) -> Value {
    let mut op = Map::new();
    op.insert("operationId".into(), json!(operation_id(route)));
    op.insert("summary".into(), json!(route.summary));
    op.insert("tags".into(), json!([tag(route.pattern)]));
    op.insert(
        "x-readyd-permission".into(),
        json!(route.permission.as_str()),
    );
    let security = match route.permission {
        Permission::Public => json!([]),
        // `{}` = no token, allowed when anonymous reads are on.
        Permission::Read | Permission::Gate => json!([{ "bearer": [] }, {}]),
        Permission::OwnerAction | Permission::Decide | Permission::Admin => {
            json!([{ "bearer": [] }])
        }
    };
    op.insert("security".into(), security);

    let mut parameters = Vec::new();
    for name in path_params(route.pattern) {
        parameters.push(json!({
            "name": name, "in": "path", "required": true, "schema": { "type": "string" }
        }));
    }
    for param in route.query {
        parameters.push(json!({
            "name": param.name,
            "in": "query",
            "required": false,
            "description": param.description,
            "schema": param_schema(param.kind),
        }));
    }
    if !parameters.is_empty() {
        op.insert("parameters".into(), Value::Array(parameters));
    }
    match route.body {
        BodySpec::None => {}
        BodySpec::Required(schema) | BodySpec::Optional(schema) => {
            op.insert(
                "requestBody".into(),
                json!({
                    "required": matches!(route.body, BodySpec::Required(_)),
                    "content": { "application/json": { "schema": reference(schema) } }
                }),
            );
        }
    }
    op.insert("responses".into(), responses(route));
    Value::Object(op)
}

fn responses(route: &Route) -> Value {
    let mut out = Map::new();
    match route.answer {
        Answer::One(status, schema) => {
            out.insert(
                status.to_string(),
                json!({ "description": "Success", "content": {
                    "application/json": { "schema": reference(schema) } } }),
            );
        }
        Answer::List(status, schema) => {
            out.insert(
                status.to_string(),
                json!({ "description": "Success", "content": {
                    "application/json": { "schema": array(reference(schema)) } } }),
            );
        }
        Answer::Empty => {
            out.insert("204".into(), json!({ "description": "Done" }));
        }
        Answer::Media(types) => {
            let content: Map<String, Value> = types
                .iter()
                .map(|t| {
                    let schema = if *t == "application/json" {
                        json!({ "type": "object" })
                    } else {
                        json!({ "type": "string" })
                    };
                    ((*t).to_owned(), json!({ "schema": schema }))
                })
                .collect();
            out.insert(
                "200".into(),
                json!({ "description": "Success", "content": content }),
            );
        }
    }
    let protected = route.permission != Permission::Public;
    let writes = matches!(
        route.permission,
        Permission::OwnerAction | Permission::Decide | Permission::Admin
    );
    let has_body = route.body != BodySpec::None;
    let errors: [(bool, &str, &str); 10] = [
        (protected, "400", "Malformed request: query, body or values"),
        (
            protected,
            "401",
            "No token where one is needed, or an unknown token",
        ),
        (
            writes,
            "403",
            "The token's role (or team) does not allow this",
        ),
        (
            !path_params(route.pattern).is_empty(),
            "404",
            "No such item",
        ),
        (has_body, "408", "The body did not arrive in time"),
        (writes, "409", "Conflicts with the current state"),
        (has_body, "413", "The body is larger than the limit"),
        (has_body, "415", "The body is not application/json"),
        (
            protected || route.pattern == "/readyz",
            "503",
            if matches!(route.endpoint, Endpoint::Gate | Endpoint::Readyz) {
                "Not ready (code `not_ready`): no standards set is in force, or its first \
                 evaluation is not committed yet; the gate never answers allowed then"
            } else {
                "Not available now (starting, shutting down)"
            },
        ),
        (true, "default", "Unexpected error"),
    ];
    for (applies, status, description) in errors {
        if applies {
            out.insert(
                status.to_owned(),
                json!({ "description": description, "content": {
                    "application/json": { "schema": reference("Error") } } }),
            );
        }
    }
    Value::Object(out)
}

fn operation_id(route: &Route) -> String {
    let name = format!("{:?}", route.endpoint);
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_ascii_lowercase().to_string() + chars.as_str(),
        None => name,
    }
}

fn tag(pattern: &str) -> &str {
    match pattern
        .trim_start_matches('/')
        .split('/')
        .collect::<Vec<_>>()[..]
    {
        ["v1", area, ..] => area,
        _ => "operations",
    }
}

/// The `{name}` parameters of a pattern, in order.
pub fn path_params(pattern: &str) -> Vec<&str> {
    pattern
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .collect()
}

fn param_schema(kind: ParamKind) -> Value {
    match kind {
        ParamKind::Text => json!({ "type": "string", "minLength": 1 }),
        ParamKind::Tier => tier(),
        _ => json!({ "type": "string", "enum": kind.choices() }),
    }
}

fn reference(schema: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{schema}") })
}

fn string() -> Value {
    json!({ "type": "string" })
}

fn timestamp() -> Value {
    json!({ "type": "string", "format": "date-time" })
}

fn tier() -> Value {
    json!({ "type": "integer", "minimum": 1, "maximum": 3 })
}

fn nullable(mut schema: Value) -> Value {
    if let Value::Object(map) = &mut schema {
        map.insert("nullable".into(), json!(true));
    }
    schema
}

fn array(items: Value) -> Value {
    json!({ "type": "array", "items": items })
}

fn free_object() -> Value {
    json!({ "type": "object", "additionalProperties": true })
}

/// An object schema. `closed` = the type denies unknown fields.
fn object(required: &[&str], properties: Value, closed: bool) -> Value {
    let mut schema = json!({ "type": "object", "properties": properties });
    if !required.is_empty() {
        schema["required"] = json!(required);
    }
    if closed {
        schema["additionalProperties"] = json!(false);
    }
    schema
}

fn schemas() -> Value {
    let rule_status = json!({ "type": "string",
        "enum": ["pass", "fail", "warn", "error", "not_applicable", "exempt"] });
    let identifier = json!({ "type": "string", "pattern": "^[a-z0-9][a-z0-9._-]*$" });
    let relations = json!({ "type": "object", "additionalProperties": array(string()) });
    let mut schemas = Map::new();
    let error = object(
        &["code", "message"],
        json!({
            "code": { "type": "string", "description": "Stable machine-readable code" },
            "message": { "type": "string", "description": "What went wrong, in plain words" },
        }),
        false,
    );
    schemas.insert(
        "Error".into(),
        object(&["error"], json!({ "error": error }), false),
    );
    schemas.insert(
        "Entity".into(),
        object(
            &[
                "identifier",
                "kind",
                "title",
                "properties",
                "origin",
                "degraded",
            ],
            json!({
                "identifier": identifier,
                "kind": string(),
                "title": string(),
                "team": string(),
                "tier": tier(),
                "properties": free_object(),
                "relations": relations,
                "origin": { "type": "string", "enum": ["catalog", "api"] },
                "catalog_tier": nullable(tier()),
                "degraded": { "type": "boolean" },
                "degraded_since": timestamp(),
                "lock": reference("Lock"),
            }),
            false,
        ),
    );
    schemas.insert(
        "EntityInput".into(),
        object(
            &["kind"],
            json!({
                "kind": string(),
                "title": nullable(string()),
                "team": nullable(string()),
                "tier": nullable(tier()),
                "properties": free_object(),
                "relations": relations,
            }),
            true,
        ),
    );
    schemas.insert(
        "FactRecord".into(),
        object(
            &["source", "facts", "collected_at", "plugin_version"],
            json!({
                "source": string(),
                "facts": free_object(),
                "collected_at": timestamp(),
                "plugin_version": string(),
                "stale_reason": string(),
            }),
            false,
        ),
    );
    schemas.insert(
        "EntityFacts".into(),
        json!({ "type": "object", "additionalProperties": reference("FactRecord") }),
    );
    schemas.insert(
        "RuleResult".into(),
        object(
            &[
                "rule",
                "level",
                "status",
                "weight",
                "evaluated_at",
                "changed_at",
            ],
            json!({
                "rule": string(),
                "level": string(),
                "status": rule_status,
                "message": string(),
                "details": {},
                "weight": { "type": "number" },
                "evaluated_at": timestamp(),
                "changed_at": timestamp(),
            }),
            false,
        ),
    );
    schemas.insert(
        "ScorecardResult".into(),
        object(
            &[
                "entity",
                "scorecard",
                "level",
                "level_index",
                "percent",
                "score",
                "rules",
                "evaluated_at",
            ],
            json!({
                "entity": string(),
                "scorecard": string(),
                "level": string(),
                "level_index": { "type": "integer", "minimum": 0 },
                "percent": { "type": "number" },
                "score": { "type": "number" },
                "rules": array(reference("RuleResult")),
                "evaluated_at": timestamp(),
            }),
            false,
        ),
    );
    schemas.insert(
        "Scorecard".into(),
        object(
            &[
                "identifier",
                "title",
                "description",
                "levels",
                "distribution",
                "entities",
                "rules",
                "definition",
            ],
            json!({
                "identifier": string(),
                "title": string(),
                "description": nullable(string()),
                "levels": array(string()),
                "distribution": array(object(&["level", "count", "color"], json!({
                    "level": string(), "count": { "type": "integer", "minimum": 0 },
                    "color": nullable(string()),
                }), false)),
                "entities": { "type": "integer", "minimum": 0 },
                "rules": array(reference("Rule")),
                "definition": {
                    "type": "object",
                    "description": "The scorecard as its file defines it: levels with Port's \
                                    `color`, rules with their queries as written.",
                },
            }),
            false,
        ),
    );
    schemas.insert(
        "Rule".into(),
        object(
            &[
                "identifier",
                "title",
                "level",
                "description",
                "weight",
                "kind",
                "passing",
                "applicable",
            ],
            json!({
                "identifier": string(),
                "title": string(),
                "level": string(),
                "description": nullable(string()),
                "weight": { "type": "number" },
                "kind": { "type": "string", "description": "`query` or the check plugin's name" },
                "passing": { "type": "integer", "minimum": 0 },
                "applicable": { "type": "integer", "minimum": 0 },
            }),
            false,
        ),
    );
    schemas.insert(
        "LevelChange".into(),
        object(
            &[
                "entity",
                "scorecard",
                "from",
                "to",
                "from_index",
                "to_index",
                "percent",
                "at",
            ],
            json!({
                "entity": string(),
                "scorecard": string(),
                "from": nullable(string()),
                "to": string(),
                "from_index": nullable(json!({ "type": "integer", "minimum": 0 })),
                "to_index": { "type": "integer", "minimum": 0 },
                "percent": { "type": "number" },
                "at": timestamp(),
            }),
            false,
        ),
    );
    schemas.insert(
        "GateAnswer".into(),
        object(
            &["entity", "allowed", "reasons", "evaluated_at"],
            json!({
                "entity": string(),
                "allowed": { "type": "boolean" },
                "reasons": array(string()),
                "evaluated_at": nullable(timestamp()),
            }),
            false,
        ),
    );
    schemas.insert(
        "Lock".into(),
        object(
            &["entity", "reason", "locked_by", "locked_at"],
            json!({
                "entity": string(),
                "reason": string(),
                "locked_by": string(),
                "locked_at": timestamp(),
            }),
            false,
        ),
    );
    schemas.insert(
        "LockInput".into(),
        object(&["reason"], json!({ "reason": string() }), true),
    );
    schemas.insert(
        "DecisionInput".into(),
        object(&[], json!({ "note": nullable(string()) }), true),
    );
    schemas.insert(
        "AuditEntry".into(),
        object(
            &["actor", "action", "at"],
            json!({
                "actor": string(),
                "action": string(),
                "at": timestamp(),
                "note": string(),
            }),
            false,
        ),
    );
    schemas.insert(
        "Exemption".into(),
        object(
            &[
                "id",
                "entity",
                "scorecard",
                "reason",
                "until",
                "requested_by",
                "requested_at",
                "status",
                "history",
            ],
            json!({
                "id": string(),
                "entity": string(),
                "scorecard": string(),
                "rule": { "type": "string", "description": "Absent: the whole scorecard" },
                "reason": string(),
                "until": timestamp(),
                "requested_by": string(),
                "requested_at": timestamp(),
                "status": { "type": "string", "enum": ParamKind::ExemptionStatus.choices() },
                "history": array(reference("AuditEntry")),
            }),
            false,
        ),
    );
    schemas.insert(
        "ExemptionInput".into(),
        object(
            &["entity", "scorecard", "reason", "until"],
            json!({
                "entity": string(),
                "scorecard": string(),
                "rule": nullable(string()),
                "reason": string(),
                "until": timestamp(),
            }),
            true,
        ),
    );
    schemas.insert(
        "TierRequest".into(),
        object(
            &[
                "id",
                "entity",
                "from",
                "to",
                "reason",
                "requested_by",
                "requested_at",
                "status",
                "history",
            ],
            json!({
                "id": string(),
                "entity": string(),
                "from": nullable(tier()),
                "to": nullable(tier()),
                "reason": string(),
                "requested_by": string(),
                "requested_at": timestamp(),
                "status": { "type": "string", "enum": ParamKind::TierRequestStatus.choices() },
                "history": array(reference("AuditEntry")),
            }),
            false,
        ),
    );
    schemas.insert(
        "TierRequestInput".into(),
        object(
            &["entity", "reason"],
            json!({
                "entity": string(),
                "to": nullable(json!({ "type": "integer", "minimum": 1, "maximum": 3,
                    "description": "The tier asked for; null or absent removes the tier" })),
                "reason": string(),
            }),
            true,
        ),
    );
    schemas.insert(
        "Task".into(),
        object(
            &[
                "id",
                "entity",
                "scorecard",
                "rule",
                "title",
                "created_at",
                "due",
                "status",
                "reminded",
            ],
            json!({
                "id": string(),
                "entity": string(),
                "team": string(),
                "scorecard": string(),
                "rule": string(),
                "title": string(),
                "message": string(),
                "created_at": timestamp(),
                "due": timestamp(),
                "status": { "type": "string", "enum": ParamKind::TaskStatus.choices() },
                "closed_at": timestamp(),
                "reminded": { "type": "boolean" },
            }),
            false,
        ),
    );
    schemas.insert(
        "RefreshAnswer".into(),
        object(
            &["entity", "sources", "scores"],
            json!({
                "entity": string(),
                "sources": array(object(&["source", "ok"], json!({
                    "source": string(),
                    "ok": { "type": "boolean" },
                    "error": string(),
                }), false)),
                "scores": array(reference("ScorecardResult")),
            }),
            false,
        ),
    );
    schemas.insert("Initiative".into(), free_object());
    schemas.insert("NudgeAnswer".into(), free_object());
    schemas.insert("ReloadAnswer".into(), free_object());
    schemas.insert("Status".into(), free_object());
    schemas.insert("DeadLetter".into(), free_object());
    schemas.insert(
        "Liveness".into(),
        object(
            &["status"],
            json!({ "status": { "type": "string", "enum": ["ok"] } }),
            false,
        ),
    );
    schemas.insert(
        "Readiness".into(),
        object(&["ready"], json!({ "ready": { "type": "boolean" } }), false),
    );
    Value::Object(schemas)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use chrono::TimeZone;
    use serde::Serialize;
    use serde::de::DeserializeOwned;

    use super::*;
    use crate::engine::{
        DecisionInput, EntityInput, EntityView, ExemptionInput, GateAnswer, LevelCount, LockInput,
        RefreshAnswer, RuleView, ScorecardView, SourceOutcome, TierRequestInput,
    };
    use crate::model::*;

    fn schema(name: &str) -> Value {
        document()["components"]["schemas"][name].clone()
    }

    fn keys(value: &Value) -> BTreeSet<String> {
        value
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// A value with every optional field set must show exactly the schema's properties, and
    /// every required property. Nested objects named by `$ref` are checked the same way.
    fn assert_matches(name: &str, value: &Value) {
        let schema = schema(name);
        assert_object_matches(name, &schema, value);
    }

    fn assert_object_matches(what: &str, schema: &Value, value: &Value) {
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            let name = reference.rsplit('/').next().unwrap();
            return assert_object_matches(name, &super::schemas()[name], value);
        }
        match schema.get("type").and_then(Value::as_str) {
            Some("object") if schema.get("properties").is_some() => {
                let props = &schema["properties"];
                assert_eq!(keys(props), keys(value), "{what}: properties differ");
                for required in schema["required"].as_array().into_iter().flatten() {
                    assert!(
                        value.get(required.as_str().unwrap()).is_some(),
                        "{what}: {required}"
                    );
                }
                for (key, sub) in props.as_object().unwrap() {
                    assert_object_matches(&format!("{what}.{key}"), sub, &value[key]);
                }
            }
            Some("array") => {
                for item in value.as_array().unwrap() {
                    assert_object_matches(what, &schema["items"], item);
                }
            }
            _ => {}
        }
    }

    fn at() -> Timestamp {
        Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()
    }

    use chrono::Utc;

    fn sample_result() -> ScorecardResult {
        ScorecardResult {
            entity: "e".into(),
            scorecard: "s".into(),
            level: "Gold".into(),
            level_index: 3,
            percent: 100.0,
            score: 100.0,
            rules: vec![RuleResult {
                rule: "r".into(),
                level: "Gold".into(),
                status: RuleStatus::Pass,
                message: Some("m".into()),
                details: Some(std::sync::Arc::new(json!({"x": 1}))),
                weight: 1.0,
                evaluated_at: at(),
                changed_at: at(),
            }],
            evaluated_at: at(),
        }
    }

    fn to_value<T: Serialize>(value: &T) -> Value {
        serde_json::to_value(value).unwrap()
    }

    #[test]
    fn answer_schemas_match_the_serialized_types() {
        let audit = AuditEntry {
            actor: "a".into(),
            action: "approved".into(),
            at: at(),
            note: Some("n".into()),
        };
        let lock = Lock {
            entity: "e".into(),
            reason: "r".into(),
            locked_by: "a".into(),
            locked_at: at(),
        };
        let entity = EntityView {
            entity: Entity {
                identifier: "e".into(),
                kind: "service".into(),
                title: "E".into(),
                team: Some("t".into()),
                tier: Some(1),
                properties: JsonObject::new(),
                relations: BTreeMap::from([("uses".into(), vec!["x".into()])]),
            },
            origin: "api".into(),
            catalog_tier: Some(Some(2)),
            degraded: true,
            degraded_since: Some(at()),
            lock: Some(lock.clone()),
        };
        assert_matches("Entity", &to_value(&entity));
        assert_matches("Lock", &to_value(&lock));
        assert_matches("ScorecardResult", &to_value(&sample_result()));
        assert_matches(
            "FactRecord",
            &to_value(&FactRecord {
                source: "s".into(),
                facts: JsonObject::new(),
                collected_at: at(),
                plugin_version: "v".into(),
                stale_reason: Some("r".into()),
            }),
        );
        assert_matches(
            "Scorecard",
            &to_value(&ScorecardView {
                identifier: "s".into(),
                title: "S".into(),
                description: None,
                levels: vec!["Basic".into()],
                distribution: vec![LevelCount {
                    level: "Basic".into(),
                    count: 1,
                    color: Some("paleBlue".into()),
                }],
                entities: 1,
                rules: vec![RuleView {
                    identifier: "r".into(),
                    title: "R".into(),
                    level: "Basic".into(),
                    description: None,
                    weight: 1.0,
                    kind: "query".into(),
                    passing: 0,
                    applicable: 1,
                }],
                definition: std::sync::Arc::new(
                    crate::standards::parse_scorecard(
                        std::path::Path::new("s.json"),
                        r#"{"identifier": "s", "rules": []}"#,
                        &crate::standards::NoPlugins,
                    )
                    .unwrap(),
                ),
            }),
        );
        assert_matches(
            "LevelChange",
            &to_value(&LevelChange {
                entity: "e".into(),
                scorecard: "s".into(),
                from: None,
                to: "Gold".into(),
                from_index: None,
                to_index: 3,
                percent: 100.0,
                at: at(),
            }),
        );
        assert_matches(
            "GateAnswer",
            &to_value(&GateAnswer {
                entity: "e".into(),
                allowed: false,
                reasons: vec!["locked".into()],
                evaluated_at: Some(at()),
            }),
        );
        assert_matches(
            "Exemption",
            &to_value(&Exemption {
                id: "x".into(),
                entity: "e".into(),
                scorecard: "s".into(),
                rule: Some("r".into()),
                reason: "r".into(),
                until: at(),
                requested_by: "a".into(),
                requested_at: at(),
                status: ExemptionStatus::Pending,
                history: vec![audit.clone()],
            }),
        );
        assert_matches(
            "TierRequest",
            &to_value(&TierRequest {
                id: "x".into(),
                entity: "e".into(),
                from: Some(3),
                to: Some(1),
                reason: "r".into(),
                requested_by: "a".into(),
                requested_at: at(),
                status: TierRequestStatus::Approved,
                history: vec![audit],
            }),
        );
        assert_matches(
            "Task",
            &to_value(&Task {
                id: "x".into(),
                entity: "e".into(),
                team: Some("t".into()),
                scorecard: "s".into(),
                rule: "r".into(),
                title: "T".into(),
                message: Some("m".into()),
                created_at: at(),
                due: at(),
                status: TaskStatus::Done,
                closed_at: Some(at()),
                reminded: true,
            }),
        );
        assert_matches(
            "RefreshAnswer",
            &to_value(&RefreshAnswer {
                entity: "e".into(),
                sources: vec![SourceOutcome {
                    source: "s".into(),
                    ok: false,
                    error: Some("e".into()),
                }],
                scores: vec![sample_result()],
            }),
        );
    }

    /// An input schema must describe exactly what its type accepts.
    fn check_input<T: DeserializeOwned>(name: &str, full: Value) {
        let schema = schema(name);
        assert_eq!(schema["additionalProperties"], json!(false), "{name}");
        assert_eq!(
            keys(&schema["properties"]),
            keys(&full),
            "{name}: properties"
        );
        serde_json::from_value::<T>(full.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let required: Vec<String> = schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        let minimal: Map<String, Value> = full
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| required.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        serde_json::from_value::<T>(Value::Object(minimal.clone()))
            .unwrap_or_else(|e| panic!("{name} with only the required fields: {e}"));
        for field in &required {
            let mut missing = minimal.clone();
            missing.remove(field);
            assert!(
                serde_json::from_value::<T>(Value::Object(missing)).is_err(),
                "{name} accepted a body without `{field}`"
            );
        }
        let mut extra = full.as_object().unwrap().clone();
        extra.insert("unexpected".into(), json!(1));
        assert!(
            serde_json::from_value::<T>(Value::Object(extra)).is_err(),
            "{name}"
        );
        // Fields the schema says may be null must accept null.
        for (key, sub) in schema["properties"].as_object().unwrap() {
            if sub.get("nullable") == Some(&json!(true)) {
                let mut with_null = full.as_object().unwrap().clone();
                with_null.insert(key.clone(), Value::Null);
                serde_json::from_value::<T>(Value::Object(with_null))
                    .unwrap_or_else(|e| panic!("{name}.{key} = null: {e}"));
            }
        }
    }

    #[test]
    fn input_schemas_match_the_deserialized_types() {
        check_input::<EntityInput>(
            "EntityInput",
            json!({"kind": "service", "title": "T", "team": "t", "tier": 2,
                   "properties": {"a": 1}, "relations": {"uses": ["x"]}}),
        );
        check_input::<ExemptionInput>(
            "ExemptionInput",
            json!({"entity": "e", "scorecard": "s", "rule": "r", "reason": "why",
                   "until": "2030-01-01T00:00:00Z"}),
        );
        check_input::<TierRequestInput>(
            "TierRequestInput",
            json!({"entity": "e", "to": 1, "reason": "why"}),
        );
        check_input::<LockInput>("LockInput", json!({"reason": "freeze"}));
        check_input::<DecisionInput>("DecisionInput", json!({"note": "ok"}));
    }

    #[test]
    fn every_route_is_documented_and_every_reference_resolves() {
        let doc = document();
        for route in ROUTES {
            let method = route.method.as_str().to_ascii_lowercase();
            let op = &doc["paths"][route.pattern][&method];
            assert!(op.is_object(), "{} {} missing", route.method, route.pattern);
            assert_eq!(op["x-readyd-permission"], route.permission.as_str());
        }
        let operations: usize = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|item| item.as_object().unwrap().len())
            .sum();
        assert_eq!(operations, ROUTES.len());
        let schemas = keys(&doc["components"]["schemas"]);
        let text = doc.to_string();
        for part in text.split("#/components/schemas/").skip(1) {
            let name = part.split('"').next().unwrap();
            assert!(schemas.contains(name), "unresolved reference {name}");
        }
        let ids: BTreeSet<_> = ROUTES.iter().map(operation_id).collect();
        assert_eq!(ids.len(), ROUTES.len());
        assert!(document_bytes().starts_with(b"{\"openapi\":\"3.0.3\""));
    }

    /// The gate and `/readyz` document their 503 `not_ready` (fail closed): a CI client reading
    /// the document learns that the gate may refuse to answer.
    #[test]
    fn the_gate_and_readyz_document_not_ready() {
        let doc = document();
        for (path, schema) in [("/v1/gate/{id}", "GateAnswer"), ("/readyz", "Readiness")] {
            let responses = &doc["paths"][path]["get"]["responses"];
            let not_ready = responses["503"]["description"].as_str().unwrap_or_default();
            assert!(not_ready.contains("not_ready"), "{path}: {responses}");
            assert!(responses["200"].to_string().contains(schema), "{path}");
        }
    }
}
