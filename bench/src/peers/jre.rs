//! json-rules-engine, the peer Backstage Tech Insights runs: the shared rule set in its JSON
//! format, each entity's facts as the flat runtime facts its rules read, and the run of
//! `bench/peers/node/bench.js` on the machine's node.
//!
//! Facts are named after readyd's property paths (`$kind`, `language`,
//! `facts.prometheus.availability`), one runtime fact per leaf value, which is how Tech Insights
//! hands facts to the engine (one named fact per retrieved value, no JSONPath lookups). The
//! engine is created once with all 50 rules and run once per entity with
//! `allowUndefinedFacts`, as Tech Insights does; `bench.js` runs a warm-up pass first (the JIT)
//! and reports the time of each timed pass and its pass/fail matrix.
//!
//! This module never installs anything: `bench/run.sh` runs `npm ci`; without node or without
//! `node_modules` the peer is skipped with the reason.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use readyd::model::{Entity, EntityFacts, JsonObject};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Matrix, Node, Op, SharedRule};

/// Where `bench.js`, `package.json` and (after `npm ci`) `node_modules` are.
pub fn node_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("peers")
        .join("node")
}

fn operator(op: Op) -> &'static str {
    match op {
        Op::Eq => "equal",
        Op::Ne => "notEqual",
        Op::Lt => "lessThan",
        Op::Le => "lessThanInclusive",
        Op::Gt => "greaterThan",
        Op::Ge => "greaterThanInclusive",
        Op::In => "in",
        Op::NotIn => "notIn",
        Op::Contains => "contains",
    }
}

fn conditions(node: &Node) -> Value {
    match node {
        Node::Cond { path, op, value } => {
            json!({ "fact": path, "operator": operator(*op), "value": value })
        }
        Node::All(children) => {
            json!({ "all": children.iter().map(conditions).collect::<Vec<_>>() })
        }
        Node::Any(children) => {
            json!({ "any": children.iter().map(conditions).collect::<Vec<_>>() })
        }
    }
}

/// The rules in json-rules-engine's format; each rule's `name` is its index in the set.
pub fn rules(set: &[SharedRule]) -> Value {
    Value::Array(
        set.iter()
            .enumerate()
            .map(|(i, rule)| {
                json!({
                    "name": i.to_string(),
                    "conditions": conditions(&rule.query),
                    "event": { "type": rule.key() },
                })
            })
            .collect(),
    )
}

fn flatten(prefix: &str, object: &JsonObject, out: &mut JsonObject) {
    for (key, value) in object {
        let name = format!("{prefix}{key}");
        match value {
            Value::Object(inner) => flatten(&format!("{name}."), inner, out),
            Value::Null => {}
            leaf => {
                out.insert(name, leaf.clone());
            }
        }
    }
}

/// An entity's runtime facts: one per leaf, named by readyd's property path. Absent values have
/// no fact at all (readyd's "missing").
pub fn flat_facts(entity: &Entity, facts: &EntityFacts) -> Value {
    let mut out = JsonObject::new();
    out.insert("$identifier".into(), json!(entity.identifier));
    out.insert("$kind".into(), json!(entity.kind));
    out.insert("$title".into(), json!(entity.title));
    if let Some(team) = &entity.team {
        out.insert("$team".into(), json!(team));
    }
    if let Some(tier) = entity.tier {
        out.insert("$tier".into(), json!(tier));
    }
    flatten("", &entity.properties, &mut out);
    for (source, record) in facts {
        flatten(&format!("facts.{source}."), &record.facts, &mut out);
    }
    Value::Object(out)
}

/// What `bench.js` prints.
#[derive(Deserialize)]
struct NodeAnswer {
    version: String,
    node: String,
    runs_ms: Vec<f64>,
    evaluations: u64,
    /// One string per entity: `1` pass, `0` fail, `?` not reported, per rule.
    matrix: Vec<String>,
}

/// The peer's timing and answers.
pub struct NodeRun {
    /// `json-rules-engine 7.3.1 (node v20…)`.
    pub label: String,
    pub times: Vec<Duration>,
    pub evaluations: u64,
    pub matrix: Matrix,
}

/// Why the node peer cannot run here, if it cannot.
pub fn unavailable() -> Option<String> {
    match Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        _ => return Some("`node` is not installed".into()),
    }
    let module = node_dir().join("node_modules").join("json-rules-engine");
    if !module.is_dir() {
        return Some(format!(
            "json-rules-engine is not installed in {} (bench/run.sh runs `npm ci` there)",
            node_dir().display()
        ));
    }
    None
}

/// Runs `bench.js` on the written inputs: a warm-up pass, then `runs` timed passes.
pub fn run(peers_dir: &Path, matrix_shape: &Matrix, runs: usize) -> anyhow::Result<NodeRun> {
    let script = node_dir().join("bench.js");
    let out = Command::new("node")
        .arg(&script)
        .arg(peers_dir.join("jre-rules.json"))
        .arg(peers_dir.join("jre-facts.json"))
        .arg(runs.max(1).to_string())
        .current_dir(node_dir())
        .output()
        .with_context(|| format!("running node {}", script.display()))?;
    if !out.status.success() {
        return Err(anyhow!(
            "node {} failed ({}): {}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let answer: NodeAnswer =
        serde_json::from_slice(&out.stdout).context("reading bench.js's answer")?;
    let n = matrix_shape.rules.len();
    let mut passed = Vec::with_capacity(answer.matrix.len() * n);
    for (e, row) in answer.matrix.iter().enumerate() {
        if row.len() != n {
            return Err(anyhow!(
                "bench.js answered {} rules for entity #{e}, expected {n}",
                row.len()
            ));
        }
        for (r, bit) in row.bytes().enumerate() {
            passed.push(match bit {
                b'1' => true,
                b'0' => false,
                _ => {
                    return Err(anyhow!(
                        "json-rules-engine reported nothing for rule {} on {}",
                        matrix_shape.rules[r],
                        matrix_shape.entities.get(e).map_or("?", String::as_str)
                    ));
                }
            });
        }
    }
    Ok(NodeRun {
        label: format!(
            "json-rules-engine {} (node {})",
            answer.version, answer.node
        ),
        times: answer
            .runs_ms
            .iter()
            .map(|ms| Duration::from_secs_f64(ms / 1000.0))
            .collect(),
        evaluations: answer.evaluations,
        matrix: Matrix {
            entities: matrix_shape.entities.clone(),
            rules: matrix_shape.rules.clone(),
            passed,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use readyd::model::FactRecord;

    #[test]
    fn facts_are_flat_and_absent_values_have_no_fact() {
        let mut entity = Entity {
            identifier: "a".into(),
            kind: "service".into(),
            title: "A".into(),
            team: None,
            tier: Some(2),
            properties: JsonObject::new(),
            relations: Default::default(),
        };
        entity.properties.insert("tags".into(), json!(["pci"]));
        entity.properties.insert("gone".into(), Value::Null);
        let mut facts = EntityFacts::new();
        let Value::Object(object) =
            json!({ "slo": { "error_budget_remaining": 0.5 }, "availability": 99.9 })
        else {
            unreachable!()
        };
        facts.insert(
            "prometheus".into(),
            FactRecord {
                source: "prometheus".into(),
                facts: object,
                collected_at: chrono::Utc::now(),
                plugin_version: "x".into(),
                stale_reason: None,
            },
        );
        let flat = flat_facts(&entity, &facts);
        assert_eq!(flat["$tier"], json!(2));
        assert!(flat.get("$team").is_none());
        assert!(flat.get("gone").is_none());
        assert_eq!(flat["tags"], json!(["pci"]));
        assert_eq!(
            flat["facts.prometheus.slo.error_budget_remaining"],
            json!(0.5)
        );
        assert_eq!(flat["facts.prometheus.availability"], json!(99.9));
    }

    #[test]
    fn rules_translate_combinators_and_operators() {
        let set = vec![SharedRule {
            scorecard: "s",
            rule: "r",
            level: "Bronze",
            query: Node::Any(vec![
                Node::Cond {
                    path: "$tier",
                    op: Op::Le,
                    value: json!(2),
                },
                Node::All(vec![Node::Cond {
                    path: "tags",
                    op: Op::Contains,
                    value: json!("pci"),
                }]),
            ]),
        }];
        let rules = rules(&set);
        assert_eq!(rules[0]["name"], "0");
        assert_eq!(
            rules[0]["conditions"]["any"][0]["operator"],
            "lessThanInclusive"
        );
        assert_eq!(
            rules[0]["conditions"]["any"][1]["all"][0]["operator"],
            "contains"
        );
    }
}
