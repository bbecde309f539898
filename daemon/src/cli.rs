//! The command-line front end. `main.rs` only parses arguments and calls [`run`].
//!
//! `serve` runs the daemon; `demo` runs it on the bundled example organisation (with a local
//! stand-in for the paging system and Prometheus); `eval` scores once and prints; `validate`
//! checks definitions; `gate` asks a running daemon; `plugin` helps plugin authors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Parser;

use crate::config::{Config, LogFormat, Overrides};
use crate::engine::{Engine, StartOptions};

/// readyd: production-readiness scoring for every service.
#[derive(Debug, Parser)]
#[command(name = "readyd", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Run the daemon.
    Serve(ServeArgs),
    /// Run the daemon on the bundled example organisation (examples/readyd.toml).
    Demo(DemoArgs),
    /// Score the catalog once and print the results (for CI of a standards repository).
    Eval(EvalArgs),
    /// Check catalog, standards and plugin manifests; report every problem.
    Validate(ValidateArgs),
    /// Ask a running daemon's deploy gate: exit 0 when the entity may ship, 1 when not.
    Gate(GateArgs),
    /// Tools for plugin authors.
    #[command(subcommand)]
    Plugin(crate::plugin::cli::PluginCommand),
}

/// `readyd serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Configuration file (TOML). Without it every value has its default.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Listen address (overrides the file and READYD_LISTEN).
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    /// The redb data file (overrides the file and READYD_DATA).
    #[arg(long)]
    pub data: Option<PathBuf>,
}

/// `readyd demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// The demo configuration.
    #[arg(long, default_value_os_t = default_demo_config())]
    pub config: PathBuf,
    /// Listen address.
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    /// Start from an empty state file (a fresh demo).
    #[arg(long)]
    pub fresh: bool,
}

/// `readyd eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    #[arg(long)]
    pub catalog: PathBuf,
    #[arg(long)]
    pub standards: PathBuf,
    /// Plugins: data sources are collected once, check plugins evaluate their rules.
    #[arg(long)]
    pub plugins: Option<PathBuf>,
    /// Facts as JSON: `{ "<entity>": { "<source>": { ...facts } } }`.
    #[arg(long)]
    pub facts: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: EvalFormat,
    /// Exit 1 when a scored entity is below LEVEL on a scorecard whose ladder has that level.
    #[arg(long, value_name = "LEVEL")]
    pub fail_below: Option<String>,
    /// Exit 1 when an entity misses its tier's requirements (each miss is listed).
    #[arg(long)]
    pub check_tiers: bool,
    /// Exit 1 when a plugin did not load or a data source failed to collect (each failure is
    /// printed on stderr either way): the scores would otherwise silently differ.
    #[arg(long)]
    pub strict: bool,
}

/// Output of `readyd eval`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum EvalFormat {
    Table,
    Json,
}

/// `readyd validate`: the directories given, or, with none given, the three directories of the
/// configuration file (`--config`, by default `readyd.toml` in the working directory).
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// The standards directory (scorecards, tiers.yaml, initiatives).
    #[arg(long)]
    pub standards: Option<PathBuf>,
    /// The catalog directory.
    #[arg(long)]
    pub catalog: Option<PathBuf>,
    /// The plugins directory: each manifest, and its component loaded as the daemon would.
    #[arg(long)]
    pub plugins: Option<PathBuf>,
    /// The configuration whose directories are checked (the flags above override them); by
    /// default `readyd.toml` in the working directory, when no directory flag is given.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

/// `readyd gate`.
#[derive(Debug, clap::Args)]
pub struct GateArgs {
    /// The entity to ask about.
    pub id: String,
    /// The daemon's address.
    #[arg(long, env = "READYD_URL", default_value = "http://127.0.0.1:7878")]
    pub url: String,
    /// A bearer token with the `ci` role (or any role that may read).
    #[arg(long, env = "READYD_TOKEN")]
    pub token: Option<String>,
    /// A PEM bundle of CA certificates to trust for an https:// URL, on top of the system's.
    #[arg(long, env = "READYD_CA_FILE")]
    pub ca_file: Option<PathBuf>,
}

fn default_demo_config() -> PathBuf {
    // Run from the repository (cargo run) or from anywhere with the source tree next to the
    // binary's build: try the working directory first, then the source tree.
    let local = PathBuf::from("examples/readyd.toml");
    if local.is_file() {
        return local;
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/readyd.toml")
        .components()
        .collect()
}

/// Run a parsed command line; the exit code is returned.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("readyd")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => {
                let config = Config::load(
                    args.config.as_deref(),
                    &crate::config::process_env(),
                    &Overrides {
                        listen: args.listen,
                        data: args.data,
                    },
                )?;
                init_tracing(&config);
                serve(config, None).await
            }
            Command::Demo(args) => {
                let config = Config::load(
                    Some(&args.config),
                    &crate::config::process_env(),
                    &Overrides {
                        listen: args.listen,
                        data: None,
                    },
                )?;
                init_tracing(&config);
                if args.fresh && config.data.exists() {
                    std::fs::remove_file(&config.data)
                        .with_context(|| format!("removing {}", config.data.display()))?;
                }
                let stand_in = crate::demo::start_stand_in(
                    config.demo.stand_in,
                    config.demo.stand_in_dir.clone(),
                )
                .await
                .context("starting the demo's local stand-in")?;
                println!(
                    "demo stand-in for the paging system and Prometheus on http://{}",
                    stand_in.addr
                );
                serve(config, Some(stand_in)).await
            }
            Command::Eval(args) => eval(args).await,
            Command::Validate(args) => validate(&args).await,
            Command::Gate(args) => {
                crate::http::client::gate_command_with(
                    &args.url,
                    args.token.as_deref(),
                    args.ca_file.as_deref(),
                    &args.id,
                )
                .await
            }
            Command::Plugin(cmd) => crate::plugin::cli::run(cmd).await,
        }
    })
}

fn init_tracing(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!("{},wasmtime=warn,cranelift=warn", config.log_level))
    });
    // Colours only for a person at a terminal: a file, a pipe or journald would keep the
    // escape codes as text. `NO_COLOR` (any value) turns them off there too.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match config.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

async fn serve(config: Config, stand_in: Option<crate::demo::StandIn>) -> anyhow::Result<i32> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let engine = Engine::start(config).await?;
    println!("readyd {} is up", env!("CARGO_PKG_VERSION"));
    println!("  dashboard: http://{addr}/");
    println!("  API:       http://{addr}/v1/  (OpenAPI: http://{addr}/openapi.json)");
    println!("  state:     {}", engine.config().data.display());
    let shutdown = {
        let engine = engine.clone();
        async move {
            wait_for_signals(&engine).await;
        }
    };
    let result = crate::http::serve(engine.clone(), listener, shutdown).await;
    tracing::info!("shutting down: finishing background work and the current commit");
    engine.shutdown().await;
    drop(stand_in);
    result.map(|()| 0)
}

/// Resolve on SIGTERM or ctrl-c; SIGHUP forces a full rescan and keeps waiting.
async fn wait_for_signals(engine: &Engine) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return,
            _ = term.recv() => return,
            _ = hup.recv() => {
                tracing::info!("SIGHUP: rescanning plugins, standards and catalog");
                let report = engine.reload_all("SIGHUP").await;
                for line in report.lines() {
                    tracing::info!("{line}");
                }
            }
        }
    }
}

async fn eval(args: EvalArgs) -> anyhow::Result<i32> {
    let dir = tempfile_dir()?;
    let mut config = Config::load(None, &BTreeMap::new(), &Overrides::default())?;
    config.data = dir.join("eval.redb");
    config.cache_dir = std::env::temp_dir().join("readyd-plugin-cache");
    config.catalog_dir = absolute(&args.catalog)?;
    config.standards_dir = absolute(&args.standards)?;
    config.plugins_dir = match &args.plugins {
        Some(p) => absolute(p)?,
        None => dir.join("no-plugins"),
    };
    config.watch.enabled = false;
    let result = eval_with(config, &args).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn eval_with(config: Config, args: &EvalArgs) -> anyhow::Result<i32> {
    let engine = Engine::start_with(
        config,
        StartOptions {
            background: false,
            ..StartOptions::default()
        },
    )
    .await?;
    let status = engine.status();
    for part in ["catalog", "standards"] {
        if let Some(errors) = status[part]["errors"].as_array()
            && !errors.is_empty()
        {
            for e in errors {
                eprintln!("error: {}", e.as_str().unwrap_or_default());
            }
            engine.shutdown().await;
            return Ok(2);
        }
    }
    // Every plugin that did not load and every data-source batch that failed is said on
    // stderr: its rules score as errors or on missing facts, which must not pass unseen.
    let mut source_failures = 0usize;
    if let Some(dir) = &args.plugins {
        let (_, errors) = crate::plugin::load_manifests(dir);
        for e in &errors {
            eprintln!("warning: plugin manifest {e}");
        }
        source_failures += errors.len();
    }
    for plugin in status["plugins"].as_array().into_iter().flatten() {
        if plugin["version"].is_null() {
            eprintln!(
                "warning: plugin {} did not load: {}",
                plugin["name"].as_str().unwrap_or("?"),
                plugin["last_error"].as_str().unwrap_or("unknown error")
            );
            source_failures += 1;
        }
    }
    for failure in engine.collect_once().await {
        let entities = match failure.entities.as_slice() {
            [one] => format!("entity {one}"),
            many if many.len() == view_count(&engine) => "its round".to_owned(),
            many => format!("entities {}", many.join(", ")),
        };
        eprintln!(
            "warning: data source {} failed for {entities}: {}",
            failure.plugin, failure.reason
        );
        source_failures += 1;
    }
    if let Some(path) = &args.facts {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let facts: BTreeMap<String, BTreeMap<String, crate::model::JsonObject>> =
            serde_json::from_str(&text)
                .with_context(|| format!("{}: not a facts document", path.display()))?;
        let mut by_source: BTreeMap<String, Vec<(String, crate::model::JsonObject)>> =
            BTreeMap::new();
        for (entity, sources) in facts {
            for (source, f) in sources {
                by_source
                    .entry(source)
                    .or_default()
                    .push((entity.clone(), f));
            }
        }
        for (source, list) in by_source {
            engine.ingest_facts(&source, list).await?;
        }
    }
    let entities = engine.entities(&Default::default());
    let mut out = serde_json::Map::new();
    let mut exit = 0;
    let mut misses = Vec::new();
    let mut below = Vec::new();
    for view in &entities {
        let id = &view.entity.identifier;
        let mut cards = serde_json::Map::new();
        for r in engine.entity_scores(id)? {
            let rules: serde_json::Map<String, serde_json::Value> = r
                .rules
                .iter()
                .map(|x| {
                    (
                        x.rule.to_string(),
                        serde_json::json!({"status": x.status, "message": x.message}),
                    )
                })
                .collect();
            if let Some(level) = &args.fail_below
                && let Ok(card) = engine.scorecard(&r.scorecard)
                && let Some(wanted) = card.levels.iter().position(|l| l == level)
                && r.level_index < wanted
            {
                exit = 1;
                below.push(format!("{id}: {} is {}", r.scorecard, r.level));
            }
            cards.insert(
                r.scorecard.to_string(),
                serde_json::json!({"level": r.level, "percent": r.percent, "score": r.score, "rules": rules}),
            );
        }
        if args.check_tiers {
            let gate = engine.gate(id)?;
            for reason in gate.reasons.iter().filter(|r| !r.starts_with("locked")) {
                misses.push(format!("{id}: {reason}"));
            }
        }
        out.insert(id.clone(), serde_json::Value::Object(cards));
    }
    match args.format {
        EvalFormat::Json => println!("{}", serde_json::to_string_pretty(&out)?),
        EvalFormat::Table => print_table(&engine, &out),
    }
    if args.check_tiers && !misses.is_empty() {
        eprintln!("{} tier requirement(s) missed:", misses.len());
        for m in &misses {
            eprintln!("  {m}");
        }
        exit = 1;
    }
    if !below.is_empty()
        && let Some(level) = &args.fail_below
    {
        eprintln!("{} result(s) below {level}:", below.len());
        for b in &below {
            eprintln!("  {b}");
        }
    }
    if source_failures > 0 {
        if args.strict {
            eprintln!("{source_failures} plugin or data-source failure(s) (--strict)");
            exit = 1;
        } else {
            eprintln!(
                "{source_failures} plugin or data-source failure(s): scores above use the facts \
                 that were collected (--strict makes this exit 1)"
            );
        }
    }
    engine.shutdown().await;
    Ok(exit)
}

fn view_count(engine: &Engine) -> usize {
    engine.entities(&Default::default()).len()
}

fn print_table(engine: &Engine, out: &serde_json::Map<String, serde_json::Value>) {
    let cards: Vec<String> = engine
        .scorecards()
        .into_iter()
        .map(|c| c.identifier)
        .collect();
    let width = out.keys().map(String::len).max().unwrap_or(6).max(6);
    print!("{:width$}", "entity");
    for c in &cards {
        print!("  {:>24}", c);
    }
    println!();
    for (id, scores) in out {
        print!("{id:width$}");
        for c in &cards {
            let cell = match scores.get(c) {
                Some(s) => format!(
                    "{} {:>5.1}%",
                    s["level"].as_str().unwrap_or("?"),
                    s["percent"].as_f64().unwrap_or(0.0)
                ),
                None => "-".to_owned(),
            };
            print!("  {cell:>24}");
        }
        println!();
    }
}

/// The directories `readyd validate` checks: the flags, over the configuration's when there is
/// one. `Ok(None)`: nothing was named and there is no `readyd.toml` to read them from.
fn validate_dirs(args: &ValidateArgs) -> anyhow::Result<Option<ValidateArgs>> {
    let flags = args.standards.is_some() || args.catalog.is_some() || args.plugins.is_some();
    let config_file = match &args.config {
        Some(file) => Some(file.clone()),
        None if flags => None,
        None => Some(PathBuf::from("readyd.toml")).filter(|f| f.is_file()),
    };
    let Some(file) = config_file else {
        return Ok(flags.then(|| ValidateArgs {
            standards: args.standards.clone(),
            catalog: args.catalog.clone(),
            plugins: args.plugins.clone(),
            config: None,
        }));
    };
    let config = Config::load(
        Some(&file),
        &crate::config::process_env(),
        &Overrides::default(),
    )?;
    println!("config: {}", file.display());
    Ok(Some(ValidateArgs {
        standards: Some(args.standards.clone().unwrap_or(config.standards_dir)),
        catalog: Some(args.catalog.clone().unwrap_or(config.catalog_dir)),
        plugins: Some(args.plugins.clone().unwrap_or(config.plugins_dir)),
        config: Some(file),
    }))
}

async fn validate(args: &ValidateArgs) -> anyhow::Result<i32> {
    let Some(args) = validate_dirs(args)? else {
        // Never "ok" having checked nothing.
        eprintln!(
            "error: nothing to validate: give --standards DIR, --catalog DIR and/or --plugins DIR, \
             or --config FILE (there is no readyd.toml in {})",
            std::env::current_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_else(|_| "the working directory".to_owned())
        );
        return Ok(2);
    };
    let mut problems = Vec::new();
    let mut kinds: BTreeMap<String, crate::standards::PluginKind> = BTreeMap::new();
    if let Some(dir) = &args.plugins {
        let (manifests, errors) = crate::plugin::load_manifests(dir);
        problems.extend(errors.iter().map(ToString::to_string));
        for m in &manifests {
            kinds.insert(
                m.name.clone(),
                match m.kind {
                    crate::plugin::PluginKind::Check => crate::standards::PluginKind::Check,
                    crate::plugin::PluginKind::DataSource => {
                        crate::standards::PluginKind::DataSource
                    }
                },
            );
        }
        // Each component as the daemon would load it: a wrong world or a broken component is
        // a problem here, as it is for `readyd plugin check`.
        let count = manifests.len();
        let mut loaded = 0;
        for (path, outcome) in crate::plugin::cli::load_components(manifests).await? {
            match outcome {
                Ok(_) => loaded += 1,
                Err(error) => problems.push(format!("{}: {error}", path.display())),
            }
        }
        println!("plugins: {count} manifests, {loaded} components loaded");
    }
    if let Some(dir) = &args.catalog {
        match crate::catalog::load_dir(dir) {
            Ok(c) => println!("catalog: {} entities", c.entities.len()),
            Err(errors) => problems.extend(errors.iter().map(ToString::to_string)),
        }
    }
    if let Some(dir) = &args.standards {
        let result = if args.plugins.is_some() {
            crate::standards::load_dir(dir, &kinds)
        } else {
            crate::standards::load_dir(dir, &crate::standards::AnyPlugins)
        };
        match result {
            Ok(s) => println!(
                "standards: {} scorecards, {} initiatives",
                s.scorecards.len(),
                s.initiatives.len()
            ),
            Err(errors) => problems.extend(errors.iter().map(ToString::to_string)),
        }
    }
    if problems.is_empty() {
        println!("ok");
        Ok(0)
    } else {
        for p in &problems {
            eprintln!("error: {p}");
        }
        eprintln!("{} problem(s)", problems.len());
        Ok(1)
    }
}

fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    if p.is_absolute() {
        Ok(p.to_owned())
    } else {
        Ok(std::env::current_dir()?.join(p))
    }
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    use rand::Rng as _;
    let n: u64 = rand::rng().random();
    let dir = std::env::temp_dir().join(format!("readyd-eval-{n:016x}"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
