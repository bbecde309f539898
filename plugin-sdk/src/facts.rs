//! `Facts`: every data source's latest facts about the entity a check evaluates.
//!
//! The daemon hands a check one JSON object keyed by data-source name; this module gives typed,
//! path-based access to it (`facts.get::<f64>("prometheus", "slo.availability")`) and builders
//! for unit tests. It only reads: a check cannot change facts.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::{PluginError, json};

/// The facts of every data source about one entity, keyed by source name.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Facts {
    sources: Value,
}

impl Facts {
    /// No facts at all.
    pub fn new() -> Self {
        Self {
            sources: Value::Object(Map::new()),
        }
    }

    /// These facts plus `facts` from `source` (replacing what that source had).
    pub fn with_source(mut self, source: impl Into<String>, facts: Value) -> Self {
        if let Value::Object(map) = &mut self.sources {
            map.insert(source.into(), facts);
        }
        self
    }

    /// Facts from a JSON object keyed by source name.
    pub fn from_json(value: Value) -> Result<Self, PluginError> {
        if value.is_object() {
            Ok(Self { sources: value })
        } else {
            Err(PluginError::failed(
                "facts must be a JSON object keyed by data source",
            ))
        }
    }

    /// Parse the JSON text the daemon handed to `evaluate`; empty text means no facts.
    pub fn parse(text: &str) -> Result<Self, PluginError> {
        if text.trim().is_empty() {
            return Ok(Self::new());
        }
        let value = serde_json::from_str(text)
            .map_err(|e| PluginError::failed(format!("facts are not valid JSON: {e}")))?;
        Self::from_json(value)
    }

    /// The whole facts object of `source`, if that source reported anything.
    pub fn source(&self, source: &str) -> Option<&Value> {
        self.sources.get(source)
    }

    /// The names of the sources that reported facts.
    pub fn sources(&self) -> impl Iterator<Item = &str> {
        self.sources
            .as_object()
            .into_iter()
            .flat_map(|m| m.keys().map(String::as_str))
    }

    /// The raw value at the dotted `path` in `source`'s facts.
    pub fn value(&self, source: &str, path: &str) -> Option<&Value> {
        json::lookup(self.source(source)?, path)
    }

    /// The value at the dotted `path` in `source`'s facts, converted to `T`.
    ///
    /// `None` when the source, the path, or a value of that shape is missing (`null` counts as
    /// missing, as in the daemon's own rules).
    pub fn get<T: DeserializeOwned>(&self, source: &str, path: &str) -> Option<T> {
        json::lookup_as(self.source(source)?, path)
    }

    /// The raw JSON document.
    pub fn as_value(&self) -> &Value {
        &self.sources
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn typed_access_by_source_and_path() {
        let facts = Facts::new()
            .with_source("prometheus", json!({"slo": {"availability": 0.9995}}))
            .with_source("repo-scan", json!({"has_readme": true}));
        assert_eq!(
            facts.get::<f64>("prometheus", "slo.availability"),
            Some(0.9995)
        );
        assert_eq!(facts.get::<bool>("repo-scan", "has_readme"), Some(true));
        assert_eq!(facts.get::<bool>("repo-scan", "has_docs"), None);
        assert_eq!(facts.get::<f64>("pagerduty", "x"), None);
        assert_eq!(
            facts.sources().collect::<Vec<_>>(),
            ["prometheus", "repo-scan"]
        );
    }

    #[test]
    fn parse_rejects_non_objects() {
        assert!(Facts::parse("[1]").is_err());
        assert!(Facts::parse("{x").is_err());
        assert_eq!(Facts::parse("").unwrap(), Facts::new());
    }
}
