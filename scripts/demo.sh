#!/usr/bin/env bash
# The whole job end to end on local emulators: package both apps, start Azurite
# and the Cosmos emulator, seed realistic billing records, archive them through
# the archiver app under the host stand-in, read hot and archived records back
# through the reader app, check every answer, print a report.
#   ./scripts/demo.sh [--records N] [--max-kb N] [--sample N] [--blob-price P] ...
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

command -v cargo >/dev/null || { echo "demo.sh: cargo is not installed (Rust 1.88 or newer)" >&2; exit 1; }

./scripts/package.sh
echo "==> building the demo driver (a dev tool: debug build; the apps it runs are release builds)"
cargo build --locked -p devhost --bin demo

echo "==> running the demo (against emulators started for this run)"
./scripts/emulators.sh with target/debug/demo --dist dist "$@"
