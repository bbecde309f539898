//! Loading the three directories into the engine, at start and on every change (hot reload).
//!
//! Each part is parsed and validated whole before it replaces what is in force; on failure the
//! old part stays active and the error is kept for `/v1/status`. A change re-evaluates only the
//! entities it affects and commits their new results with the level-change events.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use crate::catalog;
use crate::metrics::metrics;
use crate::model::Entity;
use crate::plugin::{Manifest, PluginKind as HostPluginKind, load_manifests};
use crate::standards::{self, PluginKind, Standards};
use crate::store::{
    Durability, EntityOrigin, StoredEntity, StoredStandards, StoredStandardsFile, WriteBatch,
};

use super::state::{PartStatus, PluginLoadError, ServingFrom, StandardsServing};
use super::{Engine, EngineError, Result};

/// What a reload did, in lines a person reads (logged, and answered by `POST /v1/reload`).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ReloadReport {
    pub changes: Vec<String>,
    pub errors: Vec<String>,
    /// Entities evaluated again.
    pub reevaluated: usize,
    /// Of those, entities whose level changed on some scorecard.
    pub level_changed: usize,
}

impl ReloadReport {
    /// Every line, changes first.
    pub fn lines(&self) -> impl Iterator<Item = String> + '_ {
        self.changes
            .iter()
            .cloned()
            .chain(self.errors.iter().map(|e| format!("refused: {e}")))
    }

    fn merge(&mut self, other: ReloadReport) {
        self.changes.extend(other.changes);
        self.errors.extend(other.errors);
        self.reevaluated += other.reevaluated;
        self.level_changed += other.level_changed;
    }
}

/// Which plugins have a manifest and of which kind, for standards validation: a plugin that
/// failed to load still has one, so its rules are `error` results, not definition errors
/// (DESIGN.md section 12). A manifest refused before its kind could be read (`None`) is
/// accepted as whatever the rule needs: its rules can only evaluate to `error`.
struct RegistryLookup(BTreeMap<String, Option<PluginKind>>);

impl standards::PluginLookup for RegistryLookup {
    fn kind_of(&self, name: &str) -> Option<PluginKind> {
        self.0
            .get(name)
            .map(|kind| kind.unwrap_or(PluginKind::Check))
    }
}

/// Lookup for a stored standards set: the plugins with a manifest, and any other name as a
/// check (see [`Engine::stored_standards`]).
struct StoredLookup(RegistryLookup);

impl standards::PluginLookup for StoredLookup {
    fn kind_of(&self, name: &str) -> Option<PluginKind> {
        self.0.kind_of(name).or(Some(PluginKind::Check))
    }
}

/// Where a standards set about to be put in force comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Origin {
    Files,
    /// The store's last good set, first loaded from its files at `loaded_at`; `refused` says
    /// why the files were not used.
    Stored {
        refused: String,
        loaded_at: Option<crate::model::Timestamp>,
    },
}

/// A standards set read back from the store, with when it was first loaded from its files.
struct StoredSet {
    standards: Standards,
    stored_at: Option<crate::model::Timestamp>,
}

/// What reading the catalog directory gave.
type CatalogLoad = std::result::Result<catalog::Catalog, Vec<catalog::CatalogError>>;

impl Engine {
    /// Rescan plugins, standards and catalog (start, `POST /v1/reload`, SIGHUP, watcher overflow).
    pub async fn reload_all(&self, why: &str) -> ReloadReport {
        let mut report = ReloadReport::default();
        // The catalog files are read and parsed while plugins and standards load (at start on
        // 10,000 entities that is a third of a second of YAML); applied after them as before.
        let catalog = tokio::spawn(self.read_catalog());
        report.merge(self.reload_plugins(why).await);
        report.merge(self.reload_standards(why).await);
        let loaded = catalog
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        report.merge(self.apply_catalog(why, loaded).await);
        report
    }

    /// `POST /v1/reload`.
    pub async fn reload(&self, actor: &super::Actor) -> Result<serde_json::Value> {
        if actor.role != crate::config::Role::Admin {
            return Err(EngineError::Forbidden("only an admin may reload".into()));
        }
        let report = self
            .reload_all(&format!("requested by {}", actor.name))
            .await;
        serde_json::to_value(report).map_err(|e| EngineError::Internal(e.to_string()))
    }

    fn plugin_lookup(&self) -> RegistryLookup {
        RegistryLookup(
            self.inner
                .plugins
                .declared()
                .into_iter()
                .map(|(name, kind)| {
                    let kind = kind.map(|kind| match kind {
                        HostPluginKind::DataSource => PluginKind::DataSource,
                        HostPluginKind::Check => PluginKind::Check,
                    });
                    (name, kind)
                })
                .collect(),
        )
    }

    /// Load every manifest of the plugins directory; compile and swap in what changed.
    pub async fn reload_plugins(&self, why: &str) -> ReloadReport {
        let mut report = ReloadReport::default();
        let dir = self.inner.config.plugins_dir.clone();
        let (mut manifests, mut errors) = if dir.is_dir() {
            load_manifests(&dir)
        } else {
            (Vec::new(), Vec::new())
        };
        if let Some(policy) = &self.inner.grant_policy {
            // A manifest granting itself more than [plugins.policy] is refused like an invalid
            // one (the version loaded before, if any, keeps serving).
            manifests.retain(|m| match policy.check(m) {
                Ok(()) => true,
                Err(e) => {
                    errors.push(e);
                    false
                }
            });
        }
        let mut failures: Vec<PluginLoadError> = Vec::new();
        for e in &errors {
            report.errors.push(e.to_string());
            failures.push(PluginLoadError {
                manifest: e.path.clone(),
                plugin: None,
                error: e.to_string(),
            });
            metrics().reload("plugins", false);
        }
        // A manifest that is present but unreadable is a refused replacement, not a removal:
        // the plugin loaded from that file keeps serving.
        let unreadable: BTreeMap<&Path, String> = errors
            .iter()
            .map(|e| (e.path.as_path(), e.to_string()))
            .collect();
        let mut present: BTreeSet<String> = manifests.iter().map(|m| m.name.clone()).collect();
        // A refused manifest still declares its plugin: remembered as failed (a version already
        // serving keeps serving), so the standards see a plugin that failed to load, not an
        // unknown one. A second manifest of a name already taken refuses only itself.
        for e in &errors {
            if matches!(e.fault, crate::plugin::ManifestFault::DuplicateName { .. }) {
                continue;
            }
            let Some((name, kind)) = crate::plugin::declared_plugin(&e.path) else {
                continue;
            };
            if present.contains(&name) {
                continue;
            }
            self.inner.plugins.record_manifest_failure(
                &name,
                kind.or(self.inner.plugins.get(&name).map(|p| p.kind())),
                e,
            );
            present.insert(name);
        }
        let mut changed_checks = BTreeSet::new();
        let mut changed_sources = Vec::new();
        for manifest in manifests {
            let name = manifest.name.clone();
            let manifest_kind = manifest.kind;
            let manifest_path = manifest.path.clone();
            if !self.plugin_changed(&manifest) {
                continue;
            }
            match self.inner.host.load(manifest).await {
                Ok(plugin) => {
                    let kind = plugin.manifest.kind;
                    let version = plugin.version.clone();
                    let replaced = self.inner.plugins.insert(plugin.clone());
                    report.changes.push(format!(
                        "plugin {name}: {} version {version} ({why})",
                        if replaced { "replaced by" } else { "loaded" }
                    ));
                    metrics().reload("plugins", true);
                    match kind {
                        HostPluginKind::Check => {
                            changed_checks.insert(name);
                        }
                        HostPluginKind::DataSource => changed_sources.push(plugin),
                    }
                }
                Err(err) => {
                    // The old version (if any) keeps serving.
                    self.inner
                        .plugins
                        .record_load_failure(&name, manifest_kind, &err);
                    report.errors.push(format!("plugin {name}: {err}"));
                    failures.push(PluginLoadError {
                        manifest: manifest_path.clone(),
                        plugin: Some(name.clone()),
                        error: err.to_string(),
                    });
                    metrics().reload("plugins", false);
                }
            }
        }
        for (name, kind) in self.inner.plugins.declared() {
            if !present.contains(&name) {
                if let Some((reason, kind)) = self.inner.plugins.get(&name).and_then(|p| {
                    unreadable
                        .get(p.manifest.path.as_path())
                        .map(|r| (r, p.kind()))
                }) {
                    self.inner.plugins.record_load_failure(&name, kind, reason);
                    continue;
                }
                self.inner.plugins.remove(&name);
                report
                    .changes
                    .push(format!("plugin {name}: unloaded (manifest removed)"));
                if kind == Some(HostPluginKind::Check) {
                    changed_checks.insert(name);
                }
            }
        }
        {
            let mut state = self.write();
            state.plugins_status = PartStatus {
                revision: None,
                loaded_at: Some(self.now()),
                last_error: report.errors.last().cloned(),
                last_error_at: (!report.errors.is_empty()).then(|| self.now()),
            };
            state.plugin_load_errors = failures;
        }
        if !changed_checks.is_empty() && self.is_ready() {
            let (ids, cards) = self.entities_using_checks(&changed_checks);
            let (n, changed) = self
                .reevaluate_scorecards(&ids, Some(Arc::new(cards)))
                .await;
            report.reevaluated += n;
            report.level_changed += changed;
            report.changes.push(format!(
                "check plugins {}: {n} entities re-evaluated, {changed} changed level",
                changed_checks.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
        if self.is_ready() {
            for plugin in changed_sources {
                super::sources::spawn_collect_now(self, plugin);
            }
        }
        report
    }

    /// Whether a manifest differs from the loaded plugin of the same name (manifest or wasm).
    fn plugin_changed(&self, manifest: &Manifest) -> bool {
        match self.inner.plugins.get(&manifest.name) {
            None => true,
            Some(current) => {
                current.manifest != *manifest
                    || crate::plugin::wasm_version(&manifest.wasm)
                        .is_none_or(|v| v != current.version)
            }
        }
    }

    /// The entities that a scorecard using one of `plugins` applies to, and those scorecards.
    fn entities_using_checks(&self, plugins: &BTreeSet<String>) -> (Vec<String>, BTreeSet<String>) {
        let state = self.read();
        let cards: Vec<_> = state
            .standards
            .scorecards
            .iter()
            .filter(|s| {
                s.rules.iter().any(|r| {
                    r.check
                        .as_ref()
                        .is_some_and(|c| plugins.contains(&c.plugin))
                })
            })
            .cloned()
            .collect();
        if cards.is_empty() {
            return (Vec::new(), BTreeSet::new());
        }
        let now = self.now();
        let ids = state
            .effective
            .iter()
            .filter(|(id, e)| {
                let facts: &crate::model::EntityFacts =
                    state.facts.get(*id).map_or(&super::state::NO_FACTS, |f| f);
                cards.iter().any(|c| crate::eval::applies(c, e, facts, now))
            })
            .map(|(id, _)| id.clone())
            .collect();
        (
            ids,
            cards.iter().map(|c| c.identifier.to_string()).collect(),
        )
    }

    /// Parse and validate the standards directory; swap it in and re-evaluate what it affects.
    pub async fn reload_standards(&self, why: &str) -> ReloadReport {
        let mut report = ReloadReport::default();
        let started = std::time::Instant::now();
        let dir = self.inner.config.standards_dir.clone();
        let lookup = self.plugin_lookup();
        let loaded = tokio::task::spawn_blocking(move || standards::load_dir(&dir, &lookup))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        let (new, origin) = match loaded {
            Ok(s) => (Arc::new(s), Origin::Files),
            Err(errors) => {
                let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
                let summary = format!(
                    "{} problem(s); first: {}",
                    lines.len(),
                    lines.first().cloned().unwrap_or_default()
                );
                let in_force = {
                    let mut state = self.write();
                    state.standards_status.last_error = Some(summary.clone());
                    state.standards_status.last_error_at = Some(self.now());
                    state.standards_errors = lines.clone();
                    if state.standards_serving.from != ServingFrom::Files {
                        state.standards_serving.files_refused = Some(summary.clone());
                    }
                    state.standards_serving.from != ServingFrom::None
                };
                report
                    .errors
                    .extend(lines.into_iter().map(|l| format!("standards: {l}")));
                metrics().reload("standards", false);
                if in_force {
                    // The set in force (from the files or the store) keeps serving.
                    return report;
                }
                // Nothing serves yet (a start): fall back to the last good set in the store.
                match self.stored_standards().await {
                    Ok(Some(set)) => (
                        Arc::new(set.standards),
                        Origin::Stored {
                            refused: summary,
                            loaded_at: set.stored_at,
                        },
                    ),
                    Ok(None) => {
                        report.errors.push(
                            "standards: no standards set has ever loaded here: not ready (the \
                             gate answers not_ready) until the files load"
                                .to_owned(),
                        );
                        return report;
                    }
                    Err(reason) => {
                        report.errors.push(format!(
                            "standards: the stored last good set cannot be served either: \
                             {reason}; not ready until the files load"
                        ));
                        return report;
                    }
                }
            }
        };
        let _guard = self.inner.ops.lock().await;
        let old = self.read().standards.clone();
        if old.revision == new.revision && self.is_ready() {
            let mut state = self.write();
            if origin == Origin::Files {
                state.standards_status.last_error = None;
                state.standards_errors.clear();
                if state.standards_serving.from == ServingFrom::Stored {
                    // The files were fixed back to the very set the store held.
                    state.standards_serving = StandardsServing {
                        from: ServingFrom::Files,
                        revision: Some(new.revision.clone()),
                        loaded_at: Some(self.now()),
                        since: Some(self.now()),
                        files_refused: None,
                    };
                    metrics().standards_serving_stored.set(0);
                    report.changes.push(format!(
                        "standards revision {}: the files load again and replace the stored set \
                         ({why})",
                        short(&new.revision)
                    ));
                }
            }
            return report;
        }
        let diff = Standards::diff(&old, &new);
        let now = self.now();
        let loaded_at = started.elapsed();
        let affected: Vec<String> = {
            let state = self.read();
            if !self.is_ready() || diff.tiers_changed {
                state.effective.keys().cloned().collect()
            } else {
                let cards: Vec<_> = diff.affected_scorecards();
                state
                    .effective
                    .iter()
                    .filter(|(id, e)| {
                        let facts: &crate::model::EntityFacts =
                            state.facts.get(*id).map_or(&super::state::NO_FACTS, |f| f);
                        cards.iter().any(|c| {
                            old.scorecard(c)
                                .is_some_and(|s| crate::eval::applies(s, e, facts, now))
                                || new
                                    .scorecard(c)
                                    .is_some_and(|s| crate::eval::applies(s, e, facts, now))
                        })
                    })
                    .map(|(id, _)| id.clone())
                    .collect()
            }
        };
        // Evaluate against the new standards before they are visible.
        let inputs: Vec<_> = {
            let state = self.read();
            affected
                .iter()
                .filter_map(|id| super::pass::Inputs::gather(&state, id))
                .collect()
        };
        // Only the scorecards the diff names can have changed an entity's results, unless the
        // tiers changed (every requirement moves) or nothing was evaluated yet.
        let only = (self.is_ready() && !diff.tiers_changed)
            .then(|| Arc::new(diff.affected_scorecards().into_iter().collect()));
        let gathered_at = started.elapsed();
        let outcome = self.evaluate_inputs(&new, inputs, now, only).await;
        let evaluated_at = started.elapsed();
        let plan = {
            // Plan tasks and alerts under the new standards.
            let mut state = self.write();
            let previous = std::mem::replace(&mut state.standards, new.clone());
            let ctx = self.automation_context(&state);
            let plan = super::plan_all(&ctx, &state, &outcome, now);
            state.standards = previous;
            plan
        };
        let mut batch = WriteBatch::new();
        super::pass::write_all(&outcome, &mut batch);
        plan.apply_to(&mut batch);
        batch.put_meta("standards_revision", &new.revision);
        if origin == Origin::Files {
            // Kept with the results it produced, so a later start whose files are refused
            // serves this set again (DESIGN.md section 12).
            batch.put_last_good_standards(&StoredStandards {
                revision: new.revision.clone(),
                loaded_at: now,
                files: new
                    .sources
                    .iter()
                    .map(|f| StoredStandardsFile {
                        path: f.path.clone(),
                        text: f.text.clone(),
                    })
                    .collect(),
            });
        }
        let planned_at = started.elapsed();
        if let Err(err) = self.commit(batch, Durability::Immediate).await {
            report.errors.push(format!("standards: {err}"));
            metrics().reload("standards", false);
            return report;
        }
        let committed_at = started.elapsed();
        let changed_level = outcome
            .iter()
            .filter(|e| !e.level_changes.is_empty())
            .count();
        let n = outcome.len();
        let replaced_stored = {
            let mut state = self.write();
            state.standards = new.clone();
            let previous = std::mem::take(&mut state.standards_serving);
            match &origin {
                Origin::Files => {
                    state.standards_status = PartStatus {
                        revision: Some(new.revision.clone()),
                        loaded_at: Some(now),
                        last_error: None,
                        last_error_at: None,
                    };
                    state.standards_errors.clear();
                    state.standards_serving = StandardsServing {
                        from: ServingFrom::Files,
                        revision: Some(new.revision.clone()),
                        loaded_at: Some(now),
                        since: match previous.from {
                            ServingFrom::Files => previous.since,
                            _ => Some(now),
                        },
                        files_refused: None,
                    };
                }
                Origin::Stored { refused, loaded_at } => {
                    // The refusal stays in `last_error` and `errors`: the files still need a fix.
                    state.standards_status.revision = Some(new.revision.clone());
                    state.standards_status.loaded_at = *loaded_at;
                    state.standards_serving = StandardsServing {
                        from: ServingFrom::Stored,
                        revision: Some(new.revision.clone()),
                        loaded_at: *loaded_at,
                        since: Some(now),
                        files_refused: Some(refused.clone()),
                    };
                }
            }
            super::actions::apply_to_state(&plan, &mut state);
            Self::apply_outcome(&mut state, outcome);
            previous.from == ServingFrom::Stored
        };
        self.inner.delivery.wake();
        match &origin {
            Origin::Files => {
                metrics().reload("standards", true);
                metrics().standards_serving_stored.set(0);
                if replaced_stored {
                    report.changes.push(format!(
                        "standards revision {}: the files load again and replace the stored set \
                         ({why})",
                        short(&new.revision)
                    ));
                }
            }
            Origin::Stored { refused, loaded_at } => {
                metrics().standards_serving_stored.set(1);
                report.errors.push(format!(
                    "standards: the files were refused ({refused}); serving the stored last good \
                     set, revision {} loaded {}",
                    short(&new.revision),
                    loaded_at.map_or_else(|| "at an unknown time".to_owned(), |t| t.to_rfc3339())
                ));
            }
        }
        self.mark_ready_after_start();
        for line in diff.describe() {
            report.changes.push(format!("{line} ({why})"));
        }
        let ms = |d: std::time::Duration| d.as_millis();
        report.changes.push(format!(
            "standards revision {}: {n} entities re-evaluated, {changed_level} changed level \
             (in force after {} ms: load {} ms, select and gather {} ms, evaluate {} ms, plan \
             {} ms, commit {} ms, apply {} ms)",
            short(&new.revision),
            ms(started.elapsed()),
            ms(loaded_at),
            ms(gathered_at - loaded_at),
            ms(evaluated_at - gathered_at),
            ms(planned_at - evaluated_at),
            ms(committed_at - planned_at),
            ms(started.elapsed() - committed_at),
        ));
        report.reevaluated += n;
        report.level_changed += changed_level;
        report
    }

    /// The last good standards set in the store, compiled again (`None` if none was ever
    /// stored). Its plugins are looked up leniently: one whose manifest has gone since is
    /// taken as a check, so its rules evaluate to `error` (fail closed) instead of refusing
    /// the whole stored set.
    async fn stored_standards(&self) -> std::result::Result<Option<StoredSet>, String> {
        let store = self.inner.store.clone();
        let dir = self.inner.config.standards_dir.clone();
        let lookup = StoredLookup(self.plugin_lookup());
        tokio::task::spawn_blocking(move || {
            let Some(stored) = store.last_good_standards().map_err(|e| e.to_string())? else {
                return Ok(None);
            };
            let sources: Vec<standards::SourceFile> = stored
                .files
                .into_iter()
                .map(|f| standards::SourceFile {
                    path: f.path,
                    text: f.text,
                })
                .collect();
            match standards::load_sources(&dir, &sources, &lookup) {
                Ok(set) => Ok(Some(StoredSet {
                    standards: set,
                    stored_at: Some(stored.loaded_at),
                })),
                Err(errors) => Err(format!(
                    "revision {}: {} problem(s); first: {}",
                    short(&stored.revision),
                    errors.len(),
                    errors.first().map(ToString::to_string).unwrap_or_default()
                )),
            }
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }

    /// Read the catalog directory; apply additions, edits and removals; re-evaluate those.
    pub async fn reload_catalog(&self, why: &str) -> ReloadReport {
        let loaded = self.read_catalog().await;
        self.apply_catalog(why, loaded).await
    }

    /// Read and parse the catalog directory on a blocking thread.
    fn read_catalog(&self) -> impl Future<Output = CatalogLoad> + use<> {
        let dir = self.inner.config.catalog_dir.clone();
        let reading = tokio::task::spawn_blocking(move || {
            if dir.is_dir() {
                catalog::load_dir(&dir)
            } else {
                catalog::load_dir(Path::new("/nonexistent-readyd-catalog"))
            }
        });
        async move {
            reading
                .await
                .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
        }
    }

    /// Apply a catalog read by [`Engine::read_catalog`]: additions, edits and removals, and
    /// re-evaluate those.
    async fn apply_catalog(&self, why: &str, loaded: CatalogLoad) -> ReloadReport {
        let mut report = ReloadReport::default();
        let catalog = match loaded {
            Ok(c) => c,
            Err(errors) => {
                let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
                let mut state = self.write();
                state.catalog.last_error = Some(format!(
                    "{} problem(s); first: {}",
                    lines.len(),
                    lines.first().cloned().unwrap_or_default()
                ));
                state.catalog.last_error_at = Some(self.now());
                state.catalog_errors = lines.clone();
                report
                    .errors
                    .extend(lines.into_iter().map(|l| format!("catalog: {l}")));
                metrics().reload("catalog", false);
                return report;
            }
        };
        let _guard = self.inner.ops.lock().await;
        let now = self.now();
        let mut batch = WriteBatch::new();
        let mut upserts: Vec<StoredEntity> = Vec::new();
        let mut removed: Vec<String> = Vec::new();
        let mut added: Vec<String> = Vec::new();
        {
            let state = self.read();
            for (id, entity) in &catalog.entities {
                match state.entities.get(id) {
                    Some(stored)
                        if stored.origin == EntityOrigin::CatalogFile
                            && *stored.entity == *entity => {}
                    Some(stored) => {
                        let mut next = StoredEntity {
                            entity: Arc::new(entity.clone()),
                            origin: EntityOrigin::CatalogFile,
                            tier_override: stored.tier_override.clone(),
                        };
                        // The file's tier changed after a tier change was approved: the file is
                        // the newer decision, so the override goes (README: tiers).
                        if next.tier_override.is_some() && stored.entity.tier != entity.tier {
                            next.tier_override = None;
                            batch.set_tier_override(id, None);
                        }
                        batch.put_entity(entity, EntityOrigin::CatalogFile);
                        upserts.push(next);
                    }
                    None => {
                        added.push(id.clone());
                        batch.put_entity(entity, EntityOrigin::CatalogFile);
                        upserts.push(StoredEntity {
                            entity: Arc::new(entity.clone()),
                            origin: EntityOrigin::CatalogFile,
                            tier_override: None,
                        });
                    }
                }
            }
            for (id, stored) in &state.entities {
                if stored.origin == EntityOrigin::CatalogFile && !catalog.entities.contains_key(id)
                {
                    batch.delete_entity(id, now);
                    removed.push(id.clone());
                }
            }
        }
        let mut closed = Vec::new();
        for id in &removed {
            closed.extend(self.close_tasks_of(id, &mut batch));
        }
        let changed_ids: Vec<String> = upserts
            .iter()
            .map(|s| s.entity.identifier.clone())
            .collect();
        let effective: BTreeMap<String, Arc<Entity>> = upserts
            .iter()
            .map(|s| (s.entity.identifier.clone(), s.effective()))
            .collect();
        let outcome = {
            let effective = effective.clone();
            self.evaluate_ids_with(&changed_ids, move |state, id| {
                let entity = effective.get(id)?.clone();
                let mut inputs =
                    super::pass::Inputs::gather(state, id).unwrap_or(super::pass::Inputs {
                        entity: entity.clone(),
                        facts: Default::default(),
                        exemptions: state.exemptions_of(id),
                        previous: Default::default(),
                    });
                inputs.entity = entity;
                Some(inputs)
            })
            .await
        };
        let plan = self.plan_for(&outcome, now);
        super::pass::write_all(&outcome, &mut batch);
        plan.apply_to(&mut batch);
        batch.put_meta("catalog_revision", &catalog.revision);
        if let Err(err) = self.commit(batch, Durability::Immediate).await {
            report.errors.push(format!("catalog: {err}"));
            metrics().reload("catalog", false);
            return report;
        }
        let level_changed = outcome
            .iter()
            .filter(|e| !e.level_changes.is_empty())
            .count();
        let n = outcome.len();
        {
            let mut state = self.write();
            for s in upserts {
                state.put_entity(s);
            }
            for id in &removed {
                state.remove_entity(id);
            }
            for t in closed {
                state.put_task(t);
            }
            state.catalog = PartStatus {
                revision: Some(catalog.revision.clone()),
                loaded_at: Some(now),
                last_error: None,
                last_error_at: None,
            };
            state.catalog_errors.clear();
            super::actions::apply_to_state(&plan, &mut state);
            Self::apply_outcome(&mut state, outcome);
            metrics().entities.set(state.entities.len() as i64);
        }
        self.inner.delivery.wake();
        // New entities are quiet until their first rounds: collect them now.
        self.collect_new_entities(added);
        metrics().reload("catalog", true);
        if n > 0 || !removed.is_empty() {
            report.changes.push(format!(
                "catalog revision {}: {} entities added or changed, {} removed; {n} re-evaluated, {level_changed} changed level ({why})",
                short(&catalog.revision),
                changed_ids.len(),
                removed.len()
            ));
        }
        report.reevaluated += n;
        report.level_changed += level_changed;
        report
    }

    /// Re-evaluate `ids` with their live inputs (only the scorecards in `only`, all when
    /// `None`) and commit; returns (evaluated, level changed).
    async fn reevaluate_scorecards(
        &self,
        ids: &[String],
        only: Option<Arc<BTreeSet<String>>>,
    ) -> (usize, usize) {
        let _guard = self.inner.ops.lock().await;
        match self.reevaluate_locked_scoped(ids, only).await {
            Ok(x) => x,
            Err(err) => {
                tracing::error!(error = %err, "re-evaluation could not be saved");
                (0, 0)
            }
        }
    }

    /// Re-evaluate `ids` for a caller that holds the ops lock.
    pub(super) async fn reevaluate_locked(&self, ids: &[String]) -> Result<(usize, usize)> {
        self.reevaluate_locked_scoped(ids, None).await
    }

    async fn reevaluate_locked_scoped(
        &self,
        ids: &[String],
        only: Option<Arc<BTreeSet<String>>>,
    ) -> Result<(usize, usize)> {
        let now = self.now();
        let outcome = self
            .evaluate_ids_scoped(ids, super::pass::Inputs::gather, only)
            .await;
        let plan = self.plan_for(&outcome, now);
        let mut batch = WriteBatch::new();
        super::pass::write_all(&outcome, &mut batch);
        plan.apply_to(&mut batch);
        self.commit(batch, Durability::Immediate).await?;
        let changed = outcome
            .iter()
            .filter(|e| !e.level_changes.is_empty())
            .count();
        let n = outcome.len();
        let mut state = self.write();
        super::actions::apply_to_state(&plan, &mut state);
        Self::apply_outcome(&mut state, outcome);
        drop(state);
        self.inner.delivery.wake();
        Ok((n, changed))
    }
}

fn short(revision: &str) -> &str {
    &revision[..revision.len().min(12)]
}
