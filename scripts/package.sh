#!/usr/bin/env bash
# Builds static Linux (musl) release binaries of both handlers and assembles
# dist/archiver/ and dist/reader/: each a complete function app folder (host.json,
# its function folders, local.settings.json, the executable with its exec bit),
# ready for `func start` or `func azure functionapp publish`, plus dist/<app>.zip
# for zip deployment. Installs the musl target and musl-tools when missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

TARGET=x86_64-unknown-linux-musl
die() { echo "package.sh: $*" >&2; exit 1; }
step() { printf '==> %s\n' "$*"; }

if ! rustup target list --installed 2>/dev/null | grep -qx "$TARGET"; then
  step "adding the Rust target $TARGET"
  rustup target add "$TARGET" || die "could not add the $TARGET target (rustup target add $TARGET)"
fi
# zstd-sys and the TLS crypto build C code: they need a musl C compiler.
if ! command -v musl-gcc >/dev/null; then
  step "installing musl-tools (Debian) for the C parts of the build"
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    (apt-get update -qq && apt-get install -y -qq musl-tools) >/dev/null || die "apt-get install musl-tools failed"
  else
    die "musl-gcc is missing: install Debian's musl-tools (sudo apt-get install musl-tools)"
  fi
fi

step "building release handlers for $TARGET"
cargo build --release --locked --target "$TARGET" -p archiver -p reader
step "building the app assembler (a dev tool: debug build, shared with the tests)"
cargo build --locked -p devhost --bin devhost

rm -rf dist
mkdir -p dist
for app in archiver reader; do
  exe="target/$TARGET/release/$app"
  if ldd "$exe" 2>&1 | grep -q '=>'; then
    die "$exe is dynamically linked; expected a static binary"
  fi
  target/debug/devhost assemble --app "$app" --executable "$exe" --out "dist/$app" >/dev/null
  # Python's zipfile keeps the Unix mode bits, so the handler stays executable.
  (cd "dist/$app" && python3 -m zipfile -c "../$app.zip" .)
  step "dist/$app ($(du -sh "dist/$app" | cut -f1)), dist/$app.zip"
done
