//! `vuln-report`: a data source that reads vulnerability scan reports from a granted directory.
//!
//! Config: `{ "dir": "/reports", "path_property": "vuln_report", "max_report_bytes": 16777216 }`
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

/// Large image scans with full descriptions run to a few MiB. A report is parsed whole into a
/// JSON tree several times its size, so the limit keeps one report well inside a 256 MiB plugin.
fn default_max_report_bytes() -> u64 {
    16 * 1024 * 1024
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
    fn read(
        &self,
        path: &Path,
        now: DateTime<Utc>,
    ) -> Result<serde_json::Map<String, Value>, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        fs::read(format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    fn put(dir: &Path, path: &str, bytes: &[u8]) {
        let path = dir.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    }

    fn plugin(config: Value) -> VulnReport {
        VulnReport::init(Config::from_json(config)).unwrap()
    }

    fn collect(dir: &Path, entities: &[Entity]) -> Vec<(String, Value)> {
        plugin(json!({ "dir": dir })).collect(entities).unwrap()
    }

    #[test]
    fn each_entity_gets_its_own_report_and_a_bad_one_spoils_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        put(d, "payments.json", &fixture("trivy-image.json"));
        put(
            d,
            "ledger/grype-2026-11-20.json",
            &fixture("grype-image.json"),
        );
        put(d, "web.sarif", &fixture("codeql.sarif"));
        put(d, "broken.json", &fixture("damaged-trivy.json"));
        put(d, "sbom.json", &fixture("cyclonedx-sbom.json"));
        let entities = ["payments", "ledger", "web", "broken", "sbom", "ghost"]
            .map(|id| Entity::new(id, "service"));
        let out = collect(d, &entities);
        let by_id: std::collections::BTreeMap<_, _> = out.into_iter().collect();
        assert_eq!(by_id.len(), 6);

        let payments = &by_id["payments"];
        assert_eq!(payments["found"], true);
        assert_eq!(payments["report_file"], "payments.json");
        assert_eq!(payments["scanner"], "trivy");
        assert_eq!(payments["vulnerabilities"]["critical"], 2);
        assert_eq!(payments["fixable"]["critical"], 2);

        assert_eq!(
            by_id["ledger"]["report_file"],
            "ledger/grype-2026-11-20.json"
        );
        assert_eq!(by_id["ledger"]["scanner_version"], "0.86.1");
        assert_eq!(by_id["web"]["scanner"], "codeql");

        let broken = &by_id["broken"];
        assert_eq!(broken["found"], true);
        assert!(broken.get("vulnerabilities").is_none(), "{broken}");
        let error = broken["error"].as_str().unwrap();
        assert!(
            error.starts_with("broken.json: not a JSON document"),
            "{error}"
        );

        let sbom = by_id["sbom"]["error"].as_str().unwrap();
        assert!(
            sbom.starts_with("sbom.json: not a known report format"),
            "{sbom}"
        );

        assert_eq!(by_id["ghost"], json!({"found": false}));
    }

    #[test]
    fn a_report_without_a_scan_time_is_dated_by_its_file() {
        let dir = tempfile::tempdir().unwrap();
        put(dir.path(), "catalog.json", &fixture("osv-scanner.json"));
        let written = to_utc(
            fs::metadata(dir.path().join("catalog.json"))
                .unwrap()
                .modified()
                .unwrap(),
        )
        .unwrap();
        let later = written + chrono::Duration::days(3) + chrono::Duration::seconds(5);
        let facts = plugin(json!({ "dir": dir.path() }))
            .facts_of(&Entity::new("catalog", "library"), later);
        assert_eq!(facts["scanner"], "osv-scanner");
        assert_eq!(facts["scanned_at_from"], "file_modified");
        assert_eq!(facts["report_age_days"], 3);
        assert_eq!(facts["report_age_seconds"], 3 * 86_400 + 5);
        assert_eq!(facts["vulnerabilities"]["critical"], 1);
    }

    #[test]
    fn the_path_property_names_the_report_and_cannot_leave_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        put(d, "scans/team-a/pay.sarif", &fixture("codeql.sarif"));
        put(d, "scans/ledger/old.json", &fixture("trivy-image.json"));
        let p = plugin(json!({ "dir": d, "path_property": "security.report" }));
        let now = Utc::now();
        let named = Entity::new("pay", "service")
            .with_property("security", json!({"report": "scans/team-a/pay.sarif"}));
        assert_eq!(p.facts_of(&named, now)["scanner"], "codeql");

        let a_dir = Entity::new("l", "service")
            .with_property("security", json!({"report": "scans/ledger"}));
        assert_eq!(
            p.facts_of(&a_dir, now)["report_file"],
            "scans/ledger/old.json"
        );

        for bad in ["../etc/passwd", "/etc/passwd", "scans/../../x"] {
            let e = Entity::new("x", "service").with_property("security", json!({"report": bad}));
            let facts = p.facts_of(&e, now);
            assert_eq!(facts["found"], false, "{bad}");
            assert!(
                facts["error"]
                    .as_str()
                    .unwrap()
                    .contains("relative path inside"),
                "{facts}"
            );
        }
        let missing = Entity::new("m", "service")
            .with_property("security", json!({"report": "scans/nope.json"}));
        let facts = p.facts_of(&missing, now);
        assert_eq!(facts["found"], false);
        assert!(
            facts["error"].as_str().unwrap().contains("does not exist"),
            "{facts}"
        );
        let not_text = Entity::new("n", "service").with_property("security", json!({"report": 5}));
        assert!(p.facts_of(&not_text, now)["error"].is_string());
    }

    #[test]
    fn the_newest_report_in_an_entity_directory_wins() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        put(d, "svc/a-old.json", &fixture("grype-image.json"));
        put(d, "svc/notes.txt", b"not a report");
        let old = fs::File::options()
            .write(true)
            .open(d.join("svc/a-old.json"))
            .unwrap();
        old.set_modified(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000))
            .unwrap();
        put(d, "svc/b-new.json", &fixture("trivy-image.json"));
        let facts =
            plugin(json!({ "dir": d })).facts_of(&Entity::new("svc", "service"), Utc::now());
        assert_eq!(facts["report_file"], "svc/b-new.json");
        let empty = tempfile::tempdir().unwrap();
        fs::create_dir(empty.path().join("svc")).unwrap();
        assert_eq!(
            collect(empty.path(), &[Entity::new("svc", "service")])[0].1,
            json!({"found": false})
        );
    }

    #[test]
    fn oversized_reports_and_bad_settings_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        put(dir.path(), "big.json", &fixture("trivy-image.json"));
        let p = plugin(json!({ "dir": dir.path(), "max_report_bytes": 100 }));
        let facts = p.facts_of(&Entity::new("big", "service"), Utc::now());
        assert!(
            facts["error"]
                .as_str()
                .unwrap()
                .contains("larger than max_report_bytes (100)"),
            "{facts}"
        );
        for bad in [
            json!({"max_report_bytes": 0}),
            json!({"path_property": " "}),
            json!({"dir": 7}),
        ] {
            assert!(
                matches!(
                    VulnReport::init(Config::from_json(bad.clone())),
                    Err(PluginError::InvalidConfig(_))
                ),
                "{bad}"
            );
        }
        let gone = plugin(json!({ "dir": dir.path().join("nope") }))
            .collect(&[Entity::new("a", "service")]);
        assert!(matches!(gone, Err(PluginError::Unavailable(_))));
    }
}
