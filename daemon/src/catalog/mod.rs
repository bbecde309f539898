//! The catalog: reads entities from the files of the catalog directory.
//!
//! Two forms are read (DESIGN.md §4): readyd's own (a YAML list of entities, or one entity per
//! document) and Backstage `catalog-info.yaml` documents ([`backstage`] says how they map).
//! [`load_dir`] reads every `*.yaml`, `*.yml` and `*.json` file under the directory (recursively,
//! skipping hidden, backup and temporary files, see [`is_ignored_name`]) and returns a
//! [`Catalog`] with each entity's [`Origin`] (file and line) and a content [`revision`](Catalog::revision).
//!
//! Loading is all or nothing: if any file has a fault, [`load_dir`] returns every fault found
//! (each naming its file and line) and no catalog, so a broken edit never half-replaces the
//! entities in force. This module never evaluates, stores or watches anything.
//!
//! Decisions where DESIGN.md is silent:
//! - readyd form: `identifier` and `kind` are required; `title` defaults to the identifier;
//!   unknown keys are errors. `properties: null` means no properties.
//! - Tier: `1`, `2`, `3` (number or string), `tier-1` … `tier-3` (any case), or null / absent for
//!   no tier. Anything else is an error.
//! - Relation targets must be well-formed identifiers but need not exist in the catalog (a
//!   dependency on something outside readyd is normal).
//! - A document whose `apiVersion` is not `backstage.io/…` is an error rather than silently skipped,
//!   so a typo cannot hide an entity; an empty document is skipped.
//! - The line of an entity is the line of its `identifier:` (readyd) or `name:` (Backstage) key;
//!   a fault is reported at the line of the key at fault when it can be found, else at the
//!   entity's line.

mod backstage;
pub(crate) mod files;

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

pub use files::is_ignored_name;
use files::{Format, ParseFault};

use crate::model::{Entity, JsonObject, Tier, is_valid_identifier};

/// Where an entity is defined.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Origin {
    pub file: PathBuf,
    /// 1-based line of the entity's identifier.
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// Every entity of the catalog directory, as loaded at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Catalog {
    /// By identifier.
    pub entities: BTreeMap<String, Entity>,
    /// Where each entity is defined, by identifier.
    pub origins: BTreeMap<String, Origin>,
    /// A hash of the files' names and contents (16 hex digits): equal revisions, equal catalogs.
    pub revision: String,
}

/// An entity and the line it is defined at, as parsed from one file.
#[derive(Clone, Debug, PartialEq)]
pub struct LocatedEntity {
    pub entity: Entity,
    pub line: usize,
}

/// What changed between two catalogs; hot reload re-evaluates `added` and `changed` and purges
/// `removed`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CatalogDiff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

impl CatalogDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

impl Catalog {
    /// The entity with this identifier.
    pub fn get(&self, identifier: &str) -> Option<&Entity> {
        self.entities.get(identifier)
    }

    /// Entities added, removed or changed from `old` to `new`, each list sorted.
    pub fn diff(old: &Catalog, new: &Catalog) -> CatalogDiff {
        let mut diff = CatalogDiff::default();
        for (id, entity) in &new.entities {
            match old.entities.get(id) {
                None => diff.added.push(id.clone()),
                Some(before) if before != entity => diff.changed.push(id.clone()),
                Some(_) => {}
            }
        }
        diff.removed = old
            .entities
            .keys()
            .filter(|id| !new.entities.contains_key(*id))
            .cloned()
            .collect();
        diff
    }
}

/// A fault in the catalog directory. Every variant names the file, and the line when known.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("{}: cannot read: {source}", file.display())]
    Io { file: PathBuf, source: io::Error },
    /// Not valid YAML/JSON, or not the shape of an entity (wrong type, unknown key).
    #[error("{}: {message}", located(file, *line))]
    Syntax {
        file: PathBuf,
        line: Option<usize>,
        message: String,
    },
    /// A well-formed entity with a bad value (identifier, tier, relation).
    #[error("{}: {}{message}", located(file, Some(*line)), entity_prefix(identifier))]
    Invalid {
        file: PathBuf,
        line: usize,
        identifier: Option<String>,
        message: String,
    },
    #[error("duplicate identifier `{identifier}`: defined at {first} and at {second}")]
    Duplicate {
        identifier: String,
        first: Origin,
        second: Origin,
    },
}

impl CatalogError {
    /// The file at fault (the second definition for a duplicate).
    pub fn file(&self) -> &Path {
        match self {
            CatalogError::Io { file, .. }
            | CatalogError::Syntax { file, .. }
            | CatalogError::Invalid { file, .. } => file,
            CatalogError::Duplicate { second, .. } => &second.file,
        }
    }

    /// The line at fault, when known.
    pub fn line(&self) -> Option<usize> {
        match self {
            CatalogError::Io { .. } => None,
            CatalogError::Syntax { line, .. } => *line,
            CatalogError::Invalid { line, .. } => Some(*line),
            CatalogError::Duplicate { second, .. } => Some(second.line),
        }
    }
}

fn located(file: &Path, line: Option<usize>) -> String {
    match line {
        Some(line) => format!("{}:{line}", file.display()),
        None => file.display().to_string(),
    }
}

fn entity_prefix(identifier: &Option<String>) -> String {
    identifier
        .as_deref()
        .filter(|id| !id.is_empty())
        .map(|id| format!("entity `{id}`: "))
        .unwrap_or_default()
}

/// A fault found in one document, with the key it is about (to find its line).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Fault {
    key: Option<&'static str>,
    message: String,
}

impl Fault {
    fn at_key(key: &'static str, message: impl Into<String>) -> Fault {
        Fault {
            key: Some(key),
            message: message.into(),
        }
    }
}

/// Reads every catalog file under `dir`. All or nothing: any fault in any file gives `Err` with
/// every fault found, and no entity.
pub fn load_dir(dir: &Path) -> Result<Catalog, Vec<CatalogError>> {
    let paths = files::definition_files(dir).map_err(|source| {
        vec![CatalogError::Io {
            file: dir.to_owned(),
            source,
        }]
    })?;
    let mut errors = Vec::new();
    let mut texts = Vec::with_capacity(paths.len());
    for path in paths {
        match std::fs::read_to_string(&path) {
            Ok(text) => texts.push((path, text)),
            // Removed between listing and reading: a rename in progress; the watcher rescans.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => errors.push(CatalogError::Io { file: path, source }),
        }
    }

    let mut catalog = Catalog::default();
    for (path, text) in &texts {
        // The good entities of a file with faults still take part in the duplicate check, so
        // that one run reports every fault.
        let (located, mut faults) = parse_located(path, text);
        errors.append(&mut faults);
        for LocatedEntity { entity, line } in located {
            let origin = Origin {
                file: path.clone(),
                line,
            };
            if let Some(first) = catalog.origins.get(&entity.identifier) {
                errors.push(CatalogError::Duplicate {
                    identifier: entity.identifier.clone(),
                    first: first.clone(),
                    second: origin,
                });
                continue;
            }
            catalog.origins.insert(entity.identifier.clone(), origin);
            catalog.entities.insert(entity.identifier.clone(), entity);
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    catalog.revision = files::revision(texts.iter().map(|(path, text)| {
        let name = path
            .strip_prefix(dir)
            .unwrap_or(path)
            .to_str()
            .unwrap_or("");
        (name, text.as_str())
    }));
    Ok(catalog)
}

/// Parses one catalog file's text; the first fault found, if any (see [`parse_source`] for all).
pub fn parse_file(path: &Path, text: &str) -> Result<Vec<Entity>, CatalogError> {
    match parse_source(path, text) {
        Ok(located) => Ok(located.into_iter().map(|l| l.entity).collect()),
        Err(mut errors) => Err(errors.swap_remove(0)),
    }
}

/// Parses one catalog file's text into entities with their lines, or every fault found in it
/// (always at least one). Duplicates within the file are reported here too.
pub fn parse_source(path: &Path, text: &str) -> Result<Vec<LocatedEntity>, Vec<CatalogError>> {
    let (entities, errors) = parse_located(path, text);
    if errors.is_empty() {
        Ok(entities)
    } else {
        Err(errors)
    }
}

/// The well-formed entities of a file, and the faults of the others.
fn parse_located(path: &Path, text: &str) -> (Vec<LocatedEntity>, Vec<CatalogError>) {
    let format = Format::of(path).unwrap_or(Format::Yaml);
    let docs = match files::documents(format, text) {
        Ok(docs) => docs,
        Err(fault) => return (Vec::new(), vec![syntax(path, fault)]),
    };
    let mut errors = Vec::new();
    let mut entities: Vec<LocatedEntity> = Vec::new();
    let mut cursor = Cursor::default();
    for (index, doc) in docs.iter().enumerate() {
        match doc {
            Value::Null => {}
            Value::Object(_) if backstage::is_backstage(doc) => {
                let line = cursor.locate(text, "name", backstage::name(doc));
                match backstage::to_entity(doc) {
                    Ok(Some(entity)) => {
                        if check_entity(path, text, line, &entity, &mut errors) {
                            entities.push(LocatedEntity { entity, line });
                        }
                    }
                    Ok(None) => {}
                    Err(faults) => {
                        let id = backstage::name(doc).map(str::to_owned);
                        let located = faults
                            .into_iter()
                            .map(|f| invalid(path, text, line, &id, f));
                        errors.extend(located);
                    }
                }
            }
            Value::Object(map) if map.contains_key("apiVersion") => {
                errors.push(CatalogError::Syntax {
                    file: path.to_owned(),
                    line: cursor.document_line(text),
                    message: format!(
                        "unsupported apiVersion {} (readyd reads its own form and \
                         backstage.io/… documents)",
                        map["apiVersion"]
                    ),
                })
            }
            Value::Object(_) => match RawEntity::deserialize(doc) {
                Ok(raw) => {
                    let line = cursor.locate(text, "identifier", Some(&raw.identifier));
                    push_raw(path, text, raw, line, &mut entities, &mut errors);
                }
                Err(e) => errors.push(reparse_error::<RawEntity>(path, format, text, index, &e)),
            },
            Value::Array(_) => match Vec::<RawEntity>::deserialize(doc) {
                Ok(raws) => {
                    for raw in raws {
                        let line = cursor.locate(text, "identifier", Some(&raw.identifier));
                        push_raw(path, text, raw, line, &mut entities, &mut errors);
                    }
                }
                Err(e) => errors.push(reparse_error::<Vec<RawEntity>>(
                    path, format, text, index, &e,
                )),
            },
            other => errors.push(CatalogError::Syntax {
                file: path.to_owned(),
                line: cursor.document_line(text),
                message: format!("expected an entity or a list of entities, got {other}"),
            }),
        }
    }

    // Duplicates within the file; the first definition stays, as across files.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    entities.retain(|located| {
        if let Some(&first) = seen.get(&located.entity.identifier) {
            errors.push(CatalogError::Duplicate {
                identifier: located.entity.identifier.clone(),
                first: Origin {
                    file: path.to_owned(),
                    line: first,
                },
                second: Origin {
                    file: path.to_owned(),
                    line: located.line,
                },
            });
            false
        } else {
            seen.insert(located.entity.identifier.clone(), located.line);
            true
        }
    });
    (entities, errors)
}

/// Checks an entity that did not come from a file (the API's `PUT /v1/entities/{id}`) by the
/// same rules as the catalog files: identifier, tier, relation targets.
pub fn validate_entity(entity: &Entity) -> Result<(), Vec<String>> {
    let faults = entity_faults(entity);
    if faults.is_empty() {
        Ok(())
    } else {
        Err(faults.into_iter().map(|f| f.message).collect())
    }
}

fn entity_faults(entity: &Entity) -> Vec<Fault> {
    let mut faults = Vec::new();
    if !is_valid_identifier(&entity.identifier) {
        faults.push(Fault::at_key(
            "identifier",
            format!(
                "identifier `{}` is not valid: use lowercase letters, digits, '.', '_' and '-', \
                 starting with a letter or digit",
                entity.identifier
            ),
        ));
    }
    if entity.kind.is_empty() {
        faults.push(Fault::at_key("kind", "kind must not be empty"));
    }
    if let Some(tier) = entity.tier
        && !(1..=3).contains(&tier)
    {
        faults.push(Fault::at_key(
            "tier",
            format!("tier must be 1, 2 or 3, got {tier}"),
        ));
    }
    for (name, targets) in &entity.relations {
        if name.is_empty() {
            faults.push(Fault::at_key(
                "relations",
                "a relation name must not be empty",
            ));
        }
        for target in targets {
            if !is_valid_identifier(target) {
                faults.push(Fault::at_key(
                    "relations",
                    format!("relation `{name}` names `{target}`, which is not a valid identifier"),
                ));
            }
        }
    }
    faults
}

/// Parses a tier value: `1`–`3` (number or string), `tier-1`–`tier-3`, or null for no tier.
pub(crate) fn parse_tier(value: &Value) -> Result<Option<Tier>, String> {
    let bad = || format!("tier must be 1, 2, 3 or tier-1 … tier-3, got {value}");
    match value {
        Value::Null => Ok(None),
        Value::Number(n) => match n.as_u64() {
            Some(t @ 1..=3) => Ok(Some(t as Tier)),
            _ => Err(bad()),
        },
        Value::String(s) => {
            let s = s.trim().to_ascii_lowercase();
            let digits = s.strip_prefix("tier-").unwrap_or(&s);
            match digits {
                "1" => Ok(Some(1)),
                "2" => Ok(Some(2)),
                "3" => Ok(Some(3)),
                _ => Err(bad()),
            }
        }
        _ => Err(bad()),
    }
}

/// An entity in readyd's own form, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntity {
    identifier: String,
    kind: String,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    team: Option<String>,
    #[serde(default)]
    tier: Value,
    #[serde(default)]
    properties: Option<JsonObject>,
    #[serde(default)]
    relations: BTreeMap<String, Vec<String>>,
}

fn push_raw(
    path: &Path,
    text: &str,
    raw: RawEntity,
    line: usize,
    entities: &mut Vec<LocatedEntity>,
    errors: &mut Vec<CatalogError>,
) {
    let tier = match parse_tier(&raw.tier) {
        Ok(tier) => tier,
        Err(message) => {
            let id = Some(raw.identifier.clone());
            errors.push(invalid(
                path,
                text,
                line,
                &id,
                Fault::at_key("tier", message),
            ));
            return;
        }
    };
    let entity = Entity {
        title: raw.title.unwrap_or_else(|| raw.identifier.clone()),
        identifier: raw.identifier,
        kind: raw.kind,
        team: raw.team,
        tier,
        properties: raw.properties.unwrap_or_default(),
        relations: raw.relations,
    };
    if check_entity(path, text, line, &entity, errors) {
        entities.push(LocatedEntity { entity, line });
    }
}

/// Records the entity's faults; whether it had none.
fn check_entity(
    path: &Path,
    text: &str,
    line: usize,
    entity: &Entity,
    errors: &mut Vec<CatalogError>,
) -> bool {
    let faults = entity_faults(entity);
    let id = Some(entity.identifier.clone());
    let ok = faults.is_empty();
    errors.extend(
        faults
            .into_iter()
            .map(|f| invalid(path, text, line, &id, f)),
    );
    ok
}

fn invalid(
    path: &Path,
    text: &str,
    line: usize,
    identifier: &Option<String>,
    fault: Fault,
) -> CatalogError {
    // The identifier key is on the entity's line itself; other keys follow it.
    let line = match fault.key {
        Some("identifier") | Some("metadata") | None => line,
        Some(key) => files::find_key_line(text, line, None, key).unwrap_or(line),
    };
    CatalogError::Invalid {
        file: path.to_owned(),
        line,
        identifier: identifier.clone(),
        message: fault.message,
    }
}

fn syntax(path: &Path, fault: ParseFault) -> CatalogError {
    CatalogError::Syntax {
        file: path.to_owned(),
        line: fault.line,
        message: fault.message,
    }
}

/// Re-reads a document straight from the text to get the parser's own located message. When
/// the text deserializes after all (YAML reads a plain scalar such as `5` as a string where one
/// is expected, the JSON form of the document does not), the JSON error says what is wrong.
fn reparse_error<T: serde::de::DeserializeOwned>(
    path: &Path,
    format: Format,
    text: &str,
    index: usize,
    error: &serde_json::Error,
) -> CatalogError {
    let fault = files::reparse_document::<T>(format, text, index).unwrap_or_else(|| ParseFault {
        line: None,
        message: error.to_string(),
    });
    syntax(path, fault)
}

/// Walks a file's text forward as its entities are located, so that entities (even duplicates)
/// are matched to their lines in order.
#[derive(Default)]
struct Cursor {
    /// 1-based line where the next search starts.
    next: usize,
    /// Line of the last entity found.
    last: Option<usize>,
    /// Line starts of the file's text, made on first use (one cursor walks one text).
    starts: Option<files::LineStarts>,
}

impl Cursor {
    fn locate(&mut self, text: &str, key: &str, value: Option<&str>) -> usize {
        let from = self.next.max(1);
        let last = self.last;
        let starts = self
            .starts
            .get_or_insert_with(|| files::LineStarts::new(text));
        let found = value.and_then(|v| {
            starts
                .find_key_value_line(text, from, key, v)
                // Several entities on one line (flow style, minified JSON).
                .or_else(|| last.and_then(|l| starts.find_key_value_line(text, l, key, v)))
        });
        let line = found.or(self.last).unwrap_or(from);
        self.last = Some(line);
        self.next = line + 1;
        line
    }

    fn document_line(&mut self, text: &str) -> Option<usize> {
        let from = self.next.max(1);
        let starts = self
            .starts
            .get_or_insert_with(|| files::LineStarts::new(text));
        (from <= starts.count(text).max(1)).then_some(from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn parse(name: &str, text: &str) -> Result<Vec<LocatedEntity>, Vec<CatalogError>> {
        parse_source(Path::new(name), text)
    }

    fn messages(errors: &[CatalogError]) -> Vec<String> {
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn readyd_list_form() {
        let text = "\
- identifier: payments
  kind: service
  title: Payments API
  team: payments
  tier: 1
  properties: { language: rust, lifecycle: production }
  relations: { dependsOn: [ledger] }
- identifier: ledger
  kind: library
  tier: tier-3
";
        let entities = parse("c.yaml", text).unwrap();
        assert_eq!(entities.len(), 2);
        let payments = &entities[0];
        assert_eq!(payments.line, 1);
        assert_eq!(payments.entity.title, "Payments API");
        assert_eq!(payments.entity.tier, Some(1));
        assert_eq!(payments.entity.properties["language"], "rust");
        assert_eq!(payments.entity.relations["dependsOn"], ["ledger"]);
        let ledger = &entities[1];
        assert_eq!(ledger.line, 8);
        assert_eq!(ledger.entity.title, "ledger");
        assert_eq!(ledger.entity.tier, Some(3));
        assert_eq!(ledger.entity.team, None);
    }

    #[test]
    fn single_entity_documents_and_json() {
        let text = "identifier: a\nkind: service\n---\nidentifier: b\nkind: website\ntier: \"2\"\n";
        let entities = parse("c.yml", text).unwrap();
        assert_eq!(entities[1].line, 4);
        assert_eq!(entities[1].entity.tier, Some(2));
        let json = "[\n {\"identifier\": \"a\", \"kind\": \"service\"},\n {\"identifier\": \"b\", \"kind\": \"api\", \"tier\": null}\n]";
        let entities = parse("c.json", json).unwrap();
        assert_eq!(entities[1].line, 3);
        assert_eq!(entities[1].entity.tier, None);
    }

    #[test]
    fn unknown_key_is_reported_at_its_line() {
        let text =
            "- identifier: a\n  kind: service\n- identifier: b\n  kind: service\n  owner: x\n";
        let errors = parse("c.yaml", text).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].line(), Some(5), "{}", errors[0]);
        assert!(
            errors[0].to_string().contains("unknown field `owner`"),
            "{}",
            errors[0]
        );
        assert!(
            errors[0].to_string().starts_with("c.yaml:5: "),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn wrong_type_and_bad_yaml_have_lines() {
        let errors = parse("c.yaml", "- identifier: a\n  kind: [x]\n").unwrap_err();
        assert_eq!(errors[0].line(), Some(2), "{}", errors[0]);
        let errors = parse("c.yaml", "- identifier: a\n  kind: service\n - bad\n").unwrap_err();
        assert!(errors[0].line().is_some(), "{}", errors[0]);
        let errors = parse("c.yaml", "just a string\n").unwrap_err();
        assert!(
            errors[0].to_string().contains("expected an entity"),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn all_bad_values_are_reported_with_lines() {
        let text = "\
- identifier: Payments
  kind: service
- identifier: b
  kind: service
  tier: 4
- identifier: c
  kind: service
  relations: { uses: [\"Not Valid\"] }
";
        let errors = parse("c.yaml", text).unwrap_err();
        let lines: Vec<_> = errors.iter().map(CatalogError::line).collect();
        assert_eq!(
            lines,
            [Some(1), Some(5), Some(8)],
            "{:?}",
            messages(&errors)
        );
        assert!(
            errors[0]
                .to_string()
                .contains("identifier `Payments` is not valid")
        );
        assert!(
            errors[1]
                .to_string()
                .contains("entity `b`: tier must be 1, 2, 3")
        );
        assert!(errors[2].to_string().contains("`Not Valid`"));
    }

    #[test]
    fn tiers() {
        use serde_json::json;
        for (v, t) in [
            (json!(1), Some(1)),
            (json!("3"), Some(3)),
            (json!("Tier-2"), Some(2)),
            (json!(null), None),
        ] {
            assert_eq!(parse_tier(&v).unwrap(), t, "{v}");
        }
        for v in [
            json!(0),
            json!(4),
            json!("tier-4"),
            json!("gold"),
            json!(1.5),
            json!([1]),
        ] {
            assert!(parse_tier(&v).is_err(), "{v}");
        }
    }

    #[test]
    fn backstage_documents() {
        let text = "\
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: payments
  title: Payments
  labels:
    tier: tier-1
  annotations:
    pagerduty.com/service-id: P123
spec:
  type: service
  lifecycle: production
  owner: group:default/payments-team
  dependsOn: [resource:default/payments-db, component:ledger]
  providesApis: [payments-api]
---
apiVersion: backstage.io/v1alpha1
kind: API
metadata:
  name: payments-api
spec:
  type: openapi
  owner: payments-team
---
apiVersion: backstage.io/v1alpha1
kind: System
metadata:
  name: money
";
        let entities = parse("catalog-info.yaml", text).unwrap();
        assert_eq!(entities.len(), 2);
        let p = &entities[0];
        assert_eq!(p.line, 4);
        assert_eq!(p.entity.kind, "service");
        assert_eq!(p.entity.title, "Payments");
        assert_eq!(p.entity.team.as_deref(), Some("payments-team"));
        assert_eq!(p.entity.tier, Some(1));
        assert_eq!(p.entity.properties["lifecycle"], "production");
        assert_eq!(
            p.entity.properties["annotations"]["pagerduty.com/service-id"],
            "P123"
        );
        assert_eq!(p.entity.relations["dependsOn"], ["payments-db", "ledger"]);
        assert_eq!(p.entity.relations["providesApis"], ["payments-api"]);
        let api = &entities[1];
        assert_eq!(api.line, 20);
        assert_eq!(api.entity.kind, "api");
        assert_eq!(api.entity.title, "payments-api");
        assert_eq!(api.entity.properties["type"], "openapi");
    }

    #[test]
    fn backstage_bad_tier_has_its_line() {
        let text = "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: x\n  annotations:\n    tier: gold\n";
        let errors = parse("b.yaml", text).unwrap_err();
        assert_eq!(errors[0].line(), Some(6), "{}", errors[0]);
        assert!(
            errors[0].to_string().contains("entity `x`: tier must be"),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn foreign_api_version_is_an_error() {
        let errors = parse("k.yaml", "apiVersion: apps/v1\nkind: Deployment\n").unwrap_err();
        assert!(
            errors[0].to_string().contains("unsupported apiVersion"),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn duplicates_in_one_file_name_both_lines() {
        let text = "- identifier: a\n  kind: service\n- identifier: a\n  kind: api\n";
        let errors = parse("c.yaml", text).unwrap_err();
        assert_eq!(
            errors[0].to_string(),
            "duplicate identifier `a`: defined at c.yaml:1 and at c.yaml:3"
        );
    }

    #[test]
    fn load_dir_reads_all_files_and_hashes_them() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("a.yaml"),
            "- identifier: a\n  kind: service\n",
        )
        .unwrap();
        fs::create_dir(dir.path().join("more")).unwrap();
        fs::write(
            dir.path().join("more/b.json"),
            r#"{"identifier": "b", "kind": "api"}"#,
        )
        .unwrap();
        fs::write(dir.path().join(".#a.yaml"), "garbage: [").unwrap();
        fs::write(dir.path().join("a.yaml~"), "garbage: [").unwrap();
        let catalog = load_dir(dir.path()).unwrap();
        assert_eq!(catalog.entities.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(catalog.origins["b"].file, dir.path().join("more/b.json"));
        assert_eq!(catalog.origins["b"].line, 1);
        let again = load_dir(dir.path()).unwrap();
        assert_eq!(again.revision, catalog.revision);
        fs::write(
            dir.path().join("a.yaml"),
            "- identifier: a\n  kind: website\n",
        )
        .unwrap();
        let changed = load_dir(dir.path()).unwrap();
        assert_ne!(changed.revision, catalog.revision);
        let diff = Catalog::diff(&catalog, &changed);
        assert_eq!(diff.changed, ["a"]);
        assert!(diff.added.is_empty() && diff.removed.is_empty());
    }

    #[test]
    fn load_dir_is_all_or_nothing_and_reports_every_fault() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("a.yaml"),
            "- identifier: a\n  kind: service\n",
        )
        .unwrap();
        fs::write(
            dir.path().join("b.yaml"),
            "- identifier: a\n  kind: api\n- identifier: c\n  kind: x\n  tier: 9\n",
        )
        .unwrap();
        fs::write(dir.path().join("c.yaml"), "- identifier: [\n").unwrap();
        let errors = load_dir(dir.path()).unwrap_err();
        let text = messages(&errors);
        assert_eq!(errors.len(), 3, "{text:?}");
        assert!(
            text.iter()
                .any(|m| m.contains("b.yaml:5: entity `c`: tier")),
            "{text:?}"
        );
        let a = dir.path().join("a.yaml").display().to_string();
        let b = dir.path().join("b.yaml").display().to_string();
        assert!(
            text.contains(&format!(
                "duplicate identifier `a`: defined at {a}:1 and at {b}:1"
            )),
            "{text:?}"
        );
        assert!(text.iter().any(|m| m.contains("c.yaml:")), "{text:?}");
    }

    #[test]
    fn missing_dir_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let errors = load_dir(&dir.path().join("nope")).unwrap_err();
        assert!(matches!(errors[0], CatalogError::Io { .. }));
    }

    #[test]
    fn validate_entity_for_the_api() {
        let mut e = Entity {
            identifier: "ok".into(),
            kind: "service".into(),
            title: "Ok".into(),
            team: None,
            tier: Some(2),
            properties: JsonObject::new(),
            relations: BTreeMap::new(),
        };
        assert!(validate_entity(&e).is_ok());
        e.tier = Some(7);
        e.identifier = "Bad".into();
        assert_eq!(validate_entity(&e).unwrap_err().len(), 2);
    }
}
