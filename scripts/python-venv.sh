#!/usr/bin/env bash
# Installs the pinned Python packages of DIR/requirements.txt into DIR/.venv from
# PyPI, unless that exact set is there already; prints the venv's bin directory.
# Used by the test command for Schemathesis (scripts/schemathesis/) and for the
# infrastructure, workflow and shell checks (scripts/checks/).
#   bin="$(scripts/python-venv.sh scripts/checks)"
set -euo pipefail
DIR="$(cd "${1:?usage: python-venv.sh DIR}" && pwd)"
VENV="$DIR/.venv"
die() { echo "python-venv.sh: $*" >&2; exit 1; }
# shellcheck source=scripts/install-once.sh
. "$(dirname "${BASH_SOURCE[0]}")/install-once.sh"

command -v python3 >/dev/null || die "python3 is not installed (Python 3.10 or newer needed)"
fresh_venv() {
  rm -rf "$VENV"
  python3 -m venv "$VENV" &&
    "$VENV/bin/pip" install --no-deps --disable-pip-version-check -q -r "$DIR/requirements.txt"
}
install_once python-venv.sh "$VENV" "$DIR/requirements.txt" "$VENV/.requirements.sha256" "" fresh_venv
echo "$VENV/bin"
