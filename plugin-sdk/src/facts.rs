//! `Facts`: every data source's latest facts about the entity a check evaluates.
//!
//! The daemon hands a check one JSON object keyed by data-source name; this module gives typed,
//! path-based access to it (`facts.get::<f64>("prometheus", "slo.availability")`) and builders
//! for unit tests. It only reads: a check cannot change facts.

use std::sync::OnceLock;

use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::PluginError;
use crate::json;

/// The facts of every data source about one entity, keyed by source name.
///
/// Facts handed over by the daemon are parsed lazily: the object is split into its sources on
/// the first read; [`Facts::get`] then reads the value at its path straight from the source's
/// text, and a source is parsed into a document only when [`Facts::source`] or
/// [`Facts::value`] asks for one. A check that reads one source does not pay for the others,
/// one that reads none pays nothing.
#[derive(Clone, Default)]
pub struct Facts {
    /// The daemon's text, until split.
    text: Option<Box<str>>,
    sources: OnceLock<Vec<Source>>,
}

#[derive(Clone)]
struct Source {
    name: String,
    raw: Option<Box<RawValue>>,
    parsed: OnceLock<Value>,
}

impl Source {
    fn value(&self) -> &Value {
        self.parsed.get_or_init(|| match &self.raw {
            // Text that split as a JSON value parses as one.
            Some(raw) => serde_json::from_str(raw.get()).unwrap_or(Value::Null),
            None => Value::Null,
        })
    }
}

impl Facts {
    /// No facts at all.
    pub fn new() -> Self {
        Self::default()
    }

    /// These facts plus `facts` from `source` (replacing what that source had).
    pub fn with_source(mut self, source: impl Into<String>, facts: Value) -> Self {
        let source = source.into();
        self.split();
        self.text = None;
        let sources = self.sources.get_mut().expect("split above");
        let parsed = OnceLock::from(facts);
        match sources.iter_mut().find(|s| s.name == source) {
            Some(existing) => {
                existing.raw = None;
                existing.parsed = parsed;
            }
            None => sources.push(Source {
                name: source,
                raw: None,
                parsed,
            }),
        }
        self
    }

    /// Facts from a JSON object keyed by source name.
    pub fn from_json(value: Value) -> Result<Self, PluginError> {
        match value {
            Value::Object(map) => Ok(map.into_iter().fold(Self::new(), |facts, (source, v)| {
                facts.with_source(source, v)
            })),
            _ => Err(PluginError::failed(
                "facts must be a JSON object keyed by data source",
            )),
        }
    }

    /// Parse JSON text now, refusing anything but an object; empty text means no facts.
    pub fn parse(text: &str) -> Result<Self, PluginError> {
        if text.trim().is_empty() {
            return Ok(Self::new());
        }
        let value = serde_json::from_str(text)
            .map_err(|e| PluginError::failed(format!("facts are not valid JSON: {e}")))?;
        Self::from_json(value)
    }

    /// The text the daemon handed to `evaluate`, kept unparsed until first read. Text that
    /// does not start like an object is refused; text that starts like one but does not split
    /// into sources reads as no facts (the daemon never sends that).
    pub(crate) fn from_wire(text: String) -> Result<Self, PluginError> {
        let trimmed = text.trim();
        if trimmed.is_empty() || trimmed == "null" {
            return Ok(Self::new());
        }
        if !trimmed.starts_with('{') {
            return Err(PluginError::failed(
                "facts are not a JSON object keyed by data source",
            ));
        }
        Ok(Self {
            text: Some(text.into_boxed_str()),
            sources: OnceLock::new(),
        })
    }

    /// The sources, split from the text on first use (each source's facts stay unparsed).
    fn split(&self) -> &[Source] {
        self.sources.get_or_init(|| {
            let Some(text) = self.text.as_deref() else {
                return Vec::new();
            };
            let raw: Vec<(String, Box<RawValue>)> = serde_json::from_str::<indexed::Sources>(text)
                .map(|s| s.0)
                .unwrap_or_default();
            raw.into_iter()
                .map(|(name, raw)| Source {
                    name,
                    raw: Some(raw),
                    parsed: OnceLock::new(),
                })
                .collect()
        })
    }

    /// The whole facts object of `source`, if that source reported anything.
    pub fn source(&self, source: &str) -> Option<&Value> {
        self.split()
            .iter()
            .find(|s| s.name == source)
            .map(Source::value)
    }

    /// The names of the sources that reported facts.
    pub fn sources(&self) -> impl Iterator<Item = &str> {
        self.split().iter().map(|s| s.name.as_str())
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
        let source = self.split().iter().find(|s| s.name == source)?;
        match (source.parsed.get(), &source.raw) {
            // Not parsed: read just the slice the path leads to in the source's text.
            (None, Some(raw)) => json::lookup_text_as(raw.get(), path),
            _ => json::lookup_as(source.value(), path),
        }
    }

    /// The whole document (source name → that source's facts), parsed in full.
    pub fn to_value(&self) -> Value {
        Value::Object(
            self.split()
                .iter()
                .map(|s| (s.name.clone(), s.value().clone()))
                .collect(),
        )
    }
}

impl std::fmt::Debug for Facts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Facts").field(&self.to_value()).finish()
    }
}

impl PartialEq for Facts {
    fn eq(&self, other: &Self) -> bool {
        self.to_value() == other.to_value()
    }
}

/// The top-level split: source names in document order with their facts as unparsed JSON.
mod indexed {
    use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
    use serde_json::value::RawValue;

    pub(super) struct Sources(pub(super) Vec<(String, Box<RawValue>)>);

    impl<'de> Deserialize<'de> for Sources {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct Split;
            impl<'de> Visitor<'de> for Split {
                type Value = Sources;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("an object keyed by data source")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Sources, A::Error> {
                    let mut out: Vec<(String, Box<RawValue>)> = Vec::new();
                    while let Some((name, raw)) = map.next_entry::<String, Box<RawValue>>()? {
                        // A repeated key: the last one wins, as in a parsed object.
                        out.retain(|(n, _)| *n != name);
                        out.push((name, raw));
                    }
                    Ok(Sources(out))
                }
            }
            deserializer.deserialize_map(Split)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn typed_reads_of_wire_facts_parse_nothing_and_agree_with_parsed_facts() {
        let text = r#"{"git":{"has_readme":true},"prometheus":{"availability":99.5,
            "slo":{"error_budget_remaining":0.18}},"prometheus":{"slo":{"error_budget_remaining":0.5}}}"#;
        let wire = Facts::from_wire(text.to_owned()).unwrap();
        let parsed = Facts::parse(text).unwrap();
        for (source, path) in [
            ("prometheus", "slo.error_budget_remaining"),
            ("prometheus", "availability"),
            ("git", "has_readme"),
            ("git", "missing"),
            ("nope", "x"),
        ] {
            assert_eq!(
                wire.get::<serde_json::Value>(source, path),
                parsed.get::<serde_json::Value>(source, path),
                "{source} {path}"
            );
        }
        // The repeated source: the last one wins, as when parsing.
        assert_eq!(
            wire.get::<f64>("prometheus", "slo.error_budget_remaining"),
            Some(0.5)
        );
        assert_eq!(wire.get::<f64>("prometheus", "availability"), None);
        assert!(
            wire.split().iter().all(|s| s.parsed.get().is_none()),
            "typed reads parse no source"
        );
        // Once split, reads go through the parsed sources and answer the same.
        assert!(wire.source("git").is_some());
        assert_eq!(wire.get::<bool>("git", "has_readme"), Some(true));
    }

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
        assert!(Facts::from_wire("[1]".into()).is_err());
        let lazy = Facts::from_wire(r#"{"git": {"branch": "main"}}"#.into()).unwrap();
        assert_eq!(lazy.get::<String>("git", "branch").as_deref(), Some("main"));
        assert_eq!(
            lazy,
            Facts::new().with_source("git", json!({"branch": "main"}))
        );
    }
}
