#!/usr/bin/env bash
# The whole job end to end on local emulators: build both apps, start Azurite and
# the Cosmos emulator, seed realistic billing records, plan the archiving, archive
# them through the archiver app under the host stand-in, read hot and archived
# records back through the reader app, check every answer, print a report.
#   ./scripts/demo.sh [--packaged] [--records N] [--max-kb N] [--sample N] [--blob-price P] ...
# The apps are assembled from the debug build that test.sh also uses, so the demo
# and the tests compile the workspace once between them (README, "The two
# commands"). --packaged runs the release packages of scripts/package.sh instead:
# the static musl binaries that deploy, at the cost of a second, release build.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/toolchain.sh
. scripts/toolchain.sh

apps=target/demo-apps
if [[ ${1:-} == --packaged ]]; then
  shift
  ./scripts/package.sh
  apps=dist
else
  toolchain_ready
  toolchain_dev_build
  rm -rf "$apps"
  for app in archiver reader; do
    target/debug/devhost assemble --app "$app" --executable "target/debug/$app" --out "$apps/$app" >/dev/null
  done
  toolchain_step "assembled $apps/archiver and $apps/reader (debug builds; --packaged for the release packages)"
fi

toolchain_step "running the demo (against emulators started for this run)"
./scripts/emulators.sh with target/debug/demo --dist "$apps" "$@"
