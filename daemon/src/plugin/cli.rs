//! `readyd plugin ...`: commands for plugin authors.
//!
//! `readyd plugin check DIR` loads every manifest and component in DIR exactly as the daemon
//! would (compile, contract version and world, `init` smoke test) and prints each plugin's
//! name, world, version hash and capabilities, and every error; it exits 1 if anything is
//! wrong. `readyd plugin run MANIFEST --entity FILE|TEXT` runs one plugin once, in the same
//! sandbox as the daemon, and prints the facts or the outcome as JSON. The entity is read as
//! the catalog reads a file (readyd's form or a Backstage document; `title` defaults to the
//! identifier, as in the SDK), from a file or given inline as JSON or YAML.
//! This module prints; it must never print a secret's value (only secret names).

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::model::Entity;
use crate::plugin::bindings::{PACKAGE, VERSION};
use crate::plugin::host::{HostConfig, PluginHost};
use crate::plugin::instance::Plugin;
use crate::plugin::manifest::{Manifest, PluginKind, load_manifests};

/// Commands for plugin authors.
#[derive(Debug, clap::Subcommand)]
pub enum PluginCommand {
    /// Load and validate every plugin manifest (and its component) in DIR.
    Check {
        /// The plugins directory.
        dir: PathBuf,
    },
    /// Run one plugin once and print its facts (data source) or outcome (check) as JSON.
    Run {
        /// The plugin's manifest, `<name>.toml`.
        manifest: PathBuf,
        /// The entity: a file, or the entity itself as JSON or YAML text (for a data source,
        /// one entity or a list), read as a catalog file is; `title` defaults to the identifier.
        #[arg(long, value_name = "FILE|JSON")]
        entity: PathBuf,
        /// Facts handed to a check: a JSON or YAML object keyed by data source (a file or the
        /// text itself).
        #[arg(long, value_name = "FILE|JSON")]
        facts: Option<PathBuf>,
        /// The check's params, as JSON text.
        #[arg(long)]
        params: Option<String>,
    },
}

/// Run a plugin command; the exit code is returned.
pub async fn run(cmd: PluginCommand) -> anyhow::Result<i32> {
    match cmd {
        PluginCommand::Check { dir } => check(&dir).await,
        PluginCommand::Run {
            manifest,
            entity,
            facts,
            params,
        } => run_once(&manifest, &entity, facts.as_deref(), params.as_deref()).await,
    }
}

/// Load each manifest's component exactly as the daemon would (compile, contract version and
/// world, `init` smoke test): per manifest, its file and either the loaded plugin's description
/// or why it did not load. `plugin check` and `readyd validate` both use it.
pub async fn load_components(
    manifests: Vec<Manifest>,
) -> anyhow::Result<Vec<(PathBuf, Result<String, crate::plugin::PluginError>)>> {
    let host = PluginHost::new(HostConfig::default())?;
    let mut loaded = Vec::with_capacity(manifests.len());
    for manifest in manifests {
        let path = manifest.path.clone();
        let outcome = host.load(manifest).await.map(|plugin| describe(&plugin));
        loaded.push((path, outcome));
    }
    Ok(loaded)
}

async fn check(dir: &Path) -> anyhow::Result<i32> {
    let (manifests, errors) = load_manifests(dir);
    let mut failed = !errors.is_empty();
    for error in &errors {
        println!("error  {error}");
    }
    for (path, outcome) in load_components(manifests).await? {
        match outcome {
            Ok(description) => println!("ok     {description}"),
            Err(error) => {
                failed = true;
                println!("error  {}: {error}", path.display());
            }
        }
    }
    if !failed && errors.is_empty() {
        println!("all plugins in {} are valid", dir.display());
    }
    Ok(i32::from(failed))
}

fn describe(plugin: &Plugin) -> String {
    let m = &plugin.manifest;
    let http: Vec<String> = m
        .capabilities
        .http
        .iter()
        .map(ToString::to_string)
        .collect();
    let dirs: Vec<String> = m
        .capabilities
        .dirs
        .iter()
        .map(|d| format!("{} -> {}", d.guest, d.host.display()))
        .collect();
    let secrets: Vec<&str> = m
        .capabilities
        .secrets
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    format!(
        "{name}  world={PACKAGE}/{world}@{VERSION}  version={version}  timeout={timeout}ms  \
         memory={memory}MiB  http=[{http}]  dirs=[{dirs}]  secrets=[{secrets}]",
        name = m.name,
        world = m.kind.world(),
        version = plugin.version,
        timeout = plugin.timeout().as_millis(),
        memory = plugin.memory_mb(),
        http = http.join(", "),
        dirs = dirs.join(", "),
        secrets = secrets.join(", "),
    )
}

async fn run_once(
    manifest: &Path,
    entity: &Path,
    facts: Option<&Path>,
    params: Option<&str>,
) -> anyhow::Result<i32> {
    let manifest = Manifest::from_file(manifest)?;
    let entities = read_entities(entity)?;
    let facts = match facts {
        Some(path) => read_document("--facts", path)?,
        None => serde_json::json!({}),
    };
    let params: serde_json::Value = match params {
        Some(text) => serde_json::from_str(text).context("--params is not JSON")?,
        None => serde_json::json!({}),
    };
    let host = PluginHost::new(HostConfig::default())?;
    let plugin = match host.load(manifest).await {
        Ok(plugin) => plugin,
        Err(error) => {
            eprintln!("error: {error}");
            return Ok(1);
        }
    };
    let printed = match plugin.kind() {
        PluginKind::Check => {
            let [entity] = entities.as_slice() else {
                anyhow::bail!(
                    "a check runs on exactly one entity, the file has {}",
                    entities.len()
                );
            };
            plugin
                .evaluate(entity, &facts, &params)
                .await
                .map(serde_json::to_value)
        }
        PluginKind::DataSource => plugin.collect(&entities).await.map(|pairs| {
            let object: serde_json::Map<String, serde_json::Value> = pairs
                .into_iter()
                .map(|(id, facts)| (id, facts.into()))
                .collect();
            Ok(serde_json::Value::Object(object))
        }),
    };
    match printed {
        Ok(value) => {
            println!("{}", serde_json::to_string_pretty(&value?)?);
            Ok(0)
        }
        Err(error) => {
            eprintln!("error: {error}");
            Ok(1)
        }
    }
}

/// The text of an argument that is a file or the document itself, and the name to report it
/// by. A file wins; otherwise only text that looks like a document is taken as one, so that a
/// mistyped path says "no such file" rather than failing to parse as YAML.
fn argument_text(flag: &str, arg: &Path) -> anyhow::Result<(PathBuf, String)> {
    if arg.is_file() {
        let text =
            std::fs::read_to_string(arg).with_context(|| format!("reading {}", arg.display()))?;
        return Ok((arg.to_owned(), text));
    }
    match arg.to_str() {
        Some(text) if looks_like_a_document(text) => {
            Ok((PathBuf::from(format!("{flag} (inline)")), text.to_owned()))
        }
        _ => anyhow::bail!(
            "{flag} {}: no such file, and not an inline JSON or YAML document",
            arg.display()
        ),
    }
}

fn looks_like_a_document(text: &str) -> bool {
    let head = text.trim_start();
    head.starts_with('{') || head.starts_with('[') || head.starts_with('-') || text.contains(": ")
}

fn read_document(flag: &str, arg: &Path) -> anyhow::Result<serde_json::Value> {
    let (name, text) = argument_text(flag, arg)?;
    // YAML is a superset of JSON: one parser reads both.
    serde_norway::from_str(&text).with_context(|| format!("parsing {}", name.display()))
}

fn read_entities(arg: &Path) -> anyhow::Result<Vec<Entity>> {
    let (name, text) = argument_text("--entity", arg)?;
    // The catalog's own parser: the same defaults and checks as an entity in a catalog file
    // (an inline document's name has no extension, so it is read as YAML, which JSON is).
    match crate::catalog::parse_source(&name, &text) {
        Ok(located) if located.is_empty() => {
            anyhow::bail!("{}: no entity in it", name.display())
        }
        Ok(located) => Ok(located.into_iter().map(|l| l.entity).collect()),
        Err(errors) => {
            let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
            anyhow::bail!("{}", messages.join("\n"))
        }
    }
}
