//! `readyd-bench`: runs the benchmark harness and writes BENCHMARKS.md (see `bench/run.sh`).
//! `readyd-bench daemon --config FILE` is the child daemon the harness spawns for itself.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The daemon's allocator (see daemon/src/main.rs), so in-process figures and the child daemon
/// measure what `readyd` runs with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use readyd_bench::harness::{self, Options};

#[derive(Parser)]
#[command(
    name = "readyd-bench",
    about = "Measures readyd against its targets and its peers; writes BENCHMARKS.md."
)]
struct Cli {
    /// Entities in the generated organisation (default 10,000; 1,000 with --quick).
    #[arg(long)]
    entities: Option<usize>,
    /// Fewer repetitions, shorter loads, no wrk: a check that the harness works, in under a minute.
    #[arg(long)]
    quick: bool,
    /// Seed of the generated organisation.
    #[arg(long, default_value_t = 20_260_115)]
    seed: u64,
    /// Where to write the report (default: BENCHMARKS.md at the workspace root; with --quick,
    /// target/readyd-bench/BENCHMARKS-quick.md).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Do not run the json-rules-engine peer.
    #[arg(long)]
    no_node: bool,
    /// Do not run wrk.
    #[arg(long)]
    no_wrk: bool,
    /// Keep the generated organisation and stores in this directory.
    #[arg(long)]
    keep: Option<PathBuf>,
    /// Run only these sections (comma-separated: peers, evaluator, pass, plugins, workload,
    /// engine, daemon, tls), for working on one figure; the report then goes to
    /// target/readyd-bench/BENCHMARKS-only.md unless --out says otherwise.
    #[arg(long, value_delimiter = ',', value_parser = ["peers", "evaluator", "pass", "plugins", "workload", "engine", "daemon", "tls"])]
    only: Vec<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Internal: the child daemon (engine + HTTP API) the harness measures.
    #[command(hide = true)]
    Daemon {
        #[arg(long)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Daemon { config }) = cli.command {
        let runtime = match tokio::runtime::Runtime::new() {
            Ok(r) => r,
            Err(e) => {
                eprintln!("readyd-bench daemon: {e}");
                return ExitCode::FAILURE;
            }
        };
        return match runtime.block_on(readyd_bench::daemon::serve_child(&config)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("readyd-bench daemon: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = cli.out.clone().unwrap_or_else(|| {
        if !cli.only.is_empty() {
            workspace
                .join("target")
                .join("readyd-bench")
                .join("BENCHMARKS-only.md")
        } else if cli.quick {
            workspace
                .join("target")
                .join("readyd-bench")
                .join("BENCHMARKS-quick.md")
        } else {
            workspace.join("BENCHMARKS.md")
        }
    });
    let command = std::env::var("READYD_BENCH_COMMAND").unwrap_or_else(|_| {
        std::iter::once("readyd-bench".to_owned())
            .chain(std::env::args().skip(1))
            .collect::<Vec<_>>()
            .join(" ")
    });
    let options = Options {
        entities: cli
            .entities
            .unwrap_or(if cli.quick { 1_000 } else { 10_000 }),
        quick: cli.quick,
        seed: cli.seed,
        node: !cli.no_node,
        wrk: !cli.no_wrk && !cli.quick,
        keep: cli.keep,
        only: cli.only,
        command,
    };
    let report = match harness::run(&options) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("readyd-bench: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = report.write(&out) {
        eprintln!("readyd-bench: writing {}: {e}", out.display());
        return ExitCode::FAILURE;
    }
    let (met, not_met, unmeasured) = report.tally();
    eprintln!(
        "readyd-bench: wrote {} — targets: {met} met, {not_met} not met, {unmeasured} not measured",
        out.display()
    );
    if report.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        for f in &report.failures {
            eprintln!("readyd-bench: FAILED: {f}");
        }
        ExitCode::FAILURE
    }
}
