#!/usr/bin/env bash
# The whole job end to end on local emulators: package both apps, start Azurite
# and the Cosmos emulator, seed realistic billing records, plan the archiving,
# archive them through the archiver app under the host stand-in, read hot and
# archived records back through the reader app, check every answer, print a report.
#   ./scripts/demo.sh [--records N] [--max-kb N] [--sample N] [--blob-price P] ...
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/toolchain.sh
. scripts/toolchain.sh

./scripts/package.sh
toolchain_step "building the demo driver (a dev tool: debug, shared with the tests; the apps are release builds)"
cargo build --locked -p devhost --bin demo

toolchain_step "running the demo (against emulators started for this run)"
./scripts/emulators.sh with target/debug/demo --dist dist "$@"
