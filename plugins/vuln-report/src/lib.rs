//! `vuln-report`: a data source that reads vulnerability scan reports from a granted directory.
//!
//! Config: `{ "dir": "/reports", "path_property": "vuln_report", "max_report_bytes": 33554432 }`
//! (all optional). `dir` is the guest path of a read-only directory the manifest grants
//! (`[capabilities] dirs = { "/reports" = "/srv/scans" }`). An entity's report is the file (or
//! directory) its `path_property` names, relative to `dir`; without that property,
//! `<dir>/<identifier>.json`, `<dir>/<identifier>.sarif`, then the newest `*.json` / `*.sarif`
//! file in `<dir>/<identifier>/`. The format (Trivy, Grype, OSV-Scanner, SARIF 2.1.0) is
//! detected from the document by [`report`], the parser, which knows nothing of wasm or files
//! so the daemon can reuse it for pushed reports.
//!
//! Facts per entity: `found`, `report_file`, and the members of [`report::Report::facts`]
//! (`vulnerabilities`, `fixable`, `scanner`, `scanned_at`, `report_age_days`, ...). An entity
//! without a report gets `{"found": false}`. The WIT contract has no per-entity error, so an
//! unreadable, damaged or unknown report gives that entity `{"found": true, "report_file",
//! "error"}` and no counts (a rule on the counts then fails rather than passes); the other
//! entities are unaffected. Only an unreadable `dir` fails the whole collection. The plugin only
//! reads, and only below `dir`.

pub mod report;

use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use readyd_plugin_sdk::{Config, DataSource, Entity, PluginError};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::report::ScanTimeSource;

/// File names read as reports inside an entity's directory.
const REPORT_EXTENSIONS: &[&str] = &["json", "sarif"];

/// No `deny_unknown_fields`: the daemon adds granted secrets to the config under their names.
#[derive(Debug, Deserialize)]
struct Settings {
    #[serde(default = "default_dir")]
    dir: PathBuf,
    #[serde(default = "default_path_property")]
    path_property: String,
    #[serde(default = "default_max_report_bytes")]
    max_report_bytes: u64,
}

fn default_dir() -> PathBuf {
    PathBuf::from("/reports")
}

fn default_path_property() -> String {
    "vuln_report".into()
}

/// Large image scans with full descriptions run to a few MiB; 32 MiB leaves room and still
/// fits the default plugin memory.
fn default_max_report_bytes() -> u64 {
    32 * 1024 * 1024
}

/// The report reader.
#[derive(Debug)]
pub struct VulnReport {
    dir: PathBuf,
    path_property: String,
    max_report_bytes: u64,
}

impl DataSource for VulnReport {
    fn init(config: Config) -> Result<Self, PluginError> {
        let settings: Settings = config.deserialize()?;
        if settings.path_property.trim().is_empty() {
            return Err(PluginError::invalid_config(
                "path_property must name an entity property (default \"vuln_report\")",
            ));
        }
        if settings.max_report_bytes == 0 {
            return Err(PluginError::invalid_config(
                "max_report_bytes must be greater than 0",
            ));
        }
        Ok(VulnReport {
            dir: settings.dir,
            path_property: settings.path_property,
            max_report_bytes: settings.max_report_bytes,
        })
    }

    fn collect(&self, entities: &[Entity]) -> Result<Vec<(String, Value)>, PluginError> {
        if !self.dir.is_dir() {
            return Err(PluginError::unavailable(format!(
                "dir {} is not a readable directory (is it granted in the manifest's dirs?)",
                self.dir.display()
            )));
        }
        let now = Utc::now();
        Ok(entities
            .iter()
            .map(|e| (e.identifier.clone(), self.facts_of(e, now)))
            .collect())
    }
}

impl VulnReport {
    /// The facts of one entity at `now`; every failure stays inside this entity's facts.
    pub fn facts_of(&self, entity: &Entity, now: DateTime<Utc>) -> Value {
        let path = match self.locate(entity) {
            Ok(Some(path)) => path,
            Ok(None) => return json!({ "found": false }),
            Err(error) => {
                readyd_plugin_sdk::warn!("{}: {error}", entity.identifier);
                return json!({ "found": false, "error": error });
            }
        };
        let shown = self.shown(&path);
        match self.read(&path, now) {
            Ok(mut facts) => {
                let mut out = serde_json::Map::new();
                out.insert("found".into(), json!(true));
                out.insert("report_file".into(), json!(shown));
                out.append(&mut facts);
                Value::Object(out)
            }
            Err(error) => {
                readyd_plugin_sdk::warn!("{}: {shown}: {error}", entity.identifier);
                json!({ "found": true, "report_file": shown, "error": format!("{shown}: {error}") })
            }
        }
    }

    /// The report file of an entity: `Ok(None)` when it has none, `Err` when its property
    /// names one that cannot be used.
    fn locate(&self, entity: &Entity) -> Result<Option<PathBuf>, String> {
        if let Some(value) = entity.property_value(&self.path_property) {
            let Some(relative) = value.as_str().filter(|s| !s.trim().is_empty()) else {
                return Err(format!(
                    "property {} must be a path relative to the report directory",
                    self.path_property
                ));
            };
            if !is_contained(Path::new(relative)) {
                return Err(format!(
                    "property {} ({relative:?}) must be a relative path inside the report directory",
                    self.path_property
                ));
            }
            let path = self.dir.join(relative);
            if path.is_dir() {
                return Ok(newest_report_in(&path));
            }
            if path.is_file() {
                return Ok(Some(path));
            }
            return Err(format!(
                "property {} names {relative}, which does not exist in the report directory",
                self.path_property
            ));
        }
        let id = &entity.identifier;
        for name in [format!("{id}.json"), format!("{id}.sarif")] {
            let path = self.dir.join(name);
            if path.is_file() {
                return Ok(Some(path));
            }
        }
        let own_dir = self.dir.join(id);
        Ok(if own_dir.is_dir() {
            newest_report_in(&own_dir)
        } else {
            None
        })
    }

    /// Read and summarise one report file; the error is the reason, without the file name.
    fn read(&self, path: &Path, now: DateTime<Utc>) -> Result<serde_json::Map<String, Value>, String> {
        let meta = fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
        if meta.len() > self.max_report_bytes {
            return Err(format!(
                "{} bytes, larger than max_report_bytes ({})",
                meta.len(),
                self.max_report_bytes
            ));
        }
        let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
        fs::File::open(path)
            // Bounded even if the file grows between the size check and the read.
            .and_then(|f| f.take(self.max_report_bytes + 1).read_to_end(&mut bytes))
            .map_err(|e| format!("cannot read: {e}"))?;
        if bytes.len() as u64 > self.max_report_bytes {
            return Err(format!(
                "larger than max_report_bytes ({})",
                self.max_report_bytes
            ));
        }
        let mut parsed = report::parse(&bytes).map_err(|e| e.to_string())?;
        if parsed.scanned_at.is_none()
            && let Some(modified) = meta.modified().ok().and_then(to_utc)
        {
            parsed.scanned_at = Some((modified, ScanTimeSource::FileModified));
        }
        Ok(parsed.facts(now))
    }

    /// The path as facts and messages show it: relative to `dir`.
    fn shown(&self, path: &Path) -> String {
        path.strip_prefix(&self.dir)
            .unwrap_or(path)
            .to_string_lossy()
            .into_owned()
    }
}

/// The newest report file (by modification time, then name) directly inside `dir`.
fn newest_report_in(dir: &Path) -> Option<PathBuf> {
    let entries = fs::read_dir(dir).ok()?;
    entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| REPORT_EXTENSIONS.contains(&x))
                && p.is_file()
        })
        .map(|p| {
            let modified = fs::metadata(&p)
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            (modified, p)
        })
        .max()
        .map(|(_, p)| p)
}

fn to_utc(time: SystemTime) -> Option<DateTime<Utc>> {
    let since = time.duration_since(SystemTime::UNIX_EPOCH).ok()?;
    DateTime::from_timestamp(i64::try_from(since.as_secs()).ok()?, since.subsec_nanos())
}

/// A relative path without `..`: joining it to the directory stays below it.
fn is_contained(path: &Path) -> bool {
    !path.as_os_str().is_empty()
        && path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

readyd_plugin_sdk::export!(VulnReport as data_source);
