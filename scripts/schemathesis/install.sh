#!/usr/bin/env bash
# Installs the pinned Schemathesis (requirements.txt) into scripts/schemathesis/.venv
# from PyPI, unless that exact set is installed already; prints the path of the
# `schemathesis` executable. ./scripts/test.sh runs it and exports SCHEMATHESIS.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv"
die() { echo "schemathesis/install.sh: $*" >&2; exit 1; }

command -v python3 >/dev/null || die "python3 is not installed (Python 3.10 or newer needed)"
want="$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)"
stamp="$VENV/.requirements.sha256"
(
  # Serialize concurrent installs sharing this checkout (lock outside the repo).
  if command -v flock >/dev/null; then
    exec 9>"${TMPDIR:-/tmp}/schemathesis-venv-$(echo "$VENV" | sha256sum | cut -c1-16).lock"
    flock 9
  fi
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$VENV/bin/schemathesis" ]]; then
    exit 0
  fi
  echo "schemathesis/install.sh: installing the pinned Schemathesis into $VENV (pip) ..." >&2
  rm -rf "$VENV"
  log="$(mktemp "${TMPDIR:-/tmp}/schemathesis-pip.XXXXXX")"
  if ! { python3 -m venv "$VENV" && "$VENV/bin/pip" install --no-deps --disable-pip-version-check -q \
    -r "$HERE/requirements.txt"; } >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    die "installing from PyPI failed (full log: $log)"
  fi
  "$VENV/bin/schemathesis" --version >/dev/null || die "the installed schemathesis does not run"
  echo "$want" >"$stamp"
)
echo "$VENV/bin/schemathesis"
