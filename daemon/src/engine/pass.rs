//! One evaluation pass: gather inputs for some entities, run the check plugins their rules need,
//! run the pure evaluator, and work out what changed (results to write, level changes, results to
//! delete). Nothing here commits or mutates the live state: the caller puts the outcome into a
//! write batch together with whatever caused the pass, commits, then applies it.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::eval::{self, CheckResults, EvalInput};
use crate::metrics::{PluginLabels, metrics};
use crate::model::{
    CheckOutcome, Entity, EntityFacts, Exemption, LevelChange, Name, RuleStatus, ScorecardResult,
    Timestamp,
};
use crate::plugin::{CheckCall, CheckInput, PluginRegistry};
use crate::standards::{Scorecard, Standards};
use crate::store::WriteBatch;

use super::state::State;

/// Everything the evaluator needs about one entity.
#[derive(Clone)]
pub struct Inputs {
    pub entity: Arc<Entity>,
    pub facts: Arc<EntityFacts>,
    pub exemptions: Vec<Exemption>,
    pub previous: Arc<Vec<ScorecardResult>>,
}

impl Inputs {
    /// Gather the inputs of `id` from the live state (None if it is not in the catalog).
    /// A quiet entity is compared with its last results that acted, not with its quiet ones.
    pub fn gather(state: &State, id: &str) -> Option<Inputs> {
        let entity = state.effective.get(id)?.clone();
        let quiet = &state.first_rounds.quiet;
        let previous = match (!quiet.is_empty()).then(|| quiet.get(id)).flatten() {
            Some(q) => q.settled.clone(),
            None => state.results.get(id).cloned().unwrap_or_default(),
        };
        Some(Inputs {
            entity,
            facts: state.facts.get(id).cloned().unwrap_or_default(),
            exemptions: state.exemptions_of(id),
            previous,
        })
    }

    /// Replace (or add) one exemption, for a pass that evaluates a decision before committing it.
    pub fn with_exemption(mut self, exemption: &Exemption) -> Inputs {
        self.exemptions.retain(|e| e.id != exemption.id);
        self.exemptions.push(exemption.clone());
        self
    }
}

/// What evaluating one entity produced.
#[derive(Clone, Debug)]
pub struct Evaluated {
    pub entity: Arc<Entity>,
    /// Every applicable scorecard's result (fresh `evaluated_at`).
    pub results: Vec<ScorecardResult>,
    pub previous: Arc<Vec<ScorecardResult>>,
    /// Results whose outcome differs from the previous one (these are written).
    pub changed: Vec<ScorecardResult>,
    pub level_changes: Vec<LevelChange>,
    /// Scorecards that applied before and no longer do (their stored result is deleted).
    pub removed: Vec<String>,
    /// Evaluated before a data source it reads finished its first round for it: shown, never
    /// written or acted on (`changed`, `level_changes` and `removed` are empty; see
    /// `first_round.rs`).
    pub quiet: bool,
}

impl Evaluated {
    /// Add the changes to `batch`.
    pub fn write_into(&self, batch: &mut WriteBatch) {
        for result in &self.changed {
            batch.put_result(result);
        }
        for change in &self.level_changes {
            batch.append_level_change(change);
        }
        for scorecard in &self.removed {
            batch.delete_result(&self.entity.identifier, scorecard);
        }
    }

    /// Number of rule evaluations in this entity's results.
    pub fn rule_count(&self) -> usize {
        self.results.iter().map(|r| r.rules.len()).sum()
    }
}

/// Check outcomes of one entity, keyed by (scorecard, rule).
#[derive(Default)]
struct EntityChecks(Vec<(Arc<Scorecard>, Name, CheckOutcome)>);

impl CheckResults for EntityChecks {
    fn get(&self, scorecard: &str, rule: &str) -> Option<&CheckOutcome> {
        // Few check rules per entity, each answered once: a scan of a list.
        self.0
            .iter()
            .find(|(s, r, _)| s.identifier == scorecard && &**r == rule)
            .map(|(_, _, v)| v)
    }
}

/// Evaluate `inputs` against `standards` at `now`, calling check plugins from `plugins`, for the
/// scorecards in `only` (all when `None`): the others keep their
/// previous results and their check plugins are not called. A standards reload that changes
/// one scorecard, or a replaced check plugin, re-evaluates only what it can have changed.
pub async fn evaluate_scorecards(
    standards: &Arc<Standards>,
    plugins: &PluginRegistry,
    inputs: Vec<Inputs>,
    now: Timestamp,
    only: Option<Arc<BTreeSet<String>>>,
) -> Vec<Evaluated> {
    let checks = run_checks(standards, plugins, &inputs, now, only.as_deref()).await;
    let standards = standards.clone();
    // The pure evaluator is CPU-bound: keep it off the async workers, and split large passes
    // across the cores.
    tokio::task::spawn_blocking(move || {
        evaluate_blocking(&standards, inputs, checks, now, only.as_deref())
    })
    .await
    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

fn evaluate_blocking(
    standards: &Standards,
    inputs: Vec<Inputs>,
    checks: Vec<EntityChecks>,
    now: Timestamp,
    only: Option<&BTreeSet<String>>,
) -> Vec<Evaluated> {
    let work: Vec<(Inputs, EntityChecks)> = inputs.into_iter().zip(checks).collect();
    chunked(&work, 256, |part| {
        part.iter()
            .enumerate()
            .map(|(k, (i, c))| {
                eval::prefetch::ahead(part, k, |(i, _)| eval::prefetch::Upcoming {
                    entity: &i.entity,
                    facts: &i.facts,
                    previous: &i.previous,
                });
                // The check plugins' outcomes, whose messages the results copy.
                if let Some((_, checks)) = part.get(k + 2) {
                    eval::prefetch::slice(&checks.0);
                }
                if let Some((_, checks)) = part.get(k + 1) {
                    for (_, _, outcome) in &checks.0 {
                        if let Some(message) = &outcome.message {
                            eval::prefetch::text(message);
                        }
                    }
                }
                evaluate_one(standards, i, c, now, only)
            })
            .collect::<Vec<_>>()
    })
    .into_iter()
    .flatten()
    .collect()
}

/// `work` over consecutive chunks of `items`, one chunk per core (at most 8) when every core
/// gets at least `min_chunk` items, else in one piece on this thread; the chunks' answers in
/// order. For the CPU-bound steps of a large pass: evaluating, planning, encoding.
pub(crate) fn chunked<T: Sync, R: Send>(
    items: &[T],
    min_chunk: usize,
    work: impl Fn(&[T]) -> R + Sync,
) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(8)
        .min(items.len() / min_chunk.max(1));
    if threads <= 1 {
        return vec![work(items)];
    }
    let chunk = items.len().div_ceil(threads);
    let work = &work;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(move || work(part)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

/// Add every evaluated entity's changes to `batch`, in order; the encoding runs on every core
/// when there are many (a full pass encodes tens of thousands of results).
pub fn write_all(outcome: &[Evaluated], batch: &mut WriteBatch) {
    for part in chunked(outcome, 512, |part| {
        let mut batch = WriteBatch::new();
        for evaluated in part {
            evaluated.write_into(&mut batch);
        }
        batch
    }) {
        batch.append(part);
    }
}

fn evaluate_one(
    standards: &Standards,
    inputs: &Inputs,
    checks: &EntityChecks,
    now: Timestamp,
    only: Option<&BTreeSet<String>>,
) -> Evaluated {
    let mut results = Vec::with_capacity(standards.scorecards.len());
    for scorecard in &standards.scorecards {
        let previous = inputs
            .previous
            .iter()
            .find(|r| r.scorecard == scorecard.identifier);
        if only.is_some_and(|only| !only.contains(scorecard.identifier.as_str())) {
            // Unchanged scorecard, unchanged entity: its result stands (a scorecard that did
            // not apply still does not).
            if let Some(previous) = previous {
                results.push(previous.clone());
            }
            continue;
        }
        let input = EvalInput {
            entity: &inputs.entity,
            facts: &inputs.facts,
            exemptions: &inputs.exemptions,
            now,
            checks,
            previous,
        };
        if let Some(result) = eval::evaluate_scorecard(&input, scorecard) {
            results.push(result);
        }
    }
    let mut changed = Vec::new();
    let mut level_changes = Vec::new();
    for result in &results {
        let previous = inputs
            .previous
            .iter()
            .find(|r| r.scorecard == result.scorecard);
        if previous.is_none_or(|p| !same_outcome(p, result)) {
            changed.push(result.clone());
        }
        if previous.is_none_or(|p| p.level_index != result.level_index) {
            level_changes.push(LevelChange {
                entity: result.entity.clone(),
                scorecard: result.scorecard.to_string(),
                from: previous.map(|p| p.level.to_string()),
                to: result.level.to_string(),
                from_index: previous.map(|p| p.level_index),
                to_index: result.level_index,
                percent: result.percent,
                at: now,
            });
        }
    }
    let removed = inputs
        .previous
        .iter()
        .filter(|p| !results.iter().any(|r| r.scorecard == p.scorecard))
        .map(|p| p.scorecard.to_string())
        .collect();
    Evaluated {
        entity: inputs.entity.clone(),
        results,
        previous: inputs.previous.clone(),
        changed,
        level_changes,
        removed,
        quiet: false,
    }
}

/// Whether two results of the same (entity, scorecard) say the same thing, times aside.
pub fn same_outcome(a: &ScorecardResult, b: &ScorecardResult) -> bool {
    a.level_index == b.level_index
        && a.level == b.level
        && a.percent == b.percent
        && a.score == b.score
        && a.rules.len() == b.rules.len()
        && a.rules.iter().zip(&b.rules).all(|(x, y)| {
            x.rule == y.rule
                && x.level == y.level
                && x.status == y.status
                && x.message == y.message
                && x.details == y.details
                && x.weight == y.weight
        })
}

/// One pending plugin call.
struct Call {
    entity_index: usize,
    scorecard: Arc<Scorecard>,
    rule: Name,
    /// The rule's params as JSON text, encoded once per rule and pass.
    params: Arc<String>,
}

/// Run every check plugin call the entities' applicable rules need, batched per plugin on warm
/// instances. A plugin that is not loaded, parked or failing yields `error` outcomes with the
/// reason, never a failed pass.
async fn run_checks(
    standards: &Standards,
    plugins: &PluginRegistry,
    inputs: &[Inputs],
    now: Timestamp,
    only: Option<&BTreeSet<String>>,
) -> Vec<EntityChecks> {
    let mut out: Vec<EntityChecks> = inputs.iter().map(|_| EntityChecks::default()).collect();
    // Only scorecards with a check rule can need a call; each rule's params are encoded once
    // (keyed by the rule's address, stable for this pass).
    let mut encoded_params: HashMap<usize, Arc<String>> = HashMap::new();
    let with_checks: Vec<&Arc<Scorecard>> = standards
        .scorecards
        .iter()
        .filter(|card| only.is_none_or(|only| only.contains(card.identifier.as_str())))
        .filter(|card| {
            let mut any = false;
            for rule in card.rules.iter() {
                if let Some(check) = &rule.check {
                    any = true;
                    encoded_params
                        .entry(std::ptr::from_ref(rule) as usize)
                        .or_insert_with(|| {
                            // Params come from a parsed YAML/JSON document: always encodable.
                            Arc::new(
                                crate::plugin::encode_params(&check.params).unwrap_or_default(),
                            )
                        });
                }
            }
            any
        })
        .collect();
    if with_checks.is_empty() {
        return out;
    }
    // Which rules need a call for which entity: the filters run on every core in a large pass.
    let indexed: Vec<(usize, &Inputs)> = inputs.iter().enumerate().collect();
    let gathered = chunked(&indexed, 512, |part| {
        let mut found: Vec<(&str, Call)> = Vec::new();
        for (index, input) in part {
            for scorecard in &with_checks {
                for rule in eval::checks_needed(&input.entity, &input.facts, scorecard, now) {
                    if let Some(check) = &rule.check {
                        found.push((
                            check.plugin.as_str(),
                            Call {
                                entity_index: *index,
                                scorecard: Arc::clone(scorecard),
                                rule: rule.identifier,
                                params: encoded_params[&(std::ptr::from_ref(rule) as usize)]
                                    .clone(),
                            },
                        ));
                    }
                }
            }
        }
        found
    });
    let mut calls: HashMap<String, Vec<Call>> = HashMap::new();
    for (plugin, call) in gathered.into_iter().flatten() {
        match calls.get_mut(plugin) {
            Some(list) => list.push(call),
            None => {
                calls.insert(plugin.to_owned(), vec![call]);
            }
        }
    }
    if calls.is_empty() {
        return out;
    }
    // Each entity with a plugin call is encoded for the wire once, whatever its number of calls;
    // on every core in a large pass.
    let mut wanted: Vec<usize> = calls.values().flatten().map(|c| c.entity_index).collect();
    wanted.sort_unstable();
    wanted.dedup();
    let mut encoded: Vec<Option<Result<CheckInput, String>>> =
        inputs.iter().map(|_| None).collect();
    let parts = chunked(&wanted, 256, |part| {
        part.iter()
            .map(|&index| {
                let input = &inputs[index];
                CheckInput::with_facts_json(&input.entity, facts_json_text(&input.facts))
                    .map_err(|e| e.to_string())
            })
            .collect::<Vec<_>>()
    });
    for (index, input) in wanted.iter().zip(parts.into_iter().flatten()) {
        encoded[*index] = Some(input);
    }
    let encoded = Arc::new(encoded);
    let calls: Vec<(String, Vec<Call>)> = calls.into_iter().collect();
    // Batches run as tasks of their own, so they spread over the runtime's worker threads
    // (each batch holds one warm instance; the host bounds how many run at once).
    let mut jobs = Vec::new();
    for (plugin_name, plugin_calls) in &calls {
        let plugin = plugins.get(plugin_name);
        // A plugin with a manifest that failed to load: its rules say why, so that the owner
        // reading the `error` result sees the broken wasm, not just "not loaded".
        let not_loaded = Arc::new(match plugins.load_failure(plugin_name) {
            Some(reason) => format!("plugin {plugin_name} is not loaded: {reason}"),
            None => format!("plugin {plugin_name} is not loaded"),
        });
        for chunk in plugin_calls.chunks(512) {
            let not_loaded = not_loaded.clone();
            let plugin = plugin.clone();
            let plugin_name = plugin_name.clone();
            let encoded = encoded.clone();
            let wanted: Vec<(usize, Arc<String>)> = chunk
                .iter()
                .map(|c| (c.entity_index, c.params.clone()))
                .collect();
            let job = tokio::spawn(async move {
                let started = std::time::Instant::now();
                let answers: Vec<CheckOutcome> = match &plugin {
                    None => wanted
                        .iter()
                        .map(|_| error_outcome(not_loaded.to_string()))
                        .collect(),
                    Some(plugin) => {
                        // Calls whose entity could not be encoded answer `error` without
                        // reaching the plugin.
                        let mut unencodable: Vec<(usize, String)> = Vec::new();
                        let mut batch: Vec<CheckCall<'_>> = Vec::with_capacity(wanted.len());
                        for (position, (entity_index, params)) in wanted.iter().enumerate() {
                            match encoded[*entity_index].as_ref() {
                                Some(Ok(input)) => batch.push((input, params)),
                                Some(Err(reason)) => unencodable.push((position, reason.clone())),
                                None => unencodable.push((position, "entity not encoded".into())),
                            }
                        }
                        let mut answers: Vec<CheckOutcome> = plugin
                            .evaluate_batch(&batch)
                            .await
                            .into_iter()
                            .map(|r| r.unwrap_or_else(|e| error_outcome(e.to_string())))
                            .collect();
                        for (position, reason) in unencodable {
                            answers.insert(position, error_outcome(reason));
                        }
                        answers
                    }
                };
                let labels = PluginLabels {
                    plugin: plugin_name,
                    outcome: "batch".into(),
                };
                metrics()
                    .plugin_call_seconds
                    .get_or_create(&labels)
                    .observe(started.elapsed().as_secs_f64());
                answers
            });
            jobs.push((chunk, job));
        }
    }
    for (chunk, job) in jobs {
        let answers = job.await.unwrap_or_else(|e| {
            chunk
                .iter()
                .map(|_| error_outcome(format!("the plugin call task failed: {e}")))
                .collect()
        });
        for (call, answer) in chunk.iter().zip(answers) {
            out[call.entity_index]
                .0
                .push((Arc::clone(&call.scorecard), call.rule, answer));
        }
    }
    out
}

fn error_outcome(message: String) -> CheckOutcome {
    CheckOutcome {
        status: RuleStatus::Error,
        message: Some(message),
        details: None,
    }
}

/// The facts a check plugin sees, `{ "<source>": { ...facts } }`, as JSON text.
pub fn facts_json_text(facts: &EntityFacts) -> String {
    struct Wire<'a>(&'a EntityFacts);
    impl serde::Serialize for Wire<'_> {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_map(
                self.0
                    .iter()
                    .map(|(source, record)| (source, &record.facts)),
            )
        }
    }
    // A map of strings to JSON objects always encodes.
    serde_json::to_string(&Wire(facts)).unwrap_or_else(|_| "{}".into())
}
