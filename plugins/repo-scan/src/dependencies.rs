//! Dependency lists from lockfiles and manifests: `Cargo.lock`, `package-lock.json` (v1, v2,
//! v3), `go.mod` `require` lines and pinned `requirements.txt` lines.
//!
//! Each parser takes the file's text and returns `{name, version, ecosystem}` records; a file it
//! cannot parse yields an error string that the scan reports as a fact rather than failing the
//! whole collection. Parsers never read files themselves.

use serde::Serialize;
use serde_json::Value;

/// One resolved dependency of a repository.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub(crate) struct Dependency {
    /// The package name in its ecosystem (`serde`, `@types/node`, `golang.org/x/net`).
    pub(crate) name: String,
    /// The version as the lockfile writes it (`1.0.228`, `v0.38.0`).
    pub(crate) version: String,
    /// `cargo`, `npm`, `go` or `pypi`.
    pub(crate) ecosystem: &'static str,
}

impl Dependency {
    fn new(name: &str, version: &str, ecosystem: &'static str) -> Self {
        Self {
            name: name.to_string(),
            version: version.to_string(),
            ecosystem,
        }
    }
}

/// The registry packages of a `Cargo.lock` (workspace and path crates have no `source`).
pub(crate) fn parse_cargo_lock(text: &str) -> Result<Vec<Dependency>, String> {
    let lock: toml::Table = text.parse().map_err(|e| format!("Cargo.lock: {e}"))?;
    let packages = lock
        .get("package")
        .and_then(toml::Value::as_array)
        .cloned()
        .unwrap_or_default();
    Ok(packages
        .iter()
        .filter(|p| p.get("source").is_some())
        .filter_map(|p| {
            let name = p.get("name")?.as_str()?;
            let version = p.get("version")?.as_str()?;
            Some(Dependency::new(name, version, "cargo"))
        })
        .collect())
}

/// The installed packages of a `package-lock.json`: the `packages` map of lockfile v2/v3, or
/// the nested `dependencies` of v1.
pub(crate) fn parse_package_lock(text: &str) -> Result<Vec<Dependency>, String> {
    let lock: Value = serde_json::from_str(text).map_err(|e| format!("package-lock.json: {e}"))?;
    let mut out = Vec::new();
    if let Some(packages) = lock.get("packages").and_then(Value::as_object) {
        for (path, package) in packages {
            // The root project is the "" key; linked workspace packages are not dependencies.
            if path.is_empty() || package.get("link").and_then(Value::as_bool) == Some(true) {
                continue;
            }
            let name = package
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_else(|| {
                    path.rsplit_once("node_modules/")
                        .map_or(path.as_str(), |(_, name)| name)
                });
            if let Some(version) = package.get("version").and_then(Value::as_str) {
                out.push(Dependency::new(name, version, "npm"));
            }
        }
    } else if let Some(dependencies) = lock.get("dependencies") {
        collect_v1(dependencies, &mut out);
    }
    Ok(out)
}

fn collect_v1(dependencies: &Value, out: &mut Vec<Dependency>) {
    for (name, package) in dependencies.as_object().into_iter().flatten() {
        if let Some(version) = package.get("version").and_then(Value::as_str) {
            out.push(Dependency::new(name, version, "npm"));
        }
        if let Some(nested) = package.get("dependencies") {
            collect_v1(nested, out);
        }
    }
}

/// The `require` directives of a `go.mod`, both the one-line and the block form.
pub(crate) fn parse_go_mod(text: &str) -> Vec<Dependency> {
    let mut out = Vec::new();
    let mut in_block = false;
    for line in text.lines() {
        let line = line.split("//").next().unwrap_or_default().trim();
        if in_block {
            if line == ")" {
                in_block = false;
            } else if let Some(dep) = go_requirement(line) {
                out.push(dep);
            }
        } else if let Some(rest) = line.strip_prefix("require") {
            let rest = rest.trim();
            if rest == "(" {
                in_block = true;
            } else if let Some(dep) = go_requirement(rest) {
                out.push(dep);
            }
        }
    }
    out
}

fn go_requirement(line: &str) -> Option<Dependency> {
    let mut words = line.split_whitespace();
    let (name, version) = (words.next()?, words.next()?);
    Some(Dependency::new(name, version, "go"))
}

/// The exactly pinned (`name==version`) lines of a `requirements.txt`.
pub(crate) fn parse_requirements(text: &str) -> Vec<Dependency> {
    text.lines()
        .filter_map(|line| {
            let line = line.split('#').next().unwrap_or_default().trim();
            let line = line.split(';').next().unwrap_or_default().trim();
            let (name, version) = line.split_once("==")?;
            let name = name.split('[').next().unwrap_or_default().trim();
            let version = version.split(',').next().unwrap_or_default().trim();
            (!name.is_empty() && !version.is_empty())
                .then(|| Dependency::new(name, version, "pypi"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_lock_lists_registry_packages_only() {
        let text = r#"
version = 4

[[package]]
name = "my-service"
version = "0.1.0"
dependencies = ["serde"]

[[package]]
name = "serde"
version = "1.0.228"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "abc"

[[package]]
name = "openssl"
version = "0.10.72"
source = "registry+https://github.com/rust-lang/crates.io-index"
"#;
        let deps = parse_cargo_lock(text).unwrap();
        assert_eq!(
            deps,
            [
                Dependency::new("serde", "1.0.228", "cargo"),
                Dependency::new("openssl", "0.10.72", "cargo")
            ]
        );
        assert!(parse_cargo_lock("[[package]\n").is_err());
    }

    #[test]
    fn package_lock_v3_uses_the_packages_map() {
        let text = r#"{
  "name": "web", "lockfileVersion": 3,
  "packages": {
    "": { "name": "web", "version": "1.0.0" },
    "node_modules/left-pad": { "version": "1.3.0" },
    "node_modules/@types/node": { "version": "20.11.5" },
    "node_modules/a/node_modules/b": { "version": "2.0.0" },
    "packages/shared": { "link": true },
    "node_modules/aliased": { "name": "real-name", "version": "3.1.0" }
  }
}"#;
        let deps = parse_package_lock(text).unwrap();
        let pairs: Vec<_> = deps
            .iter()
            .map(|d| (d.name.as_str(), d.version.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("left-pad", "1.3.0"),
                ("@types/node", "20.11.5"),
                ("b", "2.0.0"),
                ("real-name", "3.1.0")
            ]
        );
    }

    #[test]
    fn package_lock_v1_walks_nested_dependencies() {
        let text = r#"{"lockfileVersion": 1, "dependencies": {
            "express": {"version": "4.18.2", "dependencies": {"qs": {"version": "6.11.0"}}}
        }}"#;
        let deps = parse_package_lock(text).unwrap();
        assert_eq!(
            deps,
            [
                Dependency::new("express", "4.18.2", "npm"),
                Dependency::new("qs", "6.11.0", "npm")
            ]
        );
        assert!(parse_package_lock("{").is_err());
    }

    #[test]
    fn go_mod_reads_single_and_block_requires() {
        let text = "module example.com/svc\n\ngo 1.22\n\nrequire github.com/pkg/errors v0.9.1\n\nrequire (\n\tgolang.org/x/net v0.38.0 // indirect\n\tgithub.com/google/uuid v1.6.0\n)\n\nreplace x => y\n";
        let deps = parse_go_mod(text);
        assert_eq!(
            deps,
            [
                Dependency::new("github.com/pkg/errors", "v0.9.1", "go"),
                Dependency::new("golang.org/x/net", "v0.38.0", "go"),
                Dependency::new("github.com/google/uuid", "v1.6.0", "go"),
            ]
        );
    }

    #[test]
    fn requirements_keep_only_pinned_lines() {
        let text = "# deps\nrequests==2.31.0\nflask>=2\nuvicorn[standard]==0.29.0 ; python_version>'3.8'\n-r other.txt\n";
        assert_eq!(
            parse_requirements(text),
            [
                Dependency::new("requests", "2.31.0", "pypi"),
                Dependency::new("uvicorn", "0.29.0", "pypi")
            ]
        );
    }
}
