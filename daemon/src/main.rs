//! The `readyd` binary: parses the command line and hands it to [`readyd::cli::run`].

use clap::Parser;

fn main() {
    let cli = readyd::cli::Cli::parse();
    match readyd::cli::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::exit(2);
        }
    }
}
