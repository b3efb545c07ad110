#!/usr/bin/env bash
# Installs the pinned Schemathesis (requirements.txt) into scripts/schemathesis/.venv
# from PyPI, unless that exact set is installed already; prints the path of the
# `schemathesis` executable. ./scripts/test.sh runs it and exports SCHEMATHESIS.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin="$("$HERE/../python-venv.sh" "$HERE")"
"$bin/schemathesis" --version >/dev/null || { echo "schemathesis/install.sh: the installed schemathesis does not run" >&2; exit 1; }
echo "$bin/schemathesis"
