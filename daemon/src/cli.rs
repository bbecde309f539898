//! The command-line front end. `main.rs` only parses arguments and calls [`run`].

use clap::Parser;

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
    /// Print the version.
    Version,
}

/// Run a parsed command line; the exit code is returned.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Version => {
            println!("readyd {}", env!("CARGO_PKG_VERSION"));
            Ok(0)
        }
    }
}
