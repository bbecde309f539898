//! Standards: reads and validates the standards directory — scorecards, the tier policy and
//! initiatives (DESIGN.md §3, §4) — into [`Standards`], with every query compiled for evaluation.
//!
//! Layout of the directory:
//! - `scorecards/**/*.yaml|yml|json`: one [`Scorecard`] per file;
//! - `tiers.yaml` (or `.yml` / `.json`): the [`TierPolicy`] (optional: without it nothing is
//!   required of any tier);
//! - `initiatives/**/*.yaml|yml|json`: one [`Initiative`] per file.
//!
//! [`load_dir`] validates everything and reports *all* problems at once, each naming the file,
//! the line when it can be found, the scorecard / rule / tier / initiative, and the fault.
//! Loading is all or nothing: any problem and no [`Standards`] is returned, so the standards in
//! force are never half replaced. [`Standards::diff`] tells hot reload what changed.
//! This module never evaluates an entity (that is [`crate::eval`]) and never calls a plugin: it
//! only asks a [`PluginLookup`] whether a check plugin exists.
//!
//! Decisions where DESIGN.md is silent:
//! - Titles default to the identifier; `description` is optional; `weight` defaults to 1 and
//!   must be finite and > 0; `due_days` and `task_due_days` must be ≥ 1; a tier without
//!   `task_due_days` gets 30 days.
//! - A rule's `level` names a level by its title, exactly (case-sensitive).
//! - `check.params` defaults to `{}`.
//! - Tier keys are `1`–`3` (or `"tier-1"` …); the untiered policy also applies to an entity whose
//!   tier has no entry in `tiers`.
//! - An initiative target has exactly one of `level` and `rules`; `deadline` is a date
//!   (`YYYY-MM-DD`).
//! - A definition file at the top of the directory other than `tiers.*` is an error (a typo such
//!   as `tier.yaml` must not be silently ignored); other sub-folders are ignored.
//! - YAML merge keys (`<<`) are not supported in definitions (anchors and aliases are).
//! - Port's scorecard JSON loads as published (docs.port.io, "Concepts and structure",
//!   "Manage scorecards", "Scorecard use-cases"; the examples are test fixtures under
//!   `tests/fixtures/port/`): without `levels` a scorecard has Port's default ladder `Basic`,
//!   `Bronze`, `Silver`, `Gold`; a level's `color` is kept and served back (readyd does not use
//!   it); identifiers may use upper-case letters as Port's do (`Ownership`, `hasSlackChannel`);
//!   `blueprint` limits the scorecard to entities of that kind (Port's blueprint is readyd's
//!   kind). Relation conditions and meta-properties: see [`query`]. Any other field is an error.

mod diff;
mod policy;
pub mod query;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use diff::{ScorecardChange, StandardsDiff};
pub use policy::{Initiative, Target, TierPolicy, TierSpec};
pub use query::{Combinator, Condition, Operator, PropertyPath, Query, QueryFault, QueryNode};

use crate::catalog::files::{self, Format, ParseFault};
use crate::model::Name;
use query::RawQuery;

/// What kind of plugin a name refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PluginKind {
    DataSource,
    Check,
}

/// Tells validation which plugins exist, so that a rule naming an unknown plugin, or a
/// data-source plugin as its check, is rejected.
pub trait PluginLookup {
    fn kind_of(&self, name: &str) -> Option<PluginKind>;
}

/// No plugins at all: every check rule is rejected.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoPlugins;

impl PluginLookup for NoPlugins {
    fn kind_of(&self, _name: &str) -> Option<PluginKind> {
        None
    }
}

/// Any name is a check plugin: validates standards without the plugins directory
/// (`readyd validate` on a standards repository alone).
#[derive(Clone, Copy, Debug, Default)]
pub struct AnyPlugins;

impl PluginLookup for AnyPlugins {
    fn kind_of(&self, _name: &str) -> Option<PluginKind> {
        Some(PluginKind::Check)
    }
}

impl PluginLookup for BTreeMap<String, PluginKind> {
    fn kind_of(&self, name: &str) -> Option<PluginKind> {
        self.get(name).copied()
    }
}

impl PluginLookup for HashMap<String, PluginKind> {
    fn kind_of(&self, name: &str) -> Option<PluginKind> {
        self.get(name).copied()
    }
}

/// A named standard: ordered levels, rules assigned to levels, an optional entity filter.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Scorecard {
    pub identifier: Name,
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Port's `blueprint`: only entities of this kind (on top of `filter`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blueprint: Option<String>,
    /// Which entities it applies to; all when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<Query>,
    /// Lowest first; the first holds no rules.
    pub levels: Vec<Level>,
    /// In the order written.
    pub rules: Vec<Rule>,
    /// The file it was read from.
    #[serde(skip)]
    pub file: PathBuf,
}

impl Scorecard {
    /// The index of the level titled `title`.
    pub fn level_index(&self, title: &str) -> Option<usize> {
        self.levels.iter().position(|l| l.title == title)
    }

    /// The rule with this identifier.
    pub fn rule(&self, identifier: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| &*r.identifier == identifier)
    }

    /// Whether an entity of `kind` can be scored by it (its `blueprint`, when it names one).
    pub fn takes_kind(&self, kind: &str) -> bool {
        self.blueprint.as_deref().is_none_or(|b| b == kind)
    }
}

/// One rung of a scorecard's ladder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Level {
    pub title: Name,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Port's level colour (`paleBlue`, `bronze`, …): presentational, kept and served back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
}

/// Port's ladder when a scorecard names no `levels` (Port's "Concepts and structure" page).
fn port_default_levels() -> Vec<Level> {
    [
        ("Basic", "paleBlue"),
        ("Bronze", "bronze"),
        ("Silver", "silver"),
        ("Gold", "gold"),
    ]
    .into_iter()
    .map(|(title, color)| Level {
        title: title.into(),
        description: None,
        color: Some(color.to_owned()),
    })
    .collect()
}

/// Whether a scorecard or rule identifier is well formed: `[A-Za-z0-9][A-Za-z0-9._-]*` (the
/// catalog's form plus upper-case letters, which Port's identifiers use; no characters that
/// would need escaping in a URL path).
pub fn is_valid_definition_identifier(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && id.len() <= 253
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// A rule of a scorecard: a built-in query or a check plugin, on one level.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Rule {
    pub identifier: Name,
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The title of its level.
    pub level: Name,
    /// The index of its level in the ladder (≥ 1: the first level holds no rules).
    #[serde(skip)]
    pub level_index: usize,
    /// Exactly one of `query` and `check` is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<Query>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckRef>,
    /// The rule's own filter: entities it excludes get `not_applicable`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<Query>,
    /// Weight in `score` (> 0, default 1).
    pub weight: f64,
    /// Deadline in days of the task opened when it fails (else the tier's default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due_days: Option<u32>,
}

/// A rule evaluated by a check plugin.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CheckRef {
    pub plugin: String,
    /// Handed to the plugin's `evaluate` as JSON.
    pub params: Value,
}

/// Everything the standards directory defines, validated and compiled.
#[derive(Clone, Debug, Default)]
pub struct Standards {
    /// Sorted by identifier.
    pub scorecards: Vec<Arc<Scorecard>>,
    pub tiers: TierPolicy,
    /// Sorted by identifier.
    pub initiatives: Vec<Initiative>,
    /// A hash of the files' names and contents (16 hex digits).
    pub revision: String,
    /// The definition files this set was compiled from, as read: what the store keeps so that
    /// the set can be served again when the files are refused at a later start.
    pub sources: Arc<Vec<SourceFile>>,
}

/// One definition file of a standards set: its path relative to the standards directory
/// (`/`-separated, e.g. `scorecards/security.yaml`) and its text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceFile {
    pub path: String,
    pub text: String,
}

impl Standards {
    /// The scorecard with this identifier.
    pub fn scorecard(&self, identifier: &str) -> Option<&Arc<Scorecard>> {
        self.scorecards
            .binary_search_by(|s| s.identifier.as_str().cmp(identifier))
            .ok()
            .map(|i| &self.scorecards[i])
    }

    /// The initiative with this identifier.
    pub fn initiative(&self, identifier: &str) -> Option<&Initiative> {
        self.initiatives.iter().find(|i| i.identifier == identifier)
    }

    /// What changed from `old` to `new`.
    pub fn diff(old: &Standards, new: &Standards) -> StandardsDiff {
        diff::diff(old, new)
    }
}

/// What a standards fault is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Subject {
    /// The file as a whole.
    File,
    Scorecard {
        scorecard: String,
    },
    Rule {
        scorecard: String,
        rule: String,
    },
    /// A tier's entry in the tier policy; `None` for `untiered`.
    Tier {
        tier: Option<u8>,
    },
    Initiative {
        initiative: String,
    },
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::File => Ok(()),
            Subject::Scorecard { scorecard } => write!(f, "scorecard `{scorecard}`: "),
            Subject::Rule { scorecard, rule } => {
                write!(f, "scorecard `{scorecard}`, rule `{rule}`: ")
            }
            Subject::Tier { tier: Some(t) } => write!(f, "tier {t}: "),
            Subject::Tier { tier: None } => write!(f, "untiered: "),
            Subject::Initiative { initiative } => write!(f, "initiative `{initiative}`: "),
        }
    }
}

/// A fault in the standards directory.
#[derive(Debug, thiserror::Error)]
pub enum StandardsError {
    #[error("{}: cannot read: {source}", file.display())]
    Io { file: PathBuf, source: io::Error },
    /// Not valid YAML/JSON, or not the shape of a definition (wrong type, unknown key).
    #[error("{}: {message}", located(file, *line))]
    Syntax {
        file: PathBuf,
        line: Option<usize>,
        message: String,
    },
    /// A well-formed definition that is wrong: unknown operator, level, plugin, scorecard, ….
    #[error("{}: {subject}{fault}", located(file, *line))]
    Invalid {
        file: PathBuf,
        line: Option<usize>,
        subject: Subject,
        fault: String,
    },
}

impl StandardsError {
    pub fn file(&self) -> &Path {
        match self {
            StandardsError::Io { file, .. }
            | StandardsError::Syntax { file, .. }
            | StandardsError::Invalid { file, .. } => file,
        }
    }

    pub fn line(&self) -> Option<usize> {
        match self {
            StandardsError::Io { .. } => None,
            StandardsError::Syntax { line, .. } | StandardsError::Invalid { line, .. } => *line,
        }
    }
}

fn located(file: &Path, line: Option<usize>) -> String {
    match line {
        Some(line) => format!("{}:{line}", file.display()),
        None => file.display().to_string(),
    }
}

/// Reads, validates and compiles the standards directory. All or nothing: any fault gives `Err`
/// with every fault found.
pub fn load_dir(dir: &Path, plugins: &dyn PluginLookup) -> Result<Standards, Vec<StandardsError>> {
    let mut errors = Vec::new();
    let texts = read_dir(dir, &mut errors)?;
    compile(dir, texts, plugins, errors)
}

/// Validates and compiles a standards set from the texts of its files (as kept in
/// [`Standards::sources`]), as if read from `dir`: the same checks and the same revision as
/// [`load_dir`] on a directory holding exactly these files.
pub fn load_sources(
    dir: &Path,
    sources: &[SourceFile],
    plugins: &dyn PluginLookup,
) -> Result<Standards, Vec<StandardsError>> {
    let mut texts = DirTexts::default();
    let mut errors = Vec::new();
    for source in sources {
        let path = dir.join(&source.path);
        let text = source.text.clone();
        match source.path.split('/').next() {
            Some("scorecards") if source.path.contains('/') => texts.scorecards.push((path, text)),
            Some("initiatives") if source.path.contains('/') => {
                texts.initiatives.push((path, text))
            }
            _ if matches!(
                source.path.as_str(),
                "tiers.yaml" | "tiers.yml" | "tiers.json"
            ) && texts.tiers.is_empty() =>
            {
                texts.tiers.push((path, text))
            }
            _ => errors.push(StandardsError::Invalid {
                file: path,
                line: None,
                subject: Subject::File,
                fault: "not a file of a standards set".to_owned(),
            }),
        }
    }
    compile(dir, texts, plugins, errors)
}

/// The texts of a standards directory's definition files, by part, each part sorted by path.
#[derive(Default)]
struct DirTexts {
    scorecards: Vec<(PathBuf, String)>,
    initiatives: Vec<(PathBuf, String)>,
    /// At most one.
    tiers: Vec<(PathBuf, String)>,
}

/// Lists and reads the directory's definition files; what cannot be read, or should not be
/// there, goes to `errors`. `Err` when the directory itself cannot be read.
fn read_dir(dir: &Path, errors: &mut Vec<StandardsError>) -> Result<DirTexts, Vec<StandardsError>> {
    let top = std::fs::read_dir(dir).map_err(|source| {
        vec![StandardsError::Io {
            file: dir.to_owned(),
            source,
        }]
    })?;

    // Top-level files: tiers.* only.
    let mut tier_files = Vec::new();
    for entry in top.flatten() {
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if files::is_ignored_name(name) || !path.is_file() || Format::of(&path).is_none() {
            continue;
        }
        if matches!(name, "tiers.yaml" | "tiers.yml" | "tiers.json") {
            tier_files.push(path);
        } else {
            errors.push(StandardsError::Invalid {
                file: path,
                line: None,
                subject: Subject::File,
                fault: "unexpected definition file: the standards directory holds scorecards/, \
                        initiatives/ and tiers.yaml"
                    .to_owned(),
            });
        }
    }
    tier_files.sort();
    if tier_files.len() > 1 {
        errors.push(StandardsError::Invalid {
            file: tier_files[1].clone(),
            line: None,
            subject: Subject::File,
            fault: format!(
                "a second tier policy; {} is already one",
                tier_files[0].display()
            ),
        });
    }

    let read_all = |sub: &str, errors: &mut Vec<StandardsError>| -> Vec<(PathBuf, String)> {
        let folder = dir.join(sub);
        if !folder.is_dir() {
            return Vec::new();
        }
        match files::definition_files(&folder) {
            Ok(paths) => read_texts(paths, errors),
            Err(source) => {
                errors.push(StandardsError::Io {
                    file: folder,
                    source,
                });
                Vec::new()
            }
        }
    };
    let scorecards = read_all("scorecards", errors);
    let initiatives = read_all("initiatives", errors);
    let tiers = read_texts(tier_files.into_iter().take(1).collect(), errors);
    Ok(DirTexts {
        scorecards,
        initiatives,
        tiers,
    })
}

/// Validates and compiles the texts read from `dir`; `errors` are the faults found reading
/// them. All or nothing.
fn compile(
    dir: &Path,
    texts: DirTexts,
    plugins: &dyn PluginLookup,
    mut errors: Vec<StandardsError>,
) -> Result<Standards, Vec<StandardsError>> {
    let DirTexts {
        scorecards: scorecard_texts,
        initiatives: initiative_texts,
        tiers: tier_text,
    } = texts;
    // Kept as read (before duplicates are dropped: they are part of what was loaded).
    let mut sources: Vec<SourceFile> = Vec::new();

    // Scorecards. Duplicates are found by the identifier each file declares, so that a second
    // definition is reported even when the first one is broken.
    let scorecard_texts = first_definitions(scorecard_texts, "scorecard", &mut errors);
    let mut scorecards: Vec<Arc<Scorecard>> = Vec::new();
    let mut broken = BTreeSet::new();
    for (path, text, declared) in &scorecard_texts {
        match parse_scorecard(path, text, plugins) {
            Ok(card) => scorecards.push(Arc::new(card)),
            Err(mut faults) => {
                // A scorecard that failed to load must not cause a second, misleading
                // "unknown scorecard" fault in the tiers or initiatives that name it.
                broken.insert(declared.clone());
                errors.append(&mut faults);
            }
        }
    }
    scorecards.sort_by_key(|a| a.identifier);
    let lookup: BTreeMap<&str, &Scorecard> = scorecards
        .iter()
        .map(|s| (s.identifier.as_str(), s.as_ref()))
        .collect();

    let tiers = match tier_text.first() {
        Some((path, text)) => match policy::parse_tiers(path, text, &lookup, &broken) {
            Ok(tiers) => tiers,
            Err(mut faults) => {
                errors.append(&mut faults);
                TierPolicy::default()
            }
        },
        None => TierPolicy::default(),
    };

    let initiative_texts = first_definitions(initiative_texts, "initiative", &mut errors);
    let mut initiatives: Vec<Initiative> = Vec::new();
    for (path, text, _) in &initiative_texts {
        match policy::parse_initiative(path, text, &lookup, &broken) {
            Ok(initiative) => initiatives.push(initiative),
            Err(mut faults) => errors.append(&mut faults),
        }
    }
    initiatives.sort_by(|a, b| a.identifier.cmp(&b.identifier));

    if !errors.is_empty() {
        return Err(errors);
    }
    let relative = |path: &Path| -> String {
        path.strip_prefix(dir)
            .unwrap_or(path)
            .to_str()
            .unwrap_or("")
            .to_owned()
    };
    let revision = files::revision(
        scorecard_texts
            .iter()
            .chain(&initiative_texts)
            .map(|(path, text, _)| (path, text))
            .chain(tier_text.iter().map(|(path, text)| (path, text)))
            .map(|(path, text)| {
                sources.push(SourceFile {
                    path: relative(path).replace(std::path::MAIN_SEPARATOR, "/"),
                    text: text.clone(),
                });
                (
                    path.strip_prefix(dir)
                        .unwrap_or(path)
                        .to_str()
                        .unwrap_or(""),
                    text.as_str(),
                )
            }),
    );
    Ok(Standards {
        scorecards,
        tiers,
        initiatives,
        revision,
        sources: Arc::new(sources),
    })
}

fn read_texts(paths: Vec<PathBuf>, errors: &mut Vec<StandardsError>) -> Vec<(PathBuf, String)> {
    let mut texts = Vec::with_capacity(paths.len());
    for path in paths {
        match std::fs::read_to_string(&path) {
            Ok(text) => texts.push((path, text)),
            // Renamed away between listing and reading; the watcher rescans.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => errors.push(StandardsError::Io { file: path, source }),
        }
    }
    texts
}

#[derive(Deserialize)]
struct IdentifierOnly {
    identifier: String,
}

/// Keeps the first file declaring each identifier, reporting later ones as duplicates. Each
/// kept file comes with the identifier it declares (its file stem when it cannot be read).
fn first_definitions(
    texts: Vec<(PathBuf, String)>,
    what: &str,
    errors: &mut Vec<StandardsError>,
) -> Vec<(PathBuf, String, String)> {
    let mut first: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut kept = Vec::with_capacity(texts.len());
    for (path, text) in texts {
        let declared = parse_typed::<IdentifierOnly>(&path, &text)
            .map(|d| d.identifier)
            .unwrap_or_else(|_| {
                path.file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or_default()
                    .to_owned()
            });
        if let Some(earlier) = first.get(&declared) {
            let subject = if what == "scorecard" {
                Subject::Scorecard {
                    scorecard: declared.clone(),
                }
            } else {
                Subject::Initiative {
                    initiative: declared.clone(),
                }
            };
            errors.push(StandardsError::Invalid {
                line: files::find_key_value_line(&text, 1, "identifier", &declared),
                file: path,
                subject,
                fault: format!(
                    "duplicate {what} identifier, also defined in {}",
                    earlier.display()
                ),
            });
            continue;
        }
        first.insert(declared.clone(), path.clone());
        kept.push((path, text, declared));
    }
    kept
}

/// Deserializes a definition file as `T`, YAML or JSON by its extension, with the parser's line.
pub(crate) fn parse_typed<T: DeserializeOwned>(
    path: &Path,
    text: &str,
) -> Result<T, StandardsError> {
    let result = match Format::of(path).unwrap_or(Format::Yaml) {
        Format::Json => serde_json::from_str(text).map_err(|e| ParseFault::from_json(&e)),
        Format::Yaml => serde_norway::from_str(text).map_err(|e| ParseFault::from_yaml(&e)),
    };
    result.map_err(|fault| StandardsError::Syntax {
        file: path.to_owned(),
        line: fault.line,
        message: fault.message,
    })
}

/// A scorecard as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScorecard {
    identifier: String,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    filter: Option<RawQuery>,
    /// Port's default ladder when absent.
    #[serde(default = "port_default_levels")]
    levels: Vec<Level>,
    #[serde(default)]
    rules: Vec<RawRule>,
    #[serde(default)]
    blueprint: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    identifier: String,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    description: Option<String>,
    level: String,
    #[serde(default)]
    query: Option<RawQuery>,
    #[serde(default)]
    check: Option<RawCheck>,
    #[serde(default)]
    filter: Option<RawQuery>,
    #[serde(default)]
    weight: Option<f64>,
    #[serde(default)]
    due_days: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    plugin: String,
    #[serde(default)]
    params: Option<Value>,
}

/// Finds lines in a definition's text for faults found after parsing.
pub(crate) struct Locator<'t> {
    pub text: &'t str,
}

impl Locator<'_> {
    pub(crate) fn value(&self, from: usize, key: &str, value: &str) -> Option<usize> {
        files::find_key_value_line(self.text, from, key, value)
    }

    pub(crate) fn key(&self, from: usize, key: &str) -> Option<usize> {
        files::find_key_line(self.text, from, None, key)
    }

    /// The line of a query fault: its operator after `from`, else `from`.
    pub(crate) fn query_fault(&self, from: Option<usize>, fault: &QueryFault) -> Option<usize> {
        let start = from.unwrap_or(1);
        fault
            .operator
            .as_deref()
            .and_then(|op| self.value(start, "operator", op))
            .or(from)
    }
}

/// Parses, validates and compiles one scorecard file.
pub fn parse_scorecard(
    path: &Path,
    text: &str,
    plugins: &dyn PluginLookup,
) -> Result<Scorecard, Vec<StandardsError>> {
    let raw: RawScorecard = parse_typed(path, text).map_err(|e| vec![e])?;
    let at = Locator { text };
    let mut errors = Vec::new();
    let card_line = at.value(1, "identifier", &raw.identifier);
    let card_subject = || Subject::Scorecard {
        scorecard: raw.identifier.clone(),
    };
    let mut card_fault = |line: Option<usize>, fault: String| {
        errors.push(StandardsError::Invalid {
            file: path.to_owned(),
            line,
            subject: card_subject(),
            fault,
        })
    };

    if !is_valid_definition_identifier(&raw.identifier) {
        card_fault(
            card_line,
            format!(
                "identifier `{}` is not valid: use letters, digits, '.', '_' and '-', starting \
                 with a letter or digit",
                raw.identifier
            ),
        );
    }
    if raw
        .blueprint
        .as_deref()
        .is_some_and(|b| b.trim().is_empty())
    {
        card_fault(
            at.key(1, "blueprint").or(card_line),
            "blueprint must not be empty (leave it out to score every kind)".to_owned(),
        );
    }
    let levels_line = at.key(1, "levels");
    if raw.levels.is_empty() {
        card_fault(
            levels_line.or(card_line),
            "a scorecard needs at least one level (the first level holds no rules)".to_owned(),
        );
    }
    let mut level_titles = BTreeSet::new();
    // Levels and rules are found in the text in order, so a duplicate points at itself.
    let mut cursor = levels_line.unwrap_or(1);
    for level in &raw.levels {
        let line = at.value(cursor, "title", &level.title);
        cursor = line.map_or(cursor, |l| l + 1);
        if level.title.trim().is_empty() {
            card_fault(
                line.or(levels_line),
                "a level title must not be empty".to_owned(),
            );
        } else if !level_titles.insert(level.title.as_str()) {
            card_fault(
                line.or(levels_line),
                format!("duplicate level `{}`", level.title),
            );
        }
    }
    let filter = raw
        .filter
        .as_ref()
        .and_then(|f| match query::compile(f, "filter") {
            Ok(q) => Some(q),
            Err(faults) => {
                let from = at.key(1, "filter");
                for fault in faults {
                    card_fault(at.query_fault(from, &fault), fault.to_string());
                }
                None
            }
        });

    let rules_line = at.key(1, "rules");
    let mut rules = Vec::with_capacity(raw.rules.len());
    let mut rule_ids = BTreeSet::new();
    let mut cursor = rules_line.unwrap_or(1);
    for raw_rule in &raw.rules {
        let line = at.value(cursor, "identifier", &raw_rule.identifier);
        cursor = line.map_or(cursor, |l| l + 1);
        let mut fault = |line: Option<usize>, fault: String| {
            errors.push(StandardsError::Invalid {
                file: path.to_owned(),
                line,
                subject: Subject::Rule {
                    scorecard: raw.identifier.clone(),
                    rule: raw_rule.identifier.clone(),
                },
                fault,
            })
        };
        if !rule_ids.insert(raw_rule.identifier.as_str()) {
            fault(line, "duplicate rule identifier".to_owned());
            continue;
        }
        if let Some(rule) = compile_rule(raw_rule, &raw.levels, plugins, &at, line, &mut fault) {
            rules.push(rule);
        }
    }

    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Scorecard {
        title: raw.title.unwrap_or_else(|| raw.identifier.clone()),
        identifier: raw.identifier.into(),
        description: raw.description,
        blueprint: raw.blueprint,
        filter,
        levels: raw.levels,
        rules,
        file: path.to_owned(),
    })
}

/// Compiles one rule; every fault goes to `fault` (with its line), `None` if there was any.
fn compile_rule(
    raw: &RawRule,
    levels: &[Level],
    plugins: &dyn PluginLookup,
    at: &Locator<'_>,
    line: Option<usize>,
    fault: &mut dyn FnMut(Option<usize>, String),
) -> Option<Rule> {
    let mut ok = true;
    let mut fail = |line: Option<usize>, message: String| {
        ok = false;
        fault(line, message);
    };
    if !is_valid_definition_identifier(&raw.identifier) {
        fail(
            line,
            format!(
                "identifier `{}` is not valid: use letters, digits, '.', '_' and '-', starting \
                 with a letter or digit",
                raw.identifier
            ),
        );
    }
    let from = line.unwrap_or(1);
    let level_line = at.value(from, "level", &raw.level).or(line);
    let level_index = levels.iter().position(|l| l.title == raw.level);
    match level_index {
        None => {
            let known: Vec<&str> = levels.iter().map(|l| l.title.as_str()).collect();
            fail(
                level_line,
                format!(
                    "unknown level `{}` (levels: {})",
                    raw.level,
                    known.join(", ")
                ),
            );
        }
        Some(0) => fail(
            level_line,
            format!(
                "rules cannot be on the first level `{}`: every entity starts there",
                raw.level
            ),
        ),
        Some(_) => {}
    }
    match (&raw.query, &raw.check) {
        (Some(_), Some(_)) => fail(line, "a rule has a query or a check, not both".to_owned()),
        (None, None) => fail(line, "a rule needs a query or a check".to_owned()),
        _ => {}
    }
    let weight = raw.weight.unwrap_or(1.0);
    if !(weight.is_finite() && weight > 0.0) {
        fail(
            at.key(from, "weight").or(line),
            format!("weight must be a number greater than 0, got {weight}"),
        );
    }
    if raw.due_days == Some(0) {
        fail(
            at.key(from, "due_days").or(line),
            "due_days must be at least 1".to_owned(),
        );
    }
    let mut compile = |q: &Option<RawQuery>, name: &str| -> Option<Query> {
        let q = q.as_ref()?;
        match query::compile(q, name) {
            Ok(q) => Some(q),
            Err(faults) => {
                let start = at.key(from, name).or(line);
                for f in faults {
                    fail(at.query_fault(start, &f), f.to_string());
                }
                None
            }
        }
    };
    let query = compile(&raw.query, "query");
    let filter = compile(&raw.filter, "filter");
    let check = raw.check.as_ref().map(|c| CheckRef {
        plugin: c.plugin.clone(),
        params: c
            .params
            .clone()
            .unwrap_or_else(|| Value::Object(Default::default())),
    });
    if let Some(check) = &check {
        let plugin_line = at.value(from, "plugin", &check.plugin).or(line);
        match plugins.kind_of(&check.plugin) {
            Some(PluginKind::Check) => {}
            Some(PluginKind::DataSource) => fail(
                plugin_line,
                format!("plugin `{}` is a data source, not a check", check.plugin),
            ),
            None => fail(
                plugin_line,
                format!("unknown check plugin `{}`", check.plugin),
            ),
        }
    }
    if !ok {
        return None;
    }
    Some(Rule {
        identifier: raw.identifier.as_str().into(),
        title: raw.title.clone().unwrap_or_else(|| raw.identifier.clone()),
        description: raw.description.clone(),
        level: raw.level.as_str().into(),
        level_index: level_index.unwrap_or(0),
        query,
        check,
        filter,
        weight,
        due_days: raw.due_days,
    })
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod port_tests;
