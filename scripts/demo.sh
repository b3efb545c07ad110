#!/usr/bin/env bash
# The whole job end to end on local emulators: build both apps, start Azurite and
# the Cosmos emulator, seed realistic billing records, plan the archiving, archive
# them through the archiver app under the host stand-in, read hot and archived
# records back through the reader app, check every answer, print a report.
#   ./scripts/demo.sh [--packaged] [--front | --contract FILE] [--records N] [--max-kb N] [--sample N] [--blob-price P] ...
# --contract runs it with another read contract profile (docs/adopting.md),
# e.g. contracts/examples/tenant-invoices.toml. --front runs the reader in front
# mode (docs/front-mode.md) before a stand-in of an API with its own bodies,
# errors, lists and API key (contracts/examples/front-mapped.toml).
# The apps are assembled from the debug build that test.sh also uses, so the demo
# and the tests compile the workspace once between them (BENCHMARKS.md,
# "Build times"). --packaged runs the release packages of scripts/package.sh instead:
# the static musl binaries that deploy, at the cost of a second, release build.
set -euo pipefail
# Paths given on the command line are the caller's, resolved before the cd.
caller="$PWD"
at_caller() { case "$1" in /*) printf '%s' "$1" ;; *) printf '%s/%s' "$caller" "$1" ;; esac; }
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/toolchain.sh
. scripts/toolchain.sh

packaged=false
args=()
contract=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --packaged) packaged=true ;;
    --front) contract=(--contract "$PWD/contracts/examples/front-mapped.toml") ;;
    --contract)
      [[ -f "$(at_caller "${2:-}")" ]] || { echo "demo.sh: --contract needs a profile file (not \"${2:-}\")" >&2; exit 2; }
      contract=(--contract "$(at_caller "$2")"); shift ;;
    *) args+=("$1") ;;
  esac
  shift
done

if $packaged; then
  ./scripts/package.sh ${contract[@]+"${contract[@]}"}
  apps=(--dist dist --release-apps)
else
  toolchain_ready
  toolchain_dev_build
  for app in archiver reader; do
    target/debug/devhost assemble --app "$app" --executable "target/debug/$app" --out "target/demo-apps/$app" \
      ${contract[@]+"${contract[@]}"} >/dev/null
  done
  toolchain_step "assembled target/demo-apps/archiver and target/demo-apps/reader from the debug build"
  apps=(--dist target/demo-apps)
fi

toolchain_step "running the demo (against emulators started for this run)"
./scripts/emulators.sh with target/debug/demo "${apps[@]}" ${contract[@]+"${contract[@]}"} ${args[@]+"${args[@]}"}
