#!/usr/bin/env bash
# Benchmarks on local emulators: archive throughput by ARCHIVE_CONCURRENCY (as a
# ratio to concurrency 1) and cold vs hot read latency (as a ratio), each against
# a baseline measured in the same run. Uses the packaged release apps.
#   ./scripts/bench.sh [--records N] [--concurrency 1,4,8] [--reads N]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

./scripts/package.sh
cargo build --locked -p devhost --bin bench

./scripts/emulators.sh with target/debug/bench --dist dist "$@"
