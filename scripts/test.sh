#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the build needs
# (scripts/toolchain.sh), the emulators (npm) and the pinned Schemathesis (PyPI),
# starts the emulators on free 127.0.0.1 ports, runs fmt, clippy, the deployment
# checks (scripts/checks/) and every test against the emulators (Schemathesis
# included), and stops what it started. Exits non-zero on any failure. The tests
# build in debug, the build demo.sh shares: a release build of every test target
# measured twice as slow from a clean clone (BENCHMARKS.md, "Build times").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/toolchain.sh
. scripts/toolchain.sh

step() { printf '\n==> %s\n' "$*"; }

toolchain_ready

step "format"
cargo fmt --all --check

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo
toolchain_dev_build

step "deployment checks: templates, workflows, scripts (no Azure needed)"
./scripts/checks/run.sh

step "the pinned Schemathesis (PyPI) for the read-API contract test"
SCHEMATHESIS="$(./scripts/schemathesis/install.sh)"
export SCHEMATHESIS

step "tests (against emulators started for this run)"
./scripts/emulators.sh with cargo test --workspace --locked -- --test-threads "${TEST_THREADS:-4}"
