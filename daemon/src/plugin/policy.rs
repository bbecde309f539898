//! [`GrantPolicy`]: `[plugins.policy]` of readyd.toml, the most any manifest may grant itself.
//!
//! A manifest names its own capabilities (HTTP hosts, host directories, secrets); without a
//! policy those grants are bounded only by the manifest's validation, so whoever can write to
//! the plugins directory can grant a plugin `dirs = {"/host" = "/"}`. With a policy, every grant
//! must fall under it: an HTTP grant under a host pattern (`api.github.com`, `*.github.com` for
//! any subdomain, `127.0.0.1:*` for any port), a directory under an allowed prefix (both sides
//! resolved: `..` and symbolic links cannot escape, and the prefix is compared by whole path
//! components), a secret's environment variable under a name or `*` pattern. A list left out of
//! a configured policy allows nothing of its kind. [`GrantPolicy::check`] refuses a manifest
//! with a [`ManifestFault::NotAllowed`] naming the grant and the policy.
//!
//! This module never reads a secret's value: it matches variable names only.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use crate::config::PluginPolicyConfig;
use crate::plugin::manifest::{HttpGrant, Manifest, ManifestError, ManifestFault};

/// The compiled `[plugins.policy]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantPolicy {
    http: Vec<HostPattern>,
    dirs: Vec<PathBuf>,
    secrets: Vec<String>,
}

/// `host`, `*.suffix`, each with no port (the scheme's default only), a port, or `*`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct HostPattern {
    written: String,
    /// Lower case; for `*.github.com` this is `.github.com`.
    host: String,
    any_subdomain: bool,
    port: PortPattern,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PortPattern {
    Default,
    Exactly(u16),
    Any,
}

impl HostPattern {
    fn parse(written: &str) -> Result<HostPattern, String> {
        let bad = |why: &str| format!("http entry `{written}`: {why}");
        let text = written.trim();
        if text.contains("://") || text.contains('/') || text.contains('@') {
            return Err(bad(
                "write a host or host:port, without scheme, path or user",
            ));
        }
        let (host, port) = match text.rsplit_once(':') {
            // An IPv6 literal in brackets has colons of its own.
            Some((h, p)) if !p.contains(']') => {
                let port = match p {
                    "*" => PortPattern::Any,
                    p => PortPattern::Exactly(
                        p.parse()
                            .ok()
                            .filter(|p| *p > 0)
                            .ok_or_else(|| bad("the port must be 1-65535 or *"))?,
                    ),
                };
                (h, port)
            }
            _ => (text, PortPattern::Default),
        };
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let (host, any_subdomain) = match host.strip_prefix("*.") {
            Some(rest) => (format!(".{rest}"), true),
            None => (host, false),
        };
        let bare = host.trim_start_matches('.');
        if bare.is_empty() || bare.contains('*') {
            return Err(bad(
                "a host, or `*.` followed by a domain (no other wildcards)",
            ));
        }
        Ok(HostPattern {
            written: written.to_owned(),
            host,
            any_subdomain,
            port,
        })
    }

    fn covers(&self, grant: &HttpGrant) -> bool {
        let host_ok = if self.any_subdomain {
            grant.host.ends_with(&self.host) && grant.host.len() > self.host.len()
        } else {
            grant.host == self.host
        };
        host_ok
            && match (self.port, grant.port) {
                (PortPattern::Any, _) => true,
                (PortPattern::Default, None) => true,
                (PortPattern::Exactly(p), Some(g)) => p == g,
                _ => false,
            }
    }
}

/// `..` and `.` resolved without the file system, for a prefix that does not exist (yet).
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn secret_matches(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((prefix, suffix)) => {
            name.len() >= prefix.len() + suffix.len()
                && name.starts_with(prefix)
                && name.ends_with(suffix)
        }
    }
}

impl GrantPolicy {
    /// Compiles the configured policy; an unusable entry is an error naming it.
    pub fn compile(config: &PluginPolicyConfig) -> Result<GrantPolicy, String> {
        let http = config
            .http
            .iter()
            .map(|p| HostPattern::parse(p))
            .collect::<Result<Vec<_>, _>>()?;
        let mut dirs = Vec::with_capacity(config.dirs.len());
        for dir in &config.dirs {
            if !dir.is_absolute() {
                return Err(format!("dirs entry {} is not absolute", dir.display()));
            }
            // The manifest's directories are canonical; so is the prefix where it exists.
            dirs.push(dir.canonicalize().unwrap_or_else(|_| normalise(dir)));
        }
        for secret in &config.secrets {
            let valid = !secret.is_empty()
                && secret.matches('*').count() <= 1
                && secret
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '*');
            if !valid {
                return Err(format!(
                    "secrets entry `{secret}`: an environment variable name, or a pattern with \
                     one `*`"
                ));
            }
        }
        Ok(GrantPolicy {
            http,
            dirs,
            secrets: config.secrets.clone(),
        })
    }

    /// Refuses a manifest that grants itself more than the policy allows: the first grant
    /// outside it, named with the policy's list of that kind.
    pub fn check(&self, manifest: &Manifest) -> Result<(), ManifestError> {
        let refuse = |grant: String, policy: String| ManifestError {
            path: manifest.path.clone(),
            fault: ManifestFault::NotAllowed { grant, policy },
        };
        for grant in &manifest.capabilities.http {
            if !self.http.iter().any(|p| p.covers(grant)) {
                return Err(refuse(
                    format!("capabilities.http `{grant}`"),
                    format!(
                        "http = {}",
                        List(self.http.iter().map(|p| p.written.as_str()))
                    ),
                ));
            }
        }
        for grant in &manifest.capabilities.dirs {
            if !self
                .dirs
                .iter()
                .any(|prefix| grant.host.starts_with(prefix))
            {
                return Err(refuse(
                    format!(
                        "capabilities.dirs `{}` = {}",
                        grant.guest,
                        grant.host.display()
                    ),
                    format!(
                        "dirs = {}",
                        List(self.dirs.iter().map(|d| d.to_str().unwrap_or("?")))
                    ),
                ));
            }
        }
        for grant in &manifest.capabilities.secrets {
            if !self
                .secrets
                .iter()
                .any(|p| secret_matches(p, &grant.env_var))
            {
                return Err(refuse(
                    format!("capabilities.secrets `{}` = {}", grant.name, grant.env_var),
                    format!(
                        "secrets = {}",
                        List(self.secrets.iter().map(String::as_str))
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// `["a", "b"]`, as the policy is written in readyd.toml.
struct List<I>(I);

impl<'a, I: Iterator<Item = &'a str> + Clone> fmt::Display for List<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, item) in self.0.clone().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "\"{item}\"")?;
        }
        f.write_str("]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(http: &[&str], dirs: &[&Path], secrets: &[&str]) -> GrantPolicy {
        GrantPolicy::compile(&PluginPolicyConfig {
            http: http.iter().map(|s| s.to_string()).collect(),
            dirs: dirs.iter().map(|d| d.to_path_buf()).collect(),
            secrets: secrets.iter().map(|s| s.to_string()).collect(),
        })
        .unwrap()
    }

    fn manifest(dir: &Path, capabilities: &str, env: &[(&str, &str)]) -> Manifest {
        std::fs::write(dir.join("p.wasm"), b"\0asm\x0d\0\x01\0").unwrap();
        let text = format!(
            "name = \"p\"\nkind = \"data-source\"\nwasm = \"p.wasm\"\n[capabilities]\n{capabilities}\n"
        );
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Manifest::parse(&text, &dir.join("p.toml"), &|var| {
            env.iter().find(|(k, _)| k == var).map(|(_, v)| v.clone())
        })
        .unwrap()
    }

    fn refused(p: &GrantPolicy, m: &Manifest) -> String {
        p.check(m).unwrap_err().to_string()
    }

    #[test]
    fn http_grants_fall_under_host_patterns() {
        let dir = tempfile::tempdir().unwrap();
        let p = policy(
            &["*.github.com", "127.0.0.1:*", "grafana.local:3000"],
            &[],
            &[],
        );
        for ok in [
            "http = [\"api.github.com\"]",
            "http = [\"uploads.api.github.com\", \"127.0.0.1:18090\", \"127.0.0.1\"]",
            "http = [\"grafana.local:3000\"]",
        ] {
            p.check(&manifest(dir.path(), ok, &[])).unwrap();
        }
        for (bad, grant) in [
            ("http = [\"github.com\"]", "`github.com`"),
            ("http = [\"evilgithub.com\"]", "`evilgithub.com`"),
            ("http = [\"api.github.com:8443\"]", "`api.github.com:8443`"),
            ("http = [\"grafana.local\"]", "`grafana.local`"),
            ("http = [\"127.0.0.2:80\"]", "`127.0.0.2:80`"),
        ] {
            let e = refused(&p, &manifest(dir.path(), bad, &[]));
            assert!(e.contains(&format!("capabilities.http {grant}")), "{e}");
            assert!(
                e.contains(r#"[plugins.policy] http = ["*.github.com", "127.0.0.1:*", "grafana.local:3000"]"#),
                "{e}"
            );
        }
    }

    #[test]
    fn dirs_fall_under_prefixes_after_normalisation() {
        let root = tempfile::tempdir().unwrap();
        let allowed = root.path().join("repos");
        std::fs::create_dir_all(allowed.join("a")).unwrap();
        std::fs::create_dir_all(root.path().join("repos-evil")).unwrap();
        let plugins = root.path().join("plugins");
        std::fs::create_dir_all(&plugins).unwrap();
        // Written with `..` on the policy side too.
        let p = policy(&[], &[&root.path().join("plugins/../repos")], &[]);
        p.check(&manifest(&plugins, "dirs = { \"/r\" = \"../repos\" }", &[]))
            .unwrap();
        p.check(&manifest(
            &plugins,
            "dirs = { \"/r\" = \"../repos/a\" }",
            &[],
        ))
        .unwrap();
        for bad in [
            "dirs = { \"/host\" = \"/\" }",
            "dirs = { \"/r\" = \"../repos/..\" }",
            "dirs = { \"/r\" = \"../repos/a/../../plugins\" }",
            "dirs = { \"/r\" = \"../repos-evil\" }",
        ] {
            let e = refused(&p, &manifest(&plugins, bad, &[]));
            assert!(e.contains("capabilities.dirs"), "{e}");
            assert!(e.contains("[plugins.policy] dirs = ["), "{e}");
        }
        #[cfg(unix)]
        {
            // A symbolic link inside the allowed prefix that points out of it.
            std::os::unix::fs::symlink("/", allowed.join("escape")).unwrap();
            let e = refused(
                &p,
                &manifest(&plugins, "dirs = { \"/r\" = \"../repos/escape\" }", &[]),
            );
            assert!(e.contains("capabilities.dirs `/r` = /"), "{e}");
        }
    }

    #[test]
    fn secrets_fall_under_names_and_patterns() {
        let dir = tempfile::tempdir().unwrap();
        let env = [("GITHUB_TOKEN", "s3cr3t"), ("AWS_SECRET", "hidden")];
        let p = policy(&[], &[], &["GITHUB_*", "PD_TOKEN"]);
        p.check(&manifest(
            dir.path(),
            "secrets = { token = \"GITHUB_TOKEN\" }",
            &env,
        ))
        .unwrap();
        let e = refused(
            &p,
            &manifest(dir.path(), "secrets = { aws = \"AWS_SECRET\" }", &env),
        );
        assert!(e.contains("capabilities.secrets `aws` = AWS_SECRET"), "{e}");
        assert!(e.contains(r#"secrets = ["GITHUB_*", "PD_TOKEN"]"#), "{e}");
        assert!(!e.contains("hidden"), "{e}");
    }

    #[test]
    fn an_omitted_list_allows_nothing_and_bad_patterns_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = policy(&[], &[], &[]);
        p.check(&manifest(dir.path(), "", &[])).unwrap();
        let e = refused(
            &p,
            &manifest(dir.path(), "http = [\"api.github.com\"]", &[]),
        );
        assert!(e.contains("http = []"), "{e}");
        for (http, secrets) in [
            (vec!["*"], vec![]),
            (vec!["a.*.com"], vec![]),
            (vec!["https://x.com"], vec![]),
            (vec!["x.com:0"], vec![]),
            (vec![], vec!["A*B*"]),
            (vec![], vec!["MY-VAR"]),
        ] {
            let config = PluginPolicyConfig {
                http: http.into_iter().map(String::from).collect(),
                dirs: vec![],
                secrets: secrets.into_iter().map(String::from).collect(),
            };
            assert!(GrantPolicy::compile(&config).is_err(), "{config:?}");
        }
    }
}
