#!/usr/bin/env bash
# The benchmark on local emulators, at added network latency, each figure against
# a baseline measured in the same run (see BENCHMARKS.md). Uses the packaged apps;
# writes target/bench/results.json.
#   ./scripts/bench.sh [--records N] [--rtt-ms 0,10] [--reads N] [--memory-records N]
#                      [--max-kb N] [--list-concurrency N] [--parts archive,reads,memory,lists]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/toolchain.sh
. scripts/toolchain.sh

./scripts/package.sh
toolchain_step "building the benchmark driver"
cargo build "${CARGO_FLAGS[@]}" -p devhost --bin bench

./scripts/emulators.sh with "$BUILT/bench" --dist dist "$@"
