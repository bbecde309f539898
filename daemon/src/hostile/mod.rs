//! Hostile input: property-based and fuzz tests for every parser of outside input (issue 8,
//! item 4) — catalog files (readyd form and Backstage documents), scorecards, the tier policy,
//! initiatives, query primitives, plugin manifests, API bodies, query strings and paths.
//!
//! Every parser is held to the same four promises:
//! 1. arbitrary bytes, strings and YAML/JSON/TOML-shaped structures give `Ok` or `Err`, never a
//!    panic (proptest reports a panic inside a property as a failure);
//! 2. a valid document with one generated fault is refused with an error whose text names the
//!    file and the fault (the unknown key, the bad operator, the bad tier, …);
//! 3. directory loaders are all or nothing (the plugin loader is documented to keep the good
//!    manifests and report the bad ones, and is tested for exactly that);
//! 4. generated valid documents parse back to what was generated.
//!
//! Helpers shared by the families live here: generators of JSON-like trees biased towards the
//! keys and words the parsers look for, "token soup" text for the YAML and TOML lexers, and
//! small assertion helpers.

use std::path::Path;

use proptest::prelude::*;
use serde_json::Value;

mod api;
mod catalog;
mod manifest;
mod standards;

/// Keys any of the definition formats or API bodies reads: generated maps use them often, so
/// that random trees get past the first `unknown field` and into the deeper checks.
pub(crate) const KEYS: &[&str] = &[
    "identifier",
    "kind",
    "title",
    "team",
    "tier",
    "properties",
    "relations",
    "description",
    "levels",
    "rules",
    "level",
    "query",
    "check",
    "plugin",
    "params",
    "filter",
    "weight",
    "due_days",
    "combinator",
    "conditions",
    "property",
    "operator",
    "value",
    "from",
    "to",
    "apiVersion",
    "metadata",
    "name",
    "spec",
    "type",
    "owner",
    "labels",
    "annotations",
    "dependsOn",
    "providesApis",
    "consumesApis",
    "tiers",
    "untiered",
    "require",
    "task_due_days",
    "alert",
    "deadline",
    "targets",
    "scorecard",
    "entity",
    "reason",
    "until",
    "note",
    "rule",
    "1",
    "2",
    "3",
    "tier-1",
    "<<",
];

/// Words the parsers give meaning to, and near misses.
pub(crate) const WORDS: &[&str] = &[
    "",
    " ",
    "service",
    "and",
    "or",
    "xor",
    "=",
    "!=",
    "<=",
    "in",
    "between",
    "isEmpty",
    "matchesRegex",
    "satisfiesVersion",
    "$kind",
    "$tier",
    "$nope",
    "facts",
    "facts.x.y",
    "relations.a.b",
    "a..b",
    "Basic",
    "Bronze",
    "backstage.io/v1alpha1",
    "apps/v1",
    "Component",
    "API",
    "tier-2",
    "tier-9",
    "2024-01-01",
    "2024-13-45",
    "2024-02-30T25:00:00Z",
    "today",
    "lastDecade",
    "5m",
    "(",
    ">=1.4, <2",
    "group:default/x",
    "user:",
    "data-source",
    "check",
    "NaN",
    "1e999",
];

/// The proptest configuration of this module: `cases` cases, and no failure persistence (a
/// failure is kept as a regular `#[test]` instead, and nothing is written beside the sources).
pub(crate) fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A key of a generated map.
pub(crate) fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(KEYS).prop_map(str::to_owned),
        1 => "\\PC{0,8}",
    ]
}

/// A leaf of a generated tree.
pub(crate) fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => (-5i64..10).prop_map(Value::from),
        1 => any::<f64>().prop_map(Value::from),
        3 => prop::sample::select(WORDS).prop_map(Value::from),
        2 => "\\PC{0,12}".prop_map(Value::String),
    ]
}

/// A JSON tree of bounded depth and size, maps keyed mostly by [`KEYS`].
pub(crate) fn json_value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

/// A JSON object at the top (what every definition file and body is), any depth below.
pub(crate) fn json_object() -> impl Strategy<Value = Value> {
    prop::collection::vec((key(), json_value()), 0..8)
        .prop_map(|pairs| Value::Object(pairs.into_iter().collect()))
}

/// Pieces the YAML lexer and parser react to: indentation, flow collections, documents,
/// anchors, aliases, merge keys, tags, block scalars, quotes, odd numbers, BOM and NUL.
const YAML_PIECES: &[&str] = &[
    "identifier: a\n",
    "kind: service\n",
    "- ",
    "  ",
    "    ",
    "\n",
    ": ",
    ":",
    "{",
    "}",
    "[",
    "]",
    ", ",
    "---\n",
    "...\n",
    "&x ",
    "*x",
    "*y",
    "<<: *x\n",
    "<<: [*x, *x]\n",
    "!!str ",
    "!!binary ",
    "!custom ",
    "? ",
    "|\n",
    ">-\n",
    "'",
    "\"",
    "\\",
    "# c\n",
    "\t",
    "~",
    "null",
    "1e999",
    "-.inf",
    ".nan",
    "0x1F",
    "0o17",
    "99999999999999999999999",
    "tier: 4\n",
    "tier: tier-1\n",
    "apiVersion: backstage.io/v1alpha1\n",
    "metadata: {name: x}\n",
    "levels: [{title: A}, {title: B}]\n",
    "%YAML 1.2\n",
    "\u{feff}",
    "\0",
    "é",
    "\u{202e}",
];

/// Token soup for the YAML parser.
pub(crate) fn yaml_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            6 => prop::sample::select(YAML_PIECES).prop_map(str::to_owned),
            1 => "\\PC{0,6}",
        ],
        0..40,
    )
    .prop_map(|pieces| pieces.concat())
}

/// Text for a definition parser: arbitrary, soup, or a serialised tree (YAML or JSON), possibly
/// cut short.
pub(crate) fn definition_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        yaml_soup(),
        json_value().prop_map(|v| to_yaml(&v)),
        json_object().prop_map(|v| to_yaml(&v)),
        json_object().prop_map(|v| v.to_string()),
        (json_object(), any::<prop::sample::Index>()).prop_map(|(v, cut)| {
            let text = to_yaml(&v);
            truncate(&text, cut.index(text.len() + 1))
        }),
    ]
}

/// `text` cut at the char boundary at or before `at`.
pub(crate) fn truncate(text: &str, at: usize) -> String {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    text[..at].to_owned()
}

/// YAML the way a person would write it (block style, one key a line).
pub(crate) fn to_yaml(value: &Value) -> String {
    serde_norway::to_string(value).expect("a JSON value always serialises to YAML")
}

/// Writes `text` at `dir/rel`, creating folders.
pub(crate) fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().expect("a file has a parent")).expect("create dir");
    std::fs::write(path, text).expect("write file");
}

/// Passes when some message names `file` and contains every token.
pub(crate) fn some_names(
    messages: &[String],
    file: &str,
    tokens: &[&str],
) -> Result<(), TestCaseError> {
    let hit = messages
        .iter()
        .any(|m| m.contains(file) && tokens.iter().all(|t| m.contains(t)));
    prop_assert!(
        hit,
        "no error names `{}` and {:?}; errors:\n{}",
        file,
        tokens,
        messages.join("\n")
    );
    Ok(())
}

/// A readyd identifier (`[a-z0-9][a-z0-9._-]*`).
pub(crate) fn identifier() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,12}"
}

/// A key of 3–11 lowercase letters that `known` does not list.
pub(crate) fn unknown_key(known: &'static [&'static str]) -> impl Strategy<Value = String> {
    "[a-z][a-z_]{2,10}".prop_filter("must not be a known key", move |k| {
        !known.contains(&k.as_str())
    })
}

/// The line where `key` is set to `value`, at or after `from`, in YAML or JSON as the
/// serialisers write them (quotes, list dashes and trailing commas ignored).
pub(crate) fn key_value_line(text: &str, from: usize, key: &str, value: &str) -> Option<usize> {
    let want = format!("{key}: {value}");
    text.lines()
        .enumerate()
        .skip(from.saturating_sub(1))
        .find(|(_, line)| {
            let plain: String = line.chars().filter(|c| !matches!(c, '"' | '\'')).collect();
            plain.trim_start_matches([' ', '-']).trim_end_matches(',') == want
        })
        .map(|(i, _)| i + 1)
}

/// `lines` joined back without line `skip` (0-based): every one-line deletion of a document.
pub(crate) fn without_line(lines: &[&str], skip: usize) -> String {
    lines
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != skip)
        .map(|(_, l)| *l)
        .collect::<Vec<_>>()
        .join("\n")
}
