//! [`PluginRegistry`]: the plugins in force, by name, and their status.
//!
//! Each name maps to the current `Arc<Plugin>`. A reload swaps the `Arc` under a short write
//! lock; readers clone it, so calls in flight finish on the version they started on. A plugin
//! that failed to load is remembered (with its error) next to the version still serving, if
//! any. [`PluginRegistry::status`] is what `/v1/status` and `readyd plugin check` show.
//! Calls made through the registry ([`PluginRegistry::evaluate`], [`PluginRegistry::collect`])
//! go through the plugin's circuit breaker like direct calls on the [`Plugin`].
//!
//! This module must never hold its lock across a plugin call.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::Serialize;

use crate::model::{CheckOutcome, Entity, JsonObject, Timestamp};
use crate::plugin::error::PluginError;
use crate::plugin::health::PluginState;
use crate::plugin::instance::{CheckCall, Plugin};
use crate::plugin::manifest::PluginKind;

/// One plugin's line in the status report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PluginStatus {
    pub name: String,
    pub kind: PluginKind,
    /// Short wasm hash of the version serving; none if none is.
    pub version: Option<String>,
    pub loaded_at: Option<Timestamp>,
    /// Whether that version was loaded from the compiled-artifact cache.
    pub from_cache: bool,
    pub state: PluginState,
    /// The latest error: a failed call, a guest's `plugin-error`, or a failed (re)load.
    pub last_error: Option<String>,
    /// Calls since this version was loaded, and how many failed through the plugin's fault.
    pub calls: u64,
    pub failures: u64,
    /// Guest log lines dropped over the per-call budget since load.
    pub log_lines_dropped: u64,
}

#[derive(Default)]
struct Entry {
    plugin: Option<Arc<Plugin>>,
    /// The last failed load of this name, newer than `plugin`.
    load_failure: Option<LoadFailure>,
}

struct LoadFailure {
    /// `None` when the manifest was refused before its kind could be read.
    kind: Option<PluginKind>,
    reason: String,
    at: Timestamp,
}

/// The plugins in force.
pub struct PluginRegistry {
    entries: RwLock<BTreeMap<String, Entry>>,
    /// Consecutive faults that park a plugin of this registry.
    park_after_failures: u32,
}

impl std::fmt::Debug for PluginRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginRegistry")
            .field("names", &self.names())
            .finish()
    }
}

impl PluginRegistry {
    /// An empty registry whose plugins are parked after `park_after_failures` consecutive
    /// faults (this overrides the host's setting for plugins inserted here).
    pub fn new(park_after_failures: u32) -> PluginRegistry {
        PluginRegistry {
            entries: RwLock::default(),
            park_after_failures,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Entry>> {
        self.entries.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Entry>> {
        self.entries.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The version in force, if any.
    pub fn get(&self, name: &str) -> Option<Arc<Plugin>> {
        self.read().get(name).and_then(|e| e.plugin.clone())
    }

    /// Names of every plugin known (serving or failed), sorted.
    pub fn names(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    /// Plugins in force of one kind, sorted by name.
    pub fn of_kind(&self, kind: PluginKind) -> Vec<Arc<Plugin>> {
        self.read()
            .values()
            .filter_map(|e| e.plugin.clone())
            .filter(|p| p.kind() == kind)
            .collect()
    }

    /// Put `plugin` in force under its name, atomically replacing the previous version;
    /// whether there was one. Its breaker starts closed: a reload resets the failure count.
    pub fn insert(&self, plugin: Arc<Plugin>) -> bool {
        self.replace(plugin).is_some()
    }

    /// Like [`insert`](Self::insert), returning the version that was replaced (calls in
    /// flight on it finish; it is dropped with its last user).
    pub fn replace(&self, plugin: Arc<Plugin>) -> Option<Arc<Plugin>> {
        plugin.health.set_park_after(self.park_after_failures);
        let mut entries = self.write();
        let entry = entries.entry(plugin.name().to_string()).or_default();
        entry.load_failure = None;
        entry.plugin.replace(plugin)
    }

    /// Remember that loading `name` (a `kind` plugin) failed with `error`. A version already
    /// serving stays in force; the status shows the failure next to it.
    pub fn record_load_failure(&self, name: &str, kind: PluginKind, error: impl std::fmt::Display) {
        self.record_manifest_failure(name, Some(kind), error);
    }

    /// Like [`record_load_failure`](Self::record_load_failure) for a manifest refused before
    /// its kind could be read (`kind` is `None` then). Such a name is still a plugin with a
    /// manifest: [`declared`](Self::declared) lists it, [`status`](Self::status) does not
    /// (it has no kind to show; the manifest error is reported with the plugin errors).
    pub fn record_manifest_failure(
        &self,
        name: &str,
        kind: Option<PluginKind>,
        error: impl std::fmt::Display,
    ) {
        let failure = LoadFailure {
            kind,
            reason: error.to_string(),
            at: chrono::Utc::now(),
        };
        self.write()
            .entry(name.to_string())
            .or_default()
            .load_failure = Some(failure);
    }

    /// Every name with a manifest, serving or failed, with its kind when known, sorted.
    pub fn declared(&self) -> Vec<(String, Option<PluginKind>)> {
        self.read()
            .iter()
            .filter_map(|(name, entry)| {
                let kind = match (&entry.plugin, &entry.load_failure) {
                    (Some(plugin), _) => Some(plugin.kind()),
                    (None, Some(failure)) => failure.kind,
                    (None, None) => return None,
                };
                Some((name.clone(), kind))
            })
            .collect()
    }

    /// Why `name` has no version serving, when it failed to load (`None` when one serves or
    /// the name is unknown).
    pub fn load_failure(&self, name: &str) -> Option<String> {
        let entries = self.read();
        let entry = entries.get(name)?;
        match (&entry.plugin, &entry.load_failure) {
            (None, Some(failure)) => Some(failure.reason.clone()),
            _ => None,
        }
    }

    /// Take `name` out of service (its manifest was deleted). Calls in flight finish.
    pub fn remove(&self, name: &str) -> Option<Arc<Plugin>> {
        self.write().remove(name).and_then(|e| e.plugin)
    }

    /// Report the result of work done with `name` outside its own calls (the plugin's calls
    /// record themselves). Faults count toward parking it, like a failed call.
    pub fn record_result(&self, name: &str, result: Result<(), &PluginError>) {
        if let Some(plugin) = self.get(name) {
            plugin.health.record(name, result);
        }
    }

    fn plugin(&self, name: &str) -> Result<Arc<Plugin>, PluginError> {
        self.get(name).ok_or_else(|| PluginError::Unknown {
            plugin: name.to_string(),
        })
    }

    /// [`Plugin::evaluate`] on the version in force.
    pub async fn evaluate(
        &self,
        name: &str,
        entity: &Entity,
        facts: &serde_json::Value,
        params: &serde_json::Value,
    ) -> Result<CheckOutcome, PluginError> {
        self.plugin(name)?.evaluate(entity, facts, params).await
    }

    /// [`Plugin::evaluate_batch`] on the version in force.
    pub async fn evaluate_batch(
        &self,
        name: &str,
        calls: &[CheckCall<'_>],
    ) -> Vec<Result<CheckOutcome, PluginError>> {
        match self.plugin(name) {
            Ok(plugin) => plugin.evaluate_batch(calls).await,
            Err(e) => vec![Err(e); calls.len()],
        }
    }

    /// [`Plugin::collect`] on the version in force.
    pub async fn collect(
        &self,
        name: &str,
        entities: &[Entity],
    ) -> Result<Vec<(String, JsonObject)>, PluginError> {
        self.plugin(name)?.collect(entities).await
    }

    /// Every plugin's status, sorted by name.
    pub fn status(&self) -> Vec<PluginStatus> {
        self.read()
            .iter()
            .filter_map(|(name, entry)| match (&entry.plugin, &entry.load_failure) {
                (Some(plugin), failure) => {
                    let report = plugin.health_report();
                    let last_error = match failure {
                        Some(f) => Some(format!(
                            "reload failed, previous version serving: {}",
                            f.reason
                        )),
                        None => report.last_error,
                    };
                    Some(PluginStatus {
                        name: name.clone(),
                        kind: plugin.kind(),
                        version: Some(plugin.version.clone()),
                        loaded_at: Some(plugin.loaded_at),
                        from_cache: plugin.loaded_from_cache(),
                        state: report.state,
                        last_error,
                        calls: report.calls,
                        failures: report.failures,
                        log_lines_dropped: plugin.log_lines_dropped(),
                    })
                }
                (None, Some(failure)) => Some(PluginStatus {
                    name: name.clone(),
                    kind: failure.kind?,
                    version: None,
                    loaded_at: None,
                    from_cache: false,
                    state: PluginState::Failed {
                        reason: failure.reason.clone(),
                        at: failure.at,
                    },
                    last_error: Some(failure.reason.clone()),
                    calls: 0,
                    failures: 0,
                    log_lines_dropped: 0,
                }),
                (None, None) => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plugin_that_never_loaded_is_reported_failed() {
        let registry = PluginRegistry::new(5);
        let error = PluginError::Compile {
            plugin: "x".into(),
            reason: "bad magic".into(),
        };
        registry.record_load_failure("x", PluginKind::Check, &error);
        assert!(registry.get("x").is_none());
        let status = registry.status();
        assert_eq!(status.len(), 1);
        assert_eq!(status[0].kind, PluginKind::Check);
        assert!(
            matches!(&status[0].state, PluginState::Failed { reason, .. } if reason.contains("bad magic"))
        );
        let json = serde_json::to_value(&status[0]).unwrap();
        assert_eq!(json["state"]["state"], "failed");
        assert!(registry.remove("x").is_none());
        assert!(registry.status().is_empty());
    }

    #[tokio::test]
    async fn calls_to_an_unknown_plugin_fail_cleanly() {
        let registry = PluginRegistry::new(5);
        let entity: Entity = serde_json::from_value(serde_json::json!({
            "identifier": "a", "kind": "service", "title": "A"
        }))
        .unwrap();
        let null = serde_json::Value::Null;
        let err = registry
            .evaluate("nope", &entity, &null, &null)
            .await
            .unwrap_err();
        assert_eq!(
            err,
            PluginError::Unknown {
                plugin: "nope".into()
            }
        );
        let input = crate::plugin::CheckInput::new(&entity, &null).unwrap();
        let params = "null".to_string();
        let batch = registry.evaluate_batch("nope", &[(&input, &params)]).await;
        assert_eq!(batch.len(), 1);
        assert!(registry.collect("nope", &[entity]).await.is_err());
    }
}
