//! Plugin manifests: `plugins/<name>.toml` (DESIGN.md section 4).
//!
//! A [`Manifest`] says what a plugin is (`name`, `kind`, the `wasm` file), how it is bounded
//! (`timeout_ms`, `memory_mb`, `interval`) and what it may reach ([`Capabilities`]: outgoing HTTP
//! hosts, read-only directories, secrets from the daemon's environment), plus a free-form
//! `[config]` table handed to the plugin's `init`. Parsing validates everything that can be
//! checked without wasmtime: unknown keys, durations, host names, that the wasm file and the
//! granted directories exist, that every secret's variable is set. A fault becomes a
//! [`ManifestError`] naming the file and the fault.
//!
//! This module must never print or log a secret's value: [`SecretValue`] redacts itself in
//! `Debug` and `Serialize`, and only the sandbox reads it through [`SecretValue::expose`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::JsonObject;

/// How often a data source collects when its manifest names no `interval`.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// Longest `timeout_ms` a manifest may ask for (10 minutes): a longer call is a design error.
const MAX_TIMEOUT_MS: u64 = 600_000;

/// Shortest `interval`: anything faster hammers the systems a data source reads.
const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// The two worlds of `readyd:plugin` (wit/readyd-plugin.wit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PluginKind {
    /// Collects facts about entities (`world data-source`).
    DataSource,
    /// Evaluates one rule on one entity (`world check`).
    Check,
}

impl PluginKind {
    /// The WIT world name, also the manifest's `kind` value.
    pub fn world(self) -> &'static str {
        match self {
            PluginKind::DataSource => "data-source",
            PluginKind::Check => "check",
        }
    }
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.world())
    }
}

/// A parsed, validated plugin manifest.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Manifest {
    /// The plugin's name; data-source facts are stored under it (`facts.<name>`).
    pub name: String,
    pub kind: PluginKind,
    /// The manifest file itself.
    pub path: PathBuf,
    /// The component, resolved against the manifest's directory.
    pub wasm: PathBuf,
    /// Data sources: how often to collect (`None`: [`DEFAULT_INTERVAL`]).
    #[serde(with = "humantime_opt")]
    pub interval: Option<Duration>,
    /// Per-call time budget; `None`: the host's default.
    pub timeout_ms: Option<u64>,
    /// Linear memory cap; `None`: the host's default.
    pub memory_mb: Option<u64>,
    pub capabilities: Capabilities,
    /// The `[config]` table as JSON (secrets are added only when `init` is called).
    pub config: JsonObject,
}

/// What a plugin may reach beyond its own memory. Nothing is granted by default.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Capabilities {
    /// Hosts that outgoing HTTP requests may go to.
    pub http: Vec<HttpGrant>,
    /// Directories preopened read-only.
    pub dirs: Vec<DirGrant>,
    /// Values read from the daemon's environment and added to the `init` config.
    pub secrets: Vec<SecretGrant>,
}

/// One entry of `capabilities.http`: `host` (the scheme's default port) or `host:port`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HttpGrant {
    /// Lower-cased host name or IP literal (IPv6 in brackets), without a trailing dot.
    pub host: String,
    /// `None`: only the default port of the request's scheme (80 for http, 443 for https).
    pub port: Option<u16>,
}

impl HttpGrant {
    /// Whether a request to `host:port` over `scheme_default_port`'s scheme is covered.
    pub fn allows(&self, host: &str, port: u16, scheme_default_port: u16) -> bool {
        let host = host.strip_suffix('.').unwrap_or(host);
        self.host.eq_ignore_ascii_case(host)
            && match self.port {
                Some(p) => p == port,
                None => port == scheme_default_port,
            }
    }
}

impl FromStr for HttpGrant {
    type Err = String;

    fn from_str(entry: &str) -> Result<Self, String> {
        let entry = entry.trim();
        if entry.is_empty() {
            return Err("empty host".into());
        }
        if entry.contains("://") || entry.contains('/') || entry.contains('@') {
            return Err("write a host or host:port, without scheme, path or user".into());
        }
        if entry.contains('*') {
            return Err("wildcards are not supported; list each host".into());
        }
        let authority = http::uri::Authority::from_str(entry).map_err(|e| e.to_string())?;
        if authority.port_u16().is_none() && authority.host() != authority.as_str() {
            return Err("the port must be a number from 1 to 65535".into());
        }
        let host = authority.host().trim_end_matches('.').to_ascii_lowercase();
        if host.is_empty() {
            return Err("empty host".into());
        }
        Ok(HttpGrant {
            host,
            port: authority.port_u16(),
        })
    }
}

impl fmt::Display for HttpGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}:{port}", self.host),
            None => f.write_str(&self.host),
        }
    }
}

/// One entry of `capabilities.dirs`: a host directory visible read-only at `guest`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DirGrant {
    /// Absolute path inside the sandbox, e.g. `/repos`.
    pub guest: String,
    /// The host directory, canonical.
    pub host: PathBuf,
}

/// One entry of `capabilities.secrets`: `name = "ENV_VAR"`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SecretGrant {
    /// Key under which the value is added to the `init` config.
    pub name: String,
    /// The daemon's environment variable it was read from.
    pub env_var: String,
    pub value: SecretValue,
}

/// A secret's value. Never shown: `Debug`, `Display` and `Serialize` print `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    /// Wrap a value read from the environment.
    pub fn new(value: String) -> Self {
        SecretValue(value)
    }

    /// The value itself; only the sandbox calls this, to build the `init` config.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Serialize for SecretValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("[redacted]")
    }
}

/// A manifest that could not be used: the file and the fault.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{}: {fault}", path.display())]
pub struct ManifestError {
    /// The manifest file.
    pub path: PathBuf,
    pub fault: ManifestFault,
}

/// What is wrong with a manifest.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestFault {
    #[error("cannot read: {0}")]
    Read(String),
    #[error("line {line}: unknown key `{key}`")]
    UnknownKey { key: String, line: usize },
    #[error("{}{message}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
    Syntax {
        line: Option<usize>,
        message: String,
    },
    #[error(
        "bad name `{0}`: use lower-case letters, digits, `-` and `_`, starting with a letter or digit"
    )]
    BadName(String),
    #[error("bad kind `{0}`: expected \"data-source\" or \"check\"")]
    BadKind(String),
    #[error("wasm file {} does not exist", .0.display())]
    MissingWasm(PathBuf),
    #[error("bad {field} `{value}`: {reason}")]
    BadDuration {
        field: &'static str,
        value: String,
        reason: String,
    },
    #[error("`interval` is only meaningful for a data-source plugin")]
    IntervalOnCheck,
    #[error("bad {field} {value}: {reason}")]
    BadLimit {
        field: &'static str,
        value: u64,
        reason: String,
    },
    #[error("bad capabilities.http entry `{entry}`: {reason}")]
    BadHttpGrant { entry: String, reason: String },
    #[error("bad capabilities.dirs entry `{guest}`: {reason}")]
    BadDirGrant { guest: String, reason: String },
    #[error("secret `{name}`: environment variable {env_var} is not set")]
    MissingSecret { name: String, env_var: String },
    #[error("secret `{name}` has the same name as a [config] key")]
    SecretShadowsConfig { name: String },
    #[error("plugin name `{name}` is already used by {}", first.display())]
    DuplicateName { name: String, first: PathBuf },
    /// A grant outside `[plugins.policy]` of readyd.toml.
    #[error("{grant} is not allowed by [plugins.policy] {policy}")]
    NotAllowed { grant: String, policy: String },
}

/// The file as written; validated into [`Manifest`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    name: String,
    kind: String,
    wasm: PathBuf,
    interval: Option<String>,
    timeout_ms: Option<u64>,
    memory_mb: Option<u64>,
    #[serde(default)]
    capabilities: RawCapabilities,
    #[serde(default)]
    config: toml::Table,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCapabilities {
    #[serde(default)]
    http: Vec<String>,
    #[serde(default)]
    dirs: BTreeMap<String, PathBuf>,
    #[serde(default)]
    secrets: BTreeMap<String, String>,
}

impl Manifest {
    /// Read and validate a manifest file; secrets come from the process environment.
    pub fn from_file(path: &Path) -> Result<Manifest, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|e| ManifestError {
            path: path.to_path_buf(),
            fault: ManifestFault::Read(e.to_string()),
        })?;
        Manifest::parse(&text, path, &|var| std::env::var(var).ok())
    }

    /// Validate manifest text as if read from `path` (relative paths resolve against its
    /// directory); `env` looks up secrets' variables.
    pub fn parse(
        text: &str,
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Manifest, ManifestError> {
        let fail = |fault| ManifestError {
            path: path.to_path_buf(),
            fault,
        };
        let raw: RawManifest = toml::from_str(text).map_err(|e| fail(syntax_fault(text, &e)))?;
        let base = path.parent().unwrap_or(Path::new("."));

        if !is_valid_plugin_name(&raw.name) {
            return Err(fail(ManifestFault::BadName(raw.name)));
        }
        let kind = match raw.kind.as_str() {
            "data-source" => PluginKind::DataSource,
            "check" => PluginKind::Check,
            _ => return Err(fail(ManifestFault::BadKind(raw.kind))),
        };

        let wasm = base.join(&raw.wasm);
        if !wasm.is_file() {
            return Err(fail(ManifestFault::MissingWasm(wasm)));
        }

        let interval = match raw.interval {
            None => None,
            Some(_) if kind == PluginKind::Check => {
                return Err(fail(ManifestFault::IntervalOnCheck));
            }
            Some(text) => {
                let bad = |reason: String| ManifestFault::BadDuration {
                    field: "interval",
                    value: text.clone(),
                    reason,
                };
                let d = humantime::parse_duration(&text).map_err(|e| fail(bad(e.to_string())))?;
                if d < MIN_INTERVAL {
                    return Err(fail(bad("must be at least 1s".into())));
                }
                Some(d)
            }
        };

        if let Some(ms) = raw.timeout_ms
            && !(1..=MAX_TIMEOUT_MS).contains(&ms)
        {
            let reason = format!("must be between 1 and {MAX_TIMEOUT_MS}");
            return Err(fail(ManifestFault::BadLimit {
                field: "timeout_ms",
                value: ms,
                reason,
            }));
        }
        if raw.memory_mb == Some(0) {
            let reason = "must be at least 1".to_string();
            return Err(fail(ManifestFault::BadLimit {
                field: "memory_mb",
                value: 0,
                reason,
            }));
        }

        let mut http = Vec::with_capacity(raw.capabilities.http.len());
        for entry in raw.capabilities.http {
            match entry.parse::<HttpGrant>() {
                Ok(grant) => http.push(grant),
                Err(reason) => return Err(fail(ManifestFault::BadHttpGrant { entry, reason })),
            }
        }

        let mut dirs = Vec::with_capacity(raw.capabilities.dirs.len());
        for (guest, host) in raw.capabilities.dirs {
            let bad = |reason: String| ManifestFault::BadDirGrant {
                guest: guest.clone(),
                reason,
            };
            if !guest.starts_with('/') || guest.split('/').any(|c| c == ".." || c == ".") {
                return Err(fail(bad(
                    "the guest path must be absolute, without `.` or `..`".into(),
                )));
            }
            let host_path = base.join(&host);
            let host = match host_path.canonicalize() {
                Ok(p) if p.is_dir() => p,
                Ok(p) => return Err(fail(bad(format!("{} is not a directory", p.display())))),
                Err(e) => return Err(fail(bad(format!("{}: {e}", host_path.display())))),
            };
            dirs.push(DirGrant { guest, host });
        }

        let config = toml_table_to_json(raw.config);
        let mut secrets = Vec::with_capacity(raw.capabilities.secrets.len());
        for (name, env_var) in raw.capabilities.secrets {
            if config.contains_key(&name) {
                return Err(fail(ManifestFault::SecretShadowsConfig { name }));
            }
            match env(&env_var) {
                Some(value) => secrets.push(SecretGrant {
                    name,
                    env_var,
                    value: SecretValue(value),
                }),
                None => return Err(fail(ManifestFault::MissingSecret { name, env_var })),
            }
        }

        Ok(Manifest {
            name: raw.name,
            kind,
            path: path.to_path_buf(),
            wasm,
            interval,
            timeout_ms: raw.timeout_ms,
            memory_mb: raw.memory_mb,
            capabilities: Capabilities {
                http,
                dirs,
                secrets,
            },
            config,
        })
    }

    /// How often a data source collects.
    pub fn interval(&self) -> Duration {
        self.interval.unwrap_or(DEFAULT_INTERVAL)
    }
}

/// Load every `*.toml` manifest directly in `dir` (sorted by file name; hidden files and
/// editors' temporary files are skipped so half-written files are never read). Good manifests
/// and the errors of the bad ones are both returned: one bad file does not hide the others.
pub fn load_manifests(dir: &Path) -> (Vec<Manifest>, Vec<ManifestError>) {
    let mut manifests: Vec<Manifest> = Vec::new();
    let mut errors = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            let fault = ManifestFault::Read(e.to_string());
            return (
                manifests,
                vec![ManifestError {
                    path: dir.to_path_buf(),
                    fault,
                }],
            );
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            !name.starts_with('.') && p.extension().is_some_and(|e| e == "toml") && p.is_file()
        })
        .collect();
    paths.sort();
    for path in paths {
        match Manifest::from_file(&path) {
            Ok(m) => match manifests.iter().find(|other| other.name == m.name) {
                Some(first) => errors.push(ManifestError {
                    fault: ManifestFault::DuplicateName {
                        name: m.name,
                        first: first.path.clone(),
                    },
                    path,
                }),
                None => manifests.push(m),
            },
            Err(e) => errors.push(e),
        }
    }
    (manifests, errors)
}

/// The plugin a manifest file declares, read leniently: its `name` (else the file's stem) and
/// its `kind` when that much is readable, whatever else is wrong with the file. A rule naming a
/// plugin whose manifest exists but was refused is then an `error` result carrying the refusal,
/// not an unknown plugin that refuses the whole standards set (DESIGN.md section 12). `None`
/// when not even a valid name can be found.
pub fn declared_plugin(path: &Path) -> Option<(String, Option<PluginKind>)> {
    let table: Option<toml::Table> = std::fs::read_to_string(path)
        .ok()
        .and_then(|text| toml::from_str(&text).ok());
    let field = |key: &str| {
        table
            .as_ref()
            .and_then(|t| t.get(key))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    let name = field("name")
        .filter(|n| is_valid_plugin_name(n))
        .or_else(|| {
            path.file_stem()
                .and_then(|s| s.to_str())
                .filter(|n| is_valid_plugin_name(n))
                .map(str::to_owned)
        })?;
    let kind = match field("kind").as_deref() {
        Some("data-source") => Some(PluginKind::DataSource),
        Some("check") => Some(PluginKind::Check),
        _ => None,
    };
    Some((name, kind))
}

/// Plugin names end up in fact paths (`facts.<name>.x`), so no dots: `[a-z0-9][a-z0-9_-]*`.
pub fn is_valid_plugin_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn syntax_fault(text: &str, e: &toml::de::Error) -> ManifestFault {
    let line = e.span().map(|span| {
        text.as_bytes()[..span.start.min(text.len())]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    });
    let message = e.message().trim().to_string();
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some(end) = rest.find('`')
    {
        return ManifestFault::UnknownKey {
            key: rest[..end].to_string(),
            line: line.unwrap_or(1),
        };
    }
    ManifestFault::Syntax { line, message }
}

fn toml_table_to_json(table: toml::Table) -> JsonObject {
    table
        .into_iter()
        .map(|(k, v)| (k, toml_to_json(v)))
        .collect()
}

fn toml_to_json(value: toml::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        toml::Value::String(s) => J::String(s),
        toml::Value::Integer(i) => J::from(i),
        toml::Value::Float(f) => serde_json::Number::from_f64(f).map_or(J::Null, J::Number),
        toml::Value::Boolean(b) => J::Bool(b),
        // Plugins see dates as the RFC 3339 text they were written as.
        toml::Value::Datetime(d) => J::String(d.to_string()),
        toml::Value::Array(items) => J::Array(items.into_iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => J::Object(toml_table_to_json(t)),
    }
}

/// `Option<Duration>` as humantime text (`"5m"`) in JSON.
mod humantime_opt {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture {
        dir: tempfile::TempDir,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("p.wasm"), b"\0asm").unwrap();
            std::fs::create_dir(dir.path().join("data")).unwrap();
            Fixture { dir }
        }

        fn parse(&self, text: &str) -> Result<Manifest, ManifestError> {
            let env = |var: &str| (var == "TOKEN_VAR").then(|| "hunter2-secret".to_string());
            Manifest::parse(text, &self.dir.path().join("p.toml"), &env)
        }

        fn fault(&self, text: &str) -> ManifestFault {
            self.parse(text).unwrap_err().fault
        }
    }

    const FULL: &str = r#"
name = "git-repo"
kind = "data-source"
wasm = "p.wasm"
interval = "5m"
timeout_ms = 2000
memory_mb = 64
[capabilities]
http = ["api.github.com", "127.0.0.1:8080", "[::1]:9000"]
dirs = { "/repos" = "data" }
secrets = { token = "TOKEN_VAR" }
[config]
org = "acme"
nested = { list = [1, 2.5, true], when = 1979-05-27 }
"#;

    #[test]
    fn parses_a_full_manifest() {
        let f = Fixture::new();
        let m = f.parse(FULL).unwrap();
        assert_eq!(m.name, "git-repo");
        assert_eq!(m.kind, PluginKind::DataSource);
        assert_eq!(m.wasm, f.dir.path().join("p.wasm"));
        assert_eq!(m.interval(), Duration::from_secs(300));
        assert_eq!(m.timeout_ms, Some(2000));
        assert_eq!(m.memory_mb, Some(64));
        let hosts: Vec<String> = m.capabilities.http.iter().map(|g| g.to_string()).collect();
        assert_eq!(hosts, ["api.github.com", "127.0.0.1:8080", "[::1]:9000"]);
        assert_eq!(m.capabilities.dirs[0].guest, "/repos");
        assert_eq!(
            m.capabilities.dirs[0].host,
            f.dir.path().join("data").canonicalize().unwrap()
        );
        assert_eq!(m.capabilities.secrets[0].name, "token");
        assert_eq!(m.capabilities.secrets[0].value.expose(), "hunter2-secret");
        assert_eq!(m.config["org"], "acme");
        assert_eq!(
            m.config["nested"]["list"],
            serde_json::json!([1, 2.5, true])
        );
        assert_eq!(m.config["nested"]["when"], "1979-05-27");
    }

    #[test]
    fn secrets_never_show_in_debug_or_json() {
        let f = Fixture::new();
        let m = f.parse(FULL).unwrap();
        let debug = format!("{m:?} {m:#?}");
        let json = serde_json::to_string(&m).unwrap();
        for shown in [&debug, &json] {
            assert!(!shown.contains("hunter2"), "secret leaked: {shown}");
            assert!(shown.contains("[redacted]"));
            assert!(
                shown.contains("TOKEN_VAR"),
                "the variable's name is fine to show"
            );
        }
    }

    #[test]
    fn minimal_check_manifest() {
        let f = Fixture::new();
        let m = f
            .parse("name = \"slo\"\nkind = \"check\"\nwasm = \"p.wasm\"\n")
            .unwrap();
        assert_eq!(m.kind, PluginKind::Check);
        assert!(m.capabilities.http.is_empty() && m.capabilities.dirs.is_empty());
        assert!(m.config.is_empty());
        assert_eq!(m.timeout_ms, None);
    }

    #[test]
    fn faults_are_named() {
        let f = Fixture::new();
        let base = "name = \"x\"\nkind = \"check\"\nwasm = \"p.wasm\"\n";
        assert_eq!(
            f.fault(&format!("{base}colour = 1\n")),
            ManifestFault::UnknownKey {
                key: "colour".into(),
                line: 4
            }
        );
        assert!(matches!(
            f.fault(&format!("{base}[capabilities]\nsockets = true\n")),
            ManifestFault::UnknownKey { key, .. } if key == "sockets"
        ));
        assert_eq!(
            f.fault("name = \"x\"\nkind = \"probe\"\nwasm = \"p.wasm\"\n"),
            ManifestFault::BadKind("probe".into())
        );
        assert_eq!(
            f.fault("name = \"x\"\nkind = \"check\"\nwasm = \"missing.wasm\"\n"),
            ManifestFault::MissingWasm(f.dir.path().join("missing.wasm"))
        );
        assert!(matches!(
            f.fault("name = \"x\"\nkind = \"data-source\"\nwasm = \"p.wasm\"\ninterval = \"5 parsecs\"\n"),
            ManifestFault::BadDuration { field: "interval", .. }
        ));
        assert!(matches!(
            f.fault(
                "name = \"x\"\nkind = \"data-source\"\nwasm = \"p.wasm\"\ninterval = \"10ms\"\n"
            ),
            ManifestFault::BadDuration { .. }
        ));
        assert_eq!(
            f.fault(&format!("{base}interval = \"1m\"\n")),
            ManifestFault::IntervalOnCheck
        );
        assert_eq!(
            f.fault("name = \"Bad.Name\"\nkind = \"check\"\nwasm = \"p.wasm\"\n"),
            ManifestFault::BadName("Bad.Name".into())
        );
        assert!(matches!(
            f.fault(&format!("{base}timeout_ms = 0\n")),
            ManifestFault::BadLimit {
                field: "timeout_ms",
                ..
            }
        ));
        assert!(matches!(
            f.fault(&format!("{base}memory_mb = 0\n")),
            ManifestFault::BadLimit {
                field: "memory_mb",
                ..
            }
        ));
        assert!(matches!(
            f.fault(&format!(
                "{base}[capabilities]\nhttp = [\"https://api.github.com\"]\n"
            )),
            ManifestFault::BadHttpGrant { .. }
        ));
        assert!(matches!(
            f.fault(&format!(
                "{base}[capabilities]\ndirs = {{ \"repos\" = \"data\" }}\n"
            )),
            ManifestFault::BadDirGrant { .. }
        ));
        assert!(matches!(
            f.fault(&format!(
                "{base}[capabilities]\ndirs = {{ \"/r\" = \"nope\" }}\n"
            )),
            ManifestFault::BadDirGrant { .. }
        ));
        assert_eq!(
            f.fault(&format!(
                "{base}[capabilities]\nsecrets = {{ t = \"UNSET_VAR\" }}\n"
            )),
            ManifestFault::MissingSecret {
                name: "t".into(),
                env_var: "UNSET_VAR".into()
            }
        );
        assert_eq!(
            f.fault(&format!(
                "{base}[capabilities]\nsecrets = {{ t = \"TOKEN_VAR\" }}\n[config]\nt = 1\n"
            )),
            ManifestFault::SecretShadowsConfig { name: "t".into() }
        );
        assert!(matches!(
            f.fault("name = \"x\"\n"),
            ManifestFault::Syntax { .. }
        ));
        // The Display names the file.
        let err = f.parse("name = 1").unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&f.dir.path().join("p.toml").display().to_string())
        );
    }

    #[test]
    fn http_grants_match_host_and_port() {
        let bare: HttpGrant = "API.GitHub.com.".parse().unwrap();
        assert_eq!(bare.host, "api.github.com");
        assert!(bare.allows("api.github.com", 443, 443));
        assert!(bare.allows("API.GITHUB.COM.", 80, 80));
        assert!(!bare.allows("api.github.com", 8443, 443));
        assert!(!bare.allows("evil.api.github.com", 443, 443));
        assert!(!bare.allows("api.github.com.evil", 443, 443));
        let ported: HttpGrant = "127.0.0.1:8080".parse().unwrap();
        assert!(ported.allows("127.0.0.1", 8080, 80));
        assert!(!ported.allows("127.0.0.1", 8081, 80));
        assert!(!ported.allows("127.0.0.2", 8080, 80));
        let v6: HttpGrant = "[::1]:9000".parse().unwrap();
        assert!(v6.allows("[::1]", 9000, 80));
        for bad in ["", "*.github.com", "http://x", "x/y", "u@x", "x:notaport"] {
            assert!(bad.parse::<HttpGrant>().is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn load_manifests_reports_every_bad_file_and_skips_temporaries() {
        let f = Fixture::new();
        let dir = f.dir.path();
        let good = |name: &str| format!("name = \"{name}\"\nkind = \"check\"\nwasm = \"p.wasm\"\n");
        std::fs::write(dir.join("a.toml"), good("a")).unwrap();
        std::fs::write(
            dir.join("b.toml"),
            "name = \"b\"\nkind = \"nope\"\nwasm = \"p.wasm\"\n",
        )
        .unwrap();
        std::fs::write(dir.join("c.toml"), good("a")).unwrap();
        std::fs::write(dir.join(".d.toml"), "garbage").unwrap();
        std::fs::write(dir.join("e.toml.tmp"), "garbage").unwrap();
        let (manifests, errors) = load_manifests(dir);
        assert_eq!(
            manifests
                .iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>(),
            ["a"]
        );
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(errors[0].path, dir.join("b.toml"));
        assert!(matches!(
            errors[1].fault,
            ManifestFault::DuplicateName { .. }
        ));

        let (none, errors) = load_manifests(&dir.join("absent"));
        assert!(none.is_empty());
        assert!(matches!(errors[0].fault, ManifestFault::Read(_)));
    }
}
