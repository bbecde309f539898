//! `github`: a data source that reads each entity's repository settings from GitHub's REST API.
//!
//! For every entity with a repository (`owner/name` from the configured property, default
//! `github.repo`, else the Backstage annotation `github.com/project-slug`, else `<owner>/<identifier>`
//! when `owner` is configured) it asks `api_url` (GitHub or GitHub Enterprise Server) for the
//! repository (default branch, archived, visibility), the default branch's protection, a
//! `CODEOWNERS` file where GitHub reads it, the Actions workflows, the open Dependabot alerts
//! (every page) and the latest release and deployment, and answers one facts object per entity
//! ([`GitHub`], facts built in [`facts`]). The HTTP side — the token, conditional requests,
//! the rate limit, paging — belongs to [`client`]. Work that does not fit this round (the rate
//! limit is spent, GitHub asked to back off, the round's time budget is used up) is deferred:
//! those entities are left out of the answer, so the daemon keeps their previous facts, and they
//! go first next round. A `404` is a fact (`false`), a `401` fails the collection as
//! `invalid-config`. The token is never logged or returned.

mod client;
mod facts;
mod time;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::Duration;

use readyd_plugin_sdk::{Config, DataSource, Entity, PluginError};
use serde::Deserialize;
use serde_json::Value;

use crate::client::{Client, ClientSettings, Halt};

/// What the plugin may ask GitHub about; `repository` is always asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Part {
    BranchProtection,
    Codeowners,
    Workflows,
    DependabotAlerts,
    Releases,
    Deployments,
}

const ALL_PARTS: [Part; 6] = [
    Part::BranchProtection,
    Part::Codeowners,
    Part::Workflows,
    Part::DependabotAlerts,
    Part::Releases,
    Part::Deployments,
];

/// No `deny_unknown_fields`: the daemon adds granted secrets to the config under their names.
#[derive(Debug, Deserialize)]
struct Settings {
    #[serde(default = "default_api_url")]
    api_url: String,
    #[serde(default = "default_token_secret")]
    token_secret: String,
    #[serde(default = "default_repo_property")]
    repo_property: String,
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    collect: Option<Vec<Part>>,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    #[serde(default = "default_reserve")]
    rate_limit_reserve: u64,
    #[serde(default = "default_budget_ms")]
    round_budget_ms: u64,
    #[serde(default = "default_cache_entries")]
    cache_entries: usize,
    #[serde(default = "default_max_pages")]
    max_pages: usize,
}

fn default_api_url() -> String {
    "https://api.github.com".into()
}
fn default_token_secret() -> String {
    "token".into()
}
fn default_repo_property() -> String {
    "github.repo".into()
}
fn default_timeout_ms() -> u64 {
    10_000
}
fn default_reserve() -> u64 {
    100
}
fn default_budget_ms() -> u64 {
    20_000
}
fn default_cache_entries() -> usize {
    100_000
}
fn default_max_pages() -> usize {
    50
}

/// The Backstage annotation naming a component's GitHub repository.
const SLUG_ANNOTATION: &str = "github.com/project-slug";

/// The GitHub data source.
pub struct GitHub {
    client: Client,
    parts: Vec<Part>,
    repo_property: String,
    owner: Option<String>,
    round_budget_ms: u64,
    /// When each repository was last collected (a sequence number): the least recently
    /// collected go first, so deferred work is done next round.
    refreshed: RefCell<HashMap<String, u64>>,
    sequence: Cell<u64>,
}

impl DataSource for GitHub {
    fn init(config: Config) -> Result<Self, PluginError> {
        Self::with_clock(config, Box::new(wall_clock_ms))
    }

    fn collect(&self, entities: &[Entity]) -> Result<Vec<(String, Value)>, PluginError> {
        self.client.begin_round();
        let started = self.client.now_ms();
        let mut targets = Vec::new();
        for entity in entities {
            match self.repository_of(entity) {
                Some(Ok(slug)) => targets.push((entity, slug)),
                Some(Err(reason)) => {
                    readyd_plugin_sdk::warn!("{}: {reason}; skipped", entity.identifier)
                }
                None => readyd_plugin_sdk::debug!(
                    "{}: no GitHub repository ({}, annotation {SLUG_ANNOTATION}); skipped",
                    entity.identifier,
                    self.repo_property
                ),
            }
        }
        {
            let refreshed = self.refreshed.borrow();
            targets.sort_by_key(|(_, slug)| refreshed.get(slug).copied().unwrap_or(0));
        }

        let mut collected = Vec::new();
        let mut failed = 0usize;
        let mut first_failure = None;
        let mut deferred = None;
        for (done, (entity, slug)) in targets.iter().enumerate() {
            if self.client.now_ms().saturating_sub(started) >= self.round_budget_ms {
                deferred = Some((
                    done,
                    format!("round budget of {} ms used", self.round_budget_ms),
                ));
                break;
            }
            match self.collect_repository(slug) {
                Ok(facts) => {
                    let next = self.sequence.get() + 1;
                    self.sequence.set(next);
                    self.refreshed.borrow_mut().insert(slug.clone(), next);
                    collected.push((entity.identifier.clone(), facts));
                }
                Err(Halt::Deferred { until, why }) => {
                    deferred = Some((
                        done,
                        format!(
                            "{why}; GitHub is asked again after {}",
                            time::format_unix(until)
                        ),
                    ));
                    break;
                }
                Err(Halt::Unauthorized(reason)) => return Err(PluginError::invalid_config(reason)),
                Err(Halt::Failed(reason)) => {
                    readyd_plugin_sdk::warn!("{} ({slug}): {reason}", entity.identifier);
                    failed += 1;
                    first_failure.get_or_insert(reason);
                }
            }
        }
        let counts = self.client.counts();
        if let Some((done, why)) = &deferred {
            readyd_plugin_sdk::info!(
                "{} of {} repositories deferred ({why}); they keep their previous facts",
                targets.len() - done,
                targets.len()
            );
        }
        readyd_plugin_sdk::info!(
            "{} repositories collected, {} failed: {} requests, {} answered 304 Not Modified, {} answers remembered",
            collected.len(),
            failed,
            counts.sent,
            counts.not_modified,
            self.client.cached_entries()
        );
        if collected.is_empty() && failed > 0 && deferred.is_none() {
            return Err(PluginError::unavailable(format!(
                "all {failed} repositories failed; the first: {}",
                first_failure.unwrap_or_default()
            )));
        }
        Ok(collected)
    }
}

impl GitHub {
    /// `init` with another clock (Unix milliseconds): the tests' way to move time.
    pub(crate) fn with_clock(
        config: Config,
        clock: Box<dyn Fn() -> u64>,
    ) -> Result<Self, PluginError> {
        let settings: Settings = config.deserialize()?;
        let api_url = settings.api_url.trim_end_matches('/').to_string();
        if !api_url.starts_with("http://") && !api_url.starts_with("https://") {
            return Err(PluginError::invalid_config(format!(
                "api_url {api_url:?} must start with https:// (or http:// for a local stand-in)"
            )));
        }
        if api_url.contains('?') || api_url.contains('#') || api_url.contains('@') {
            return Err(PluginError::invalid_config(format!(
                "api_url {api_url:?} must be a plain URL such as https://ghe.example/api/v3"
            )));
        }
        let token = config
            .secret(&settings.token_secret)
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| {
                PluginError::invalid_config(format!(
                    "token_secret names {:?}, but no such secret was granted (add it under [capabilities] secrets)",
                    settings.token_secret
                ))
            })?
            .trim()
            .to_string();
        if settings.repo_property.trim().is_empty() {
            return Err(PluginError::invalid_config(
                "repo_property must not be empty",
            ));
        }
        if let Some(owner) = &settings.owner
            && !valid_name(owner)
        {
            return Err(PluginError::invalid_config(format!(
                "owner {owner:?} is not a GitHub account name"
            )));
        }
        if settings.max_pages == 0 {
            return Err(PluginError::invalid_config("max_pages must be at least 1"));
        }
        let parts = match settings.collect {
            None => ALL_PARTS.to_vec(),
            Some(mut parts) => {
                parts.sort_by_key(|p| ALL_PARTS.iter().position(|a| a == p));
                parts.dedup();
                parts
            }
        };
        let client = Client::new(
            ClientSettings {
                base: api_url,
                token,
                timeout: Duration::from_millis(settings.timeout_ms.max(1)),
                reserve: settings.rate_limit_reserve,
                cache_entries: settings.cache_entries,
                max_pages: settings.max_pages,
            },
            clock,
        );
        Ok(GitHub {
            client,
            parts,
            repo_property: settings.repo_property,
            owner: settings.owner,
            round_budget_ms: settings.round_budget_ms.max(1),
            refreshed: RefCell::new(HashMap::new()),
            sequence: Cell::new(0),
        })
    }

    /// The entity's repository as `owner/name`: `None` when it names none, `Err` when what it
    /// names is not a repository.
    fn repository_of(&self, entity: &Entity) -> Option<Result<String, String>> {
        let properties = entity.properties();
        let from_property = entity
            .property::<String>(&self.repo_property)
            .or_else(|| {
                // A flat key with a dot in it (`"github.repo": "a/b"`) reads as well.
                properties
                    .get(&self.repo_property)
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .map(|v| (v, self.repo_property.as_str()));
        let from_annotation = || {
            properties
                .get("annotations")
                .and_then(|a| a.get(SLUG_ANNOTATION))
                .and_then(Value::as_str)
                .map(|v| (v.to_string(), "annotation github.com/project-slug"))
        };
        let from_owner = || {
            self.owner
                .as_ref()
                .map(|owner| (format!("{owner}/{}", entity.identifier), "owner/identifier"))
        };
        let (value, origin) = from_property.or_else(from_annotation).or_else(from_owner)?;
        Some(parse_slug(&value).ok_or_else(|| {
            format!("{origin} is {value:?}, which is not a GitHub repository (owner/name)")
        }))
    }

    /// Everything the plugin knows about one repository.
    fn collect_repository(&self, slug: &str) -> Result<Value, Halt> {
        facts::collect(&self.client, &self.parts, slug)
    }
}

/// `owner/name` from `owner/name`, `https://github.com/owner/name(.git)` or
/// `git@github.com:owner/name.git`; `None` if it is none of these.
fn parse_slug(text: &str) -> Option<String> {
    let text = text.trim();
    let text = text
        .strip_prefix("git@")
        .and_then(|rest| rest.split_once(':').map(|(_, path)| path))
        .or_else(|| {
            text.split_once("://")
                .and_then(|(_, rest)| rest.split_once('/').map(|(_, path)| path))
        })
        .unwrap_or(text);
    let text = text.trim_end_matches('/');
    let text = text.strip_suffix(".git").unwrap_or(text);
    let (owner, name) = text.split_once('/')?;
    (valid_name(owner) && valid_name(name) && name != "." && name != "..")
        .then(|| format!("{owner}/{name}"))
}

/// A GitHub account or repository name: letters, digits, `-`, `_`, `.`.
fn valid_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 100
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn wall_clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

readyd_plugin_sdk::export!(GitHub as data_source);

#[cfg(test)]
mod tests;
