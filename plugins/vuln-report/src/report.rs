//! Vulnerability scan reports: detect the format, read the findings, summarise them as facts.
//!
//! Pure functions over bytes and JSON, with no dependency on wasm, the SDK or the file system,
//! so the daemon can reuse this module for reports pushed over its API. [`parse`] (or
//! [`parse_value`] for a document already parsed) detects the format from the document itself
//! and returns a [`Report`]: the scanner, when the scan ran, the artifact, and one [`Finding`]
//! per vulnerability the tool reports. [`Report::facts`] turns it into the fact object the
//! `vuln-report` data source publishes, ages measured against a `now` the caller passes in.
//!
//! Formats read ([`Format`]):
//! - Trivy `--format json`, `SchemaVersion` 2: `Results[].Vulnerabilities[]` (misconfigurations,
//!   secrets and licences are not vulnerabilities and are not counted);
//! - Grype `-o json`: `matches[]` (`ignoredMatches` are not counted);
//! - OSV-Scanner `--format json`: one finding per alias group of a package
//!   (`results[].packages[].groups[]`, severity from the group's `max_severity` CVSS score), or
//!   per vulnerability for reports without groups;
//! - SARIF 2.1.0 as GitHub code scanning reads it: severity from `security-severity` (result,
//!   then rule), else from `level`; results that are suppressed, `absent` from the baseline or of
//!   a `kind` other than `fail` are not findings.
//!
//! A document that is not JSON, not one of these formats, or one of them with the wrong shape is
//! a [`ReportError`] that says which and where; this module never guesses a count.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

/// How bad a finding is, in the five buckets readyd counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// CVSS 9.0–10.0.
    Critical,
    /// CVSS 7.0–8.9.
    High,
    /// CVSS 4.0–6.9.
    Medium,
    /// CVSS 0.0–3.9 (also Grype's `Negligible`).
    Low,
    /// The report gives no usable severity.
    Unknown,
}

impl Severity {
    /// Every bucket, most severe first (the order of the count facts).
    pub const ALL: [Severity; 5] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Unknown,
    ];

    /// The fact key: `critical`, `high`, `medium`, `low`, `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
            Severity::Unknown => "unknown",
        }
    }

    /// A scanner's severity word, any case. GitHub advisories say `moderate` for medium; Grype's
    /// `negligible` is below low and counts as low. Any other word is unknown.
    pub fn from_label(label: &str) -> Severity {
        match label.trim().to_ascii_lowercase().as_str() {
            "critical" => Severity::Critical,
            "high" => Severity::High,
            "medium" | "moderate" => Severity::Medium,
            "low" | "negligible" => Severity::Low,
            _ => Severity::Unknown,
        }
    }

    /// A CVSS base score (0–10) in the CVSS v3 rating bands; `None` outside 0–10.
    pub fn from_score(score: f64) -> Option<Severity> {
        if !(0.0..=10.0).contains(&score) {
            return None;
        }
        Some(if score >= 9.0 {
            Severity::Critical
        } else if score >= 7.0 {
            Severity::High
        } else if score >= 4.0 {
            Severity::Medium
        } else {
            Severity::Low
        })
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The report formats this module reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Trivy `--format json`, schema version 2.
    Trivy,
    /// Grype `-o json`.
    Grype,
    /// OSV-Scanner `--format json`.
    OsvScanner,
    /// SARIF 2.1.0.
    Sarif,
}

impl Format {
    /// The `format` fact: `trivy`, `grype`, `osv-scanner`, `sarif`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Trivy => "trivy",
            Format::Grype => "grype",
            Format::OsvScanner => "osv-scanner",
            Format::Sarif => "sarif",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the scan time came from: the report itself, or (for formats that carry none, such as
/// OSV-Scanner's) the time the report file was last written, set by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanTimeSource {
    /// A timestamp inside the report (`CreatedAt`, `descriptor.timestamp`, `invocations`).
    Report,
    /// The report file's modification time.
    FileModified,
}

impl ScanTimeSource {
    fn as_str(self) -> &'static str {
        match self {
            ScanTimeSource::Report => "report",
            ScanTimeSource::FileModified => "file_modified",
        }
    }
}

/// One vulnerability as the scanner reports it (a vulnerability in a package, or a SARIF result).
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// `CVE-2024-1234`, `GHSA-…`, a SARIF rule id.
    pub id: String,
    /// The affected package, when the format names one.
    pub package: Option<String>,
    /// The severity bucket.
    pub severity: Severity,
    /// A fixed version (or, in SARIF, a fix) exists.
    pub fixable: bool,
    /// When the vulnerability was published (or, in SARIF, first detected), when the report says.
    pub published: Option<DateTime<Utc>>,
}

/// A parsed report.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The format it was read as.
    pub format: Format,
    /// The scanner, lower-cased: `trivy`, `grype`, `osv-scanner`, or a SARIF tool's driver name.
    pub scanner: String,
    /// The scanner's version, when the report says.
    pub scanner_version: Option<String>,
    /// When the scan ran, and where that time came from.
    pub scanned_at: Option<(DateTime<Utc>, ScanTimeSource)>,
    /// What was scanned (image, directory), when the report says.
    pub artifact: Option<String>,
    /// Every finding.
    pub findings: Vec<Finding>,
}

/// Why a document is not a report this module can read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReportError {
    /// The bytes are not a JSON document (damaged, truncated, or another file type).
    #[error("not a JSON document: {reason} at line {line}, column {column}")]
    NotJson {
        /// serde_json's reason.
        reason: String,
        /// Where it stopped, 1-based.
        line: usize,
        /// Where it stopped, 1-based.
        column: usize,
    },
    /// JSON, but none of the formats.
    #[error(
        "not a known report format ({found}); expected Trivy --format json (SchemaVersion 2), Grype -o json, OSV-Scanner --format json or SARIF 2.1.0"
    )]
    UnknownFormat {
        /// What the document looks like instead.
        found: String,
    },
    /// A known format in a version this module does not read.
    #[error("{format} report: {what} is not supported; {hint}")]
    Unsupported {
        /// The format detected.
        format: Format,
        /// The version found.
        what: String,
        /// What to do instead.
        hint: &'static str,
    },
    /// A known format with a member of the wrong shape.
    #[error("{format} report: {path} {reason}")]
    Malformed {
        /// The format detected.
        format: Format,
        /// JSON path of the member at fault, e.g. `Results[0].Vulnerabilities[3].Severity`.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Parse a report from its bytes (UTF-8 JSON, an optional byte-order mark allowed).
pub fn parse(bytes: &[u8]) -> Result<Report, ReportError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| ReportError::NotJson {
        reason: e
            .to_string()
            .split(" at line ")
            .next()
            .unwrap_or("")
            .to_string(),
        line: e.line(),
        column: e.column(),
    })?;
    parse_value(&doc)
}

/// Parse a report already read as JSON (for example the body of a push).
pub fn parse_value(doc: &Value) -> Result<Report, ReportError> {
    match detect(doc)? {
        Format::Trivy => trivy(doc),
        Format::Grype => grype(doc),
        Format::OsvScanner => osv_scanner(doc),
        Format::Sarif => sarif(doc),
    }
}

/// Which format a document is, from the members each tool always writes.
pub fn detect(doc: &Value) -> Result<Format, ReportError> {
    let Some(obj) = doc.as_object() else {
        let found = match doc {
            // Trivy before 0.20 wrote a top-level array of results (schema version 1).
            Value::Array(items) if items.iter().any(|i| i.get("Target").is_some()) => {
                return Err(ReportError::Unsupported {
                    format: Format::Trivy,
                    what: "the top-level array of Trivy before 0.20 (schema version 1)".into(),
                    hint: "use a Trivy release that writes SchemaVersion 2 (0.20 or later)",
                });
            }
            other => shape(other).to_string(),
        };
        return Err(ReportError::UnknownFormat { found });
    };
    if obj.contains_key("SchemaVersion") {
        return Ok(Format::Trivy);
    }
    if obj.get("matches").is_some_and(Value::is_array) && obj.contains_key("descriptor") {
        return Ok(Format::Grype);
    }
    if obj.contains_key("runs")
        && (obj.contains_key("version")
            || obj
                .get("$schema")
                .and_then(Value::as_str)
                .is_some_and(|s| s.contains("sarif")))
    {
        return Ok(Format::Sarif);
    }
    if let Some(results) = obj.get("results").and_then(Value::as_array) {
        let looks_like_osv = results.iter().all(|r| {
            r.get("packages").is_some()
                || r.get("source").is_some()
                || r.get("packageSource").is_some()
        });
        if looks_like_osv {
            return Ok(Format::OsvScanner);
        }
    }
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).take(6).collect();
    keys.sort_unstable();
    Err(ReportError::UnknownFormat {
        found: if keys.is_empty() {
            "an empty object".into()
        } else {
            format!("an object with {}", keys.join(", "))
        },
    })
}

impl Report {
    /// The fact object: what the report says, with ages measured at `now`.
    ///
    /// Members (unknown values are left out rather than written as `null`): `format`, `scanner`,
    /// `scanner_version`, `artifact`, `scanned_at` (RFC 3339, UTC), `scanned_at_from`,
    /// `report_age_seconds`, `report_age_days`, `vulnerabilities` and `fixable` (each
    /// `{critical, high, medium, low, unknown, total}`), and `oldest_critical_age_days` /
    /// `oldest_high_age_days` (the oldest dated finding of that severity still in the report).
    pub fn facts(&self, now: DateTime<Utc>) -> Map<String, Value> {
        let mut counts = [0u64; 5];
        let mut fixable = [0u64; 5];
        let mut oldest: [Option<DateTime<Utc>>; 5] = [None; 5];
        for finding in &self.findings {
            let i = finding.severity.index();
            counts[i] += 1;
            if finding.fixable {
                fixable[i] += 1;
            }
            if let Some(published) = finding.published {
                oldest[i] = Some(oldest[i].map_or(published, |o| o.min(published)));
            }
        }
        let buckets = |n: &[u64; 5]| {
            let mut map = Map::new();
            for s in Severity::ALL {
                map.insert(s.as_str().into(), json!(n[s.index()]));
            }
            map.insert("total".into(), json!(n.iter().sum::<u64>()));
            Value::Object(map)
        };

        let mut facts = Map::new();
        facts.insert("format".into(), json!(self.format.as_str()));
        facts.insert("scanner".into(), json!(self.scanner));
        if let Some(v) = &self.scanner_version {
            facts.insert("scanner_version".into(), json!(v));
        }
        if let Some(a) = &self.artifact {
            facts.insert("artifact".into(), json!(a));
        }
        if let Some((at, from)) = self.scanned_at {
            // A scan stamped in the future (a skewed CI clock) is as fresh as it gets, not negative.
            let age = (now - at).num_seconds().max(0);
            facts.insert(
                "scanned_at".into(),
                json!(at.to_rfc3339_opts(SecondsFormat::Secs, true)),
            );
            facts.insert("scanned_at_from".into(), json!(from.as_str()));
            facts.insert("report_age_seconds".into(), json!(age));
            facts.insert("report_age_days".into(), json!(age / 86_400));
        }
        facts.insert("vulnerabilities".into(), buckets(&counts));
        facts.insert("fixable".into(), buckets(&fixable));
        for severity in [Severity::Critical, Severity::High] {
            if let Some(published) = oldest[severity.index()] {
                facts.insert(
                    format!("oldest_{}_age_days", severity.as_str()),
                    json!((now - published).num_days().max(0)),
                );
            }
        }
        facts
    }
}

// ---------------------------------------------------------------------------------------------
// Reading members with their paths, so a fault names where it is.

/// A short name for a JSON value's type, for messages.
fn shape(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The members of one format's document, with the path of the current position.
struct Reader {
    format: Format,
}

impl Reader {
    fn fault(&self, path: &str, reason: impl Into<String>) -> ReportError {
        ReportError::Malformed {
            format: self.format,
            path: path.to_string(),
            reason: reason.into(),
        }
    }

    /// `value[key]` as an array; absent or `null` is empty (Go's `omitempty` and nil slices).
    fn array<'a>(
        &self,
        value: &'a Value,
        key: &str,
        path: &str,
    ) -> Result<&'a [Value], ReportError> {
        match value.get(key) {
            None | Some(Value::Null) => Ok(&[]),
            Some(Value::Array(items)) => Ok(items),
            Some(other) => Err(self.fault(
                &join(path, key),
                format!("must be an array, is {}", shape(other)),
            )),
        }
    }

    /// `value[key]` as a string; absent, `null` or empty is `None`.
    fn string<'a>(
        &self,
        value: &'a Value,
        key: &str,
        path: &str,
    ) -> Result<Option<&'a str>, ReportError> {
        match value.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.fault(
                &join(path, key),
                format!("must be a string, is {}", shape(other)),
            )),
        }
    }

    /// `value[key]` as an RFC 3339 time; absent, `null`, empty or Go's zero time is `None`.
    fn time(
        &self,
        value: &Value,
        key: &str,
        path: &str,
    ) -> Result<Option<DateTime<Utc>>, ReportError> {
        let Some(text) = self.string(value, key, path)? else {
            return Ok(None);
        };
        let parsed = DateTime::parse_from_rfc3339(text)
            .map_err(|e| {
                self.fault(
                    &join(path, key),
                    format!("{text:?} is not an RFC 3339 time: {e}"),
                )
            })?
            .with_timezone(&Utc);
        // Go writes an unset time.Time as 0001-01-01T00:00:00Z: no date, not a 2000-year-old one.
        Ok((parsed.timestamp() > 0).then_some(parsed))
    }

    /// An element of an array that must be an object.
    fn object<'a>(&self, value: &'a Value, path: &str) -> Result<&'a Value, ReportError> {
        if value.is_object() {
            Ok(value)
        } else {
            Err(self.fault(path, format!("must be an object, is {}", shape(value))))
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn at(path: &str, key: &str, index: usize) -> String {
    format!("{}[{index}]", join(path, key))
}

// ---------------------------------------------------------------------------------------------
// Trivy

fn trivy(doc: &Value) -> Result<Report, ReportError> {
    let r = Reader {
        format: Format::Trivy,
    };
    match doc.get("SchemaVersion").and_then(Value::as_u64) {
        Some(2) => {}
        _ => {
            return Err(ReportError::Unsupported {
                format: Format::Trivy,
                what: format!("SchemaVersion {}", doc["SchemaVersion"]),
                hint: "this plugin reads SchemaVersion 2 (trivy --format json, 0.20 or later)",
            });
        }
    }
    let scanner_version = match doc.get("Trivy") {
        Some(info) => r.string(info, "Version", "Trivy")?.map(str::to_string),
        None => None,
    };
    let scanned_at = r.time(doc, "CreatedAt", "")?;
    let artifact = r.string(doc, "ArtifactName", "")?.map(str::to_string);
    let mut findings = Vec::new();
    for (i, result) in r.array(doc, "Results", "")?.iter().enumerate() {
        let rpath = at("", "Results", i);
        let result = r.object(result, &rpath)?;
        for (j, vuln) in r
            .array(result, "Vulnerabilities", &rpath)?
            .iter()
            .enumerate()
        {
            let vpath = at(&rpath, "Vulnerabilities", j);
            let vuln = r.object(vuln, &vpath)?;
            // A VEX statement can mark a finding not affected; Trivy may still list it.
            if r.string(vuln, "Status", &vpath)? == Some("not_affected") {
                continue;
            }
            let id = r
                .string(vuln, "VulnerabilityID", &vpath)?
                .ok_or_else(|| r.fault(&join(&vpath, "VulnerabilityID"), "is missing"))?;
            findings.push(Finding {
                id: id.to_string(),
                package: r.string(vuln, "PkgName", &vpath)?.map(str::to_string),
                severity: r
                    .string(vuln, "Severity", &vpath)?
                    .map_or(Severity::Unknown, Severity::from_label),
                fixable: r.string(vuln, "FixedVersion", &vpath)?.is_some(),
                published: r.time(vuln, "PublishedDate", &vpath)?,
            });
        }
    }
    Ok(Report {
        format: Format::Trivy,
        scanner: "trivy".into(),
        scanner_version,
        scanned_at: scanned_at.map(|t| (t, ScanTimeSource::Report)),
        artifact,
        findings,
    })
}

// ---------------------------------------------------------------------------------------------
// Grype

fn grype(doc: &Value) -> Result<Report, ReportError> {
    let r = Reader {
        format: Format::Grype,
    };
    let descriptor = r.object(&doc["descriptor"], "descriptor")?;
    let scanner = r
        .string(descriptor, "name", "descriptor")?
        .unwrap_or("grype")
        .to_ascii_lowercase();
    let scanner_version = r
        .string(descriptor, "version", "descriptor")?
        .map(str::to_string);
    let scanned_at = r.time(descriptor, "timestamp", "descriptor")?;
    // `source.target` is the user's input for images and a path for directories.
    let artifact = match doc.get("source").and_then(|s| s.get("target")) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(target @ Value::Object(_)) => r
            .string(target, "userInput", "source.target")?
            .map(str::to_string),
        _ => None,
    };
    let mut findings = Vec::new();
    for (i, m) in r.array(doc, "matches", "")?.iter().enumerate() {
        let mpath = at("", "matches", i);
        let m = r.object(m, &mpath)?;
        let vpath = join(&mpath, "vulnerability");
        let vuln = r.object(&m["vulnerability"], &vpath)?;
        let id = r
            .string(vuln, "id", &vpath)?
            .ok_or_else(|| r.fault(&join(&vpath, "id"), "is missing"))?;
        let fixable = match vuln.get("fix") {
            None | Some(Value::Null) => false,
            Some(fix) => {
                let fpath = join(&vpath, "fix");
                let fix = r.object(fix, &fpath)?;
                match r.string(fix, "state", &fpath)? {
                    Some(state) => state == "fixed",
                    None => !r.array(fix, "versions", &fpath)?.is_empty(),
                }
            }
        };
        let package = match m.get("artifact") {
            Some(a) if a.is_object() => r.string(a, "name", &join(&mpath, "artifact"))?,
            _ => None,
        };
        findings.push(Finding {
            id: id.to_string(),
            package: package.map(str::to_string),
            severity: r
                .string(vuln, "severity", &vpath)?
                .map_or(Severity::Unknown, Severity::from_label),
            fixable,
            // Grype's matches carry no publication date.
            published: None,
        });
    }
    Ok(Report {
        format: Format::Grype,
        scanner,
        scanner_version,
        scanned_at: scanned_at.map(|t| (t, ScanTimeSource::Report)),
        artifact,
        findings,
    })
}

// ---------------------------------------------------------------------------------------------
// OSV-Scanner

fn osv_scanner(doc: &Value) -> Result<Report, ReportError> {
    let r = Reader {
        format: Format::OsvScanner,
    };
    let mut findings = Vec::new();
    for (i, result) in r.array(doc, "results", "")?.iter().enumerate() {
        let rpath = at("", "results", i);
        let result = r.object(result, &rpath)?;
        for (j, pkg) in r.array(result, "packages", &rpath)?.iter().enumerate() {
            let ppath = at(&rpath, "packages", j);
            let pkg = r.object(pkg, &ppath)?;
            let name = match pkg.get("package") {
                Some(p) if p.is_object() => r.string(p, "name", &join(&ppath, "package"))?,
                _ => None,
            };
            let vulns = r.array(pkg, "vulnerabilities", &ppath)?;
            let mut by_id = Vec::with_capacity(vulns.len());
            for (k, vuln) in vulns.iter().enumerate() {
                let vpath = at(&ppath, "vulnerabilities", k);
                let vuln = r.object(vuln, &vpath)?;
                let id = r
                    .string(vuln, "id", &vpath)?
                    .ok_or_else(|| r.fault(&join(&vpath, "id"), "is missing"))?;
                by_id.push(OsvVuln {
                    id,
                    label: osv_label(&r, vuln, &vpath)?,
                    fixed: osv_fixed(&r, vuln, name, &vpath)?,
                    published: r.time(vuln, "published", &vpath)?,
                });
            }
            let groups = r.array(pkg, "groups", &ppath)?;
            if groups.is_empty() {
                // Reports before alias grouping: each vulnerability is a finding.
                findings.extend(by_id.iter().map(|v| v.finding(name)));
                continue;
            }
            // One finding per alias group: GHSA-x and GO-y for the same flaw are one vulnerability.
            for (k, group) in groups.iter().enumerate() {
                let gpath = at(&ppath, "groups", k);
                let group = r.object(group, &gpath)?;
                let mut members = Vec::new();
                for (l, id) in r.array(group, "ids", &gpath)?.iter().enumerate() {
                    let id = id.as_str().ok_or_else(|| {
                        r.fault(
                            &at(&gpath, "ids", l),
                            format!("must be a string, is {}", shape(id)),
                        )
                    })?;
                    members.extend(by_id.iter().filter(|v| v.id == id));
                }
                let score = match group.get("max_severity") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) if s.trim().is_empty() => None,
                    Some(Value::String(s)) => Some(s.trim().parse::<f64>().map_err(|_| {
                        r.fault(
                            &join(&gpath, "max_severity"),
                            format!("{s:?} is not a CVSS score"),
                        )
                    })?),
                    Some(Value::Number(n)) => n.as_f64(),
                    Some(other) => {
                        return Err(r.fault(
                            &join(&gpath, "max_severity"),
                            format!("must be a string, is {}", shape(other)),
                        ));
                    }
                };
                let severity = score.and_then(Severity::from_score).unwrap_or_else(|| {
                    members
                        .iter()
                        .map(|v| v.label)
                        .min()
                        .unwrap_or(Severity::Unknown)
                });
                let id = group
                    .get("ids")
                    .and_then(|ids| ids.get(0))
                    .and_then(Value::as_str);
                let Some(id) = id else {
                    return Err(r.fault(&join(&gpath, "ids"), "is empty"));
                };
                findings.push(Finding {
                    id: id.to_string(),
                    package: name.map(str::to_string),
                    severity,
                    fixable: members.iter().any(|v| v.fixed),
                    published: members.iter().filter_map(|v| v.published).min(),
                });
            }
        }
    }
    Ok(Report {
        format: Format::OsvScanner,
        scanner: "osv-scanner".into(),
        // OSV-Scanner's JSON names neither its version nor the time of the scan.
        scanner_version: None,
        scanned_at: None,
        artifact: None,
        findings,
    })
}

/// What a finding needs from one full OSV entry.
struct OsvVuln<'a> {
    id: &'a str,
    label: Severity,
    fixed: bool,
    published: Option<DateTime<Utc>>,
}

impl OsvVuln<'_> {
    fn finding(&self, package: Option<&str>) -> Finding {
        Finding {
            id: self.id.to_string(),
            package: package.map(str::to_string),
            severity: self.label,
            fixable: self.fixed,
            published: self.published,
        }
    }
}

/// The severity word some OSV databases add (`database_specific.severity`: GitHub's `HIGH`,
/// `MODERATE`, ...); unknown without one.
fn osv_label(r: &Reader, vuln: &Value, path: &str) -> Result<Severity, ReportError> {
    Ok(match vuln.get("database_specific") {
        Some(db) if db.is_object() => r
            .string(db, "severity", &join(path, "database_specific"))?
            .map_or(Severity::Unknown, Severity::from_label),
        _ => Severity::Unknown,
    })
}

/// Whether the OSV entry names a `fixed` event for this package (any package when no
/// `affected` entry names it).
fn osv_fixed(
    r: &Reader,
    vuln: &Value,
    package: Option<&str>,
    path: &str,
) -> Result<bool, ReportError> {
    let affected = r.array(vuln, "affected", path)?;
    let names_it = |a: &Value| {
        a.get("package")
            .and_then(|p| p.get("name"))
            .and_then(Value::as_str)
            == package
    };
    let any_names_it = package.is_some() && affected.iter().any(names_it);
    for (i, a) in affected.iter().enumerate() {
        if any_names_it && !names_it(a) {
            continue;
        }
        let apath = at(path, "affected", i);
        for (j, range) in r.array(a, "ranges", &apath)?.iter().enumerate() {
            let rpath = at(&apath, "ranges", j);
            for event in r.array(range, "events", &rpath)? {
                if event
                    .get("fixed")
                    .and_then(Value::as_str)
                    .is_some_and(|f| !f.is_empty())
                {
                    return Ok(true);
                }
            }
        }
    }
    Ok(false)
}

// ---------------------------------------------------------------------------------------------
// SARIF

fn sarif(doc: &Value) -> Result<Report, ReportError> {
    let r = Reader {
        format: Format::Sarif,
    };
    match r.string(doc, "version", "")? {
        Some("2.1.0") | None => {}
        Some(other) => {
            return Err(ReportError::Unsupported {
                format: Format::Sarif,
                what: format!("version {other}"),
                hint: "GitHub code scanning and this plugin read SARIF 2.1.0",
            });
        }
    }
    let runs = r.array(doc, "runs", "")?;
    let mut scanner = None;
    let mut scanner_version = None;
    let mut scanned_at: Option<DateTime<Utc>> = None;
    let mut findings = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        let run_path = at("", "runs", i);
        let run = r.object(run, &run_path)?;
        let dpath = format!("{run_path}.tool.driver");
        let driver = r.object(&run["tool"]["driver"], &dpath)?;
        let name = r
            .string(driver, "name", &dpath)?
            .ok_or_else(|| r.fault(&join(&dpath, "name"), "is missing"))?;
        if scanner.is_none() {
            scanner = Some(name.to_ascii_lowercase());
            scanner_version = match r.string(driver, "semanticVersion", &dpath)? {
                Some(v) => Some(v.to_string()),
                None => r.string(driver, "version", &dpath)?.map(str::to_string),
            };
        }
        for (j, inv) in r.array(run, "invocations", &run_path)?.iter().enumerate() {
            let ipath = at(&run_path, "invocations", j);
            let inv = r.object(inv, &ipath)?;
            let t = match r.time(inv, "endTimeUtc", &ipath)? {
                Some(t) => Some(t),
                None => r.time(inv, "startTimeUtc", &ipath)?,
            };
            scanned_at = scanned_at.max(t);
        }
        let rules = r.array(driver, "rules", &dpath)?;
        for (j, result) in r.array(run, "results", &run_path)?.iter().enumerate() {
            let path = at(&run_path, "results", j);
            let result = r.object(result, &path)?;
            if !sarif_counts(&r, result, &path)? {
                continue;
            }
            let rule = sarif_rule(result, rules);
            let id = match r.string(result, "ruleId", &path)? {
                Some(id) => Some(id),
                None => rule.and_then(|rule| rule.get("id")).and_then(Value::as_str),
            };
            let severity = match sarif_score(result).or_else(|| rule.and_then(sarif_score)) {
                Some(severity) => severity,
                None => {
                    let level = match r.string(result, "level", &path)? {
                        Some(level) => Some(level),
                        None => {
                            rule.and_then(|rule| rule["defaultConfiguration"]["level"].as_str())
                        }
                    };
                    // SARIF's default level is `warning`.
                    match level.unwrap_or("warning") {
                        "error" => Severity::High,
                        "warning" => Severity::Medium,
                        "note" => Severity::Low,
                        _ => Severity::Unknown,
                    }
                }
            };
            let published = match result.get("provenance") {
                Some(p) if p.is_object() => {
                    r.time(p, "firstDetectionTimeUtc", &join(&path, "provenance"))?
                }
                _ => None,
            };
            findings.push(Finding {
                id: id.unwrap_or("(no rule id)").to_string(),
                package: None,
                severity,
                fixable: !r.array(result, "fixes", &path)?.is_empty(),
                published,
            });
        }
    }
    let Some(scanner) = scanner else {
        return Err(r.fault("runs", "is empty: no tool ran"));
    };
    Ok(Report {
        format: Format::Sarif,
        scanner,
        scanner_version,
        scanned_at: scanned_at.map(|t| (t, ScanTimeSource::Report)),
        artifact: None,
        findings,
    })
}

/// Whether a SARIF result is an open problem: kind `fail` (the default), not `absent` from the
/// baseline, and not suppressed (a suppression without a status, or `accepted`, is in force).
fn sarif_counts(r: &Reader, result: &Value, path: &str) -> Result<bool, ReportError> {
    if r.string(result, "kind", path)?.is_some_and(|k| k != "fail") {
        return Ok(false);
    }
    if r.string(result, "baselineState", path)? == Some("absent") {
        return Ok(false);
    }
    let suppressed = r.array(result, "suppressions", path)?.iter().any(|s| {
        matches!(
            s.get("status").and_then(Value::as_str),
            None | Some("accepted")
        )
    });
    Ok(!suppressed)
}

/// The rule a result refers to: by `ruleIndex` (or `rule.index`), else by id.
fn sarif_rule<'a>(result: &Value, rules: &'a [Value]) -> Option<&'a Value> {
    let index = result
        .get("ruleIndex")
        .or_else(|| result.get("rule").and_then(|rule| rule.get("index")))
        .and_then(Value::as_u64);
    if let Some(rule) = index.and_then(|i| rules.get(usize::try_from(i).ok()?)) {
        return Some(rule);
    }
    let id = result
        .get("ruleId")
        .or_else(|| result.get("rule").and_then(|rule| rule.get("id")))
        .and_then(Value::as_str)?;
    rules
        .iter()
        .find(|rule| rule.get("id").and_then(Value::as_str) == Some(id))
}

/// `properties.security-severity`, a CVSS-like score as a string (GitHub's form) or a number.
fn sarif_score(object: &Value) -> Option<Severity> {
    let score = match &object["properties"]["security-severity"] {
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        Value::Number(n) => n.as_f64()?,
        _ => return None,
    };
    Severity::from_score(score)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The clock of every test: ages below are measured from here.
    fn now() -> DateTime<Utc> {
        "2026-12-01T00:00:00Z".parse().unwrap()
    }

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn facts(name: &str) -> Value {
        let report = parse(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        Value::Object(report.facts(now()))
    }

    fn buckets(c: u64, h: u64, m: u64, l: u64, u: u64) -> Value {
        json!({"critical": c, "high": h, "medium": m, "low": l, "unknown": u, "total": c + h + m + l + u})
    }

    #[test]
    fn trivy_image_report() {
        let f = facts("trivy-image.json");
        assert_eq!(f["format"], "trivy");
        assert_eq!(f["scanner"], "trivy");
        assert_eq!(f["scanner_version"], "0.58.1");
        assert_eq!(f["artifact"], "registry.example.com/payments:1.4.2");
        assert_eq!(f["scanned_at"], "2026-11-29T08:15:42Z");
        assert_eq!(f["scanned_at_from"], "report");
        assert_eq!(f["report_age_seconds"], 143_057);
        assert_eq!(f["report_age_days"], 1);
        // The not_affected CVE and the Dockerfile misconfiguration are not counted.
        assert_eq!(f["vulnerabilities"], buckets(2, 2, 2, 1, 1));
        // will_not_fix without a FixedVersion is not fixable.
        assert_eq!(f["fixable"], buckets(2, 1, 1, 1, 0));
        assert_eq!(f["oldest_critical_age_days"], 822);
        assert_eq!(f["oldest_high_age_days"], 1030);
    }

    #[test]
    fn grype_image_report() {
        let f = facts("grype-image.json");
        assert_eq!(f["format"], "grype");
        assert_eq!(f["scanner"], "grype");
        assert_eq!(f["scanner_version"], "0.86.1");
        assert_eq!(f["artifact"], "registry.example.com/ledger:2.0.1");
        // +01:00 in the report, UTC in the facts.
        assert_eq!(f["scanned_at"], "2026-11-20T13:02:11Z");
        assert_eq!(f["report_age_seconds"], 903_468);
        assert_eq!(f["report_age_days"], 10);
        // Negligible counts as low; ignoredMatches are not counted; wont-fix is not fixable.
        assert_eq!(f["vulnerabilities"], buckets(2, 1, 1, 1, 1));
        assert_eq!(f["fixable"], buckets(1, 1, 0, 0, 0));
        // Grype's matches carry no dates.
        assert!(f.get("oldest_critical_age_days").is_none());
        assert!(f.get("oldest_high_age_days").is_none());
    }

    #[test]
    fn osv_scanner_report_counts_alias_groups() {
        let report = parse(&fixture("osv-scanner.json")).unwrap();
        assert_eq!(report.format, Format::OsvScanner);
        let ids: Vec<&str> = report.findings.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "GHSA-c3h9-896r-86jm",
                "GHSA-m5pq-gvj9-9vr8",
                "GHSA-jf85-cpcp-j695",
                "GHSA-29mw-wpgm-hmr9",
                "GHSA-p8p7-x288-28g6",
                "PYSEC-2021-66"
            ]
        );
        let f = Value::Object(report.facts(now()));
        assert_eq!(f["scanner"], "osv-scanner");
        // No version and no scan time in OSV-Scanner's JSON: the caller supplies the file time.
        assert!(f.get("scanner_version").is_none());
        assert!(f.get("scanned_at").is_none());
        // max_severity 9.1 critical; 8.6 and 7.5 high; 6.1, and an empty score with the GitHub
        // label MODERATE, medium; no score and no label unknown.
        assert_eq!(f["vulnerabilities"], buckets(1, 2, 2, 0, 1));
        // request has only last_affected: no fix.
        assert_eq!(f["fixable"], buckets(1, 2, 1, 0, 1));
        assert_eq!(f["oldest_critical_age_days"], 2700);
        // The earlier of the group's two publication dates.
        assert_eq!(f["oldest_high_age_days"], 2148);
    }

    #[test]
    fn sarif_code_scanning_report() {
        let f = facts("codeql.sarif");
        assert_eq!(f["format"], "sarif");
        assert_eq!(f["scanner"], "codeql");
        assert_eq!(f["scanner_version"], "2.19.3");
        assert_eq!(f["scanned_at"], "2026-11-30T22:14:37Z");
        assert_eq!(f["report_age_seconds"], 6322);
        assert_eq!(f["report_age_days"], 0);
        // security-severity 9.8 critical, 8.8 high, 6.1 medium; the note without a score low;
        // the result's own 3.1 beats its rule's 7.8. Suppressed, absent and pass results are
        // not findings.
        assert_eq!(f["vulnerabilities"], buckets(1, 1, 1, 2, 0));
        assert_eq!(f["fixable"], buckets(1, 0, 0, 0, 0));
        assert_eq!(f["oldest_critical_age_days"], 15);
        assert_eq!(f["oldest_high_age_days"], 59);
    }

    #[test]
    fn sarif_level_is_the_fallback_and_trivy_sarif_reads_too() {
        // Trivy's own SARIF template: severity on the rule, no invocation times.
        let doc = json!({
            "version": "2.1.0",
            "$schema": "https://raw.githubusercontent.com/oasis-tcs/sarif-spec/main/sarif-2.1/schema/sarif-schema-2.1.0.json",
            "runs": [{
                "tool": {"driver": {"fullName": "Trivy Vulnerability Scanner", "informationUri": "https://github.com/aquasecurity/trivy", "name": "Trivy", "version": "0.58.1",
                    "rules": [
                        {"id": "CVE-2024-45490", "name": "OsPackageVulnerability", "defaultConfiguration": {"level": "error"},
                         "properties": {"precision": "very-high", "security-severity": "9.8", "tags": ["vulnerability", "security", "CRITICAL"]}},
                        {"id": "DS002", "name": "Misconfiguration", "defaultConfiguration": {"level": "error"}, "properties": {"tags": ["misconfiguration"]}}
                    ]}},
                "results": [
                    {"ruleId": "CVE-2024-45490", "ruleIndex": 0, "level": "error", "message": {"text": "Package: libexpat1"}},
                    {"ruleId": "DS002", "ruleIndex": 1, "level": "error", "message": {"text": "root user"}},
                    {"ruleId": "DS002", "ruleIndex": 1, "message": {"text": "default level"}},
                    {"ruleId": "x", "level": "none", "message": {"text": "informational"}}
                ]
            }]
        });
        let report = parse_value(&doc).unwrap();
        assert_eq!(report.scanner, "trivy");
        assert_eq!(report.scanner_version.as_deref(), Some("0.58.1"));
        assert_eq!(report.scanned_at, None);
        let severities: Vec<Severity> = report.findings.iter().map(|f| f.severity).collect();
        // error → high; the rule's default `error` level; `none` → unknown.
        assert_eq!(
            severities,
            [
                Severity::Critical,
                Severity::High,
                Severity::High,
                Severity::Unknown
            ]
        );
    }

    #[test]
    fn a_damaged_report_says_where_it_broke() {
        let err = parse(&fixture("damaged-trivy.json")).unwrap_err();
        let ReportError::NotJson { line, .. } = &err else {
            panic!("{err:?}")
        };
        assert!(*line > 1, "{err}");
        assert!(
            err.to_string()
                .starts_with("not a JSON document: EOF while parsing"),
            "{err}"
        );
        assert!(matches!(parse(b""), Err(ReportError::NotJson { .. })));
        assert!(matches!(
            parse(b"\x89PNG\r\n"),
            Err(ReportError::NotJson { .. })
        ));
    }

    #[test]
    fn an_unknown_document_names_the_formats_it_could_have_been() {
        let err = parse(&fixture("cyclonedx-sbom.json")).unwrap_err();
        assert!(matches!(err, ReportError::UnknownFormat { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("an object with $schema, bomFormat"), "{text}");
        assert!(
            text.contains("Trivy") && text.contains("SARIF 2.1.0"),
            "{text}"
        );
        for doc in [json!("report"), json!(42), json!({}), json!([1, 2])] {
            assert!(
                matches!(parse_value(&doc), Err(ReportError::UnknownFormat { .. })),
                "{doc}"
            );
        }
    }

    #[test]
    fn unsupported_versions_are_refused_with_a_hint() {
        let v1 = json!([{"Target": "alpine 3.7.1", "Vulnerabilities": []}]);
        let err = parse_value(&v1).unwrap_err();
        assert!(
            matches!(
                err,
                ReportError::Unsupported {
                    format: Format::Trivy,
                    ..
                }
            ),
            "{err:?}"
        );
        let v3 = json!({"SchemaVersion": 3, "ArtifactName": "x"});
        assert!(
            parse_value(&v3)
                .unwrap_err()
                .to_string()
                .contains("SchemaVersion 3")
        );
        let sarif1 = json!({"version": "1.0.0", "runs": []});
        assert!(matches!(
            parse_value(&sarif1),
            Err(ReportError::Unsupported {
                format: Format::Sarif,
                ..
            })
        ));
    }

    #[test]
    fn a_known_format_with_a_wrong_member_names_its_path() {
        let cases = [
            (
                json!({"SchemaVersion": 2, "Results": [{"Target": "t", "Vulnerabilities": [{"VulnerabilityID": "CVE-1", "Severity": 9}]}]}),
                "trivy report: Results[0].Vulnerabilities[0].Severity must be a string, is a number",
            ),
            (
                json!({"SchemaVersion": 2, "Results": {"Target": "t"}}),
                "trivy report: Results must be an array, is an object",
            ),
            (
                json!({"SchemaVersion": 2, "CreatedAt": "yesterday"}),
                "trivy report: CreatedAt \"yesterday\" is not an RFC 3339 time",
            ),
            (
                json!({"matches": [{"vulnerability": {"severity": "High"}}], "descriptor": {"name": "grype"}}),
                "grype report: matches[0].vulnerability.id is missing",
            ),
            (
                json!({"results": [{"source": {}, "packages": [{"package": {"name": "x"}, "vulnerabilities": [], "groups": [{"ids": ["A"], "max_severity": "high"}]}]}]}),
                "osv-scanner report: results[0].packages[0].groups[0].max_severity \"high\" is not a CVSS score",
            ),
            (
                json!({"version": "2.1.0", "runs": []}),
                "sarif report: runs is empty: no tool ran",
            ),
        ];
        for (doc, want) in cases {
            let err = parse_value(&doc).unwrap_err().to_string();
            assert!(err.starts_with(want), "{err}\nwanted: {want}");
        }
    }

    #[test]
    fn empty_reports_are_clean_not_unknown() {
        // What each tool writes when it finds nothing.
        let clean = [
            json!({"SchemaVersion": 2, "CreatedAt": "2026-11-30T00:00:00Z", "ArtifactName": ".", "ArtifactType": "repository"}),
            json!({"matches": [], "source": {"type": "directory", "target": "."}, "descriptor": {"name": "grype", "version": "0.86.1"}}),
            json!({"results": [], "experimental_config": {"licenses": {"summary": false, "allowlist": null}}}),
            json!({"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "Trivy"}}, "results": []}]}),
        ];
        for doc in clean {
            let facts = parse_value(&doc).unwrap().facts(now());
            assert_eq!(facts["vulnerabilities"], buckets(0, 0, 0, 0, 0), "{doc}");
            assert_eq!(facts["fixable"]["total"], 0);
        }
    }

    #[test]
    fn go_zero_times_and_future_scans_do_not_make_ages_up() {
        let doc = json!({"SchemaVersion": 2, "CreatedAt": "2026-12-02T00:00:00Z", "Results": [
            {"Target": "t", "Vulnerabilities": [{"VulnerabilityID": "CVE-1", "Severity": "CRITICAL", "PublishedDate": "0001-01-01T00:00:00Z"}]}
        ]});
        let facts = parse_value(&doc).unwrap().facts(now());
        assert_eq!(facts["report_age_seconds"], 0);
        assert!(facts.get("oldest_critical_age_days").is_none());
    }

    #[test]
    fn severity_bands() {
        assert_eq!(Severity::from_score(9.0), Some(Severity::Critical));
        assert_eq!(Severity::from_score(8.9), Some(Severity::High));
        assert_eq!(Severity::from_score(4.0), Some(Severity::Medium));
        assert_eq!(Severity::from_score(0.0), Some(Severity::Low));
        assert_eq!(Severity::from_score(10.5), None);
        assert_eq!(Severity::from_label("Moderate"), Severity::Medium);
        assert_eq!(Severity::from_label("NEGLIGIBLE"), Severity::Low);
        assert_eq!(Severity::from_label("important"), Severity::Unknown);
    }
}

#[cfg(test)]
mod proptests {
    //! Hostile input: whatever the bytes, the parser answers a report or an error, never a panic.

    use proptest::prelude::*;

    use super::*;

    const FIXTURES: [&[u8]; 4] = [
        include_bytes!("../fixtures/trivy-image.json"),
        include_bytes!("../fixtures/grype-image.json"),
        include_bytes!("../fixtures/osv-scanner.json"),
        include_bytes!("../fixtures/codeql.sarif"),
    ];

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            ".{0,12}".prop_map(Value::from),
            Just(json!("2026-11-30T00:00:00Z")),
            Just(json!("CRITICAL")),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map(".{0,8}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Every object and array inside `doc`, by JSON pointer.
    fn pointers(doc: &Value, at: String, out: &mut Vec<String>) {
        match doc {
            Value::Object(map) => {
                for (k, v) in map {
                    let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                    out.push(p.clone());
                    pointers(v, p, out);
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    let p = format!("{at}/{i}");
                    out.push(p.clone());
                    pointers(v, p, out);
                }
            }
            _ => {}
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn truncated_reports_are_not_json(which in 0usize..4, cut in 0.0f64..1.0) {
            let bytes = FIXTURES[which];
            let end = ((bytes.len() as f64) * cut) as usize;
            // The fixtures end in `}` plus a newline: any shorter prefix is unfinished JSON.
            if end < bytes.len() - 2 {
                let result = parse(&bytes[..end]);
                prop_assert!(matches!(result, Err(ReportError::NotJson { .. })), "{result:?}");
            }
        }

        #[test]
        fn any_member_replaced_by_anything_never_panics(
            which in 0usize..4,
            pick in any::<prop::sample::Index>(),
            value in any_json(),
        ) {
            let mut doc: Value = serde_json::from_slice(FIXTURES[which]).unwrap();
            let mut all = Vec::new();
            pointers(&doc, String::new(), &mut all);
            let pointer = pick.get(&all).clone();
            *doc.pointer_mut(&pointer).unwrap() = value;
            if let Ok(report) = parse_value(&doc) {
                let facts = report.facts(Utc::now());
                let total = facts["vulnerabilities"]["total"].as_u64().unwrap();
                prop_assert!(facts["fixable"]["total"].as_u64().unwrap() <= total);
            }
        }
    }
}
