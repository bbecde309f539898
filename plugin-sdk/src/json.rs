//! Dotted-path lookup in JSON documents, shared by `Entity`, `Facts`, `Config` and `Params`.
//!
//! A path is a `.`-separated list of object keys; a segment that is a decimal number also indexes
//! arrays (`checks.0.name`). An empty path is the document itself. Lookup never allocates and
//! never fails loudly: a missing key, a wrong container or an out-of-range index is `None`.

use serde::de::DeserializeOwned;
use serde_json::Value;

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
}
