//! regorus, a Rust implementation of OPA's Rego: the shared rule set written as one Rego policy
//! (generated), evaluated once per entity with the entity as `input`.
//!
//! Translation: rule `i` is `r<i>` with `default r<i> := false`; an `and` is one rule body, an
//! `or` one definition per alternative, nested queries become helper rules. `results` collects
//! the 50 booleans in the set's order. Conditions read `input.kind`, `input.tier`, …,
//! `input.properties.<p>` and `input.facts.<source>.<path>`; an absent value is undefined in
//! Rego, so a body reading it fails, which is readyd's "missing data fails". Numeric comparisons
//! are guarded with `is_number` (Rego orders values of different types) and `notIn` binds the
//! value first (so an absent value does not make `not … in …` true).
//!
//! The engine is built once (policy parsed and compiled); each entity's input is converted to
//! regorus's value type before the clock starts, so the timing is evaluation only.

use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use readyd::model::{Entity, EntityFacts};
use serde_json::{Value, json};

use super::{Matrix, Node, Op, SharedRule};

/// The package of the generated policy, and the rule read per entity.
pub const PACKAGE: &str = "readyd.bench";
const RESULTS: &str = "data.readyd.bench.results";

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !matches!(
            s,
            "in" | "if"
                | "not"
                | "some"
                | "every"
                | "contains"
                | "default"
                | "else"
                | "with"
                | "as"
                | "import"
                | "package"
        )
}

/// `$kind` → `input.kind`; `facts.git.x` → `input.facts.git.x`; `p` → `input.properties.p`.
fn reference(path: &str) -> String {
    let segments: Vec<&str> = if let Some(builtin) = path.strip_prefix('$') {
        vec![builtin]
    } else if path.starts_with("facts.") {
        path.split('.').collect()
    } else {
        std::iter::once("properties")
            .chain(path.split('.'))
            .collect()
    };
    let mut out = String::from("input");
    for s in segments {
        if is_identifier(s) {
            out.push('.');
            out.push_str(s);
        } else {
            out.push_str(&format!("[{}]", Value::String(s.to_owned())));
        }
    }
    out
}

fn set_literal(value: &Value) -> String {
    let items: Vec<String> = value
        .as_array()
        .map(|items| items.iter().map(Value::to_string).collect())
        .unwrap_or_else(|| vec![value.to_string()]);
    format!("{{{}}}", items.join(", "))
}

/// Collects rule definitions while translating.
struct Writer {
    out: String,
    locals: usize,
}

impl Writer {
    /// The expressions of one condition, for a rule body.
    fn condition(&mut self, path: &str, op: Op, value: &Value) -> Vec<String> {
        let p = reference(path);
        let v = value.to_string();
        match op {
            Op::Eq => vec![format!("{p} == {v}")],
            Op::Ne => vec![format!("{p} != {v}")],
            Op::Lt | Op::Le | Op::Gt | Op::Ge => {
                let sym = match op {
                    Op::Lt => "<",
                    Op::Le => "<=",
                    Op::Gt => ">",
                    _ => ">=",
                };
                vec![format!("is_number({p})"), format!("{p} {sym} {v}")]
            }
            Op::In => vec![format!("{p} in {}", set_literal(value))],
            Op::NotIn => {
                self.locals += 1;
                let x = format!("x{}", self.locals);
                vec![
                    format!("{x} := {p}"),
                    format!("not {x} in {}", set_literal(value)),
                ]
            }
            Op::Contains => vec![format!("{v} in {p}")],
        }
    }

    /// The expressions standing for `node` inside a body of `name` (helpers named after it).
    fn operand(&mut self, name: &str, k: usize, node: &Node) -> Vec<String> {
        match node {
            Node::Cond { path, op, value } => self.condition(path, *op, value),
            nested => {
                let helper = format!("{name}_{k}");
                self.rule(&helper, nested);
                vec![helper]
            }
        }
    }

    fn body(&mut self, name: &str, exprs: &[String]) {
        self.out.push_str(&format!("{name} if {{\n"));
        for e in exprs {
            self.out.push_str(&format!("\t{e}\n"));
        }
        self.out.push_str("}\n\n");
    }

    fn rule(&mut self, name: &str, node: &Node) {
        match node {
            Node::All(children) => {
                let exprs: Vec<String> = children
                    .iter()
                    .enumerate()
                    .flat_map(|(k, child)| self.operand(name, k, child))
                    .collect();
                self.body(name, &exprs);
            }
            Node::Any(children) => {
                for (k, child) in children.iter().enumerate() {
                    let exprs = self.operand(name, k, child);
                    self.body(name, &exprs);
                }
            }
            cond @ Node::Cond { .. } => {
                let exprs = self.operand(name, 0, cond);
                self.body(name, &exprs);
            }
        }
    }
}

/// The shared rule set as one Rego (v1) policy.
pub fn policy(set: &[SharedRule]) -> String {
    let mut w = Writer {
        out: format!(
            "# Generated by readyd-bench from the shared rule set (bench/src/peers/mod.rs).\npackage {PACKAGE}\n\n"
        ),
        locals: 0,
    };
    for (i, rule) in set.iter().enumerate() {
        w.out
            .push_str(&format!("# {}\ndefault r{i} := false\n\n", rule.key()));
        w.rule(&format!("r{i}"), &rule.query);
    }
    let all: Vec<String> = (0..set.len()).map(|i| format!("r{i}")).collect();
    w.out
        .push_str(&format!("results := [{}]\n", all.join(", ")));
    w.out
}

/// The `input` document of one entity.
pub fn input(entity: &Entity, facts: &EntityFacts) -> Value {
    let mut doc = json!({
        "identifier": entity.identifier,
        "kind": entity.kind,
        "title": entity.title,
        "properties": entity.properties,
        "facts": facts.iter().map(|(s, r)| (s.clone(), Value::Object(r.facts.clone()))).collect::<serde_json::Map<_, _>>(),
    });
    if let Some(team) = &entity.team {
        doc["team"] = json!(team);
    }
    if let Some(tier) = entity.tier {
        doc["tier"] = json!(tier);
    }
    doc
}

/// regorus's timing and answers.
pub struct RegoRun {
    pub times: Vec<Duration>,
    pub matrix: Matrix,
}

/// Evaluates `inputs` (one per entity, in `shape`'s order) `runs` times after one warm-up pass.
pub fn run(
    set: &[SharedRule],
    inputs: &[Value],
    shape: &Matrix,
    runs: usize,
) -> anyhow::Result<RegoRun> {
    let mut engine = regorus::Engine::new();
    engine
        .add_policy("readyd-bench.rego".into(), policy(set))
        .map_err(|e| anyhow!("regorus refused the generated policy: {e}"))?;
    let values: Vec<regorus::Value> = inputs
        .iter()
        .map(|v| regorus::Value::from(v.clone()))
        .collect();
    let pass = |engine: &mut regorus::Engine| -> anyhow::Result<Vec<bool>> {
        let mut passed = Vec::with_capacity(values.len() * set.len());
        for (e, value) in values.iter().enumerate() {
            engine.set_input(value.clone());
            let answer = engine
                .eval_rule(RESULTS.into())
                .map_err(|err| anyhow!("regorus failed on {}: {err}", shape.entities[e]))?;
            let array = answer.as_array().map_err(|err| {
                anyhow!("regorus answered {answer} for {}: {err}", shape.entities[e])
            })?;
            if array.len() != set.len() {
                return Err(anyhow!(
                    "regorus answered {} rules, expected {}",
                    array.len(),
                    set.len()
                ));
            }
            for v in array.iter() {
                passed.push(
                    *v.as_bool()
                        .map_err(|err| anyhow!("regorus answered {v}: {err}"))?,
                );
            }
        }
        Ok(passed)
    };
    pass(&mut engine).context("warm-up pass")?;
    let mut times = Vec::with_capacity(runs);
    let mut passed = Vec::new();
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        passed = pass(&mut engine)?;
        times.push(started.elapsed());
    }
    Ok(RegoRun {
        times,
        matrix: Matrix {
            entities: shape.entities.clone(),
            rules: shape.rules.clone(),
            passed,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_and_missing_values() {
        assert_eq!(reference("$kind"), "input.kind");
        assert_eq!(
            reference("facts.prometheus.slo.error_budget_remaining"),
            "input.facts.prometheus.slo.error_budget_remaining"
        );
        assert_eq!(reference("tags"), "input.properties.tags");
        assert_eq!(
            reference("facts.my-src.in"),
            "input.facts[\"my-src\"][\"in\"]"
        );

        let set = vec![
            SharedRule {
                scorecard: "s",
                rule: "not-in",
                level: "Bronze",
                query: Node::All(vec![Node::Cond {
                    path: "lang",
                    op: Op::NotIn,
                    value: json!(["python"]),
                }]),
            },
            SharedRule {
                scorecard: "s",
                rule: "or",
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
            },
        ];
        let mut engine = regorus::Engine::new();
        engine.add_policy("t.rego".into(), policy(&set)).unwrap();
        let mut eval = |input: Value| -> Vec<bool> {
            engine.set_input(regorus::Value::from(input));
            let v = engine.eval_rule(RESULTS.into()).unwrap();
            v.as_array()
                .unwrap()
                .iter()
                .map(|b| *b.as_bool().unwrap())
                .collect()
        };
        // Absent values fail, negation included.
        assert_eq!(eval(json!({ "properties": {} })), vec![false, false]);
        assert_eq!(
            eval(json!({ "properties": { "lang": "rust" }, "tier": 3 })),
            vec![true, false]
        );
        assert_eq!(
            eval(json!({ "properties": { "lang": "python", "tags": ["pci"] } })),
            vec![false, true]
        );
        // A string is not a number: no cross-type ordering.
        assert_eq!(
            eval(json!({ "properties": {}, "tier": "1" })),
            vec![false, false]
        );
    }
}
