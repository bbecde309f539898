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
/// (or array) and skipping the other members byte by byte ([`scan`]), so nothing is allocated
/// but `T`; a check that reads three facts of a source reads three small slices instead of
/// parsing the source into a tree of maps. A duplicate key finds its last value, as parsing
/// does. On text that is not JSON the answer is `None` or a value the text's shape suggests;
/// the daemon only ever sends JSON.
pub(crate) fn lookup_text_as<T: DeserializeOwned>(text: &str, path: &str) -> Option<T> {
    if path.is_empty() {
        segments_as(text, std::iter::empty())
    } else {
        segments_as(text, path.split('.'))
    }
}

/// [`lookup_text_as`] with the path already split into its segments.
pub(crate) fn segments_as<'s, T: DeserializeOwned>(
    text: &str,
    segments: impl Iterator<Item = &'s str>,
) -> Option<T> {
    let mut raw = text.trim();
    for segment in segments {
        raw = child(raw, segment)?;
    }
    if raw == "null" {
        return None;
    }
    serde_json::from_str(raw).ok()
}

/// The text of `segment` inside the JSON text `raw` (an object's key, or an array's index).
pub(crate) fn child<'a>(raw: &'a str, segment: &str) -> Option<&'a str> {
    match raw.as_bytes().first()? {
        b'{' => {
            let mut found = None;
            scan::members(raw, |key, value| {
                if key.is(segment) {
                    found = Some(value);
                }
            })?;
            found
        }
        b'[' => {
            let wanted = segment.parse::<usize>().ok()?;
            let mut found = None;
            let mut at = 0;
            scan::elements(raw, |value| {
                if at == wanted {
                    found = Some(value);
                }
                at += 1;
            })?;
            found
        }
        _ => None,
    }
}

/// A structural scanner over JSON text: finds where keys and values begin and end without
/// decoding them (the SDK's hot path: a warm check call reads a few facts out of a few hundred
/// bytes). It trusts the text to be JSON, as the daemon's always is, and never panics on text
/// that is not: a shape it cannot follow ends the scan with `None`.
pub(crate) mod scan {
    /// An object key as it appears in the text (between its quotes).
    #[derive(Clone, Copy)]
    pub(crate) struct Key<'a> {
        /// The quoted key, quotes included.
        quoted: &'a str,
        escaped: bool,
    }

    impl<'a> Key<'a> {
        /// The key as it appears in a text, quotes included; `escaped` when it holds a `\\`.
        pub(crate) fn new(quoted: &'a str, escaped: bool) -> Self {
            Key { quoted, escaped }
        }

        /// The key as it appears in the text, quotes included.
        pub(crate) fn quoted(&self) -> &'a str {
            self.quoted
        }

        /// Whether the key holds an escape.
        pub(crate) fn escaped(&self) -> bool {
            self.escaped
        }

        /// Whether this key, unescaped, is `name`.
        pub(crate) fn is(&self, name: &str) -> bool {
            if self.escaped {
                serde_json::from_str::<String>(self.quoted).is_ok_and(|key| key == name)
            } else {
                self.quoted.get(1..self.quoted.len() - 1) == Some(name)
            }
        }

        /// The key, unescaped; `None` for an escape that is not JSON.
        pub(crate) fn decode(&self) -> Option<String> {
            if self.escaped {
                serde_json::from_str(self.quoted).ok()
            } else {
                self.quoted.get(1..self.quoted.len() - 1).map(str::to_owned)
            }
        }

        /// The key's text without its quotes, when it holds no escape (no decoding needed).
        pub(crate) fn plain(&self) -> Option<&'a str> {
            (!self.escaped)
                .then(|| self.quoted.get(1..self.quoted.len() - 1))
                .flatten()
        }
    }

    /// Calls `each(key, value text)` for every member of the object `raw` (which starts with
    /// `{`), in order; `None` when the text is not an object.
    pub(crate) fn members<'a>(raw: &'a str, mut each: impl FnMut(Key<'a>, &'a str)) -> Option<()> {
        let b = raw.as_bytes();
        if b.first() != Some(&b'{') {
            return None;
        }
        let mut i = ws(b, 1);
        if b.get(i) == Some(&b'}') {
            return Some(());
        }
        loop {
            if b.get(i) != Some(&b'"') {
                return None;
            }
            let (end, escaped) = string(b, i)?;
            let key = Key {
                quoted: raw.get(i..end)?,
                escaped,
            };
            i = ws(b, end);
            if b.get(i) != Some(&b':') {
                return None;
            }
            let start = ws(b, i + 1);
            let stop = value(b, start)?;
            each(key, raw.get(start..stop)?);
            i = ws(b, stop);
            match b.get(i)? {
                b',' => i = ws(b, i + 1),
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }

    /// Calls `each(value text)` for every element of the array `raw` (which starts with `[`).
    pub(crate) fn elements<'a>(raw: &'a str, mut each: impl FnMut(&'a str)) -> Option<()> {
        let b = raw.as_bytes();
        if b.first() != Some(&b'[') {
            return None;
        }
        let mut i = ws(b, 1);
        if b.get(i) == Some(&b']') {
            return Some(());
        }
        loop {
            let stop = value(b, i)?;
            each(raw.get(i..stop)?);
            i = ws(b, stop);
            match b.get(i)? {
                b',' => i = ws(b, i + 1),
                b']' => return Some(()),
                _ => return None,
            }
        }
    }

    /// The first byte at or after `i` that is not JSON whitespace.
    fn ws(b: &[u8], mut i: usize) -> usize {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = b.get(i) {
            i += 1;
        }
        i
    }

    /// The end (one past the closing quote) of the string whose opening quote is at `i`, and
    /// whether it holds an escape.
    fn string(b: &[u8], i: usize) -> Option<(usize, bool)> {
        let mut j = i + 1;
        let mut escaped = false;
        loop {
            let k = j + b.get(j..)?.iter().position(|&c| c == b'"' || c == b'\\')?;
            if b[k] == b'"' {
                return Some((k + 1, escaped));
            }
            escaped = true;
            j = k + 2;
        }
    }

    /// The bytes a container scan stops at: quotes and brackets.
    const STRUCTURAL: [bool; 256] = {
        let mut table = [false; 256];
        table[b'"' as usize] = true;
        table[b'{' as usize] = true;
        table[b'[' as usize] = true;
        table[b'}' as usize] = true;
        table[b']' as usize] = true;
        table
    };

    /// The end of the value that starts at `i`.
    fn value(b: &[u8], i: usize) -> Option<usize> {
        match *b.get(i)? {
            b'"' => string(b, i).map(|(end, _)| end),
            b'{' | b'[' => {
                let mut depth = 0usize;
                let mut j = i;
                loop {
                    // Only quotes and brackets matter inside a container.
                    j += b
                        .get(j..)?
                        .iter()
                        .position(|&c| STRUCTURAL[usize::from(c)])?;
                    match b[j] {
                        b'"' => {
                            j = string(b, j)?.0;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        _ => {
                            depth -= 1;
                            if depth == 0 {
                                return Some(j + 1);
                            }
                        }
                    }
                    j += 1;
                }
            }
            b',' | b'}' | b']' | b':' => None,
            _ => {
                // A number, `true`, `false` or `null`: up to the next delimiter.
                let len = b[i..]
                    .iter()
                    .position(|c| matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                    .unwrap_or(b.len() - i);
                Some(i + len)
            }
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

    mod scanner {
        use super::*;
        use proptest::prelude::*;

        fn document() -> impl Strategy<Value = Value> {
            let key = prop::sample::select(vec!["a", "b", "c", "0", "1", "k\"q", "é", "t\\u", ""]);
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                any::<f64>()
                    .prop_filter("finite", |f| f.is_finite())
                    .prop_map(Value::from),
                "[a-z\"\\\\{}\\[\\],: é\n]{0,8}".prop_map(Value::from),
            ];
            leaf.prop_recursive(4, 40, 6, move |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..5).prop_map(Value::from),
                    prop::collection::vec((key.clone(), inner), 0..6).prop_map(|members| {
                        Value::Object(
                            members
                                .into_iter()
                                .map(|(k, v)| (k.to_owned(), v))
                                .collect(),
                        )
                    }),
                ]
            })
        }

        /// Every path to a value of `doc`, plus one missing segment under each container.
        fn paths(doc: &Value, prefix: &str, out: &mut Vec<String>) {
            let join = |segment: &str| {
                if prefix.is_empty() {
                    segment.to_owned()
                } else {
                    format!("{prefix}.{segment}")
                }
            };
            match doc {
                Value::Object(map) => {
                    for (key, value) in map {
                        if !key.contains('.') {
                            out.push(join(key));
                            paths(value, &join(key), out);
                        }
                    }
                    out.push(join("missing"));
                }
                Value::Array(items) => {
                    for (i, value) in items.iter().enumerate() {
                        out.push(join(&i.to_string()));
                        paths(value, &join(&i.to_string()), out);
                    }
                    out.push(join(&items.len().to_string()));
                }
                _ => out.push(join("0")),
            }
        }

        proptest! {
            #[test]
            fn text_lookup_agrees_with_parsed_lookup(doc in document()) {
                let mut all = vec![String::new()];
                paths(&doc, "", &mut all);
                for text in [doc.to_string(), serde_json::to_string_pretty(&doc).unwrap()] {
                    // Compared with the parse of the same text (floats need not round-trip).
                    let parsed: Value = serde_json::from_str(&text).unwrap();
                    for path in &all {
                        prop_assert_eq!(
                            lookup_text_as::<Value>(&text, path),
                            lookup_as::<Value>(&parsed, path),
                            "path {:?} in {}", path, text
                        );
                    }
                }
            }

            #[test]
            fn text_lookup_never_panics_on_any_text(text in ".{0,40}", path in "[a-z0-9.]{0,6}") {
                let _ = lookup_text_as::<Value>(&text, &path);
            }
        }
    }
}
