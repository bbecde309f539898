//! `repo-scan`: a data source that reads readiness facts from repository checkouts.
//!
//! Config: `{ "root": "/repos" }` — the guest path of a read-only directory the manifest grants
//! (`[capabilities] dirs = { "/repos" = "/srv/checkouts" }`). For each entity the checkout is
//! `<root>/<properties.repo_path>` when that property is set, else `<root>/<identifier>`.
//! Facts per entity: `checkout`, `has_readme`, `has_codeowners`, `codeowners_teams`,
//! `ci {github_actions, gitlab_ci, provider}`, `has_dockerfile`, `has_runbook`, `has_docs`,
//! `has_tests`, `dependency_manifests`, `has_lockfile`, `license`, `dependencies`
//! (`[{name, version, ecosystem}]`, read by the `dependency-policy` check) and, when a lockfile
//! cannot be parsed, `dependency_errors`. An entity without a checkout gets
//! `{"checkout": false}`. The plugin only reads, and only below `root`.

mod dependencies;
mod license;

use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use readyd_plugin_sdk::{Config, DataSource, Entity, PluginError};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::dependencies::Dependency;

/// Manifests that name a project's dependencies, checked at the checkout's root.
const MANIFESTS: &[&str] = &[
    "Cargo.toml",
    "package.json",
    "go.mod",
    "requirements.txt",
    "pyproject.toml",
    "Pipfile",
    "setup.py",
    "pom.xml",
    "build.gradle",
    "build.gradle.kts",
    "Gemfile",
    "composer.json",
    "mix.exs",
];

/// Lockfiles that pin resolved versions.
const LOCKFILES: &[&str] = &[
    "Cargo.lock",
    "package-lock.json",
    "npm-shrinkwrap.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "go.sum",
    "poetry.lock",
    "Pipfile.lock",
    "uv.lock",
    "Gemfile.lock",
    "composer.lock",
    "mix.lock",
];

/// Where a CODEOWNERS file may live, in GitHub's and GitLab's lookup order.
const CODEOWNERS: &[&str] = &[
    "CODEOWNERS",
    ".github/CODEOWNERS",
    "docs/CODEOWNERS",
    ".gitlab/CODEOWNERS",
];

/// Lockfiles larger than this are reported, not parsed: facts must stay small.
const MAX_LOCKFILE_BYTES: u64 = 32 * 1024 * 1024;

/// No `deny_unknown_fields`: the daemon adds granted secrets to the config under their names.
#[derive(Debug, Deserialize)]
struct Settings {
    #[serde(default = "default_root")]
    root: PathBuf,
}

fn default_root() -> PathBuf {
    PathBuf::from("/repos")
}

/// The repository scanner.
#[derive(Debug)]
pub struct RepoScan {
    root: PathBuf,
}

impl DataSource for RepoScan {
    fn init(config: Config) -> Result<Self, PluginError> {
        let settings: Settings = config.deserialize()?;
        Ok(RepoScan {
            root: settings.root,
        })
    }

    fn collect(&self, entities: &[Entity]) -> Result<Vec<(String, Value)>, PluginError> {
        if !self.root.is_dir() {
            return Err(PluginError::unavailable(format!(
                "root {} is not a readable directory (is it granted in the manifest's dirs?)",
                self.root.display()
            )));
        }
        Ok(entities
            .iter()
            .map(|e| (e.identifier.clone(), self.scan_entity(e)))
            .collect())
    }
}

impl RepoScan {
    fn scan_entity(&self, entity: &Entity) -> Value {
        let relative = entity
            .property::<String>("repo_path")
            .unwrap_or_else(|| entity.identifier.clone());
        if !is_contained(Path::new(&relative)) {
            readyd_plugin_sdk::warn!(
                "{}: repo_path {relative:?} leaves the root",
                entity.identifier
            );
            return json!({ "checkout": false, "error": "repo_path must be a relative path inside the root" });
        }
        let checkout = self.root.join(&relative);
        if !checkout.is_dir() {
            return json!({ "checkout": false });
        }
        scan(&checkout)
    }
}

/// A relative path without `..`: joining it to the root stays below the root.
fn is_contained(path: &Path) -> bool {
    !path.as_os_str().is_empty()
        && path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// Every fact about the checkout at `dir`.
fn scan(dir: &Path) -> Value {
    let root_names = list_names(dir);
    let has_root_file =
        |name: &str| root_names.iter().any(|n| n == name) && dir.join(name).is_file();
    let has_dir = |name: &str| dir.join(name).is_dir();

    let has_readme = root_names
        .iter()
        .any(|n| n.to_ascii_lowercase().starts_with("readme") && dir.join(n).is_file());
    let codeowners = CODEOWNERS.iter().map(|p| dir.join(p)).find(|p| p.is_file());
    let codeowners_teams = codeowners
        .as_ref()
        .and_then(|p| fs::read_to_string(p).ok())
        .map(|text| parse_codeowners(&text))
        .unwrap_or_default();

    let github_actions = list_names(&dir.join(".github/workflows"))
        .iter()
        .any(|n| n.ends_with(".yml") || n.ends_with(".yaml"));
    let gitlab_ci = has_root_file(".gitlab-ci.yml");
    let provider = if github_actions {
        Some("github_actions")
    } else if gitlab_ci {
        Some("gitlab_ci")
    } else if dir.join(".circleci/config.yml").is_file() {
        Some("circleci")
    } else if has_root_file("Jenkinsfile") {
        Some("jenkins")
    } else if has_root_file("azure-pipelines.yml") {
        Some("azure_pipelines")
    } else if has_root_file(".travis.yml") {
        Some("travis")
    } else if has_root_file("bitbucket-pipelines.yml") {
        Some("bitbucket_pipelines")
    } else {
        None
    };

    let has_dockerfile = root_names.iter().any(|n| {
        let lower = n.to_ascii_lowercase();
        lower == "dockerfile"
            || lower == "containerfile"
            || lower.starts_with("dockerfile.")
            || lower.ends_with(".dockerfile")
    });
    let has_runbook = has_dir("runbook")
        || has_dir("runbooks")
        || root_names
            .iter()
            .any(|n| n.to_ascii_lowercase().starts_with("runbook"))
        || list_names(&dir.join("docs"))
            .iter()
            .any(|n| n.to_ascii_lowercase().starts_with("runbook"));
    let has_docs = ["docs", "doc", "documentation"]
        .iter()
        .any(|d| !list_names(&dir.join(d)).is_empty())
        || has_root_file("mkdocs.yml");
    let has_tests = ["tests", "test", "spec", "__tests__", "src/test", "testing"]
        .iter()
        .any(|d| has_dir(d));
    let dependency_manifests: Vec<&str> = MANIFESTS
        .iter()
        .copied()
        .filter(|m| has_root_file(m))
        .collect();
    let has_lockfile = LOCKFILES.iter().any(|l| has_root_file(l));
    let license = license::LICENSE_FILES
        .iter()
        .find(|name| has_root_file(name))
        .map(|name| license::detect(&read_head(&dir.join(name), license::HEAD_BYTES)));

    let (dependencies, dependency_errors) = read_dependencies(dir, &has_root_file);

    let mut facts = json!({
        "checkout": true,
        "has_readme": has_readme,
        "has_codeowners": codeowners.is_some(),
        "codeowners_teams": codeowners_teams,
        "ci": { "github_actions": github_actions, "gitlab_ci": gitlab_ci, "provider": provider },
        "has_dockerfile": has_dockerfile,
        "has_runbook": has_runbook,
        "has_docs": has_docs,
        "has_tests": has_tests,
        "dependency_manifests": dependency_manifests,
        "has_lockfile": has_lockfile,
        "license": license,
        "dependencies": dependencies,
    });
    if !dependency_errors.is_empty() {
        facts["dependency_errors"] = json!(dependency_errors);
    }
    facts
}

/// Reads one lockfile's or manifest's text.
type DependencyParser = fn(&str) -> Result<Vec<Dependency>, String>;

/// Dependencies from every lockfile or manifest the checkout has, deduplicated and sorted, plus
/// the reasons of the files that could not be read.
fn read_dependencies(
    dir: &Path,
    has_root_file: &dyn Fn(&str) -> bool,
) -> (Vec<Dependency>, Vec<String>) {
    let mut dependencies = Vec::new();
    let mut errors = Vec::new();
    let sources: [(&str, DependencyParser); 4] = [
        ("Cargo.lock", dependencies::parse_cargo_lock),
        ("package-lock.json", dependencies::parse_package_lock),
        ("go.mod", |t| Ok(dependencies::parse_go_mod(t))),
        ("requirements.txt", |t| {
            Ok(dependencies::parse_requirements(t))
        }),
    ];
    for (name, parse) in sources {
        if !has_root_file(name) {
            continue;
        }
        let path = dir.join(name);
        match fs::metadata(&path) {
            Ok(meta) if meta.len() > MAX_LOCKFILE_BYTES => {
                errors.push(format!(
                    "{name}: {} bytes, larger than the {MAX_LOCKFILE_BYTES}-byte limit",
                    meta.len()
                ));
                continue;
            }
            Err(e) => {
                errors.push(format!("{name}: {e}"));
                continue;
            }
            Ok(_) => {}
        }
        match fs::read_to_string(&path)
            .map_err(|e| format!("{name}: {e}"))
            .and_then(|t| parse(&t))
        {
            Ok(found) => dependencies.extend(found),
            Err(e) => errors.push(e),
        }
    }
    dependencies.sort();
    dependencies.dedup();
    (dependencies, errors)
}

/// Every owner named in a CODEOWNERS file (`@org/team`, `@user`, `someone@example.com`), sorted
/// and without duplicates.
fn parse_codeowners(text: &str) -> Vec<String> {
    let mut owners: Vec<String> = text
        .lines()
        .map(|line| line.split('#').next().unwrap_or_default().trim())
        // GitLab section headers (`[Docs]`, `^[Optional] @owner`) may carry default owners.
        .filter(|line| !line.is_empty())
        .flat_map(|line| line.split_whitespace().skip(1))
        .filter(|word| word.contains('@'))
        .map(str::to_string)
        .collect();
    owners.sort();
    owners.dedup();
    owners
}

/// The names in `dir`, or nothing when it is not a readable directory.
fn list_names(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Up to `limit` bytes of the file, lossily decoded.
fn read_head(path: &Path, limit: usize) -> String {
    let mut head = Vec::new();
    if let Ok(file) = fs::File::open(path) {
        let _ = file.take(limit as u64).read_to_end(&mut head);
    }
    String::from_utf8_lossy(&head).into_owned()
}

readyd_plugin_sdk::export!(RepoScan as data_source);

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, path: &str, text: &str) {
        let path = root.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn plugin(root: &Path) -> RepoScan {
        RepoScan::init(Config::from_json(json!({ "root": root }))).unwrap()
    }

    fn facts_of(root: &Path, entity: Entity) -> Value {
        let mut out = plugin(root).collect(&[entity]).unwrap();
        assert_eq!(out.len(), 1);
        out.remove(0).1
    }

    #[test]
    fn a_well_kept_repository_has_every_fact() {
        let root = tempfile::tempdir().unwrap();
        let repo = root.path().join("payments");
        let r = repo.as_path();
        write(r, "README.md", "# Payments");
        write(
            r,
            ".github/CODEOWNERS",
            "# owners\n* @acme/payments @acme/sre\n/docs/ @acme/writers # docs\n*.rs @acme/payments\n",
        );
        write(r, ".github/workflows/ci.yml", "on: push");
        write(r, "Dockerfile", "FROM scratch");
        write(r, "docs/runbook.md", "restart it");
        write(r, "tests/it.rs", "");
        write(
            r,
            "LICENSE",
            "                                 Apache License\n                           Version 2.0, January 2004\n",
        );
        write(r, "Cargo.toml", "[package]\nname = \"payments\"\n");
        write(
            r,
            "Cargo.lock",
            "version = 4\n[[package]]\nname = \"payments\"\nversion = \"0.1.0\"\n\n[[package]]\nname = \"openssl\"\nversion = \"0.10.72\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n",
        );
        write(
            r,
            "go.mod",
            "module x\nrequire github.com/pkg/errors v0.9.1\n",
        );

        let facts = facts_of(root.path(), Entity::new("payments", "service"));
        assert_eq!(facts["checkout"], true);
        assert_eq!(facts["has_readme"], true);
        assert_eq!(facts["has_codeowners"], true);
        assert_eq!(
            facts["codeowners_teams"],
            json!(["@acme/payments", "@acme/sre", "@acme/writers"])
        );
        assert_eq!(
            facts["ci"],
            json!({"github_actions": true, "gitlab_ci": false, "provider": "github_actions"})
        );
        assert_eq!(facts["has_dockerfile"], true);
        assert_eq!(facts["has_runbook"], true);
        assert_eq!(facts["has_docs"], true);
        assert_eq!(facts["has_tests"], true);
        assert_eq!(
            facts["dependency_manifests"],
            json!(["Cargo.toml", "go.mod"])
        );
        assert_eq!(facts["has_lockfile"], true);
        assert_eq!(facts["license"], "Apache-2.0");
        assert_eq!(
            facts["dependencies"],
            json!([
                {"name": "github.com/pkg/errors", "version": "v0.9.1", "ecosystem": "go"},
                {"name": "openssl", "version": "0.10.72", "ecosystem": "cargo"},
            ])
        );
        assert!(facts.get("dependency_errors").is_none());
    }

    #[test]
    fn a_bare_repository_reports_what_is_missing() {
        let root = tempfile::tempdir().unwrap();
        write(root.path(), "bare/main.py", "print()");
        write(root.path(), "bare/.gitlab-ci.yml", "stages: []");
        write(root.path(), "bare/package-lock.json", "{not json");
        let facts = facts_of(root.path(), Entity::new("bare", "service"));
        assert_eq!(facts["has_readme"], false);
        assert_eq!(facts["has_codeowners"], false);
        assert_eq!(facts["codeowners_teams"], json!([]));
        assert_eq!(facts["ci"]["provider"], "gitlab_ci");
        assert_eq!(facts["has_dockerfile"], false);
        assert_eq!(facts["has_runbook"], false);
        assert_eq!(facts["has_docs"], false);
        assert_eq!(facts["has_tests"], false);
        assert_eq!(facts["license"], Value::Null);
        assert_eq!(facts["has_lockfile"], true);
        assert_eq!(facts["dependencies"], json!([]));
        assert!(
            facts["dependency_errors"][0]
                .as_str()
                .unwrap()
                .starts_with("package-lock.json")
        );
    }

    #[test]
    fn repo_path_property_chooses_the_checkout_and_cannot_escape() {
        let root = tempfile::tempdir().unwrap();
        write(root.path(), "mono/svc-a/README", "hi");
        let entity = Entity::new("svc-a", "service").with_property("repo_path", "mono/svc-a");
        assert_eq!(facts_of(root.path(), entity)["has_readme"], true);
        let escaping = Entity::new("x", "service").with_property("repo_path", "../etc");
        assert_eq!(facts_of(root.path(), escaping)["checkout"], false);
        let absolute = Entity::new("y", "service").with_property("repo_path", "/etc");
        assert_eq!(facts_of(root.path(), absolute)["checkout"], false);
    }

    #[test]
    fn entities_without_checkout_and_a_missing_root() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(
            facts_of(root.path(), Entity::new("ghost", "service")),
            json!({"checkout": false})
        );
        let gone = plugin(&root.path().join("nope")).collect(&[Entity::new("a", "service")]);
        assert!(matches!(gone, Err(PluginError::Unavailable(_))));
        assert!(RepoScan::init(Config::from_json(json!({"root": 5}))).is_err());
    }

    #[test]
    fn codeowners_owners_are_collected_once() {
        let text = "* @a/team\n\n[Section] @b/default\n/x @a/team dev@example.com\n# @ignored\n";
        assert_eq!(
            parse_codeowners(text),
            ["@a/team", "@b/default", "dev@example.com"]
        );
    }
}
