//! `readyd plugin ...`: commands for plugin authors.
//!
//! `readyd plugin check DIR` loads every manifest and component in DIR exactly as the daemon
//! would (compile, contract version and world, `init` smoke test) and prints each plugin's
//! name, world, version hash and capabilities, and every error; it exits 1 if anything is
//! wrong. `readyd plugin run MANIFEST --entity FILE` runs one plugin once, in the same
//! sandbox as the daemon, and prints the facts or the outcome as JSON.
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
        /// The entity, JSON or YAML (for a data source, one entity or a list).
        #[arg(long)]
        entity: PathBuf,
        /// Facts handed to a check: a JSON or YAML object keyed by data source.
        #[arg(long)]
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

async fn check(dir: &Path) -> anyhow::Result<i32> {
    let host = PluginHost::new(HostConfig::default())?;
    let (manifests, errors) = load_manifests(dir);
    let mut failed = !errors.is_empty();
    for error in &errors {
        println!("error  {error}");
    }
    for manifest in manifests {
        let path = manifest.path.clone();
        match host.load(manifest).await {
            Ok(plugin) => println!("ok     {}", describe(&plugin)),
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
        Some(path) => read_document(path)?,
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

fn read_document(path: &Path) -> anyhow::Result<serde_json::Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    // YAML is a superset of JSON: one parser reads both.
    serde_norway::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

fn read_entities(path: &Path) -> anyhow::Result<Vec<Entity>> {
    let document = read_document(path)?;
    let entities = if document.is_array() {
        serde_json::from_value(document)
    } else {
        serde_json::from_value(document).map(|e| vec![e])
    };
    entities.with_context(|| {
        format!(
            "{} does not hold an entity or a list of entities",
            path.display()
        )
    })
}
