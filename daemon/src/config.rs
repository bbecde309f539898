//! The daemon's configuration: `readyd.toml`, `READYD_*` environment overrides, then flags.
//!
//! Every value has a default that serves the demo, so an empty file is a valid configuration.
//! Relative paths are resolved against the directory of the configuration file (or the current
//! directory when there is no file), once, in [`Config::load`]; the rest of readyd only ever sees
//! absolute paths. Token values are secrets: [`TokenConfig`]'s `Debug` never prints them.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Parse { file: PathBuf, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("{file}: {message}")]
    Invalid { file: PathBuf, message: String },
}

/// `readyd.toml`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the HTTP API and dashboard listen.
    pub listen: SocketAddr,
    /// The redb file holding the readiness state.
    pub data: PathBuf,
    /// Catalog files (readyd YAML, Backstage `catalog-info.yaml`).
    pub catalog_dir: PathBuf,
    /// Scorecards, `tiers.yaml`, initiatives.
    pub standards_dir: PathBuf,
    /// Plugin manifests and their wasm files.
    pub plugins_dir: PathBuf,
    /// Compiled plugin artifacts (safe to delete; rebuilt on demand).
    pub cache_dir: PathBuf,
    /// Public address of the dashboard, used for links in notifications.
    pub public_url: String,
    /// `text` or `json`.
    pub log_format: LogFormat,
    /// Default log filter (`RUST_LOG` wins when set).
    pub log_level: String,
    /// Whether requests without a token may read (the demo allows it; production should not).
    pub anonymous_read: bool,
    pub limits: Limits,
    pub watch: WatchConfig,
    pub outbox: OutboxConfig,
    /// API tokens and their roles.
    pub tokens: Vec<TokenConfig>,
    /// Notification channels by name.
    pub channels: BTreeMap<String, ChannelConfig>,
    /// Which events go to which channels.
    pub routes: Vec<RouteConfig>,
    /// Per-team settings (the team's own channel).
    pub teams: BTreeMap<String, TeamConfig>,
    /// Settings of `readyd demo` only.
    pub demo: DemoConfig,
    /// A PEM bundle of CA certificates trusted for outgoing https (an internal CA), on top of
    /// the operating system's roots.
    pub tls_ca_file: Option<PathBuf>,
    /// With `tls_key_file`: serve HTTPS with this PEM certificate chain (re-read when renewed).
    pub tls_cert_file: Option<PathBuf>,
    /// The PEM private key of `tls_cert_file`.
    pub tls_key_file: Option<PathBuf>,
    /// `HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY` of the environment given to [`Config::load`]
    /// (not a file key: proxies are the environment's business, as for every other tool).
    #[serde(skip)]
    pub proxy: crate::net::ProxySettings,
    /// How long a result that reads a data source which has not finished its first round for
    /// the entity stays quiet (no task, alert, level history or degradation) at most: humantime
    /// text such as `"60s"` or `"2m"`. `"0s"` turns the quiet first start off.
    #[serde(deserialize_with = "humantime_duration")]
    pub first_round_timeout: std::time::Duration,
    /// Bounds on exemptions.
    pub exemptions: ExemptionsConfig,
    /// What plugin manifests may be granted.
    pub plugins: PluginsConfig,
}

/// A duration written as humantime text (`"60s"`, `"2m"`, `"1m 30s"`).
fn humantime_duration<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<std::time::Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!(
            "`{text}` is not a duration such as \"60s\" or \"2m\": {e}"
        ))
    })
}

/// `[exemptions]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExemptionsConfig {
    /// How far ahead an exemption's `until` may be, in days (on request and on approval).
    pub max_days: u32,
}

impl Default for ExemptionsConfig {
    fn default() -> Self {
        ExemptionsConfig { max_days: 365 }
    }
}

/// `[plugins]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginsConfig {
    /// `[plugins.policy]`: the most any manifest may grant itself. Absent: manifests are bounded
    /// by nothing but their own validation (as before the policy existed).
    pub policy: Option<PluginPolicyConfig>,
}

/// `[plugins.policy]`, as written; compiled by [`crate::plugin::GrantPolicy`]. A list left out
/// of a configured policy allows nothing of its kind.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginPolicyConfig {
    /// Host patterns a manifest's `capabilities.http` must fall under: `api.github.com`,
    /// `*.github.com` (any subdomain), `127.0.0.1:*` (any port), `host:8080`.
    pub http: Vec<String>,
    /// Host directories (prefixes; relative to the config file) that `capabilities.dirs` may
    /// grant, compared after resolving `..` and symbolic links.
    pub dirs: Vec<PathBuf>,
    /// Environment variables `capabilities.secrets` may read: names, or patterns with `*`
    /// (`GITHUB_*`).
    pub secrets: Vec<String>,
}

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Bounds on requests, plugins and work.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest accepted request body; larger ones get 413.
    pub body_bytes: usize,
    /// Time allowed for a client to send its request headers.
    pub header_timeout_ms: u64,
    /// Time allowed for a client to send its request body.
    pub body_timeout_ms: u64,
    /// Plugin call timeout when the manifest names none.
    pub plugin_timeout_ms: u64,
    /// Plugin memory cap when the manifest names none.
    pub plugin_memory_mb: u64,
    /// Consecutive failures after which a plugin is parked.
    pub park_after_failures: u32,
    /// Live plugin instances the pooling allocator reserves room for.
    pub max_plugin_instances: u32,
    /// Data-source batches run at once.
    pub collect_concurrency: usize,
    /// Entities per data-source call.
    pub collect_batch: usize,
    /// Fact history entries kept per (entity, source).
    pub fact_history: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body_bytes: 1 << 20,
            header_timeout_ms: 5_000,
            body_timeout_ms: 10_000,
            plugin_timeout_ms: 2_000,
            plugin_memory_mb: 64,
            park_after_failures: 5,
            max_plugin_instances: 64,
            collect_concurrency: 4,
            collect_batch: 200,
            fact_history: 10,
        }
    }
}

/// File watching.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatchConfig {
    /// Whether the three directories are watched at all.
    pub enabled: bool,
    /// Quiet time after the last file event before a batch is reloaded.
    pub debounce_ms: u64,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            enabled: true,
            debounce_ms: 150,
        }
    }
}

/// Notification delivery.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxConfig {
    /// Attempts before a notification is dead-lettered.
    pub max_attempts: u32,
    /// Age after which an undelivered notification is dead-lettered.
    pub max_age_secs: u64,
    /// First retry delay; doubled per attempt, with jitter.
    pub backoff_initial_ms: u64,
    /// Largest retry delay.
    pub backoff_max_ms: u64,
    /// Per-request timeout.
    pub timeout_ms: u64,
    /// Notifications delivered at once.
    pub concurrency: usize,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            max_attempts: 12,
            max_age_secs: 24 * 3600,
            backoff_initial_ms: 500,
            backoff_max_ms: 5 * 60_000,
            timeout_ms: 5_000,
            concurrency: 8,
        }
    }
}

/// One API token.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds it: recorded as the actor of everything done with it.
    pub name: String,
    /// `viewer`, `ci`, `owner:<team>`, `approver` or `admin`.
    pub role: String,
    /// The token itself…
    #[serde(default)]
    pub token: Option<String>,
    /// …or its SHA-256 as hex, so the file need not hold the secret.
    #[serde(default)]
    pub sha256: Option<String>,
}

impl fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenConfig")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("sha256", &self.sha256.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// A notification channel. Its `url` is a credential for chat hooks (the token is in the path)
/// and `secret` is one: `Debug` shows the url redacted and never the secret.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    /// `slack`, `teams` or `webhook`.
    #[serde(rename = "type")]
    pub kind: ChannelKind,
    /// Where to POST.
    pub url: String,
    /// For `webhook`: the HMAC-SHA256 key (or `secret_env` naming an environment variable).
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub secret_env: Option<String>,
}

impl fmt::Debug for ChannelConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelConfig")
            .field("kind", &self.kind)
            .field("url", &crate::net::redact(&self.url))
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("secret_env", &self.secret_env)
            .finish()
    }
}

/// Kinds of channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    Slack,
    Teams,
    Webhook,
}

/// A route: events matching every non-empty selector go to `channels`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouteConfig {
    /// Event kinds (`entity.degraded`, `task.created`, ...); empty = all.
    pub events: Vec<String>,
    pub tiers: Vec<u8>,
    pub teams: Vec<String>,
    pub kinds: Vec<String>,
    pub scorecards: Vec<String>,
    /// Also send to the owning team's channel.
    pub team_channel: bool,
    pub channels: Vec<String>,
}

/// Per-team settings.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TeamConfig {
    /// The channel that gets this team's nudges and alerts.
    pub channel: Option<String>,
}

/// `readyd demo` settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DemoConfig {
    /// Where the local stand-in for the paging system and Prometheus listens.
    pub stand_in: SocketAddr,
    /// Its data directory.
    pub stand_in_dir: PathBuf,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            stand_in: "127.0.0.1:18090".parse().expect("static address"),
            stand_in_dir: PathBuf::from("stand-in"),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:7878".parse().expect("static address"),
            data: PathBuf::from(".readyd/readyd.redb"),
            catalog_dir: PathBuf::from("catalog"),
            standards_dir: PathBuf::from("standards"),
            plugins_dir: PathBuf::from("plugins"),
            cache_dir: PathBuf::from(".readyd/cache"),
            public_url: String::new(),
            log_format: LogFormat::Text,
            log_level: "info".into(),
            anonymous_read: false,
            limits: Limits::default(),
            watch: WatchConfig::default(),
            outbox: OutboxConfig::default(),
            tokens: Vec::new(),
            channels: BTreeMap::new(),
            routes: Vec::new(),
            teams: BTreeMap::new(),
            demo: DemoConfig::default(),
            first_round_timeout: std::time::Duration::from_secs(60),
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            proxy: crate::net::ProxySettings::default(),
            exemptions: ExemptionsConfig::default(),
            plugins: PluginsConfig::default(),
        }
    }
}

/// Command-line values that override the file and the environment.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub data: Option<PathBuf>,
}

impl Config {
    /// Read `file` (or use the defaults when `None`), apply `READYD_*` variables from `env`, then
    /// `overrides`, resolve relative paths and validate.
    pub fn load(
        file: Option<&Path>,
        env: &BTreeMap<String, String>,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        let (mut config, base, origin) = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    file: path.to_owned(),
                    source,
                })?;
                let config: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    file: path.to_owned(),
                    message: e.to_string(),
                })?;
                let base = path
                    .parent()
                    .map(Path::to_path_buf)
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or_else(|| PathBuf::from("."));
                (config, base, path.to_owned())
            }
            None => (
                Config::default(),
                PathBuf::from("."),
                PathBuf::from("<defaults>"),
            ),
        };
        config.apply_env(env)?;
        config.proxy = crate::net::ProxySettings::from_lookup(|var| env.get(var).cloned())
            .map_err(|e| ConfigError::Env {
                var: e.var,
                message: e.message,
            })?;
        if let Some(listen) = overrides.listen {
            config.listen = listen;
        }
        if let Some(data) = &overrides.data {
            // Flags are relative to where the command runs, not to the config file.
            config.data = absolute(Path::new("."), data);
        }
        let base = absolute(Path::new("."), &base);
        for path in [
            &mut config.data,
            &mut config.catalog_dir,
            &mut config.standards_dir,
            &mut config.plugins_dir,
            &mut config.cache_dir,
            &mut config.demo.stand_in_dir,
        ] {
            *path = absolute(&base, path);
        }
        for path in [
            &mut config.tls_ca_file,
            &mut config.tls_cert_file,
            &mut config.tls_key_file,
        ]
        .into_iter()
        .flatten()
        {
            *path = absolute(&base, path);
        }
        if let Some(policy) = &mut config.plugins.policy {
            for dir in &mut policy.dirs {
                *dir = absolute(&base, dir);
            }
        }
        if config.public_url.is_empty() {
            let scheme = if config.tls_cert_file.is_some() {
                "https"
            } else {
                "http"
            };
            config.public_url = format!("{scheme}://{}", config.listen);
        }
        config.validate(&origin)?;
        Ok(config)
    }

    fn apply_env(&mut self, env: &BTreeMap<String, String>) -> Result<(), ConfigError> {
        fn parse<T: std::str::FromStr>(var: &str, value: &str) -> Result<T, ConfigError>
        where
            T::Err: fmt::Display,
        {
            value.parse().map_err(|e: T::Err| ConfigError::Env {
                var: var.to_owned(),
                message: e.to_string(),
            })
        }
        for (var, value) in env.iter().filter(|(k, _)| k.starts_with("READYD_")) {
            match var.as_str() {
                "READYD_LISTEN" => self.listen = parse(var, value)?,
                "READYD_DATA" => self.data = PathBuf::from(value),
                "READYD_CATALOG_DIR" => self.catalog_dir = PathBuf::from(value),
                "READYD_STANDARDS_DIR" => self.standards_dir = PathBuf::from(value),
                "READYD_PLUGINS_DIR" => self.plugins_dir = PathBuf::from(value),
                "READYD_CACHE_DIR" => self.cache_dir = PathBuf::from(value),
                "READYD_PUBLIC_URL" => self.public_url = value.clone(),
                "READYD_LOG_FORMAT" => {
                    self.log_format = match value.as_str() {
                        "text" => LogFormat::Text,
                        "json" => LogFormat::Json,
                        _ => {
                            return Err(ConfigError::Env {
                                var: var.clone(),
                                message: "expected `text` or `json`".into(),
                            });
                        }
                    }
                }
                "READYD_LOG_LEVEL" => self.log_level = value.clone(),
                "READYD_ANONYMOUS_READ" => self.anonymous_read = parse(var, value)?,
                "READYD_WATCH" => self.watch.enabled = parse(var, value)?,
                "READYD_DEBOUNCE_MS" => self.watch.debounce_ms = parse(var, value)?,
                "READYD_BODY_BYTES" => self.limits.body_bytes = parse(var, value)?,
                "READYD_FIRST_ROUND_TIMEOUT" => {
                    self.first_round_timeout =
                        humantime::parse_duration(value).map_err(|e| ConfigError::Env {
                            var: var.clone(),
                            message: format!("expected a duration such as `60s`: {e}"),
                        })?;
                }
                "READYD_TLS_CA_FILE" => self.tls_ca_file = Some(PathBuf::from(value)),
                "READYD_TLS_CERT_FILE" => self.tls_cert_file = Some(PathBuf::from(value)),
                "READYD_TLS_KEY_FILE" => self.tls_key_file = Some(PathBuf::from(value)),
                // Variables meant for plugins (secrets) or other tools share the prefix; only
                // the ones above configure the daemon.
                _ => {}
            }
        }
        Ok(())
    }

    fn validate(&self, file: &Path) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            file: file.to_owned(),
            message,
        };
        let mut names = std::collections::BTreeSet::new();
        for token in &self.tokens {
            if !names.insert(token.name.as_str()) {
                return Err(invalid(format!(
                    "token name `{}` is used twice",
                    token.name
                )));
            }
            crate::config::Role::parse(&token.role)
                .map_err(|m| invalid(format!("token `{}`: {m}", token.name)))?;
            match (&token.token, &token.sha256) {
                // A token with surrounding spaces could never be presented as written (clients
                // and proxies trim header values): refuse it rather than load a dead token.
                (Some(t), None) if t.trim() != t => {
                    return Err(invalid(format!(
                        "token `{}`: the token has leading or trailing whitespace",
                        token.name
                    )));
                }
                (Some(t), None) if t.len() >= 8 => {}
                (Some(_), None) => {
                    return Err(invalid(format!(
                        "token `{}`: a token must be at least 8 characters",
                        token.name
                    )));
                }
                (None, Some(h)) if h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()) => {}
                (None, Some(_)) => {
                    return Err(invalid(format!(
                        "token `{}`: sha256 must be 64 hex digits",
                        token.name
                    )));
                }
                _ => {
                    return Err(invalid(format!(
                        "token `{}`: give exactly one of `token` and `sha256`",
                        token.name
                    )));
                }
            }
        }
        self.validate_unique_tokens().map_err(invalid)?;
        for (i, route) in self.routes.iter().enumerate() {
            for channel in &route.channels {
                if !self.channels.contains_key(channel) {
                    return Err(invalid(format!("routes[{i}]: unknown channel `{channel}`")));
                }
            }
        }
        for (team, t) in &self.teams {
            if let Some(channel) = &t.channel
                && !self.channels.contains_key(channel)
            {
                return Err(invalid(format!(
                    "teams.{team}: unknown channel `{channel}`"
                )));
            }
        }
        for (name, channel) in &self.channels {
            if !(channel.url.starts_with("http://") || channel.url.starts_with("https://")) {
                return Err(invalid(format!("channels.{name}: url must be http(s)")));
            }
        }
        match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(_), None) => {
                return Err(invalid(
                    "tls_cert_file is set without tls_key_file: HTTPS needs both".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "tls_key_file is set without tls_cert_file: HTTPS needs both".into(),
                ));
            }
            _ => {}
        }
        if self.exemptions.max_days == 0 {
            return Err(invalid("exemptions.max_days must be at least 1".into()));
        }
        if let Some(policy) = &self.plugins.policy {
            crate::plugin::GrantPolicy::compile(policy)
                .map_err(|m| invalid(format!("plugins.policy: {m}")))?;
        }
        if self.limits.body_bytes == 0 || self.limits.collect_batch == 0 {
            return Err(invalid("limits must be positive".into()));
        }
        Ok(())
    }
}

impl Config {
    /// Two entries for the same secret would make the first one's role win silently: every
    /// token is compared by its SHA-256 (plain ones hashed), and a plain token whose text is
    /// another entry's `sha256` (a hash pasted as a token) is refused too. Entries are named by
    /// name and position; the secret itself is never printed.
    fn validate_unique_tokens(&self) -> Result<(), String> {
        use sha2::{Digest, Sha256};
        let entry = |i: usize| format!("[[tokens]] #{} `{}`", i + 1, self.tokens[i].name);
        let mut seen: BTreeMap<[u8; 32], usize> = BTreeMap::new();
        for (i, token) in self.tokens.iter().enumerate() {
            let digest: [u8; 32] = match (&token.token, &token.sha256) {
                (Some(plain), None) => Sha256::digest(plain.as_bytes()).into(),
                (None, Some(hex_digest)) => match hex::decode(hex_digest) {
                    Ok(bytes) if bytes.len() == 32 => bytes.try_into().unwrap_or([0; 32]),
                    _ => continue,
                },
                _ => continue,
            };
            if let Some(&first) = seen.get(&digest) {
                return Err(format!(
                    "{} and {} are the same token: give each token its own value",
                    entry(first),
                    entry(i)
                ));
            }
            seen.insert(digest, i);
        }
        for (i, token) in self.tokens.iter().enumerate() {
            let Some(plain) = &token.token else { continue };
            if let Some(j) = self.tokens.iter().position(|other| {
                other
                    .sha256
                    .as_deref()
                    .is_some_and(|h| h.eq_ignore_ascii_case(plain))
            }) {
                return Err(format!(
                    "{}'s token is the sha256 of {}: a hash belongs in `sha256`, not in `token`",
                    entry(i),
                    entry(j)
                ));
            }
        }
        Ok(())
    }
}

/// What a token may do (DESIGN.md section 8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// Read everything.
    Viewer,
    /// Read, and ask the deploy gate.
    Ci,
    /// Read; request exemptions, tier changes and locks for this team's entities.
    Owner(String),
    /// Read; decide exemptions and tier requests.
    Approver,
    /// Everything.
    Admin,
}

impl Role {
    /// Parse `viewer`, `ci`, `owner:<team>`, `approver`, `admin`.
    pub fn parse(s: &str) -> Result<Role, String> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "ci" => Ok(Role::Ci),
            "approver" => Ok(Role::Approver),
            "admin" => Ok(Role::Admin),
            _ => match s.strip_prefix("owner:") {
                Some(team) if !team.is_empty() => Ok(Role::Owner(team.to_owned())),
                _ => Err(format!(
                    "unknown role `{s}` (expected viewer, ci, owner:<team>, approver or admin)"
                )),
            },
        }
    }
}

fn absolute(base: &Path, path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_owned()
    } else {
        base.join(path)
    };
    if joined.is_absolute() {
        joined
    } else {
        std::env::current_dir()
            .map(|cwd| cwd.join(&joined))
            .unwrap_or(joined)
    }
}

/// The process environment as a map (for [`Config::load`]).
pub fn process_env() -> BTreeMap<String, String> {
    std::env::vars().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_without_a_file() {
        let c = Config::load(None, &env(&[]), &Overrides::default()).unwrap();
        assert_eq!(c.listen.port(), 7878);
        assert!(c.data.is_absolute());
        assert_eq!(c.public_url, "http://127.0.0.1:7878");
    }

    #[test]
    fn paths_relative_to_file_env_and_flags_override() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("readyd.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\ncatalog_dir = \"cat\"\n[limits]\nbody_bytes = 42\n",
        )
        .unwrap();
        let c = Config::load(
            Some(&file),
            &env(&[("READYD_LISTEN", "127.0.0.1:9001"), ("READYD_OTHER", "x")]),
            &Overrides {
                listen: None,
                data: Some(PathBuf::from("/tmp/x.redb")),
            },
        )
        .unwrap();
        assert_eq!(c.listen.port(), 9001);
        assert_eq!(c.catalog_dir, dir.path().join("cat"));
        assert_eq!(c.data, PathBuf::from("/tmp/x.redb"));
        assert_eq!(c.limits.body_bytes, 42);
        let c = Config::load(
            Some(&file),
            &env(&[]),
            &Overrides {
                listen: Some("127.0.0.1:9002".parse().unwrap()),
                data: None,
            },
        )
        .unwrap();
        assert_eq!(c.listen.port(), 9002);
    }

    #[test]
    fn first_round_timeout_is_humantime_text() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("readyd.toml");
        assert_eq!(
            Config::default().first_round_timeout,
            std::time::Duration::from_secs(60)
        );
        std::fs::write(&file, "first_round_timeout = '1m 30s'").unwrap();
        let config = Config::load(Some(&file), &env(&[]), &Overrides::default()).unwrap();
        assert_eq!(
            config.first_round_timeout,
            std::time::Duration::from_secs(90)
        );
        let config = Config::load(
            Some(&file),
            &env(&[("READYD_FIRST_ROUND_TIMEOUT", "0s")]),
            &Overrides::default(),
        )
        .unwrap();
        assert!(config.first_round_timeout.is_zero());
        let err = Config::load(
            None,
            &env(&[("READYD_FIRST_ROUND_TIMEOUT", "later")]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("READYD_FIRST_ROUND_TIMEOUT"),
            "{err}"
        );
    }

    #[test]
    fn bad_files_are_refused_with_the_file_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("readyd.toml");
        for (text, needle) in [
            ("lisen = 1", "unknown field"),
            (
                "[[tokens]]\nname='a'\nrole='boss'\ntoken='12345678'",
                "unknown role",
            ),
            (
                "[[tokens]]\nname='a'\nrole='admin'\ntoken='1'",
                "at least 8",
            ),
            ("[[routes]]\nchannels=['nope']", "unknown channel"),
            ("first_round_timeout = 'soon'", "not a duration"),
            ("first_round_timeout = 60", "invalid type"),
        ] {
            std::fs::write(&file, text).unwrap();
            let err = Config::load(Some(&file), &env(&[]), &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains("readyd.toml"), "{err}");
            assert!(err.contains(needle), "{err} should mention {needle}");
        }
        let err = Config::load(
            None,
            &env(&[("READYD_LISTEN", "nope")]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("READYD_LISTEN"));
    }

    fn tokens_file(entries: &[(&str, &str, &str)]) -> String {
        entries
            .iter()
            .map(|(name, key, value)| {
                format!("[[tokens]]\nname = '{name}'\nrole = 'viewer'\n{key} = '{value}'\n")
            })
            .collect()
    }

    fn load_text(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("readyd.toml");
        std::fs::write(&file, text).unwrap();
        Config::load(Some(&file), &env(&[]), &Overrides::default())
    }

    // Review finding: two entries with the same value loaded silently (the first one's role
    // won), and a token with surrounding spaces loaded but could never authenticate.
    #[test]
    fn duplicate_tokens_are_refused_naming_both_entries() {
        use sha2::{Digest, Sha256};
        let hash = hex::encode(Sha256::digest(b"same-secret-1"));
        let upper = hash.to_uppercase();
        let cases = [
            vec![
                ("alice", "token", "same-secret-1"),
                ("bob", "token", "same-secret-1"),
            ],
            vec![
                ("alice", "token", "same-secret-1"),
                ("bob", "sha256", &hash),
            ],
            vec![
                ("alice", "sha256", &hash),
                ("carol", "token", "other-secret"),
                ("bob", "sha256", &upper),
            ],
        ];
        for entries in cases {
            let err = load_text(&tokens_file(&entries)).unwrap_err().to_string();
            assert!(err.contains("`alice`") && err.contains("`bob`"), "{err}");
            assert!(err.contains("same token"), "{err}");
            assert!(
                !err.contains("same-secret-1") && !err.contains(&hash),
                "{err}"
            );
        }
        // A plain token that is another entry's sha256 text.
        let err = load_text(&tokens_file(&[
            ("alice", "sha256", &hash),
            ("bob", "token", &hash),
        ]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("`bob`") && err.contains("`alice`"), "{err}");
        // Distinct tokens load.
        load_text(&tokens_file(&[
            ("alice", "token", "secret-one"),
            ("bob", "token", "secret-two"),
            ("carol", "sha256", &hash),
        ]))
        .unwrap();
    }

    #[test]
    fn tokens_with_surrounding_whitespace_are_refused() {
        for value in [" leading-space", "trailing-space ", "\ttabbed-token"] {
            let err = load_text(&tokens_file(&[("alice", "token", value)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains("token `alice`"), "{err}");
            assert!(err.contains("whitespace"), "{err}");
            assert!(!err.contains(value.trim()), "{err}");
        }
    }

    #[test]
    fn tls_keys_resolve_pair_up_and_proxies_come_from_the_given_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("readyd.toml");
        std::fs::write(&file, "tls_cert_file = \"tls/cert.pem\"\n").unwrap();
        let err = Config::load(Some(&file), &env(&[]), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("without tls_key_file"), "{err}");
        std::fs::write(&file, "tls_key_file = \"k.pem\"\n").unwrap();
        let err = Config::load(Some(&file), &env(&[]), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("without tls_cert_file"), "{err}");
        std::fs::write(
            &file,
            "tls_cert_file = \"tls/cert.pem\"\ntls_key_file = \"tls/key.pem\"\n",
        )
        .unwrap();
        let c = Config::load(
            Some(&file),
            &env(&[
                ("READYD_TLS_CA_FILE", "/etc/corp-ca.pem"),
                ("HTTPS_PROXY", "http://proxy.test:3128"),
                ("NO_PROXY", "internal.test"),
            ]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.tls_cert_file, Some(dir.path().join("tls/cert.pem")));
        assert_eq!(c.tls_key_file, Some(dir.path().join("tls/key.pem")));
        assert_eq!(c.tls_ca_file, Some(PathBuf::from("/etc/corp-ca.pem")));
        assert!(c.public_url.starts_with("https://"), "{}", c.public_url);
        assert!(c.proxy.for_target(true, "x.test").is_some());
        assert!(c.proxy.for_target(true, "internal.test").is_none());
        let err = Config::load(
            None,
            &env(&[("https_proxy", "socks5://p:1")]),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("https_proxy"), "{err}");
    }

    #[test]
    fn token_debug_is_redacted() {
        let t = TokenConfig {
            name: "ci".into(),
            role: "ci".into(),
            token: Some("supersecret".into()),
            sha256: None,
        };
        assert!(!format!("{t:?}").contains("supersecret"));
    }

    #[test]
    fn roles() {
        assert_eq!(Role::parse("owner:pay").unwrap(), Role::Owner("pay".into()));
        assert!(Role::parse("owner:").is_err());
        assert!(Role::parse("root").is_err());
    }
}
