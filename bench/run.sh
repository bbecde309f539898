#!/usr/bin/env bash
# Runs readyd's benchmark harness and regenerates BENCHMARKS.md at the repository root.
#
#   bench/run.sh                      # 10,000 entities, every measurement (a few minutes)
#   bench/run.sh --entities 20000     # another size
#   bench/run.sh --quick              # 1,000 entities, fewer repetitions, no installs, no wrk;
#                                     # writes target/readyd-bench/BENCHMARKS-quick.md
#
# Installs what the full run needs first: wrk (Debian package) for the closed-loop maximum, and
# json-rules-engine (npm ci from the committed package-lock.json) for the node peer. A missing
# tool is not fatal: the report says what it could not measure and why. Any other flag goes to
# `readyd-bench` (see `cargo run -p readyd-bench -- --help`).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"

quick=0
for arg in "$@"; do
    if [ "$arg" = "--quick" ]; then
        quick=1
    fi
done

if [ "$quick" = 0 ]; then
    if ! command -v wrk >/dev/null 2>&1; then
        if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
            echo "run.sh: installing wrk" >&2
            { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; } ||
                echo "run.sh: could not install wrk; the report will say so" >&2
        else
            echo "run.sh: wrk is not installed (apt-get install wrk); the report will say so" >&2
        fi
    fi
    if command -v npm >/dev/null 2>&1; then
        echo "run.sh: installing json-rules-engine (npm ci)" >&2
        (cd "$here/peers/node" && npm ci --no-audit --no-fund --loglevel=error) ||
            echo "run.sh: npm ci failed; the json-rules-engine peer will be skipped" >&2
    else
        echo "run.sh: npm is not installed; the json-rules-engine peer will be skipped" >&2
    fi
fi

export READYD_BENCH_COMMAND="bench/run.sh${*:+ $*}"
cd "$root"
exec cargo run --release -p readyd-bench -- "$@"
