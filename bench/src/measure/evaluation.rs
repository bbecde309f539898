//! Evaluation without the engine: the pure evaluator's throughput, a full pass with its redb
//! commit (evaluator + store, the way the engine's pass uses them), and the same workload with
//! one rule per scorecard served by a wasm check plugin.
//!
//! The plugin workload mirrors the engine's pass: gather the check calls the applicable rules
//! need, run them per plugin in batches of 512 on warm instances (concurrently, like the
//! engine), then evaluate with their outcomes. It never calls the engine, so these rows exist
//! whatever state the engine is in.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, anyhow};
use readyd::engine::{self, Inputs};
use readyd::eval::{self, EvalInput, NoChecks, prefetch};
use readyd::model::{Entity, EntityFacts, RuleStatus, ScorecardResult, Timestamp};
use readyd::plugin::{Plugin, PluginHost, PluginRegistry};
use readyd::standards::Standards;
use readyd::store::{Durability, Store, StoreOptions, WriteBatch};

use crate::org::{Org, reference_time};
use crate::report::{Goal, Row, Section};
use crate::stats::Samples;

/// Each entity with its facts, paired before any clock starts: finding an entity's facts is the
/// engine's gathering step (or the harness's lookup), not the evaluator's work.
pub fn inputs(org: &Org) -> Vec<(&Entity, &EntityFacts)> {
    org.entities
        .iter()
        .map(|e| (&**e, org.facts_of(&e.identifier)))
        .collect()
}

/// Evaluates `inputs` at `now` on one thread; returns the results and the rule evaluations.
fn evaluate_all(
    standards: &Standards,
    inputs: &[(&Entity, &EntityFacts)],
    now: Timestamp,
) -> (Vec<ScorecardResult>, usize) {
    let mut out = Vec::with_capacity(inputs.len() * standards.scorecards.len());
    let mut rules = 0;
    for (i, &(entity, facts)) in inputs.iter().enumerate() {
        // What the engine's pass does before each entity (`readyd::eval::prefetch`).
        prefetch::ahead(inputs, i, |&(entity, facts)| prefetch::Upcoming {
            entity,
            facts,
            previous: &[],
        });
        let input = EvalInput {
            entity,
            facts,
            exemptions: &[],
            now,
            checks: &NoChecks,
            previous: None,
        };
        for result in eval::evaluate_entity(&input, standards) {
            rules += result.rules.len();
            out.push(result);
        }
    }
    (out, rules)
}

/// [`evaluate_all`] split over `threads` threads (the engine splits a large pass the same way).
pub fn evaluate_parallel(
    standards: &Standards,
    inputs: &[(&Entity, &EntityFacts)],
    now: Timestamp,
    threads: usize,
) -> (Vec<ScorecardResult>, usize) {
    let chunk = inputs.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = inputs
            .chunks(chunk)
            .map(|part| scope.spawn(move || evaluate_all(standards, part, now)))
            .collect();
        let mut all = Vec::with_capacity(inputs.len() * standards.scorecards.len());
        let mut rules = 0;
        for h in handles {
            let (results, n) = h.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
            all.extend(results);
            rules += n;
        }
        (all, rules)
    })
}

/// The pure evaluator: rule evaluations per second on one core, and on every core.
pub fn pure_evaluator(org: &Org, runs: usize) -> Section {
    let mut section = Section::new(
        "Pure evaluator",
        format!(
            "`readyd::eval::evaluate_entity` over every entity of the generated organisation \
             (5 scorecards × 10 rules, built-in queries, missing data, scorecard and rule \
             filters), results with messages built exactly as the daemon builds them; no I/O; each \
             entity paired with its facts before the clock starts, and the data of the next \
             entities hinted to the CPU before each one as the engine's pass does \
             (`readyd::eval::prefetch`). \
             A rule evaluation is one rule result produced (rules of scorecards whose filter \
             excludes the entity are not counted, their filter evaluation is). {runs} passes \
             after one warm-up pass."
        ),
    );
    let now = reference_time();
    let inputs = inputs(org);
    let (_, per_pass) = evaluate_all(&org.standards, &inputs, now);
    let mut single = Samples::new();
    for _ in 0..runs {
        let started = Instant::now();
        let (results, n) = evaluate_all(&org.standards, &inputs, now);
        let elapsed = started.elapsed();
        std::hint::black_box(results);
        single.push(n as f64 / elapsed.as_secs_f64() / 1e6);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut all_cores = Samples::new();
    for _ in 0..runs {
        let started = Instant::now();
        let (results, n) = evaluate_parallel(&org.standards, &inputs, now, cores);
        let elapsed = started.elapsed();
        std::hint::black_box(results);
        all_cores.push(n as f64 / elapsed.as_secs_f64() / 1e6);
    }
    section.rows.push(Row::target(
        "rule evaluations per second, one core",
        Goal::Above(5.0),
        "M/s",
        &mut single,
    ));
    section.rows.push(Row::info(
        &format!("rule evaluations per second, {cores} threads"),
        "M/s",
        &mut all_cores,
    ));
    section.notes.push(format!(
        "{} rule evaluations per pass over {} entities.",
        per_pass,
        org.entities.len()
    ));
    section
}

/// A full pass with its commit: evaluate every entity on every core, then write every result in
/// one redb write transaction (`Durability::Immediate`, fsync) into a store that already holds
/// the organisation's entities and fact histories. Each run uses a new `now`, so every result
/// differs from the stored one and is really written.
pub fn full_pass(
    org: &Org,
    store_file: &Path,
    runs: usize,
) -> anyhow::Result<(Section, Vec<ScorecardResult>)> {
    let n = org.entities.len();
    let mut section = Section::new(
        "Full pass with commit (evaluator + store)",
        format!(
            "{n} entities × 5 scorecards × 10 rules evaluated on every core, then every \
             scorecard result written in one redb write transaction with fsync \
             (`Store::commit`, `Durability::Immediate`) into a store holding the organisation \
             and 10 fact records per (entity, source); what the engine's pass does, without the \
             engine's bookkeeping. {runs} runs."
        ),
    );
    let store = Store::open(store_file, StoreOptions::default())
        .with_context(|| format!("opening {}", store_file.display()))?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let inputs = inputs(org);
    let (mut total, mut eval_ms, mut commit_ms) = (Samples::new(), Samples::new(), Samples::new());
    let mut last = Vec::new();
    for k in 0..runs {
        let now = reference_time() + chrono::Duration::seconds(k as i64 + 1);
        let started = Instant::now();
        let (results, _) = evaluate_parallel(&org.standards, &inputs, now, cores);
        let evaluated = started.elapsed();
        let mut batch = WriteBatch::new();
        batch.put_results(&results);
        let stats = store
            .commit(batch, Durability::Immediate)
            .context("committing the pass")?;
        let elapsed = started.elapsed();
        if stats.results_written != results.len() {
            return Err(anyhow!(
                "the store wrote {} of {} results",
                stats.results_written,
                results.len()
            ));
        }
        total.push(elapsed.as_secs_f64());
        eval_ms.push(evaluated.as_secs_f64() * 1e3);
        commit_ms.push((elapsed - evaluated).as_secs_f64() * 1e3);
        last = results;
    }
    section.rows.push(Row::target(
        &format!("full pass, {n} entities, commit included"),
        Goal::Below(1.0),
        "s",
        &mut total,
    ));
    section
        .rows
        .push(Row::info("of which: evaluation", "ms", &mut eval_ms));
    section
        .rows
        .push(Row::info("of which: redb commit", "ms", &mut commit_ms));
    section.notes.push(format!(
        "{} scorecard results written per pass.",
        last.len()
    ));
    Ok((section, last))
}

/// The facts a check plugin sees: `{ "<source>": { ...facts } }`.
pub fn facts_as_json(facts: &EntityFacts) -> serde_json::Value {
    serde_json::Value::Object(
        facts
            .iter()
            .map(|(source, record)| {
                (
                    source.clone(),
                    serde_json::Value::Object(record.facts.clone()),
                )
            })
            .collect(),
    )
}

/// One pass of the engine's own evaluation (`readyd::engine::evaluate_scorecards`: check plugins
/// gathered, encoded and called in batches, then the evaluator on every core, then the diff
/// against the previous results) over every entity; returns the time, the new results (to be
/// the next pass's previous ones) and the rule evaluations.
async fn engine_pass(
    standards: &Arc<Standards>,
    registry: &PluginRegistry,
    org: &Org,
    facts: &[Arc<EntityFacts>],
    previous: &[Arc<Vec<ScorecardResult>>],
    now: Timestamp,
) -> (std::time::Duration, Vec<Arc<Vec<ScorecardResult>>>, usize) {
    let inputs: Vec<Inputs> = org
        .entities
        .iter()
        .zip(facts)
        .enumerate()
        .map(|(i, (entity, facts))| Inputs {
            entity: entity.clone(),
            facts: facts.clone(),
            exemptions: Vec::new(),
            previous: previous.get(i).cloned().unwrap_or_default(),
        })
        .collect();
    let started = Instant::now();
    let evaluated = engine::evaluate_scorecards(standards, registry, inputs, now, None).await;
    let elapsed = started.elapsed();
    let rules = evaluated.iter().map(|e| e.rule_count()).sum();
    let results = evaluated.into_iter().map(|e| Arc::new(e.results)).collect();
    (elapsed, results, rules)
}

/// All built-in vs one rule per scorecard served by `slo-budget`, evaluation only (the commit
/// is the same for both). Both go through the engine's pass function.
/// A disagreement between the plugin rule and its built-in equivalent is pushed to `failures`
/// (the comparison would be meaningless).
pub async fn plugin_workload(
    org: &Arc<Org>,
    plugin: Arc<Plugin>,
    runs: usize,
    failures: &mut Vec<String>,
) -> anyhow::Result<Section> {
    let mut section = Section::new(
        "Plugin rules in a pass",
        "The full-pass workload without the commit, twice: all 50 rules built in, and with each \
         scorecard's `error-budget` rule served by the `slo-budget` check plugin (wasm) instead \
         of its equivalent query `facts.prometheus.slo.error_budget_remaining > 0` (the \
         plugin's `warn` counts as passed like its `pass`). Both run the engine's own pass \
         function, `readyd::engine::evaluate_scorecards`, as a re-evaluation of every entity \
         (each entity's previous results are the pass before's, as when standards are \
         reloaded): gather the check calls the applicable rules need and encode their entities \
         (on every core), call the plugin in batches of 512 per warm instance, batches \
         concurrently, then evaluate on every core and diff against the previous results.",
    );
    let now = reference_time();
    let registry = PluginRegistry::new(u32::MAX);
    registry.insert(plugin);
    let facts: Vec<Arc<EntityFacts>> = org
        .entities
        .iter()
        .map(|e| Arc::new(org.facts_of(&e.identifier).clone()))
        .collect();
    let (mut builtin, mut wasm, mut ratio, mut per_rule) = (
        Samples::new(),
        Samples::new(),
        Samples::new(),
        Samples::new(),
    );
    // A warm-up pass of each, whose results are the first runs' previous ones.
    let (_, mut builtin_previous, rule_evals) =
        engine_pass(&org.standards, &registry, org, &facts, &[], now).await;
    let (_, mut wasm_previous, _) =
        engine_pass(&org.standards_wasm, &registry, org, &facts, &[], now).await;
    let calls = count_check_calls(org, &org.standards_wasm, now);
    for _ in 0..runs {
        let (t_builtin, results, _) = engine_pass(
            &org.standards,
            &registry,
            org,
            &facts,
            &builtin_previous,
            now,
        )
        .await;
        builtin_previous = results;
        let (t_wasm, results, _) = engine_pass(
            &org.standards_wasm,
            &registry,
            org,
            &facts,
            &wasm_previous,
            now,
        )
        .await;
        wasm_previous = results;
        builtin.push(t_builtin.as_secs_f64() * 1e3);
        wasm.push(t_wasm.as_secs_f64() * 1e3);
        ratio.push(t_wasm.as_secs_f64() / t_builtin.as_secs_f64());
        let builtin_rule = t_builtin.as_secs_f64() / rule_evals as f64;
        let plugin_rule =
            (t_wasm.as_secs_f64() - t_builtin.as_secs_f64()) / calls.max(1) as f64 + builtin_rule;
        per_rule.push(plugin_rule / builtin_rule);
    }
    let flatten = |all: &[Arc<Vec<ScorecardResult>>]| -> Vec<ScorecardResult> {
        all.iter().flat_map(|r| r.iter().cloned()).collect()
    };
    let mismatches = count_mismatches(&flatten(&builtin_previous), &flatten(&wasm_previous));
    let plugin_errors = wasm_previous
        .iter()
        .flat_map(|r| r.iter())
        .flat_map(|r| r.rules.iter())
        .filter(|r| r.status == RuleStatus::Error)
        .count();
    section.rows.push(Row::info(
        "pass, all built-in (evaluation only)",
        "ms",
        &mut builtin,
    ));
    section.rows.push(Row::info(
        "pass, one rule per scorecard by wasm plugin",
        "ms",
        &mut wasm,
    ));
    section.rows.push(Row::target(
        "cost of the plugin workload relative to all built-in",
        Goal::Below(5.0),
        "×",
        &mut ratio,
    ));
    section.rows.push(Row::info(
        "cost of one plugin rule relative to one built-in rule",
        "×",
        &mut per_rule,
    ));
    section.notes.push(format!(
        "{calls} plugin calls per pass; the plugin rule and its built-in equivalent \
         disagreed (counted as passed or not) on {mismatches} (entity, rule) pairs; \
         {plugin_errors} rule results were `error`."
    ));
    if mismatches > 0 || plugin_errors > 0 {
        failures.push(format!(
            "the slo-budget plugin and its built-in equivalent query disagree on {mismatches} (entity, rule) pairs, {plugin_errors} errors"
        ));
    }
    Ok(section)
}

/// The check calls a pass over every entity makes.
fn count_check_calls(org: &Org, standards: &Standards, now: Timestamp) -> usize {
    org.entities
        .iter()
        .map(|entity| {
            let facts = org.facts_of(&entity.identifier);
            standards
                .scorecards
                .iter()
                .map(|card| eval::checks_needed(entity, facts, card, now).len())
                .sum::<usize>()
        })
        .sum()
}

/// (entity, scorecard, rule) whose counts-as-passed differs between the two result sets.
fn count_mismatches(a: &[ScorecardResult], b: &[ScorecardResult]) -> usize {
    let index: HashMap<(&str, &str), &ScorecardResult> = b
        .iter()
        .map(|r| ((r.entity.as_str(), r.scorecard.as_str()), r))
        .collect();
    let mut mismatches = 0;
    for r in a {
        let Some(other) = index.get(&(r.entity.as_str(), r.scorecard.as_str())) else {
            mismatches += r.rules.len();
            continue;
        };
        for (x, y) in r.rules.iter().zip(&other.rules) {
            if x.rule != y.rule || x.status.counts_as_passed() != y.status.counts_as_passed() {
                mismatches += 1;
            }
        }
    }
    mismatches
}

/// A plugin host with an on-disk cache, and `slo-budget` loaded from it.
pub async fn load_slo_budget(host: &PluginHost, manifests: &Path) -> anyhow::Result<Arc<Plugin>> {
    let manifest = crate::measure::plugins::manifest_for(manifests, "slo-budget")?;
    host.load(manifest)
        .await
        .map_err(|e| anyhow!("loading slo-budget: {e}"))
}
