//! The peers: the same rules on the same facts, evaluated by readyd, by json-rules-engine (the
//! rules engine Backstage Tech Insights runs, on the machine's node) and by regorus (a Rust
//! implementation of OPA's Rego), with a check that all three give the same pass/fail for every
//! (entity, rule) before any timing is reported.
//!
//! Main types: [`SharedRule`] and its query tree [`Node`] — the one source of the shared rule
//! set, translated to readyd scorecards ([`readyd_scorecards`]), to json-rules-engine rules
//! ([`jre`]) and to a Rego policy ([`rego`]) — and [`Matrix`], the pass/fail answers of one
//! engine, compared by [`disagreements`].
//!
//! The shared rule set uses only what all three express exactly: `=`, `!=`, `<`, `<=`, `>`,
//! `>=`, `in`, `notIn`, `contains` (membership in a list) and nested `and`/`or`, over entity
//! fields, properties and facts. json-rules-engine has no string-prefix, regex, date-range,
//! semver or emptiness operator without custom code, so readyd's other operators are left out
//! here (they are measured in the evaluator's own workload). Missing data: readyd makes every
//! condition on an absent value false, negations included; json-rules-engine's `notEqual` and
//! `notIn` are true on an absent fact. The set therefore negates only values every entity has
//! (`$kind`, `lifecycle`, `language`); a test pins that. Rego's comparison operators order
//! values of different types, so numeric comparisons are guarded by `is_number`.
//!
//! This module never changes the answers it compares.

pub mod jre;
pub mod rego;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use readyd::eval::{self, EvalInput, NoChecks};
use readyd::model::{Entity, EntityFacts, RuleStatus};
use readyd::standards::Standards;
use serde_json::{Value, json};

/// The operators the three engines share.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    NotIn,
    /// The value (a list) has the operand as an element.
    Contains,
}

impl Op {
    /// readyd's spelling.
    pub fn readyd(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::In => "in",
            Op::NotIn => "notIn",
            Op::Contains => "contains",
        }
    }

    pub fn is_negation(self) -> bool {
        matches!(self, Op::Ne | Op::NotIn)
    }
}

/// A query of the shared rule set.
#[derive(Clone, Debug)]
pub enum Node {
    /// `{property, operator, value}`; `path` is readyd's property path.
    Cond {
        path: &'static str,
        op: Op,
        value: Value,
    },
    All(Vec<Node>),
    Any(Vec<Node>),
}

/// One rule of the shared set.
#[derive(Clone, Debug)]
pub struct SharedRule {
    pub scorecard: &'static str,
    pub rule: &'static str,
    pub level: &'static str,
    /// `All` or `Any` at the top.
    pub query: Node,
}

impl SharedRule {
    /// `scorecard/rule`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.scorecard, self.rule)
    }
}

/// Paths every generated entity has a value for: the only ones the set negates.
pub const ALWAYS_PRESENT: [&str; 4] = ["$identifier", "$kind", "lifecycle", "language"];

fn c(path: &'static str, op: Op, value: Value) -> Node {
    Node::Cond { path, op, value }
}

fn r(scorecard: &'static str, rule: &'static str, level: &'static str, query: Node) -> SharedRule {
    let query = match query {
        q @ (Node::All(_) | Node::Any(_)) => q,
        single => Node::All(vec![single]),
    };
    SharedRule {
        scorecard,
        rule,
        level,
        query,
    }
}

/// The shared rule set: 5 scorecards × 10 rules (3 Bronze, 4 Silver, 3 Gold).
pub fn shared_rule_set() -> Vec<SharedRule> {
    use Op::*;
    let (b, s, g) = ("Bronze", "Silver", "Gold");
    vec![
        r(
            "ownership",
            "service-kind",
            b,
            c("$kind", In, json!(["service", "api"])),
        ),
        r("ownership", "critical-tier", b, c("$tier", Le, json!(2))),
        r(
            "ownership",
            "in-production",
            b,
            c("lifecycle", Eq, json!("production")),
        ),
        r(
            "ownership",
            "not-deprecated",
            s,
            c("lifecycle", Ne, json!("deprecated")),
        ),
        r(
            "ownership",
            "oncall",
            s,
            c("facts.pagerduty.oncall_count", Gt, json!(0)),
        ),
        r(
            "ownership",
            "oncall-or-minor",
            s,
            Node::Any(vec![
                c("facts.pagerduty.oncall_count", Ge, json!(1)),
                c("$tier", Eq, json!(3)),
            ]),
        ),
        r(
            "ownership",
            "fast-recovery",
            s,
            c("facts.pagerduty.mttr_minutes", Lt, json!(120)),
        ),
        r(
            "ownership",
            "pci-tagged",
            g,
            c("tags", Contains, json!("pci")),
        ),
        r(
            "ownership",
            "core-language",
            g,
            c("language", In, json!(["rust", "go", "java"])),
        ),
        r(
            "ownership",
            "critical-service-staffed",
            g,
            Node::All(vec![
                c("$kind", Eq, json!("service")),
                Node::Any(vec![c("$tier", Eq, json!(1)), c("$tier", Eq, json!(2))]),
                c("facts.pagerduty.oncall_count", Ge, json!(2)),
            ]),
        ),
        r(
            "reliability",
            "availability",
            b,
            c("facts.prometheus.availability", Ge, json!(99.5)),
        ),
        r(
            "reliability",
            "error-ratio",
            b,
            c("facts.prometheus.error_ratio", Lt, json!(0.01)),
        ),
        r(
            "reliability",
            "latency",
            b,
            c("facts.prometheus.latency_p99_ms", Lt, json!(500)),
        ),
        r(
            "reliability",
            "availability-high",
            s,
            c("facts.prometheus.availability", Gt, json!(99.9)),
        ),
        r(
            "reliability",
            "error-ratio-low",
            s,
            c("facts.prometheus.error_ratio", Le, json!(0.005)),
        ),
        r(
            "reliability",
            "latency-bounded",
            s,
            c("facts.prometheus.latency_p99_ms", Le, json!(1000)),
        ),
        r(
            "reliability",
            "budget-left",
            s,
            c("facts.prometheus.slo.error_budget_remaining", Gt, json!(0)),
        ),
        r(
            "reliability",
            "budget-healthy",
            g,
            c(
                "facts.prometheus.slo.error_budget_remaining",
                Ge,
                json!(0.25),
            ),
        ),
        r(
            "reliability",
            "alerting",
            g,
            c("facts.prometheus.alerts_configured", Ge, json!(3)),
        ),
        r(
            "reliability",
            "fast-and-available",
            g,
            Node::All(vec![
                c("facts.prometheus.availability", Ge, json!(99.9)),
                Node::Any(vec![
                    c("facts.prometheus.latency_p99_ms", Lt, json!(300)),
                    c("$tier", Eq, json!(3)),
                ]),
            ]),
        ),
        r(
            "security",
            "codeowners",
            b,
            c("facts.git.has_codeowners", Eq, json!(true)),
        ),
        r(
            "security",
            "main-branch",
            b,
            c("facts.git.default_branch", Eq, json!("main")),
        ),
        r(
            "security",
            "few-vulns",
            b,
            c("facts.git.open_vulns", Le, json!(5)),
        ),
        r(
            "security",
            "no-vulns",
            s,
            c("facts.git.open_vulns", Eq, json!(0)),
        ),
        r(
            "security",
            "under-ten-vulns",
            s,
            c("facts.git.open_vulns", Lt, json!(10)),
        ),
        r(
            "security",
            "mit-licensed",
            s,
            c("facts.git.licenses", Contains, json!("MIT")),
        ),
        r(
            "security",
            "trusted-ci",
            s,
            c(
                "facts.git.ci_provider",
                In,
                json!(["github-actions", "buildkite"]),
            ),
        ),
        r(
            "security",
            "not-python",
            g,
            c("language", NotIn, json!(["python"])),
        ),
        r(
            "security",
            "owned-and-clean",
            g,
            Node::All(vec![
                c("facts.git.has_codeowners", Eq, json!(true)),
                c("facts.git.open_vulns", Eq, json!(0)),
            ]),
        ),
        r(
            "security",
            "internal-or-few-vulns",
            g,
            Node::Any(vec![
                c("tags", Contains, json!("internal")),
                c("facts.git.open_vulns", Le, json!(2)),
            ]),
        ),
        r(
            "quality",
            "coverage",
            b,
            c("facts.git.test_coverage", Ge, json!(60)),
        ),
        r(
            "quality",
            "readme",
            b,
            c("facts.git.has_readme", Eq, json!(true)),
        ),
        r(
            "quality",
            "not-website",
            b,
            c("$kind", Ne, json!("website")),
        ),
        r(
            "quality",
            "coverage-high",
            s,
            c("facts.git.test_coverage", Gt, json!(80)),
        ),
        r(
            "quality",
            "bounded-deps",
            s,
            c("facts.git.dependency_count", Lt, json!(150)),
        ),
        r(
            "quality",
            "changelog",
            s,
            c("facts.git.has_changelog", Eq, json!(true)),
        ),
        r(
            "quality",
            "readme-or-library",
            s,
            Node::Any(vec![
                c("facts.git.has_readme", Eq, json!(true)),
                c("$kind", Eq, json!("library")),
            ]),
        ),
        r(
            "quality",
            "lean-deps",
            g,
            c("facts.git.dependency_count", Le, json!(50)),
        ),
        r(
            "quality",
            "tested-and-lean",
            g,
            Node::All(vec![
                c("facts.git.test_coverage", Ge, json!(50)),
                c("facts.git.dependency_count", Lt, json!(200)),
            ]),
        ),
        r(
            "quality",
            "systems-language",
            g,
            c("language", In, json!(["rust", "go"])),
        ),
        r(
            "operations",
            "recovery",
            b,
            c("facts.pagerduty.mttr_minutes", Lt, json!(60)),
        ),
        r(
            "operations",
            "tier-one-or-two",
            b,
            c("$tier", In, json!([1, 2])),
        ),
        r(
            "operations",
            "runs-in-production",
            b,
            c("$kind", NotIn, json!(["library", "website"])),
        ),
        r(
            "operations",
            "recovery-fast",
            s,
            c("facts.pagerduty.mttr_minutes", Le, json!(30)),
        ),
        r(
            "operations",
            "two-oncall",
            s,
            c("facts.pagerduty.oncall_count", Ge, json!(2)),
        ),
        r("operations", "tier-one", s, c("$tier", Eq, json!(1))),
        r(
            "operations",
            "live-lifecycle",
            s,
            c("lifecycle", In, json!(["production", "experimental"])),
        ),
        r(
            "operations",
            "critical-and-available",
            g,
            Node::All(vec![
                c("$tier", Eq, json!(1)),
                c("facts.prometheus.availability", Ge, json!(99.95)),
            ]),
        ),
        r(
            "operations",
            "recovers-or-staffed",
            g,
            Node::Any(vec![
                c("facts.pagerduty.mttr_minutes", Lt, json!(30)),
                c("facts.pagerduty.oncall_count", Ge, json!(3)),
            ]),
        ),
        r(
            "operations",
            "measured-latency",
            g,
            c("facts.prometheus.latency_p99_ms", Gt, json!(100)),
        ),
    ]
}

fn readyd_node(node: &Node) -> Value {
    match node {
        Node::Cond { path, op, value } => {
            json!({ "property": path, "operator": op.readyd(), "value": value })
        }
        Node::All(children) => json!({
            "combinator": "and",
            "conditions": children.iter().map(readyd_node).collect::<Vec<_>>(),
        }),
        Node::Any(children) => json!({
            "combinator": "or",
            "conditions": children.iter().map(readyd_node).collect::<Vec<_>>(),
        }),
    }
}

/// The shared rule set as readyd scorecards (no filters: every rule applies to every entity).
pub fn readyd_scorecards(rules: &[SharedRule]) -> Vec<Value> {
    let mut cards: Vec<(&str, Vec<Value>)> = Vec::new();
    for rule in rules {
        let value = json!({
            "identifier": rule.rule,
            "level": rule.level,
            "query": readyd_node(&rule.query),
        });
        match cards.iter_mut().find(|(id, _)| *id == rule.scorecard) {
            Some((_, list)) => list.push(value),
            None => cards.push((rule.scorecard, vec![value])),
        }
    }
    cards
        .into_iter()
        .map(|(id, rules)| {
            json!({
                "identifier": id,
                "levels": [{ "title": "Basic" }, { "title": "Bronze" }, { "title": "Silver" }, { "title": "Gold" }],
                "rules": rules,
            })
        })
        .collect()
}

/// Writes what the out-of-process peer reads (json-rules-engine's rules and flat facts) and,
/// for inspection, the Rego policy regorus evaluates.
pub fn write_inputs(
    dir: &Path,
    rules: &[SharedRule],
    entities: &[Arc<Entity>],
    facts: &HashMap<String, EntityFacts>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let empty = EntityFacts::new();
    let flat: Vec<Value> = entities
        .iter()
        .map(|e| jre::flat_facts(e, facts.get(&e.identifier).unwrap_or(&empty)))
        .collect();
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    };
    write(
        "jre-rules.json",
        serde_json::to_string_pretty(&jre::rules(rules))?,
    )?;
    write("jre-facts.json", serde_json::to_string(&flat)?)?;
    write("policy.rego", rego::policy(rules))?;
    Ok(())
}

/// One engine's answers: `passed[e * rules.len() + r]` for entity `e` and rule `r`.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    pub entities: Vec<String>,
    /// `scorecard/rule`, in the shared set's order.
    pub rules: Vec<String>,
    pub passed: Vec<bool>,
}

impl Matrix {
    pub fn get(&self, entity: usize, rule: usize) -> bool {
        self.passed[entity * self.rules.len() + rule]
    }
}

/// A (entity, rule) where two engines disagree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disagreement {
    pub entity: String,
    pub rule: String,
    /// readyd's answer (the peer's is the opposite).
    pub readyd: bool,
}

/// Every (entity, rule) where `peer` differs from `readyd`; a shape mismatch is an error.
pub fn disagreements(readyd: &Matrix, peer: &Matrix) -> anyhow::Result<Vec<Disagreement>> {
    if readyd.entities != peer.entities
        || readyd.rules != peer.rules
        || readyd.passed.len() != peer.passed.len()
    {
        return Err(anyhow!(
            "the peer answered for {} entities × {} rules ({} answers), readyd for {} × {}",
            peer.entities.len(),
            peer.rules.len(),
            peer.passed.len(),
            readyd.entities.len(),
            readyd.rules.len()
        ));
    }
    let n = readyd.rules.len();
    Ok(readyd
        .passed
        .iter()
        .zip(&peer.passed)
        .enumerate()
        .filter(|(_, (a, b))| a != b)
        .map(|(i, (a, _))| Disagreement {
            entity: readyd.entities[i / n].clone(),
            rule: readyd.rules[i % n].clone(),
            readyd: *a,
        })
        .collect())
}

/// readyd's answers on the shared rule set and the time of each of `runs` passes (one thread,
/// the real evaluator: results with messages, as the daemon builds them).
pub fn readyd_matrix(
    standards: &Standards,
    rules: &[SharedRule],
    entities: &[Arc<Entity>],
    facts: &HashMap<String, EntityFacts>,
    runs: usize,
) -> anyhow::Result<(Matrix, Vec<Duration>)> {
    let empty = EntityFacts::new();
    let now = crate::org::reference_time();
    let index: HashMap<String, usize> = rules
        .iter()
        .enumerate()
        .map(|(i, r)| (r.key(), i))
        .collect();
    let mut times = Vec::with_capacity(runs);
    let mut last = Vec::new();
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        let results: Vec<_> = entities
            .iter()
            .map(|e| {
                let input = EvalInput {
                    entity: e,
                    facts: facts.get(&e.identifier).unwrap_or(&empty),
                    exemptions: &[],
                    now,
                    checks: &NoChecks,
                    previous: None,
                };
                eval::evaluate_entity(&input, standards)
            })
            .collect();
        times.push(started.elapsed());
        last = results;
    }
    let mut passed = vec![false; entities.len() * rules.len()];
    for (e, results) in last.iter().enumerate() {
        for card in results {
            for result in &card.rules {
                let key = format!("{}/{}", card.scorecard, result.rule);
                let &r = index.get(&key).ok_or_else(|| {
                    anyhow!("readyd evaluated {key}, which is not in the shared set")
                })?;
                passed[e * rules.len() + r] = match result.status {
                    RuleStatus::Pass => true,
                    RuleStatus::Fail => false,
                    other => {
                        return Err(anyhow!(
                            "{key} on {}: unexpected status {other:?}",
                            card.entity
                        ));
                    }
                };
            }
        }
    }
    Ok((
        Matrix {
            entities: entities.iter().map(|e| e.identifier.clone()).collect(),
            rules: rules.iter().map(SharedRule::key).collect(),
            passed,
        },
        times,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(node: &Node, out: &mut Vec<(&'static str, Op)>) {
        match node {
            Node::Cond { path, op, .. } => out.push((path, *op)),
            Node::All(children) | Node::Any(children) => {
                children.iter().for_each(|n| paths(n, out))
            }
        }
    }

    #[test]
    fn shared_set_shape_and_negations_only_on_present_values() {
        let set = shared_rule_set();
        assert_eq!(set.len(), 50);
        let mut keys: Vec<String> = set.iter().map(SharedRule::key).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), 50, "rule keys are unique");
        let mut conds = Vec::new();
        set.iter().for_each(|r| paths(&r.query, &mut conds));
        for (path, op) in conds {
            if op.is_negation() {
                assert!(
                    ALWAYS_PRESENT.contains(&path),
                    "{path} is negated but may be missing"
                );
            }
        }
    }

    #[test]
    fn disagreements_name_entity_and_rule() {
        let a = Matrix {
            entities: vec!["x".into(), "y".into()],
            rules: vec!["s/a".into(), "s/b".into()],
            passed: vec![true, false, true, true],
        };
        let mut b = a.clone();
        b.passed[3] = false;
        let found = disagreements(&a, &b).unwrap();
        assert_eq!(
            found,
            vec![Disagreement {
                entity: "y".into(),
                rule: "s/b".into(),
                readyd: true
            }]
        );
        b.rules.pop();
        assert!(disagreements(&a, &b).is_err());
    }
}
