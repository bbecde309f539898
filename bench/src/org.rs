//! The generated organisation every measurement runs on: catalog, standards, facts, and the
//! peers' translations of the shared rule set, written to a scratch directory and read back
//! through readyd's own loaders.
//!
//! Main types: [`OrgSpec`] (size and seed), [`Org`] (where everything was written, and what
//! readyd loaded from it). [`Org::generate`] is deterministic: the same spec gives the same
//! files, byte for byte, on every machine (see [`crate::rng`]); times are relative to the fixed
//! [`reference_time`], so results do not drift with the calendar.
//!
//! Shape (DESIGN.md section 11's workload): N entities (services, APIs, libraries, websites) in
//! 40 teams plus a few unowned, tiers 1–3 and untiered; five scorecards of ten rules each
//! (three Bronze, four Silver, three Gold) mixing every kind of operator (`=`, `!=`, `<`, `>=`,
//! `in`, `notIn`, `isNotEmpty`, `beginsWith`, `endsWith`, `contains`, `containsAny`,
//! `doesNotContains`, `between` on dates and numbers, `matchesRegex`, `satisfiesVersion`,
//! nested `or`/`and`), scorecard and rule filters; a tier policy; facts from three data sources
//! (`git`, `pagerduty`, `prometheus`) with realistic gaps. Variants of the standards serve the
//! other measurements: `standards-wasm` (each scorecard's `error-budget` rule served by the
//! `slo-budget` check plugin instead of its equivalent query), `standards-peer` (the shared rule
//! set of [`crate::peers`]) and `standards-daemon` (plus a `canary` scorecard for the
//! automation and plugin hot-reload measurements).
//!
//! This module never measures anything.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, anyhow};
use chrono::{DateTime, Duration, Utc};
use readyd::catalog::{self, Catalog};
use readyd::model::{Entity, EntityFacts, FactRecord, JsonObject, Timestamp};
use readyd::standards::{self, PluginKind, Standards};
use serde_json::{Value, json};

use crate::peers;
use crate::rng::Rng;

/// "Now" of the generated organisation: fact dates and `between` ranges are relative to it.
pub const REFERENCE_TIME: &str = "2026-01-15T12:00:00Z";

/// The data sources facts come from.
pub const SOURCES: [&str; 3] = ["git", "pagerduty", "prometheus"];

/// Teams of the organisation (`team-00` … `team-39`).
pub const TEAMS: usize = 40;

/// The `bench_group` whose entities the automation measurement's standards change degrades.
pub const DEGRADED_GROUP: i64 = 7;

/// The fixed "now" of the generated organisation.
pub fn reference_time() -> Timestamp {
    DateTime::parse_from_rfc3339(REFERENCE_TIME)
        .expect("a valid constant")
        .with_timezone(&Utc)
}

/// How big an organisation to generate.
#[derive(Clone, Copy, Debug)]
pub struct OrgSpec {
    pub entities: usize,
    pub seed: u64,
}

/// Where the generated files are.
#[derive(Clone, Debug)]
pub struct OrgDirs {
    pub root: PathBuf,
    pub catalog: PathBuf,
    /// The main standards: 5 scorecards × 10 built-in rules, tiers.yaml.
    pub standards: PathBuf,
    /// The same with each scorecard's `error-budget` rule served by `slo-budget`.
    pub standards_wasm: PathBuf,
    /// The shared rule set the peers evaluate too.
    pub standards_peer: PathBuf,
    /// The main standards plus the `canary` scorecard (automation and plugin reload).
    pub standards_daemon: PathBuf,
    /// `<source>.json`: entity → facts object.
    pub facts: PathBuf,
    /// The peers' inputs: `jre-rules.json`, `jre-facts.json`, `policy.rego`.
    pub peers: PathBuf,
}

/// A generated organisation, loaded back through readyd's loaders.
pub struct Org {
    pub spec: OrgSpec,
    pub dirs: OrgDirs,
    pub catalog: Catalog,
    /// Entities in identifier order.
    pub entities: Vec<Arc<Entity>>,
    /// Latest facts by entity.
    pub facts: HashMap<String, EntityFacts>,
    pub standards: Arc<Standards>,
    pub standards_wasm: Arc<Standards>,
    pub standards_peer: Arc<Standards>,
    pub standards_daemon: Arc<Standards>,
}

const WORDS: [&str; 24] = [
    "payments",
    "billing",
    "search",
    "identity",
    "checkout",
    "ledger",
    "catalog",
    "orders",
    "shipping",
    "pricing",
    "ranking",
    "profile",
    "notify",
    "gateway",
    "metrics",
    "events",
    "fraud",
    "reports",
    "inventory",
    "media",
    "auth",
    "session",
    "cart",
    "reviews",
];
const LANGUAGES: [&str; 6] = ["rust", "go", "java", "python", "typescript", "kotlin"];
const TAGS: [&str; 5] = ["pci", "customer-facing", "internal", "batch", "gdpr"];
const LICENSES: [&str; 4] = ["MIT", "Apache-2.0", "BSD-3-Clause", "GPL-3.0"];

fn team_name(k: usize) -> String {
    format!("team-{k:02}")
}

fn date_before(days: i64) -> String {
    (reference_time() - Duration::days(days))
        .format("%Y-%m-%d")
        .to_string()
}

/// One entity and its facts (`None`: the source has nothing on it).
fn generate_entity(i: usize, rng: &mut Rng) -> (Entity, [Option<JsonObject>; 3]) {
    let word = WORDS[i % WORDS.len()];
    let kind = *rng.weighted(&[
        ("service", 0.55),
        ("api", 0.2),
        ("library", 0.15),
        ("website", 0.1),
    ]);
    let identifier = format!("{word}-{kind}-{i:05}");
    let team = (!rng.chance(0.03)).then(|| team_name(rng.below(TEAMS as u64) as usize));
    let tier = *rng.weighted(&[
        (Some(1u8), 0.1),
        (Some(2), 0.25),
        (Some(3), 0.35),
        (None, 0.3),
    ]);
    let mut p = JsonObject::new();
    p.insert("language".into(), json!(rng.pick(&LANGUAGES)));
    p.insert(
        "lifecycle".into(),
        json!(rng.weighted(&[
            ("production", 0.65),
            ("experimental", 0.15),
            ("development", 0.12),
            ("deprecated", 0.08)
        ])),
    );
    let team_path = team.clone().unwrap_or_else(|| "unowned".into());
    p.insert(
        "repository".into(),
        if rng.chance(0.95) {
            json!(format!("https://git.example.com/{team_path}/{identifier}"))
        } else {
            json!(format!("git@legacy.example.com:{identifier}.git"))
        },
    );
    if rng.chance(0.8) {
        p.insert(
            "runbook".into(),
            json!(format!("https://wiki.example.com/runbooks/{identifier}")),
        );
    } else if rng.chance(0.3) {
        p.insert(
            "runbook".into(),
            json!(format!("http://old-wiki/{identifier}")),
        );
    }
    if rng.chance(0.85) {
        p.insert(
            "description".into(),
            json!(format!("The {word} {kind} of {team_path}.")),
        );
    }
    if kind != "library" && rng.chance(0.7) {
        p.insert(
            "dashboard".into(),
            json!(format!("https://grafana.example.com/d/{identifier}")),
        );
    }
    if kind == "api" && rng.chance(0.75) {
        p.insert("api_spec".into(), json!(format!("specs/{identifier}.yaml")));
    }
    let tags: Vec<&str> = TAGS.iter().copied().filter(|_| rng.chance(0.3)).collect();
    p.insert("tags".into(), json!(tags));
    p.insert("bench_group".into(), json!(i as i64 % 10));
    if rng.chance(0.05) {
        p.insert("oncall_exempt_reason".into(), json!("business hours only"));
    }
    let entity = Entity {
        title: format!("{}{} {kind} {i}", word[..1].to_uppercase(), &word[1..]),
        identifier,
        kind: kind.to_owned(),
        team,
        tier,
        properties: p,
        relations: BTreeMap::new(),
    };

    let git = rng.chance(0.95).then(|| {
        let mut f = JsonObject::new();
        f.insert(
            "default_branch".into(),
            json!(if rng.chance(0.85) { "main" } else { "master" }),
        );
        f.insert("has_readme".into(), json!(rng.chance(0.9)));
        f.insert("has_codeowners".into(), json!(rng.chance(0.75)));
        f.insert("has_changelog".into(), json!(rng.chance(0.55)));
        if !rng.chance(0.1) {
            f.insert(
                "ci_provider".into(),
                json!(rng.weighted(&[
                    ("github-actions", 0.55),
                    ("buildkite", 0.22),
                    ("jenkins", 0.23)
                ])),
            );
        }
        f.insert("last_commit".into(), json!(date_before(rng.int(0, 500))));
        f.insert(
            "last_dependency_update".into(),
            json!(date_before(rng.int(0, 400))),
        );
        let vulns = if rng.chance(0.6) {
            0
        } else if rng.chance(0.75) {
            rng.int(1, 5)
        } else {
            rng.int(6, 20)
        };
        f.insert("open_vulns".into(), json!(vulns));
        let major = *rng.weighted(&[(1, 0.3), (2, 0.6), (3, 0.1)]);
        f.insert(
            "sdk_version".into(),
            json!(format!("{major}.{}.{}", rng.int(0, 9), rng.int(0, 20))),
        );
        f.insert("dependency_count".into(), json!(rng.int(5, 300)));
        let licenses: Vec<&str> = LICENSES
            .iter()
            .copied()
            .enumerate()
            .filter(|(k, _)| rng.chance(if *k == 3 { 0.08 } else { 0.5 }))
            .map(|(_, l)| l)
            .collect();
        f.insert("licenses".into(), json!(licenses));
        f.insert("test_coverage".into(), json!(rng.range(0.0, 100.0, 1)));
        f
    });
    let pagerduty = (kind != "library" && rng.chance(0.85)).then(|| {
        let mut f = JsonObject::new();
        f.insert(
            "oncall_count".into(),
            json!(if rng.chance(0.2) { 0 } else { rng.int(1, 3) }),
        );
        if rng.chance(0.8) {
            f.insert("escalation_policy".into(), json!(format!("ep-{team_path}")));
        }
        f.insert("mttr_minutes".into(), json!(rng.int(5, 240)));
        f
    });
    let prometheus = (kind != "library" && rng.chance(0.8)).then(|| {
        let mut f = JsonObject::new();
        f.insert("availability".into(), json!(rng.range(99.0, 100.0, 3)));
        f.insert("error_ratio".into(), json!(rng.range(0.0, 0.03, 4)));
        f.insert("latency_p99_ms".into(), json!(rng.int(20, 1500)));
        f.insert("alerts_configured".into(), json!(rng.int(0, 12)));
        f.insert(
            "slo".into(),
            json!({ "error_budget_remaining": rng.range(-0.2, 1.0, 3) }),
        );
        f
    });
    (entity, [git, pagerduty, prometheus])
}

fn cond(property: &str, operator: &str, value: Value) -> Value {
    if value.is_null() {
        json!({ "property": property, "operator": operator })
    } else {
        json!({ "property": property, "operator": operator, "value": value })
    }
}

fn all(conditions: Vec<Value>) -> Value {
    json!({ "combinator": "and", "conditions": conditions })
}

fn any(conditions: Vec<Value>) -> Value {
    json!({ "combinator": "or", "conditions": conditions })
}

fn rule(identifier: &str, level: &str, query: Value) -> Value {
    json!({ "identifier": identifier, "level": level, "query": query })
}

fn one(property: &str, operator: &str, value: Value) -> Value {
    all(vec![cond(property, operator, value)])
}

fn levels() -> Value {
    json!([{ "title": "Basic" }, { "title": "Bronze" }, { "title": "Silver" }, { "title": "Gold" }])
}

/// The `error-budget` rule as a built-in query: the equivalent of the `slo-budget` plugin for
/// levels (its `warn`, at most 25 % of the budget left, counts as passed like its `pass`).
fn error_budget_query() -> Value {
    one("facts.prometheus.slo.error_budget_remaining", ">", json!(0))
}

/// The five main scorecards, as written in `standards/scorecards/*.yaml`.
fn main_scorecards() -> Vec<Value> {
    let recent = json!({ "from": date_before(180), "to": date_before(0) });
    let deps_fresh = json!({ "from": date_before(120), "to": date_before(0) });
    let services = json!(["service", "api"]);
    vec![
        json!({
            "identifier": "production-readiness",
            "title": "Production readiness",
            "filter": one("$kind", "in", services.clone()),
            "levels": levels(),
            "rules": [
                rule("has-owner", "Bronze", one("$team", "isNotEmpty", Value::Null)),
                rule("has-runbook", "Bronze", one("runbook", "beginsWith", json!("https://"))),
                rule("lifecycle-declared", "Bronze", one("lifecycle", "in", json!(["production", "experimental", "development", "deprecated"]))),
                rule("oncall", "Silver", any(vec![
                    cond("facts.pagerduty.oncall_count", ">", json!(0)),
                    all(vec![cond("oncall_exempt_reason", "isNotEmpty", Value::Null), cond("$tier", ">=", json!(3))]),
                ])),
                rule("availability", "Silver", one("facts.prometheus.availability", ">=", json!(99.5))),
                rule("ci-pipeline", "Silver", one("facts.git.ci_provider", "in", json!(["github-actions", "buildkite"]))),
                rule("recent-commit", "Silver", one("facts.git.last_commit", "between", recent.clone())),
                json!({ "identifier": "latency", "level": "Gold",
                        "filter": one("$tier", "<=", json!(2)),
                        "query": one("facts.prometheus.latency_p99_ms", "<=", json!(500)) }),
                rule("mttr", "Gold", one("facts.pagerduty.mttr_minutes", "<", json!(60))),
                rule("error-budget", "Gold", error_budget_query()),
            ],
        }),
        json!({
            "identifier": "security",
            "title": "Security",
            "levels": levels(),
            "rules": [
                rule("repo-in-forge", "Bronze", one("repository", "matchesRegex", json!(r"^https://git\.example\.com/[a-z0-9-]+/[a-z0-9.-]+$"))),
                rule("codeowners", "Bronze", one("facts.git.has_codeowners", "=", json!(true))),
                rule("default-branch", "Bronze", one("facts.git.default_branch", "=", json!("main"))),
                rule("few-vulns", "Silver", one("facts.git.open_vulns", "<=", json!(5))),
                rule("sdk-supported", "Silver", one("facts.git.sdk_version", "satisfiesVersion", json!(">=2.0, <3"))),
                rule("license-allowed", "Silver", one("facts.git.licenses", "doesNotContains", json!("GPL-3.0"))),
                rule("pci-scope", "Silver", any(vec![
                    cond("tags", "doesNotContains", json!("pci")),
                    all(vec![cond("facts.git.open_vulns", "=", json!(0)), cond("$tier", "<=", json!(2))]),
                ])),
                rule("zero-vulns", "Gold", one("facts.git.open_vulns", "=", json!(0))),
                rule("bounded-deps", "Gold", one("facts.git.dependency_count", "<", json!(150))),
                rule("error-budget", "Gold", error_budget_query()),
            ],
        }),
        json!({
            "identifier": "observability",
            "title": "Observability",
            "filter": one("$kind", "!=", json!("library")),
            "levels": levels(),
            "rules": [
                rule("metrics-scraped", "Bronze", one("facts.prometheus", "isNotEmpty", Value::Null)),
                rule("availability-reported", "Bronze", one("facts.prometheus.availability", "isNotEmpty", Value::Null)),
                rule("escalation-policy", "Bronze", one("facts.pagerduty.escalation_policy", "beginsWith", json!("ep-"))),
                rule("latency-slo", "Silver", one("facts.prometheus.latency_p99_ms", "<", json!(1000))),
                rule("error-ratio", "Silver", one("facts.prometheus.error_ratio", "<", json!(0.01))),
                rule("alerts", "Silver", one("facts.prometheus.alerts_configured", ">=", json!(3))),
                rule("dashboard", "Silver", one("dashboard", "beginsWith", json!("https://grafana.example.com/"))),
                rule("tier1-availability", "Gold", any(vec![
                    cond("$tier", "!=", json!(1)),
                    cond("facts.prometheus.availability", ">=", json!(99.95)),
                ])),
                rule("error-ratio-strict", "Gold", one("facts.prometheus.error_ratio", "between", json!({ "from": 0, "to": 0.002 }))),
                rule("error-budget", "Gold", error_budget_query()),
            ],
        }),
        json!({
            "identifier": "documentation",
            "title": "Documentation",
            "levels": levels(),
            "rules": [
                rule("readme", "Bronze", one("facts.git.has_readme", "=", json!(true))),
                rule("title", "Bronze", one("$title", "isNotEmpty", Value::Null)),
                rule("description", "Bronze", one("description", "isNotEmpty", Value::Null)),
                rule("runbook-in-wiki", "Silver", one("runbook", "matchesRegex", json!(r"^https://wiki\.example\.com/runbooks/[a-z0-9-]+$"))),
                rule("api-spec", "Silver", any(vec![
                    cond("$kind", "!=", json!("api")),
                    cond("api_spec", "endsWith", json!(".yaml")),
                ])),
                rule("contact", "Silver", any(vec![
                    cond("facts.pagerduty.escalation_policy", "isNotEmpty", Value::Null),
                    cond("$kind", "in", json!(["library", "website"])),
                ])),
                rule("tags", "Silver", one("tags", "containsAny", json!(["customer-facing", "internal", "batch"]))),
                rule("not-deprecated", "Gold", one("lifecycle", "notIn", json!(["deprecated"]))),
                rule("changelog", "Gold", one("facts.git.has_changelog", "=", json!(true))),
                rule("error-budget", "Gold", error_budget_query()),
            ],
        }),
        json!({
            "identifier": "engineering-hygiene",
            "title": "Engineering hygiene",
            "filter": one("$kind", "in", json!(["service", "api", "library"])),
            "levels": levels(),
            "rules": [
                rule("ci", "Bronze", one("facts.git.ci_provider", "isNotEmpty", Value::Null)),
                rule("language-supported", "Bronze", one("language", "in", json!(LANGUAGES))),
                rule("has-tests", "Bronze", one("facts.git.test_coverage", ">", json!(0))),
                rule("coverage", "Silver", one("facts.git.test_coverage", ">=", json!(60))),
                rule("deps-fresh", "Silver", one("facts.git.last_dependency_update", "between", deps_fresh)),
                rule("sdk-current", "Silver", one("facts.git.sdk_version", "satisfiesVersion", json!("^2.3"))),
                rule("main-branch", "Silver", one("facts.git.default_branch", "!=", json!("master"))),
                json!({ "identifier": "coverage-high", "level": "Gold",
                        "filter": one("$tier", "<=", json!(1)),
                        "query": one("facts.git.test_coverage", ">=", json!(80)) }),
                rule("lean-and-clean", "Gold", all(vec![
                    cond("facts.git.dependency_count", "<=", json!(100)),
                    cond("facts.git.open_vulns", "=", json!(0)),
                ])),
                rule("error-budget", "Gold", error_budget_query()),
            ],
        }),
    ]
}

/// `main` with every `error-budget` rule served by the `slo-budget` check plugin.
fn wasm_scorecards(main: &[Value]) -> Vec<Value> {
    main.iter()
        .map(|card| {
            let mut card = card.clone();
            for rule in card["rules"].as_array_mut().expect("rules") {
                if rule["identifier"] == "error-budget" {
                    let object = rule.as_object_mut().expect("rule object");
                    object.remove("query");
                    object.insert(
                        "check".into(),
                        json!({ "plugin": "slo-budget", "params": { "source": "prometheus" } }),
                    );
                }
            }
            card
        })
        .collect()
}

/// The main tier policy.
fn tiers() -> Value {
    json!({
        "tiers": {
            "1": { "name": "Critical", "require": { "production-readiness": "Gold", "security": "Silver", "observability": "Silver" }, "task_due_days": 7 },
            "2": { "name": "Major", "require": { "production-readiness": "Silver", "security": "Bronze" }, "task_due_days": 14 },
            "3": { "name": "Minor", "require": { "production-readiness": "Bronze", "security": "Bronze" }, "task_due_days": 30 },
        },
        "untiered": { "require": { "security": "Bronze" } },
    })
}

/// The daemon's tier policy: the main one, and every tier requires `canary` at Bronze.
fn daemon_tiers() -> Value {
    let mut t = tiers();
    for spec in t["tiers"].as_object_mut().expect("tiers").values_mut() {
        spec["require"]["canary"] = json!("Bronze");
    }
    t["untiered"]["require"]["canary"] = json!("Bronze");
    t
}

/// The daemon's `canary` scorecard: `bench-flag` (built-in; `degraded` makes it fail for the
/// entities of [`DEGRADED_GROUP`]) and `plugin-marker` (the `noop-check` plugin, whose message
/// tells which build of the plugin answered).
pub fn canary_scorecard(degraded: bool) -> Value {
    let flag = if degraded {
        one("bench_group", "!=", json!(DEGRADED_GROUP))
    } else {
        one("bench_group", ">=", json!(0))
    };
    json!({
        "identifier": "canary",
        "title": "Canary",
        "levels": [{ "title": "Basic" }, { "title": "Bronze" }],
        "rules": [
            rule("bench-flag", "Bronze", flag),
            { "identifier": "plugin-marker", "level": "Bronze", "check": { "plugin": "noop-check", "params": {} } },
        ],
    })
}

/// The `documentation` scorecard with one extra rule, `swap-<n>`, always passing: written in
/// turn by the hot-reload measurement, which waits for that rule to show in the results.
pub fn swapped_documentation(n: usize) -> Value {
    let mut card = main_scorecards()
        .into_iter()
        .find(|c| c["identifier"] == "documentation")
        .expect("documentation scorecard");
    card["rules"].as_array_mut().expect("rules").push(rule(
        &format!("swap-{n}"),
        "Bronze",
        one("$identifier", "isNotEmpty", Value::Null),
    ));
    card
}

/// YAML text of a definition.
pub fn to_yaml(value: &Value) -> anyhow::Result<String> {
    serde_norway::to_string(value).context("writing YAML")
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn write_standards(dir: &Path, cards: &[Value], tiers: Option<&Value>) -> anyhow::Result<()> {
    for card in cards {
        let id = card["identifier"].as_str().expect("identifier");
        write(
            &dir.join("scorecards").join(format!("{id}.yaml")),
            &to_yaml(card)?,
        )?;
    }
    if let Some(tiers) = tiers {
        write(&dir.join("tiers.yaml"), &to_yaml(tiers)?)?;
    }
    Ok(())
}

/// Which plugins the generated standards name.
pub fn plugin_kinds() -> BTreeMap<String, PluginKind> {
    [
        ("slo-budget", PluginKind::Check),
        ("noop-check", PluginKind::Check),
    ]
    .into_iter()
    .map(|(n, k)| (n.to_owned(), k))
    .collect()
}

fn load_standards(dir: &Path) -> anyhow::Result<Arc<Standards>> {
    standards::load_dir(dir, &plugin_kinds())
        .map(Arc::new)
        .map_err(|errors| {
            let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
            anyhow!(
                "generated standards in {} are invalid:\n{}",
                dir.display(),
                lines.join("\n")
            )
        })
}

impl Org {
    /// Write the organisation under `root` and load it back.
    pub fn generate(spec: OrgSpec, root: &Path) -> anyhow::Result<Org> {
        let dirs = OrgDirs {
            root: root.to_owned(),
            catalog: root.join("catalog"),
            standards: root.join("standards"),
            standards_wasm: root.join("standards-wasm"),
            standards_peer: root.join("standards-peer"),
            standards_daemon: root.join("standards-daemon"),
            facts: root.join("facts"),
            peers: root.join("peers"),
        };
        let mut rng = Rng::new(spec.seed);
        let mut by_team: BTreeMap<String, Vec<Entity>> = BTreeMap::new();
        let mut fact_files: [JsonObject; 3] = Default::default();
        for i in 0..spec.entities {
            let (entity, facts) = generate_entity(i, &mut rng);
            for (file, facts) in fact_files.iter_mut().zip(facts) {
                if let Some(f) = facts {
                    file.insert(entity.identifier.clone(), Value::Object(f));
                }
            }
            let file = entity.team.clone().unwrap_or_else(|| "unowned".into());
            by_team.entry(file).or_default().push(entity);
        }
        for (team, entities) in &by_team {
            let value = serde_json::to_value(entities).context("encoding entities")?;
            write(
                &dirs.catalog.join(format!("{team}.yaml")),
                &to_yaml(&value)?,
            )?;
        }
        for (source, file) in SOURCES.iter().zip(&fact_files) {
            let text = serde_json::to_string(file).context("encoding facts")?;
            write(&dirs.facts.join(format!("{source}.json")), &text)?;
        }

        let main = main_scorecards();
        write_standards(&dirs.standards, &main, Some(&tiers()))?;
        write_standards(
            &dirs.standards_wasm,
            &wasm_scorecards(&main),
            Some(&tiers()),
        )?;
        let mut daemon = main.clone();
        daemon.push(canary_scorecard(false));
        write_standards(&dirs.standards_daemon, &daemon, Some(&daemon_tiers()))?;
        let shared = peers::shared_rule_set();
        write_standards(
            &dirs.standards_peer,
            &peers::readyd_scorecards(&shared),
            None,
        )?;

        let catalog = catalog::load_dir(&dirs.catalog).map_err(|errors| {
            let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
            anyhow!("generated catalog is invalid:\n{}", lines.join("\n"))
        })?;
        let facts = load_facts(&dirs.facts)?;
        let entities: Vec<Arc<Entity>> = catalog.entities.values().cloned().map(Arc::new).collect();
        if entities.len() != spec.entities {
            return Err(anyhow!(
                "generated {} entities but the catalog loader read {}",
                spec.entities,
                entities.len()
            ));
        }
        peers::write_inputs(&dirs.peers, &shared, &entities, &facts)?;
        Ok(Org {
            spec,
            standards: load_standards(&dirs.standards)?,
            standards_wasm: load_standards(&dirs.standards_wasm)?,
            standards_peer: load_standards(&dirs.standards_peer)?,
            standards_daemon: load_standards(&dirs.standards_daemon)?,
            dirs,
            catalog,
            entities,
            facts,
        })
    }

    /// The latest facts of an entity (empty when no source has any).
    pub fn facts_of(&self, id: &str) -> &EntityFacts {
        static EMPTY: std::sync::OnceLock<EntityFacts> = std::sync::OnceLock::new();
        self.facts
            .get(id)
            .unwrap_or_else(|| EMPTY.get_or_init(EntityFacts::new))
    }

    /// The number of entities whose `bench_group` is [`DEGRADED_GROUP`].
    pub fn degraded_group_size(&self) -> usize {
        self.entities
            .iter()
            .filter(|e| {
                e.properties.get("bench_group").and_then(Value::as_i64) == Some(DEGRADED_GROUP)
            })
            .count()
    }
}

/// Reads `facts/<source>.json` into facts records collected at [`reference_time`].
fn load_facts(dir: &Path) -> anyhow::Result<HashMap<String, EntityFacts>> {
    let mut facts: HashMap<String, EntityFacts> = HashMap::new();
    for source in SOURCES {
        let path = dir.join(format!("{source}.json"));
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let file: JsonObject =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        for (id, value) in file {
            let Value::Object(object) = value else {
                return Err(anyhow!(
                    "{}: facts of {id} are not an object",
                    path.display()
                ));
            };
            facts.entry(id).or_default().insert(
                source.to_owned(),
                FactRecord {
                    source: source.to_owned(),
                    facts: object,
                    collected_at: reference_time(),
                    plugin_version: "bench".into(),
                    stale_reason: None,
                },
            );
        }
    }
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_loads() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let spec = OrgSpec {
            entities: 60,
            seed: 42,
        };
        let org = Org::generate(spec, a.path()).unwrap();
        Org::generate(spec, b.path()).unwrap();
        for file in [
            "catalog/team-00.yaml",
            "facts/git.json",
            "standards/scorecards/security.yaml",
            "peers/policy.rego",
        ] {
            assert_eq!(
                std::fs::read(a.path().join(file)).unwrap(),
                std::fs::read(b.path().join(file)).unwrap(),
                "{file}"
            );
        }
        assert_eq!(org.entities.len(), 60);
        assert_eq!(org.standards.scorecards.len(), 5);
        assert!(org.standards.scorecards.iter().all(|s| s.rules.len() == 10));
        assert_eq!(org.standards_peer.scorecards.len(), 5);
        assert_eq!(org.standards_daemon.scorecards.len(), 6);
        let checks = org
            .standards_wasm
            .scorecards
            .iter()
            .flat_map(|s| &s.rules)
            .filter(|r| r.check.is_some())
            .count();
        assert_eq!(checks, 5, "one plugin rule per scorecard");
        assert_eq!(org.degraded_group_size(), 6);
    }
}
