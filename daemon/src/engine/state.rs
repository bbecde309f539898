//! The engine's in-memory view of the readiness state: what every read is answered from.
//!
//! It mirrors what is committed in redb (the store is the truth across restarts; this is the
//! truth between commits) plus what is only loaded from files (standards, catalog origins,
//! plugins). It is changed only by the engine's single mutation path, after the store committed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::model::{
    Entity, EntityFacts, Exemption, Lock, ScorecardResult, Task, TaskStatus, TierRequest, Timestamp,
};
use crate::standards::Standards;
use crate::store::StoredEntity;

/// What a reload of one part (catalog, standards, plugins) last did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct PartStatus {
    /// Content hash of what is in force.
    pub revision: Option<String>,
    pub loaded_at: Option<Timestamp>,
    /// Why the last attempt was refused (the previous revision stays in force).
    pub last_error: Option<String>,
    pub last_error_at: Option<Timestamp>,
}

/// Where the standards set in force came from: `/v1/status` `standards.serving`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServingFrom {
    /// No standards set has loaded: readyd is not ready and the gate answers `not_ready`.
    #[default]
    None,
    /// The standards files, as read.
    Files,
    /// The last good set kept in the store, because the files were refused at start.
    Stored,
}

/// Which standards set serves, and why (`/v1/status` `standards.serving`).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct StandardsServing {
    pub from: ServingFrom,
    /// The revision in force (`None` when none is).
    pub revision: Option<String>,
    /// When that set was loaded from its files (for a stored set: the original load, before
    /// the restart that fell back to it).
    pub loaded_at: Option<Timestamp>,
    /// Since when it serves from there.
    pub since: Option<Timestamp>,
    /// Why the standards files were refused, while the stored set (or nothing) serves.
    pub files_refused: Option<String>,
}

/// A value with a count of its mutable accesses: every `&mut` taken (an insert, a removal, a
/// `make_mut`) bumps [`Counted::revision`], so a view derived from the value at one revision is
/// current exactly while the revision has not moved. Conservative by construction: a path that
/// mutates the value cannot forget to say so.
#[derive(Debug, Default)]
pub struct Counted<T> {
    value: T,
    revision: u64,
}

impl<T> Counted<T> {
    /// How many times the value was borrowed mutably.
    pub fn revision(&self) -> u64 {
        self.revision
    }
}

impl<T> std::ops::Deref for Counted<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> std::ops::DerefMut for Counted<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.revision += 1;
        &mut self.value
    }
}

/// The facts of an entity that has none (borrowed where a lookup finds nothing).
pub static NO_FACTS: crate::model::EntityFacts = BTreeMap::new();

/// The live state.
#[derive(Default)]
pub struct State {
    /// Every entity with its origin and approved tier override.
    pub entities: BTreeMap<String, StoredEntity>,
    /// Effective entities (tier override applied): what evaluation and the API see.
    pub effective: BTreeMap<String, Arc<Entity>>,
    pub standards: Arc<Standards>,
    /// entity → its facts (shared with the evaluation passes that read them: a pass takes a
    /// reference, not a copy).
    pub facts: HashMap<String, Arc<EntityFacts>>,
    /// entity → its results, one per applicable scorecard, in scorecard order (shared the
    /// same way). Every mutable access counts as a change (see [`Counted`]).
    pub results: Counted<HashMap<String, Arc<Vec<ScorecardResult>>>>,
    pub exemptions: BTreeMap<String, Exemption>,
    /// entity → ids of its exemptions.
    pub exemptions_by_entity: HashMap<String, Vec<String>>,
    pub tier_requests: BTreeMap<String, TierRequest>,
    pub locks: BTreeMap<String, Lock>,
    /// Every task by id. Insert only through [`State::put_task`], which keeps the index below.
    pub tasks: BTreeMap<String, Task>,
    /// entity → ids of its tasks (all statuses): `open_tasks_of` runs once per evaluated
    /// entity, and a scan of every task there made a full pass quadratic.
    pub tasks_by_entity: HashMap<String, BTreeSet<String>>,
    /// entity → first time it was seen below its tier's requirement (cleared on recovery).
    pub degraded_since: HashMap<String, Timestamp>,
    /// entity → the tier alert sent when it degraded (kept so it is not re-alerted).
    pub degraded_alerts: HashMap<String, crate::automation::DegradedAlert>,
    /// First rounds of the data sources per entity, and the quiet entities (see
    /// `first_round.rs`).
    pub first_rounds: super::first_round::FirstRounds,
    pub catalog: PartStatus,
    pub standards_status: PartStatus,
    pub standards_serving: StandardsServing,
    pub plugins_status: PartStatus,
    /// Catalog file errors and standards errors of the last attempt, in full.
    pub catalog_errors: Vec<String>,
    pub standards_errors: Vec<String>,
    /// Every manifest of the last plugin reload that failed, each with its own error.
    pub plugin_load_errors: Vec<PluginLoadError>,
}

/// One manifest that failed in a plugin reload (`/v1/status` `plugin_load_errors`).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PluginLoadError {
    pub manifest: std::path::PathBuf,
    /// The plugin's name when the manifest could be read that far.
    pub plugin: Option<String>,
    pub error: String,
}

impl State {
    /// Insert or replace an entity and refresh its effective view.
    pub fn put_entity(&mut self, stored: StoredEntity) {
        let id = stored.entity.identifier.clone();
        self.effective.insert(id.clone(), stored.effective());
        self.entities.insert(id, stored);
    }

    /// Remove an entity and everything derived from it.
    pub fn remove_entity(&mut self, id: &str) {
        self.entities.remove(id);
        self.effective.remove(id);
        self.facts.remove(id);
        self.results.remove(id);
        self.locks.remove(id);
        self.degraded_since.remove(id);
        self.degraded_alerts.remove(id);
        self.first_rounds.remove_entity(id);
    }

    /// Insert or replace an exemption, keeping the per-entity index.
    pub fn put_exemption(&mut self, exemption: Exemption) {
        let ids = self
            .exemptions_by_entity
            .entry(exemption.entity.clone())
            .or_default();
        if !ids.contains(&exemption.id) {
            ids.push(exemption.id.clone());
        }
        self.exemptions.insert(exemption.id.clone(), exemption);
    }

    /// The exemptions that concern `entity` (any status).
    pub fn exemptions_of(&self, entity: &str) -> Vec<Exemption> {
        self.exemptions_by_entity
            .get(entity)
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| self.exemptions.get(id).cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Open (or overdue) tasks of `entity`.
    pub fn open_tasks_of(&self, entity: &str) -> Vec<&Task> {
        let Some(ids) = self.tasks_by_entity.get(entity) else {
            return Vec::new();
        };
        ids.iter()
            .filter_map(|id| self.tasks.get(id))
            .filter(|t| t.status != TaskStatus::Done)
            .collect()
    }

    /// Insert or replace a task (a task never changes entity).
    pub fn put_task(&mut self, task: Task) {
        self.tasks_by_entity
            .entry(task.entity.clone())
            .or_default()
            .insert(task.id.clone());
        self.tasks.insert(task.id.clone(), task);
    }
}
