//! Dotted-path lookup in JSON documents, shared by `Entity`, `Facts`, `Config` and `Params`.
//!
//! A path is a `.`-separated list of object keys; a segment that is a decimal number also indexes
//! arrays (`checks.0.name`). An empty path is the document itself. Lookup never allocates and
//! never fails loudly: a missing key, a wrong container or an out-of-range index is `None`.

use std::sync::OnceLock;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// The value at `path` inside `root`, or `None` when any segment is missing.
pub(crate) fn lookup<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return Some(root);
    }
    path.split('.')
        .try_fold(root, |value, segment| match value {
            Value::Object(map) => map.get(segment),
            Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        })
}

/// The value at `path` converted to `T`; `None` when absent, `null`, or of another shape.
pub(crate) fn lookup_as<T: DeserializeOwned>(root: &Value, path: &str) -> Option<T> {
    match lookup(root, path)? {
        Value::Null => None,
        value => T::deserialize(value).ok(),
    }
}

/// A JSON object handed over the WIT boundary as text and parsed only when first read.
///
/// A check that never looks at the entity's properties or the facts does not pay for parsing
/// them (a warm call's cost is mostly that parsing otherwise). The daemon always sends an
/// object; text that does not start like one is refused when the call arrives, and text that
/// starts like one but does not parse reads as an empty object (the host never sends that).
#[derive(Clone, Default)]
pub(crate) struct LazyObject {
    text: Option<Box<str>>,
    parsed: OnceLock<Map<String, Value>>,
}

impl LazyObject {
    /// An object already parsed (builders, unit tests).
    pub(crate) fn from_map(map: Map<String, Value>) -> Self {
        let parsed = OnceLock::new();
        let _ = parsed.set(map);
        Self { text: None, parsed }
    }

    /// Text from the host: empty or `null` is an empty object; anything that does not start
    /// like an object is refused with the name of the JSON type it starts like.
    pub(crate) fn from_text(text: String) -> Result<Self, &'static str> {
        let trimmed = text.trim_start();
        match trimmed.as_bytes().first() {
            None => Ok(Self::from_map(Map::new())),
            Some(b'{') => Ok(Self {
                text: Some(text.into_boxed_str()),
                parsed: OnceLock::new(),
            }),
            Some(b'n') if trimmed.trim_end() == "null" => Ok(Self::from_map(Map::new())),
            Some(b'[') => Err("an array"),
            Some(b'"') => Err("a string"),
            Some(b't' | b'f') => Err("a boolean"),
            Some(b'-' | b'0'..=b'9') => Err("a number"),
            Some(_) => Err("not JSON"),
        }
    }

    /// The object, parsed on first use.
    pub(crate) fn get(&self) -> &Map<String, Value> {
        self.parsed.get_or_init(|| match self.text.as_deref() {
            Some(text) => match serde_json::from_str(text) {
                Ok(Value::Object(map)) => map,
                _ => Map::new(),
            },
            None => Map::new(),
        })
    }

    /// The object for changing; the text is no longer needed after this.
    pub(crate) fn get_mut(&mut self) -> &mut Map<String, Value> {
        self.get();
        self.text = None;
        self.parsed.get_mut().expect("parsed just above")
    }
}

impl std::fmt::Debug for LazyObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.get().fmt(f)
    }
}

impl PartialEq for LazyObject {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl serde::Serialize for LazyObject {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.get().serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for LazyObject {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Map::deserialize(deserializer).map(Self::from_map)
    }
}

/// The value at `path` inside the object `root` (see [`lookup`]).
pub(crate) fn lookup_in<'a>(root: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let (first, rest) = match path.split_once('.') {
        Some((first, rest)) => (first, Some(rest)),
        None => (path, None),
    };
    let value = root.get(first)?;
    match rest {
        Some(rest) => lookup(value, rest),
        None => Some(value),
    }
}

/// The value at `path` inside the object `root` converted to `T` (see [`lookup_as`]).
pub(crate) fn lookup_in_as<T: DeserializeOwned>(
    root: &Map<String, Value>,
    path: &str,
) -> Option<T> {
    match lookup_in(root, path)? {
        Value::Null => None,
        value => T::deserialize(value).ok(),
    }
}

/// The value at `path` inside the JSON `text`, converted to `T`: what [`lookup_as`] answers on
/// the parsed text, found without building it. Each segment is found by scanning its object
/// (or array) and skipping the other members, so nothing is allocated but `T`; a check that
/// reads three facts of a source reads three small slices instead of parsing the source into a
/// tree of maps. A duplicate key finds its last value, as parsing does.
pub(crate) fn lookup_text_as<T: DeserializeOwned>(text: &str, path: &str) -> Option<T> {
    let mut raw = text.trim();
    if !path.is_empty() {
        for segment in path.split('.') {
            raw = child(raw, segment)?;
        }
    }
    if raw == "null" {
        return None;
    }
    serde_json::from_str(raw).ok()
}

/// The text of `segment` inside the JSON text `raw` (an object's key, or an array's index).
pub(crate) fn child<'a>(raw: &'a str, segment: &str) -> Option<&'a str> {
    use serde::Deserializer as _;
    let mut de = serde_json::Deserializer::from_str(raw);
    let found = match raw.as_bytes().first()? {
        b'{' => de.deserialize_map(seek::Key(segment)).ok()?,
        b'[' => de
            .deserialize_seq(seek::Index(segment.parse::<usize>().ok()?))
            .ok()?,
        _ => None,
    };
    found.map(serde_json::value::RawValue::get)
}

/// Visitors that find one member of a JSON container and skip the rest unparsed.
mod seek {
    use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use serde_json::value::RawValue;

    /// Finds the (last) value of an object key.
    pub(super) struct Key<'k>(pub(super) &'k str);

    impl<'de> Visitor<'de> for Key<'_> {
        type Value = Option<&'de RawValue>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut found = None;
            while let Some(same) = map.next_key_seed(KeyIs(self.0))? {
                if same {
                    found = Some(map.next_value::<&'de RawValue>()?);
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(found)
        }
    }

    /// Finds the element at an index of an array.
    pub(super) struct Index(pub(super) usize);

    impl<'de> Visitor<'de> for Index {
        type Value = Option<&'de RawValue>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an array")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut found = None;
            let mut at = 0;
            loop {
                if at == self.0 {
                    match seq.next_element::<&'de RawValue>()? {
                        Some(raw) => found = Some(raw),
                        None => break,
                    }
                } else if seq.next_element::<IgnoredAny>()?.is_none() {
                    break;
                }
                at += 1;
            }
            Ok(found)
        }
    }

    /// Reads a key and answers whether it is the one sought, without allocating it (an
    /// escaped key is compared after unescaping, as parsing would).
    struct KeyIs<'k>(&'k str);

    impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
        type Value = bool;

        fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
            deserializer.deserialize_str(self)
        }
    }

    impl<'de> Visitor<'de> for KeyIs<'_> {
        type Value = bool;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a key")
        }

        fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<bool, E> {
            Ok(key == self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn walks_objects_and_arrays() {
        let doc = json!({"a": {"b": [10, {"c": "x"}]}});
        assert_eq!(lookup(&doc, "a.b.0"), Some(&json!(10)));
        assert_eq!(lookup(&doc, "a.b.1.c"), Some(&json!("x")));
        assert_eq!(lookup(&doc, ""), Some(&doc));
        assert_eq!(lookup(&doc, "a.b.2"), None);
        assert_eq!(lookup(&doc, "a.z"), None);
        assert_eq!(lookup(&doc, "a.b.1.c.d"), None);
    }

    #[test]
    fn typed_lookup_treats_null_and_wrong_shapes_as_absent() {
        let doc = json!({"n": 3, "s": "three", "z": null});
        assert_eq!(lookup_as::<f64>(&doc, "n"), Some(3.0));
        assert_eq!(lookup_as::<u32>(&doc, "s"), None);
        assert_eq!(lookup_as::<String>(&doc, "z"), None);
        assert_eq!(lookup_as::<Option<String>>(&doc, "missing"), None);
    }

    #[test]
    fn lazy_objects_parse_on_first_read_and_refuse_other_shapes() {
        let lazy = LazyObject::from_text(r#" {"a": {"b": [1, 2]}}"#.into()).unwrap();
        assert!(
            lazy.parsed.get().is_none(),
            "nothing is parsed before a read"
        );
        assert_eq!(lookup_in(lazy.get(), "a.b.1"), Some(&json!(2)));
        assert_eq!(lookup_in_as::<u8>(lazy.get(), "a.b.0"), Some(1));
        assert_eq!(lookup_in(lazy.get(), "a.c"), None);
        assert!(
            LazyObject::from_text(String::new())
                .unwrap()
                .get()
                .is_empty()
        );
        assert!(
            LazyObject::from_text("null".into())
                .unwrap()
                .get()
                .is_empty()
        );
        assert_eq!(LazyObject::from_text("[1]".into()).unwrap_err(), "an array");
        assert_eq!(LazyObject::from_text("7".into()).unwrap_err(), "a number");
        assert!(LazyObject::from_text("{x".into()).unwrap().get().is_empty());
        let mut edited = LazyObject::from_text(r#"{"k":1}"#.into()).unwrap();
        edited.get_mut().insert("j".into(), json!(2));
        assert_eq!(
            edited,
            LazyObject::from_map(json!({"k":1,"j":2}).as_object().unwrap().clone())
        );
        assert_eq!(serde_json::to_value(&edited).unwrap(), json!({"k":1,"j":2}));
    }

    #[test]
    fn text_lookup_answers_what_parsed_lookup_answers() {
        let text = r#" {"a": {"b": [10, {"c": "x", "c": "y"}], "n": null, "f": 1.5},
                        "e\u0073c": 3, "big": 18446744073709551615, "neg": -2} "#;
        let doc: Value = serde_json::from_str(text).unwrap();
        for path in [
            "", "a", "a.b", "a.b.0", "a.b.1", "a.b.1.c", "a.b.2", "a.n", "a.f", "a.z", "esc",
            "big", "neg", "a.b.x", "a.f.g", "missing", "a..b", "a.b.01", "a.b.-1",
        ] {
            assert_eq!(
                lookup_text_as::<Value>(text, path),
                lookup_as::<Value>(&doc, path),
                "path {path:?}"
            );
            assert_eq!(
                lookup_text_as::<f64>(text, path),
                lookup_as::<f64>(&doc, path),
                "path {path:?}"
            );
            assert_eq!(
                lookup_text_as::<u64>(text, path),
                lookup_as::<u64>(&doc, path),
                "path {path:?}"
            );
            assert_eq!(
                lookup_text_as::<String>(text, path),
                lookup_as::<String>(&doc, path),
                "path {path:?}"
            );
        }
        assert_eq!(
            lookup_text_as::<String>(text, "a.b.1.c").as_deref(),
            Some("y")
        );
        assert_eq!(lookup_text_as::<f64>("{x", "x"), None);
        assert_eq!(lookup_text_as::<f64>("", "x"), None);
        assert_eq!(lookup_text_as::<f64>("[1, 2]", "1"), Some(2.0));
    }
}
