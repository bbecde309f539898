//! `dependency-policy`: a check that no denied dependency is used and none is too old.
//!
//! Params: `{ "source": "repo-scan", "deny": ["left-pad"], "require": { "openssl": ">=3.0",
//! "log4j-core": ">=2.17.1" } }`. It reads `facts.<source>.dependencies`, a list of
//! `{name, version, ecosystem}` (as `repo-scan` reports it), and fails listing every offender:
//! each denied package present, and each package whose version does not satisfy its semver
//! requirement (versions are read leniently: `v1.2`, `1.1.1k` and `2.17.1.Final` are compared as
//! `1.2.0`, `1.1.1` and `2.17.1`). Requirements apply only to packages that are present. No
//! dependency facts from the source is a failure too: absence of evidence fails.

use std::collections::BTreeMap;

use readyd_plugin_sdk::{Check, Config, Entity, Facts, Outcome, Params, PluginError};
use semver::{Version, VersionReq};
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default = "default_source")]
    source: String,
    #[serde(default)]
    deny: Vec<String>,
    #[serde(default)]
    require: BTreeMap<String, String>,
}

fn default_source() -> String {
    "repo-scan".to_string()
}

#[derive(Debug, Deserialize)]
struct Dependency {
    name: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    ecosystem: Option<String>,
}

/// The dependency policy check.
#[derive(Debug)]
pub struct DependencyPolicy;

impl Check for DependencyPolicy {
    fn init(_config: Config) -> Result<Self, PluginError> {
        Ok(DependencyPolicy)
    }

    fn evaluate(&self, _: &Entity, facts: &Facts, params: &Params) -> Result<Outcome, PluginError> {
        let settings: Settings = params.deserialize()?;
        let mut requirements = Vec::new();
        for (name, requirement) in &settings.require {
            let parsed = VersionReq::parse(requirement).map_err(|e| {
                PluginError::invalid_config(format!(
                    "require.{name}: {requirement:?} is not a semver requirement: {e}"
                ))
            })?;
            requirements.push((name.as_str(), requirement.as_str(), parsed));
        }
        let source = settings.source.as_str();
        let Some(dependencies) = facts.get::<Vec<Dependency>>(source, "dependencies") else {
            return Ok(Outcome::fail(format!("no dependency facts from {source}")));
        };

        let mut offenders = Vec::new();
        for dependency in &dependencies {
            let version = dependency.version.as_deref().unwrap_or("");
            let label = match &dependency.ecosystem {
                Some(ecosystem) => format!("{} {version} ({ecosystem})", dependency.name),
                None => format!("{} {version}", dependency.name),
            };
            if settings.deny.contains(&dependency.name) {
                offenders.push(format!("{label} is denied"));
            }
            for (_, text, requirement) in
                requirements.iter().filter(|(n, ..)| *n == dependency.name)
            {
                match lenient_version(version) {
                    Some(parsed) if requirement.matches(&parsed) => {}
                    Some(_) => offenders.push(format!("{label} does not satisfy {text}")),
                    None => offenders.push(format!(
                        "{label}: the version cannot be compared with {text}"
                    )),
                }
            }
        }
        offenders.dedup();
        let details = json!({ "offenders": offenders, "dependencies_checked": dependencies.len() });
        let outcome = if offenders.is_empty() {
            Outcome::pass(format!(
                "{} dependencies checked, none denied or below requirement",
                dependencies.len()
            ))
        } else {
            Outcome::fail(format!(
                "{} offending dependencies: {}",
                offenders.len(),
                offenders.join("; ")
            ))
        };
        Ok(outcome.with_details(details))
    }
}

/// A semver version from how ecosystems actually write them: an optional `v`, one to three
/// numeric parts (letters after a number are dropped: `1.1.1k`), extra parts ignored
/// (`2.17.1.Final`); a proper semver pre-release is kept so `3.0.0-rc1 < 3.0.0`.
fn lenient_version(text: &str) -> Option<Version> {
    let text = text.trim().trim_start_matches(['v', 'V', '=']);
    if let Ok(version) = Version::parse(text) {
        return Some(version);
    }
    let core = text.split(['+', '-']).next()?;
    let mut numbers = [0u64; 3];
    let mut parts = 0;
    for (slot, part) in numbers.iter_mut().zip(core.split('.')) {
        let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
        if digits.is_empty() {
            break;
        }
        *slot = digits.parse().ok()?;
        parts += 1;
    }
    (parts > 0).then(|| Version::new(numbers[0], numbers[1], numbers[2]))
}

readyd_plugin_sdk::export!(DependencyPolicy as check);

#[cfg(test)]
mod tests {
    use super::*;
    use readyd_plugin_sdk::Status;
    use serde_json::Value;

    fn evaluate(facts: Facts, params: Value) -> Result<Outcome, PluginError> {
        DependencyPolicy.evaluate(
            &Entity::new("payments", "service"),
            &facts,
            &Params::from_json(params),
        )
    }

    fn deps(list: Value) -> Facts {
        Facts::new().with_source("repo-scan", json!({ "dependencies": list }))
    }

    fn policy() -> Value {
        json!({"deny": ["left-pad"], "require": {"openssl": ">=3.0", "log4j-core": ">=2.17.1"}})
    }

    #[test]
    fn passes_a_clean_dependency_list() {
        let facts = deps(json!([
            {"name": "openssl", "version": "3.0.13", "ecosystem": "cargo"},
            {"name": "log4j-core", "version": "2.17.1", "ecosystem": "maven"},
            {"name": "serde", "version": "1.0.228", "ecosystem": "cargo"},
        ]));
        let outcome = evaluate(facts, policy()).unwrap();
        assert_eq!(outcome.status, Status::Pass);
        assert_eq!(
            outcome.message(),
            "3 dependencies checked, none denied or below requirement"
        );
    }

    #[test]
    fn lists_every_offender() {
        let facts = deps(json!([
            {"name": "left-pad", "version": "1.3.0", "ecosystem": "npm"},
            {"name": "openssl", "version": "1.1.1k", "ecosystem": "cargo"},
            {"name": "log4j-core", "version": "2.14", "ecosystem": "maven"},
            {"name": "log4j-core", "version": "2.17.2", "ecosystem": "maven"},
            {"name": "openssl", "version": "latest"},
        ]));
        let outcome = evaluate(facts, policy()).unwrap();
        assert_eq!(outcome.status, Status::Fail);
        assert_eq!(
            outcome.details.as_ref().unwrap()["offenders"],
            json!([
                "left-pad 1.3.0 (npm) is denied",
                "openssl 1.1.1k (cargo) does not satisfy >=3.0",
                "log4j-core 2.14 (maven) does not satisfy >=2.17.1",
                "openssl latest: the version cannot be compared with >=3.0",
            ])
        );
        assert!(
            outcome
                .message()
                .starts_with("4 offending dependencies: left-pad 1.3.0 (npm) is denied; ")
        );
    }

    #[test]
    fn missing_facts_fail_naming_the_source() {
        let outcome = evaluate(Facts::new(), json!({"source": "scanner"})).unwrap();
        assert_eq!(
            (outcome.status, outcome.message()),
            (Status::Fail, "no dependency facts from scanner")
        );
        let wrong_shape = Facts::new().with_source("repo-scan", json!({"dependencies": "many"}));
        assert_eq!(
            evaluate(wrong_shape, json!({})).unwrap().message(),
            "no dependency facts from repo-scan"
        );
    }

    #[test]
    fn rejects_bad_requirements() {
        let err = evaluate(deps(json!([])), json!({"require": {"x": "newest"}})).unwrap_err();
        assert!(
            matches!(&err, PluginError::InvalidConfig(m) if m.contains("require.x")),
            "{err}"
        );
    }

    #[test]
    fn versions_are_read_leniently() {
        let v = |s: &str| lenient_version(s).map(|v| v.to_string());
        assert_eq!(v("1.2").as_deref(), Some("1.2.0"));
        assert_eq!(v("v0.9.1").as_deref(), Some("0.9.1"));
        assert_eq!(v("1.1.1k").as_deref(), Some("1.1.1"));
        assert_eq!(v("2.17.1.Final").as_deref(), Some("2.17.1"));
        assert_eq!(v("3.0.0-rc.1").as_deref(), Some("3.0.0-rc.1"));
        assert_eq!(v("3"), Some("3.0.0".into()));
        assert_eq!(v("latest"), None);
    }
}
