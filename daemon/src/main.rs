//! The `readyd` binary: parses the command line and hands it to [`readyd::cli::run`].

use clap::Parser;

/// mimalloc rather than the system allocator: the daemon's passes allocate and free hundreds of
/// thousands of small strings, and glibc's per-thread arenas keep much of that memory resident
/// (see BENCHMARKS.md for the RSS and pass times with it). [`readyd::allocator`] says how
/// the daemon uses it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
