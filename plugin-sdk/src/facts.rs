//! `Facts`: every data source's latest facts about the entity a check evaluates.
//!
//! The daemon hands a check one JSON object keyed by data-source name; this module gives typed,
//! path-based access to it (`facts.get::<f64>("prometheus", "slo.availability")`) and builders
//! for unit tests. It only reads: a check cannot change facts.

use std::sync::OnceLock;

use serde::de::DeserializeOwned;
use serde_json::Value;

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

/// One source's facts: its name and where its text is in the daemon's text (or its value, for
/// facts built by a test).
#[derive(Clone)]
struct Source {
    name: Name,
    /// Byte range of the source's facts in `Facts::text`.
    raw: Option<(usize, usize)>,
    /// Where each top-level member of the source's facts is in `Facts::text`, found on the
    /// first typed read: a check that reads four facts of a source scans it once.
    members: OnceLock<Vec<Member>>,
    parsed: OnceLock<Value>,
}

/// One member of a source's facts object: byte ranges of its quoted key and of its value.
#[derive(Clone)]
struct Member {
    key: (usize, usize),
    escaped: bool,
    value: (usize, usize),
}

/// A source's name: where it is in the daemon's text (no escape, the usual case), or decoded.
#[derive(Clone)]
enum Name {
    At(usize, usize),
    Owned(String),
}

impl Name {
    fn resolve<'a>(&'a self, text: Option<&'a str>) -> &'a str {
        match self {
            Name::At(start, end) => text.and_then(|t| t.get(*start..*end)).unwrap_or_default(),
            Name::Owned(name) => name,
        }
    }
}

impl Source {
    fn name<'a>(&'a self, text: Option<&'a str>) -> &'a str {
        self.name.resolve(text)
    }

    fn raw<'a>(&self, text: Option<&'a str>) -> Option<&'a str> {
        let (start, end) = self.raw?;
        text?.get(start..end)
    }

    /// The top-level members of the source's facts (none when they are not an object).
    fn members(&self, text: &str) -> &[Member] {
        self.members.get_or_init(|| {
            let Some(raw) = self.raw(Some(text)) else {
                return Vec::new();
            };
            let at = |part: &str| {
                let start = part.as_ptr() as usize - text.as_ptr() as usize;
                (start, start + part.len())
            };
            let mut members = Vec::new();
            let complete = json::scan::members(raw, |key, value| {
                members.push(Member {
                    key: at(key.quoted()),
                    escaped: key.escaped(),
                    value: at(value),
                });
            });
            if complete.is_none() {
                members.clear();
            }
            members
        })
    }

    fn value(&self, text: Option<&str>) -> &Value {
        self.parsed.get_or_init(|| match self.raw(text) {
            // Text that split as a JSON value parses as one.
            Some(raw) => serde_json::from_str(raw).unwrap_or(Value::Null),
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
        let text = self.text.as_deref();
        let sources = self.sources.get_mut().expect("split above");
        let parsed = OnceLock::from(facts);
        match sources.iter_mut().find(|s| s.name(text) == source) {
            Some(existing) => {
                existing.raw = None;
                existing.parsed = parsed;
            }
            None => sources.push(Source {
                name: Name::Owned(source),
                raw: None,
                members: OnceLock::new(),
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

    /// Whether these facts were handed over as exactly `text` (the SDK then reuses them, with
    /// whatever they already split and located, for the next call on the same entity).
    pub(crate) fn came_as(&self, text: &str) -> bool {
        self.text
            .as_deref()
            .is_some_and(|own| same_bytes(own.as_bytes(), text.as_bytes()))
    }

    /// The sources, split from the text on first use (each source's facts stay unparsed: a
    /// source is a range of the text).
    fn split(&self) -> &[Source] {
        self.sources.get_or_init(|| {
            let Some(text) = self.text.as_deref() else {
                return Vec::new();
            };
            let base = text.as_ptr() as usize;
            let at = |part: &str| {
                let start = part.as_ptr() as usize - base;
                (start, start + part.len())
            };
            let trimmed = text.trim();
            let mut sources: Vec<Source> = Vec::with_capacity(4);
            let complete = json::scan::members(trimmed, |key, raw| {
                let name = match key.plain() {
                    Some(plain) => {
                        let (start, end) = at(plain);
                        Name::At(start, end)
                    }
                    None => Name::Owned(key.decode().unwrap_or_default()),
                };
                // A repeated key: the last one wins, as in a parsed object.
                let this = name.resolve(Some(text));
                sources.retain(|s| s.name(Some(text)) != this);
                sources.push(Source {
                    name,
                    raw: Some(at(raw)),
                    members: OnceLock::new(),
                    parsed: OnceLock::new(),
                });
            });
            // Text that does not split reads as no facts (the daemon never sends that).
            if complete.is_none() {
                sources.clear();
            }
            sources
        })
    }

    /// The source named `source`, if it reported anything.
    fn find(&self, source: &str) -> Option<&Source> {
        let text = self.text.as_deref();
        self.split().iter().find(|s| s.name(text) == source)
    }

    /// The whole facts object of `source`, if that source reported anything.
    pub fn source(&self, source: &str) -> Option<&Value> {
        Some(self.find(source)?.value(self.text.as_deref()))
    }

    /// The names of the sources that reported facts.
    pub fn sources(&self) -> impl Iterator<Item = &str> {
        let text = self.text.as_deref();
        self.split().iter().map(move |s| s.name(text))
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
        let text = self.text.as_deref();
        let source = self.find(source)?;
        let (None, Some(raw), Some(text)) = (source.parsed.get(), source.raw(text), text) else {
            return json::lookup_as(source.value(text), path);
        };
        // Not parsed: read just the slice the path leads to in the source's text, starting
        // from the source's member index.
        if path.is_empty() || !raw.starts_with('{') {
            return json::lookup_text_as(raw, path);
        }
        let mut segments = path.split('.');
        let first = segments.next()?;
        // A repeated key: the last one wins, as in a parsed object.
        let member = source.members(text).iter().rev().find(|m| {
            text.get(m.key.0..m.key.1)
                .is_some_and(|quoted| json::scan::Key::new(quoted, m.escaped).is(first))
        })?;
        json::segments_as(text.get(member.value.0..member.value.1)?, segments)
    }

    /// The whole document (source name → that source's facts), parsed in full.
    pub fn to_value(&self) -> Value {
        let text = self.text.as_deref();
        Value::Object(
            self.split()
                .iter()
                .map(|s| (s.name(text).to_owned(), s.value(text).clone()))
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

/// `a == b`, eight bytes at a time: the byte loop that `==` compiles to in wasm took as long as
/// the scan the comparison saves.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (a_words, a_rest) = a.split_at(a.len() / 8 * 8);
    let (b_words, b_rest) = b.split_at(a_words.len());
    a_words
        .chunks_exact(8)
        .zip(b_words.chunks_exact(8))
        .all(|(x, y)| {
            u64::from_ne_bytes(x.try_into().unwrap_or_default())
                == u64::from_ne_bytes(y.try_into().unwrap_or_default())
        })
        && a_rest == b_rest
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn word_comparison_agrees_with_byte_comparison() {
        let base: Vec<u8> = (0..40u8).collect();
        for len in 0..base.len() {
            let a = &base[..len];
            assert!(same_bytes(a, a));
            assert!(!same_bytes(a, &base[..len + 1]));
            for at in 0..len {
                let mut b = a.to_vec();
                b[at] ^= 0x20;
                assert!(!same_bytes(a, &b), "length {len}, byte {at}");
            }
        }
        let facts = Facts::from_wire(r#"{"git": {"a": 1}}"#.to_owned()).unwrap();
        assert!(facts.came_as(r#"{"git": {"a": 1}}"#));
        assert!(!facts.came_as(r#"{"git": {"a": 2}}"#));
        assert!(!Facts::new().came_as(""));
    }

    #[test]
    fn member_index_reads_agree_with_parsed_facts() {
        let text = r#" {"git": [1, {"a": 2}], "prometheus": {"slo": {"x": 1, "y": [3, 4]},
            "slo": {"x": 5}, "e\u0073c": 2, "": {"": 3, "n": null}, "f": 1.5, "s": "t,}"},
            "p\u0061gerduty": {"oncall": true}} "#;
        let wire = Facts::from_wire(text.to_owned()).unwrap();
        let parsed = Facts::parse(text).unwrap();
        for source in ["git", "prometheus", "pagerduty", "missing"] {
            for path in [
                "",
                "slo",
                "slo.x",
                "slo.y",
                "slo.y.1",
                "slo.y.2",
                "slo.",
                "esc",
                "e\\u0073c",
                ".",
                "..",
                ".n",
                "f",
                "f.g",
                "s",
                "0",
                "1.a",
                "missing",
                "oncall",
            ] {
                assert_eq!(
                    wire.get::<Value>(source, path),
                    parsed.get::<Value>(source, path),
                    "{source} {path:?}"
                );
            }
        }
        assert_eq!(wire.get::<u8>("prometheus", "slo.x"), Some(5));
        assert_eq!(wire.get::<u8>("prometheus", "."), Some(3));
        assert_eq!(wire.get::<bool>("pagerduty", "oncall"), Some(true));
    }

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
