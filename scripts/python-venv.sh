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

command -v python3 >/dev/null || die "python3 is not installed (Python 3.10 or newer needed)"
want="$(sha256sum "$DIR/requirements.txt" | cut -d' ' -f1)"
stamp="$VENV/.requirements.sha256"
(
  # Serialize concurrent installs sharing this checkout (lock outside the repo).
  if command -v flock >/dev/null; then
    exec 9>"${TMPDIR:-/tmp}/python-venv-$(echo "$VENV" | sha256sum | cut -c1-16).lock"
    flock 9
  fi
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    exit 0
  fi
  echo "python-venv.sh: installing $DIR/requirements.txt into $VENV (pip) ..." >&2
  rm -rf "$VENV"
  log="$(mktemp "${TMPDIR:-/tmp}/python-venv-pip.XXXXXX")"
  if ! { python3 -m venv "$VENV" && "$VENV/bin/pip" install --no-deps --disable-pip-version-check -q \
    -r "$DIR/requirements.txt"; } >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    die "installing from PyPI failed (full log: $log)"
  fi
  echo "$want" >"$stamp"
)
echo "$VENV/bin"
