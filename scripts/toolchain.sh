#!/usr/bin/env bash
# The two build configurations (source this file):
# - toolchain_dev_build: the one debug build of the whole workspace that the tests,
#   the demo and the app assembler share. Always the same command, so whichever
#   script runs second reuses every crate the first compiled: a build of a subset
#   (`-p devhost`) unifies other features and recompiles the dependency tree.
# - CARGO_FLAGS: what ships and what is measured: release profile, static Linux
#   target, in target/x86_64-unknown-linux-musl/release (package.sh, bench.sh).
# Build times of both: BENCHMARKS.md, "Build times". Installs what the scripts need
# when it is missing: the rustfmt and clippy components (toolchain_ready), the Rust
# target and Debian's musl-tools (toolchain_musl).
#
#   . scripts/toolchain.sh && toolchain_ready && toolchain_musl && cargo build "${CARGO_FLAGS[@]}" -p archiver
# shellcheck shell=bash

TARGET=x86_64-unknown-linux-musl
# shellcheck disable=SC2034 # read by the scripts that source this file
CARGO_FLAGS=(--release --locked --target "$TARGET")
BUILT="target/$TARGET/release"
export TARGET BUILT

toolchain_step() { printf '==> %s\n' "$*"; }
toolchain_die() { echo "toolchain: $*" >&2; exit 1; }

# The shared debug build: every workspace target, binaries in target/debug.
toolchain_dev_build() {
  toolchain_step "building the workspace (debug: the tests, the dev tools and both handlers)"
  cargo build --workspace --all-targets --locked
}

# What every build needs: cargo, rustfmt and clippy.
toolchain_ready() {
  command -v cargo >/dev/null || toolchain_die "cargo is not installed (Rust 1.88 or newer: https://rustup.rs)"
  local component
  for component in rustfmt clippy; do
    if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
      toolchain_step "adding the $component component"
      rustup component add "$component" || toolchain_die "could not add $component (rustup component add $component)"
    fi
  done
}

# What the release musl build adds: the target, and a musl C compiler for the C
# parts (zstd, the TLS crypto).
toolchain_musl() {
  if ! rustup target list --installed 2>/dev/null | grep -qx "$TARGET"; then
    toolchain_step "adding the Rust target $TARGET"
    rustup target add "$TARGET" || toolchain_die "could not add the $TARGET target (rustup target add $TARGET)"
  fi
  if ! command -v musl-gcc >/dev/null; then
    toolchain_step "installing musl-tools (Debian) for the C parts of the build"
    local sudo=()
    [[ $(id -u) -eq 0 ]] || sudo=(sudo -n)
    command -v apt-get >/dev/null || toolchain_die "musl-gcc is missing and apt-get is not available: install musl-tools"
    { ${sudo[@]+"${sudo[@]}"} apt-get update -qq && ${sudo[@]+"${sudo[@]}"} apt-get install -y -qq musl-tools; } >/dev/null ||
      toolchain_die "apt-get install musl-tools failed (run: sudo apt-get install musl-tools)"
  fi
}
