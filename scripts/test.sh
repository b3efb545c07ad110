#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs the emulators (npm) and the
# pinned Schemathesis (PyPI), starts the emulators on free 127.0.0.1 ports, runs
# fmt, clippy and every test against them (Schemathesis included), and stops what
# it started. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }

command -v cargo >/dev/null || { echo "test.sh: cargo is not installed (Rust 1.88 or newer)" >&2; exit 1; }
for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    step "installing the $component component"
    rustup component add "$component"
  fi
done

step "format"
cargo fmt --all --check

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "build"
cargo build --workspace --all-targets --locked

step "the pinned Schemathesis (PyPI) for the read-API contract test"
SCHEMATHESIS="$(./scripts/schemathesis/install.sh)"
export SCHEMATHESIS

step "tests (against emulators started for this run)"
./scripts/emulators.sh with cargo test --workspace --locked -- --test-threads "${TEST_THREADS:-4}"
