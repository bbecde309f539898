//! Catalog files: readyd's own form (lists, one entity per document, JSON) and Backstage
//! `catalog-info.yaml` documents, through [`parse_source`] and [`load_dir`].

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::*;
use crate::catalog::{CatalogError, load_dir, parse_file, parse_source};
use crate::model::Tier;

/// Every key of readyd's entity form.
const ENTITY_KEYS: &[&str] = &[
    "identifier",
    "kind",
    "title",
    "team",
    "tier",
    "properties",
    "relations",
];

fn messages(errors: &[CatalogError]) -> Vec<String> {
    errors.iter().map(ToString::to_string).collect()
}

/// A tier as it may be written, and what it means.
fn written_tier() -> impl Strategy<Value = (Value, Tier)> {
    (1u8..=3).prop_flat_map(|t| {
        prop_oneof![
            Just((json!(t), t)),
            Just((json!(t.to_string()), t)),
            Just((json!(format!("tier-{t}")), t)),
            Just((json!(format!("Tier-{t}")), t)),
            Just((json!(format!(" TIER-{t} ")), t)),
        ]
    })
}

/// A tier value the catalog must refuse.
fn bad_tier() -> impl Strategy<Value = Value> {
    prop_oneof![
        (4u64..1000).prop_map(Value::from),
        Just(json!(0)),
        (-100i64..0).prop_map(Value::from),
        Just(json!(1.5)),
        Just(json!("gold")),
        Just(json!("tier-4")),
        Just(json!("tier-")),
        Just(json!("")),
        Just(json!([1])),
        Just(json!({"tier": 1})),
        Just(json!(true)),
    ]
}

/// A property value that survives YAML and JSON unchanged.
fn property_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "\\PC{0,16}".prop_map(Value::String),
        prop::sample::select(WORDS).prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A valid entity in readyd's form, and what it must parse to.
#[derive(Clone, Debug)]
struct GenEntity {
    identifier: String,
    kind: String,
    title: Option<String>,
    team: Option<String>,
    tier: Option<(Value, Tier)>,
    properties: Map<String, Value>,
    relations: BTreeMap<String, Vec<String>>,
}

impl GenEntity {
    fn to_value(&self) -> Value {
        let mut map = Map::new();
        map.insert("identifier".into(), json!(self.identifier));
        map.insert("kind".into(), json!(self.kind));
        if let Some(title) = &self.title {
            map.insert("title".into(), json!(title));
        }
        if let Some(team) = &self.team {
            map.insert("team".into(), json!(team));
        }
        if let Some((written, _)) = &self.tier {
            map.insert("tier".into(), written.clone());
        }
        if !self.properties.is_empty() {
            map.insert("properties".into(), Value::Object(self.properties.clone()));
        }
        if !self.relations.is_empty() {
            map.insert("relations".into(), json!(self.relations));
        }
        Value::Object(map)
    }
}

fn gen_entity(index: usize) -> impl Strategy<Value = GenEntity> {
    (
        identifier(),
        "[a-z][a-z-]{0,10}",
        prop::option::of("[A-Za-z][A-Za-z0-9 ]{0,20}"),
        prop::option::of("[a-z][a-z-]{0,10}"),
        prop::option::of(written_tier()),
        prop::collection::btree_map("[a-z_]{1,8}", property_value(), 0..4),
        prop::collection::btree_map(
            "[a-zA-Z]{1,10}",
            prop::collection::vec(identifier(), 0..3),
            0..3,
        ),
    )
        .prop_map(
            move |(id, kind, title, team, tier, properties, relations)| GenEntity {
                // Suffixed so that the entities of a file are distinct.
                identifier: format!("{id}-{index}"),
                kind,
                title,
                team,
                tier,
                properties: properties.into_iter().collect(),
                relations,
            },
        )
}

/// 1–4 distinct valid entities.
fn gen_entities() -> impl Strategy<Value = Vec<GenEntity>> {
    (1usize..5).prop_flat_map(|n| (0..n).map(gen_entity).collect::<Vec<_>>())
}

/// How a catalog file is written.
#[derive(Clone, Copy, Debug)]
enum Layout {
    /// One YAML list.
    YamlList,
    /// One entity per YAML document.
    YamlDocuments,
    /// A JSON array, pretty-printed.
    Json,
}

impl Layout {
    fn file(self) -> &'static str {
        match self {
            Layout::YamlList => "team-catalog.yaml",
            Layout::YamlDocuments => "team-catalog.yml",
            Layout::Json => "team-catalog.json",
        }
    }

    fn render(self, docs: &[Value]) -> String {
        match self {
            Layout::YamlList => to_yaml(&Value::Array(docs.to_vec())),
            Layout::YamlDocuments => docs.iter().map(to_yaml).collect::<Vec<_>>().join("---\n"),
            Layout::Json => {
                serde_json::to_string_pretty(&Value::Array(docs.to_vec())).expect("JSON serialises")
            }
        }
    }
}

fn layout() -> impl Strategy<Value = Layout> {
    prop_oneof![
        Just(Layout::YamlList),
        Just(Layout::YamlDocuments),
        Just(Layout::Json)
    ]
}

/// The first line at or after `from` that sets `key` (quotes and list dashes ignored).
fn key_line(text: &str, from: usize, key: &str) -> Option<usize> {
    let want = format!("{key}:");
    text.lines()
        .enumerate()
        .skip(from.saturating_sub(1))
        .find(|(_, line)| {
            let plain: String = line.chars().filter(|c| !matches!(c, '"' | '\'')).collect();
            plain.trim_start_matches([' ', '-']).starts_with(&want)
        })
        .map(|(i, _)| i + 1)
}

/// A fault put into one entity of a valid file, and the tokens its error must contain.
#[derive(Clone, Debug)]
enum EntityFault {
    UnknownKey(String),
    Missing(&'static str),
    WrongType(&'static str, Value),
    BadTier(Value),
    BadIdentifier(String),
    BadRelation(String),
    /// Take the identifier of another entity of the file.
    Duplicate,
}

fn entity_fault() -> impl Strategy<Value = EntityFault> {
    prop_oneof![
        unknown_key(ENTITY_KEYS).prop_map(EntityFault::UnknownKey),
        prop::sample::select(&["identifier", "kind"][..]).prop_map(EntityFault::Missing),
        (
            prop::sample::select(&["kind", "title", "team", "properties", "relations"][..]),
            prop_oneof![
                Just(json!([1, 2])),
                Just(json!({"nested": "map"})),
                Just(json!("a string")),
                Just(json!(42)),
                Just(json!(false)),
            ],
        )
            .prop_filter("a value of the wrong type", |(key, value)| {
                let string_key = matches!(*key, "kind" | "title" | "team");
                let map_key = matches!(*key, "properties" | "relations");
                (string_key && !value.is_string()) || (map_key && !value.is_object())
            })
            .prop_map(|(key, value)| EntityFault::WrongType(key, value)),
        bad_tier().prop_map(EntityFault::BadTier),
        prop_oneof![
            "[A-Z][a-zA-Z]{1,8}",
            "[a-z]{1,5} [a-z]{1,5}",
            "-[a-z]{1,6}",
            "[a-z]{1,4}/[a-z]{1,4}",
        ]
        .prop_map(EntityFault::BadIdentifier),
        prop_oneof!["[A-Z][a-z]{1,6}", "[a-z]{1,4} [a-z]{1,4}", "_[a-z]{1,5}"]
            .prop_map(EntityFault::BadRelation),
        Just(EntityFault::Duplicate),
    ]
}

/// Puts `fault` into entity `at` of `docs` (other entities are left alone).
fn apply(fault: &EntityFault, docs: &mut [Value], at: usize) {
    let other_id = docs
        .iter()
        .enumerate()
        .find(|(i, _)| *i != at)
        .map(|(_, d)| d["identifier"].clone());
    let map = docs[at].as_object_mut().expect("entities are objects");
    match fault {
        EntityFault::UnknownKey(key) => {
            map.insert(key.clone(), json!("x"));
        }
        EntityFault::Missing(key) => {
            map.shift_remove(*key);
        }
        EntityFault::WrongType(key, value) => {
            map.insert((*key).to_owned(), value.clone());
        }
        EntityFault::BadTier(value) => {
            map.insert("tier".into(), value.clone());
        }
        EntityFault::BadIdentifier(id) => {
            map.insert("identifier".into(), json!(id));
        }
        EntityFault::BadRelation(target) => {
            map.insert("relations".into(), json!({"dependsOn": ["ok", target]}));
        }
        EntityFault::Duplicate => {
            if let Some(id) = other_id {
                map.insert("identifier".into(), id);
            }
        }
    }
}

/// What the error must contain for `fault` in an entity identified `id`.
fn expected_tokens(fault: &EntityFault, id: &str, value_text: &str) -> Vec<String> {
    match fault {
        EntityFault::UnknownKey(key) => vec![format!("unknown field `{key}`")],
        EntityFault::Missing(key) => vec![format!("missing field `{key}`")],
        EntityFault::WrongType(_, _) => vec!["invalid type".into(), value_text.into()],
        EntityFault::BadTier(_) => vec![format!("entity `{id}`"), "tier must be".into()],
        EntityFault::BadIdentifier(bad) => vec![format!("identifier `{bad}` is not valid")],
        EntityFault::BadRelation(target) => vec![format!("`{target}`"), format!("`{id}`")],
        EntityFault::Duplicate => vec![format!("duplicate identifier `{id}`")],
    }
}

/// How serde writes a wrong-typed value in "invalid type: …".
fn serde_shape(value: &Value) -> String {
    match value {
        Value::Array(_) => "sequence".into(),
        Value::Object(_) => "map".into(),
        Value::String(s) => format!("\"{s}\""),
        Value::Number(n) => format!("`{n}`"),
        Value::Bool(b) => format!("`{b}`"),
        Value::Null => "null".into(),
    }
}

proptest! {
    #![proptest_config(config(512))]

    /// Arbitrary text, token soup and serialised trees never make the catalog parser panic, and
    /// every fault it reports names the file.
    #[test]
    fn arbitrary_text_never_panics(text in definition_text(), json in any::<bool>()) {
        let name = if json { "hostile.json" } else { "hostile.yaml" };
        if let Err(errors) = parse_source(Path::new(name), &text) {
            prop_assert!(!errors.is_empty());
            for e in &errors {
                prop_assert!(e.to_string().contains(name), "{e}");
            }
        }
    }

    /// Arbitrary bytes read as (lossy) text never panic either.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse_source(Path::new("bytes.yaml"), &text);
        let _ = parse_source(Path::new("bytes.json"), &text);
    }

    /// Random trees shaped like entities and Backstage documents (right keys, random values).
    #[test]
    fn entity_shaped_trees_never_panic(
        docs in prop::collection::vec(json_object(), 0..4),
        backstage in prop::collection::vec(
            (
                prop::sample::select(&["Component", "API", "Group", "System", ""][..]),
                json_value(),
                json_value(),
            ),
            0..3,
        ),
    ) {
        let mut all = docs;
        for (kind, metadata, spec) in backstage {
            all.push(json!({
                "apiVersion": "backstage.io/v1alpha1",
                "kind": kind,
                "metadata": metadata,
                "spec": spec,
            }));
        }
        let yaml = all.iter().map(to_yaml).collect::<Vec<_>>().join("---\n");
        let _ = parse_source(Path::new("shaped.yaml"), &yaml);
        let _ = parse_source(Path::new("shaped.yaml"), &to_yaml(&Value::Array(all.clone())));
        let _ = parse_source(Path::new("shaped.json"), &Value::Array(all).to_string());
    }

    /// Valid entities parse to what was generated, each at the line of its identifier.
    #[test]
    fn valid_entities_round_trip(entities in gen_entities(), layout in layout()) {
        let docs: Vec<Value> = entities.iter().map(GenEntity::to_value).collect();
        let text = layout.render(&docs);
        let parsed = parse_source(Path::new(layout.file()), &text)
            .map_err(|e| TestCaseError::fail(format!("{:?}\n{text}", messages(&e))))?;
        prop_assert_eq!(parsed.len(), entities.len());
        let mut from = 1;
        for (want, got) in entities.iter().zip(&parsed) {
            let e = &got.entity;
            prop_assert_eq!(&e.identifier, &want.identifier);
            prop_assert_eq!(&e.kind, &want.kind);
            prop_assert_eq!(&e.title, want.title.as_ref().unwrap_or(&want.identifier));
            prop_assert_eq!(&e.team, &want.team);
            prop_assert_eq!(e.tier, want.tier.as_ref().map(|(_, t)| *t));
            prop_assert_eq!(&e.properties, &want.properties);
            prop_assert_eq!(&e.relations, &want.relations);
            let line = key_value_line(&text, from, "identifier", &want.identifier);
            prop_assert_eq!(Some(got.line), line, "{}", text);
            from = got.line + 1;
        }
        // `parse_file` is the same parse without lines.
        let plain = parse_file(Path::new(layout.file()), &text).expect("parsed above");
        prop_assert_eq!(plain.len(), parsed.len());
    }

    /// One fault in one entity of a valid file is refused, and the error names the file, the
    /// fault and (for value faults) the entity.
    #[test]
    fn a_fault_in_one_entity_is_named(
        entities in gen_entities(),
        layout in layout(),
        fault in entity_fault(),
        at in any::<prop::sample::Index>(),
    ) {
        prop_assume!(!matches!(fault, EntityFault::Duplicate) || entities.len() > 1);
        let mut docs: Vec<Value> = entities.iter().map(GenEntity::to_value).collect();
        let at = at.index(docs.len());
        apply(&fault, &mut docs, at);
        let text = layout.render(&docs);
        let file = layout.file();
        let errors = match parse_source(Path::new(file), &text) {
            Ok(_) => return Err(TestCaseError::fail(format!("{fault:?} accepted:\n{text}"))),
            Err(errors) => errors,
        };
        let id = docs[at]["identifier"].as_str().unwrap_or_default().to_owned();
        let value_text = match &fault {
            EntityFault::WrongType(_, value) => serde_shape(value),
            _ => String::new(),
        };
        let tokens = expected_tokens(&fault, &id, &value_text);
        let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
        some_names(&messages(&errors), file, &tokens)?;
        // Syntax faults found by the YAML parser itself point at their line.
        if let (EntityFault::UnknownKey(key), Layout::YamlList | Layout::YamlDocuments) =
            (&fault, layout)
        {
            let line = key_line(&text, 1, key);
            prop_assert_eq!(errors[0].line(), line, "{}\n{}", errors[0], text);
        }
        if let EntityFault::BadTier(_) = fault {
            let entity_line = key_value_line(&text, 1, "identifier", &id).unwrap_or(1);
            let tier_line = key_line(&text, entity_line, "tier");
            let bad = errors.iter().find(|e| e.to_string().contains("tier must be"));
            prop_assert_eq!(bad.and_then(CatalogError::line), tier_line, "{}", text);
        }
    }

    /// Backstage Components and APIs map as DESIGN.md §4 says.
    #[test]
    fn backstage_documents_round_trip(
        name in identifier(),
        api in any::<bool>(),
        spec_type in prop::option::of("[a-z]{1,10}"),
        owner in prop::option::of(("[a-z]{1,8}", 0usize..3)),
        tier in prop::option::of(written_tier()),
        tier_in_labels in any::<bool>(),
        title in prop::option::of("[A-Z][a-z ]{0,12}"),
        depends in prop::collection::vec((identifier(), 0usize..3), 0..3),
    ) {
        let mut metadata = json!({"name": name});
        if let Some(title) = &title {
            metadata["title"] = json!(title);
        }
        if let Some((written, _)) = &tier {
            let section = if tier_in_labels { "labels" } else { "annotations" };
            metadata[section] = json!({"tier": written});
        }
        let mut spec = json!({"lifecycle": "production"});
        if let Some(t) = &spec_type {
            spec["type"] = json!(t);
        }
        let team = owner.as_ref().map(|(team, form)| {
            let written = match form {
                0 => team.clone(),
                1 => format!("group:{team}"),
                _ => format!("group:default/{team}"),
            };
            spec["owner"] = json!(written);
            team.clone()
        });
        let refs: Vec<String> = depends
            .iter()
            .map(|(target, form)| match form {
                0 => target.clone(),
                1 => format!("component:{target}"),
                _ => format!("resource:default/{target}"),
            })
            .collect();
        if !refs.is_empty() {
            spec["dependsOn"] = json!(refs);
        }
        let doc = json!({
            "apiVersion": "backstage.io/v1alpha1",
            "kind": if api { "API" } else { "Component" },
            "metadata": metadata,
            "spec": spec,
        });
        let text = format!("{}---\n{}", to_yaml(&json!({
            "apiVersion": "backstage.io/v1alpha1", "kind": "Group", "metadata": {"name": "skipped"}
        })), to_yaml(&doc));
        let parsed = parse_source(Path::new("catalog-info.yaml"), &text)
            .map_err(|e| TestCaseError::fail(format!("{:?}\n{text}", messages(&e))))?;
        prop_assert_eq!(parsed.len(), 1, "only Component and API become entities");
        let e = &parsed[0].entity;
        prop_assert_eq!(&e.identifier, &name);
        let kind = if api {
            "api".to_owned()
        } else {
            spec_type.clone().unwrap_or_else(|| "component".into())
        };
        prop_assert_eq!(&e.kind, &kind);
        prop_assert_eq!(&e.title, title.as_ref().unwrap_or(&name));
        prop_assert_eq!(&e.team, &team);
        prop_assert_eq!(e.tier, tier.as_ref().map(|(_, t)| *t));
        prop_assert_eq!(&e.properties["lifecycle"], "production");
        if !depends.is_empty() {
            let targets: Vec<String> = depends.iter().map(|(t, _)| t.clone()).collect();
            prop_assert_eq!(&e.relations["dependsOn"], &targets);
        }
        prop_assert_eq!(Some(parsed[0].line), key_value_line(&text, 5, "name", &name));
    }

    /// Faults in a Backstage Component are named with the file and the key.
    #[test]
    fn backstage_faults_are_named(
        name in identifier(),
        fault in 0usize..6,
        bad in bad_tier(),
    ) {
        let mut doc = json!({
            "apiVersion": "backstage.io/v1alpha1",
            "kind": "Component",
            "metadata": {"name": name, "labels": {"tier": "1"}},
            "spec": {"type": "service", "owner": "group:default/team"},
        });
        let tokens: Vec<String> = match fault {
            0 => {
                doc["metadata"]["labels"]["tier"] = bad;
                vec![format!("entity `{name}`"), "tier must be".into()]
            }
            1 => {
                doc["metadata"]["annotations"] = json!({"tier": "tier-2"});
                vec![format!("entity `{name}`"), "tier label says 1".into()]
            }
            2 => {
                doc["metadata"].as_object_mut().expect("object").shift_remove("name");
                vec!["metadata.name is required".into()]
            }
            3 => {
                doc["spec"]["owner"] = json!(["a"]);
                vec![format!("entity `{name}`"), "spec.owner must be a string".into()]
            }
            4 => {
                doc["spec"]["dependsOn"] = json!("ledger");
                vec!["spec.dependsOn must be a list".into()]
            }
            _ => {
                doc["metadata"]["name"] = json!(name.to_uppercase() + "X");
                vec![format!("identifier `{}X` is not valid", name.to_uppercase())]
            }
        };
        let text = to_yaml(&doc);
        let errors = parse_source(Path::new("catalog-info.yaml"), &text)
            .err()
            .ok_or_else(|| TestCaseError::fail(format!("accepted:\n{text}")))?;
        let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
        some_names(&messages(&errors), "catalog-info.yaml", &tokens)?;
    }
}

/// A directory of valid catalog files, as (file name, text, identifiers).
fn gen_catalog_files() -> impl Strategy<Value = Vec<(String, String, Vec<String>)>> {
    prop::collection::vec((gen_entities(), layout()), 1..5).prop_map(|files| {
        files
            .into_iter()
            .enumerate()
            .map(|(f, (mut entities, layout))| {
                // Distinct across files too.
                for e in &mut entities {
                    e.identifier = format!("f{f}-{}", e.identifier);
                }
                let docs: Vec<Value> = entities.iter().map(GenEntity::to_value).collect();
                let name = format!("team-{f}/{}", layout.file());
                let ids = entities.into_iter().map(|e| e.identifier).collect();
                (name, layout.render(&docs), ids)
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(config(32))]

    /// N valid files and one broken one: `load_dir` refuses the whole directory, naming only the
    /// broken file; without it, every entity of the N files loads.
    #[test]
    fn load_dir_is_all_or_nothing(
        files in gen_catalog_files(),
        broken in prop_oneof![
            definition_text().prop_filter("must be broken", |t| {
                parse_source(Path::new("zz-broken.yaml"), t).is_err()
            }),
            entity_fault().prop_filter("needs a second entity", |f| {
                !matches!(f, EntityFault::Duplicate)
            }).prop_map(|fault| {
                let mut docs = vec![json!({"identifier": "broken-one", "kind": "service"})];
                apply(&fault, &mut docs, 0);
                to_yaml(&Value::Array(docs))
            }),
        ],
        steal in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().expect("temp dir");
        for (name, text, _) in &files {
            write(dir.path(), name, text);
        }
        // Ignored names are never read, whatever they hold.
        write(dir.path(), ".#team-0.yaml", "garbage: [");
        write(dir.path(), "team-0.yaml~", "garbage: [");
        let stolen = &files[0].2[0];
        let broken = if steal {
            // A duplicate of an entity of another file.
            format!("- identifier: {stolen}\n  kind: service\n")
        } else {
            broken
        };
        write(dir.path(), "zz-broken.yaml", &broken);
        let broken_path = dir.path().join("zz-broken.yaml");

        let errors = load_dir(dir.path())
            .err()
            .ok_or_else(|| TestCaseError::fail("a broken file was accepted"))?;
        for e in &errors {
            prop_assert_eq!(e.file(), broken_path.as_path(), "{}", e);
            prop_assert!(e.to_string().contains("zz-broken.yaml"), "{}", e);
        }
        if steal {
            some_names(&messages(&errors), "zz-broken.yaml", &[
                &format!("duplicate identifier `{stolen}`"),
                &files[0].0,
            ])?;
        }

        std::fs::remove_file(&broken_path).expect("remove");
        let catalog = load_dir(dir.path())
            .map_err(|e| TestCaseError::fail(format!("{:?}", messages(&e))))?;
        let mut want: Vec<&String> = files.iter().flat_map(|(_, _, ids)| ids).collect();
        want.sort();
        prop_assert_eq!(catalog.entities.keys().collect::<Vec<_>>(), want);
        for (name, _, ids) in &files {
            for id in ids {
                prop_assert_eq!(&catalog.origins[id].file, &dir.path().join(name));
            }
        }
    }
}

/// Found by `a_fault_in_one_entity_is_named`: a scalar of the wrong type that YAML would read as
/// a string (`title: 5`) was refused as "not a catalog entity", naming neither the fault nor the
/// value.
#[test]
fn wrong_scalar_type_names_the_value() {
    for (text, token) in [
        ("- identifier: a\n  kind: service\n  title: 5\n", "`5`"),
        ("identifier: a\nkind: service\nteam: true\n", "`true`"),
        ("- identifier: 12\n  kind: service\n", "`12`"),
    ] {
        let errors = parse_source(Path::new("c.yaml"), text).unwrap_err();
        let text = errors[0].to_string();
        assert!(text.starts_with("c.yaml"), "{text}");
        assert!(
            text.contains("invalid type") && text.contains(token),
            "{text}"
        );
    }
}

/// Alias expansion ("billion laughs") is cut off by the YAML parser, not run to exhaustion.
#[test]
fn alias_bombs_are_refused() {
    let mut text = String::from("a: &a [x,x,x,x,x,x,x,x,x,x]\n");
    for (prev, name) in ["a", "b", "c", "d", "e", "f", "g", "h"]
        .windows(2)
        .map(|w| (w[0], w[1]))
    {
        let row = vec![format!("*{prev}"); 10].join(",");
        text.push_str(&format!("{name}: &{name} [{row}]\n"));
    }
    let errors = parse_source(Path::new("bomb.yaml"), &text).unwrap_err();
    assert!(errors[0].to_string().contains("bomb.yaml"), "{}", errors[0]);
}

/// Nesting far beyond any real document is refused (no stack overflow).
#[test]
fn deep_nesting_is_refused() {
    for (name, text) in [
        ("deep.yaml", "[".repeat(100_000)),
        ("deep.yaml", "- ".repeat(10_000) + "x"),
        ("deep.json", "[".repeat(100_000)),
        ("deep.yaml", "{a: ".repeat(10_000)),
    ] {
        let errors = parse_source(Path::new(name), &text).unwrap_err();
        assert!(errors[0].to_string().contains(name), "{}", errors[0]);
    }
}
