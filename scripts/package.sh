#!/usr/bin/env bash
# Builds static Linux (musl) release binaries of both handlers and assembles
# dist/archiver/ and dist/reader/: each a complete function app folder (host.json,
# its function folders, the executable with its exec bit), ready for `func start`
# or `func azure functionapp publish`, plus dist/<app>.zip for zip deployment.
# local.settings.json (emulator settings for `func start`) is in the folders, never
# in the zips. The handlers use the build configuration of scripts/toolchain.sh.
#
#   scripts/package.sh [--contract FILE]
#
# --contract names the read contract profile (docs/adopting.md; default
# contracts/default.toml): the reader's function.json files and
# route prefix are generated from it and it ships in the reader's folder as
# contract.toml. A malformed profile stops packaging with a message naming the key.
set -euo pipefail
# Paths given on the command line are the caller's, resolved before the cd.
caller="$PWD"
at_caller() { case "$1" in /*) printf '%s' "$1" ;; *) printf '%s/%s' "$caller" "$1" ;; esac; }
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/toolchain.sh
. scripts/toolchain.sh

die() { echo "package.sh: $*" >&2; exit 1; }

contract=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --contract) [[ -f "$(at_caller "${2:-}")" ]] || die "--contract needs a profile file (not \"${2:-}\")"
      contract=(--contract "$(at_caller "$2")"); shift ;;
    *) die "unknown argument: $1 (usage: scripts/package.sh [--contract FILE])" ;;
  esac
  shift
done

toolchain_ready
toolchain_musl
# The handlers alone: built with the tools, they would carry the test helpers.
toolchain_step "building the handlers ($TARGET, release)"
cargo build "${CARGO_FLAGS[@]}" -p archiver -p reader
# The assembler is a dev tool, from the debug build the tests and the demo share.
toolchain_dev_build

rm -rf dist
mkdir -p dist
for app in archiver reader; do
  exe="$BUILT/$app"
  if ldd "$exe" 2>&1 | grep -q '=>'; then
    die "$exe is dynamically linked; expected a static binary"
  fi
  target/debug/devhost assemble --app "$app" --executable "$exe" --out "dist/$app" ${contract[@]+"${contract[@]}"} >/dev/null ||
    die "assembling dist/$app failed (see above)"
  python3 scripts/zip-app.py "dist/$app" "dist/$app.zip"
  toolchain_step "dist/$app ($(du -sh "dist/$app" | cut -f1)), dist/$app.zip"
done
