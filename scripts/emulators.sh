#!/usr/bin/env bash
# Local emulators for tests: Azurite (blob) and a Cosmos DB (NoSQL API)
# emulator (@vercel/cosmosdb-server behind scripts/emulators/cosmos-server.js),
# both installed from npm, both in memory, both on 127.0.0.1 only.
#
#   scripts/emulators.sh start <statedir>   start both, write <statedir>/env
#   scripts/emulators.sh stop  <statedir>   stop exactly the processes started
#   scripts/emulators.sh with <command...>   start both, run the command with their
#                                            settings in its environment, stop both
#
# <statedir>/env is a shell file to source (see write_env below); logs go to
# <statedir>/azurite.log, <statedir>/cosmos.log (and npm.log when installing).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
EMU="$HERE/emulators"
WAIT_SECONDS="${EMULATORS_WAIT_SECONDS:-60}"

# Public, documented emulator key (the Cosmos server does not check it).
COSMOS_EMULATOR_KEY='C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=='

die() { echo "emulators.sh: $*" >&2; exit 1; }
# shellcheck source=scripts/install-once.sh
. "$HERE/install-once.sh"

usage() {
  echo "usage: $0 start|stop <statedir> | with <command...>" >&2
  exit 2
}

# Install node_modules with `npm ci` when missing or when package-lock.json
# changed since the last install (hash kept inside node_modules).
ensure_npm() {
  local statedir="$1"
  command -v node >/dev/null || die "node is not installed (Node 20 or newer needed)"
  command -v npm >/dev/null || die "npm is not installed"
  install_once emulators.sh "$EMU/node_modules" "$EMU/package-lock.json" \
    "$EMU/node_modules/.emulators-lock.sha256" "$statedir/npm.log" npm_ci
}

npm_ci() {
  (cd "$EMU" && npm ci --no-audit --no-fund)
}

# Prints the port from the first line of $1 matching "http://127.0.0.1:PORT".
port_from_log() {
  sed -n 's|.*http://127\.0\.0\.1:\([0-9][0-9]*\).*|\1|p' "$1" 2>/dev/null | head -n 1 || true
}

# True when something answers HTTP at $1 (any status counts).
answers_http() {
  node -e '
    const req = require("http").get(process.argv[1], res => { res.resume(); process.exit(0); });
    req.on("error", () => process.exit(1));
    req.setTimeout(2000, () => { req.destroy(); process.exit(1); });
  ' "$1"
}

alive() { [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null; }

# Kills PID $1 only if its command line still contains $2 (guards against a
# recycled PID): TERM, up to 5 s grace, then KILL.
kill_pid() {
  local pid="$1" marker="$2"
  alive "$pid" || return 0
  if [[ -r "/proc/$pid/cmdline" ]] && ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$marker"; then
    echo "emulators.sh: pid $pid is no longer $marker; not killing it" >&2
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 50); do
    alive "$pid" || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

AZURITE_MAIN="$EMU/azurite-server.js"
COSMOS_MAIN="$EMU/cosmos-server.js"

start() {
  local statedir="$1"
  mkdir -p "$statedir"
  statedir="$(cd "$statedir" && pwd)"
  if [[ -f "$statedir/env" ]]; then
    local old_az old_co
    old_az="$(sed -n 's/^export EMULATOR_AZURITE_PID=//p' "$statedir/env")"
    old_co="$(sed -n 's/^export EMULATOR_COSMOS_PID=//p' "$statedir/env")"
    if alive "$old_az" || alive "$old_co"; then
      die "emulators already running for $statedir (run: $0 stop $statedir)"
    fi
    rm -f "$statedir/env"
  fi
  ensure_npm "$statedir"

  # Port 0: each server binds a free port itself and logs it (no race
  # between picking a port and binding it).
  mkdir -p "$statedir/azurite"
  : >"$statedir/azurite.log"
  : >"$statedir/cosmos.log"
  # In-memory persistence cannot be combined with --location; the working
  # directory is the state dir so nothing lands elsewhere. The keep-alive
  # timeout outlasts client connection pools (reqwest: 90 s idle), so a
  # pooled connection is never closed under a client's feet.
  (cd "$statedir/azurite" && exec node "$AZURITE_MAIN" \
    --blobHost 127.0.0.1 --blobPort 0 --disableTelemetry --skipApiVersionCheck \
    --loose --inMemoryPersistence --silent --blobKeepAliveTimeout 120) \
    </dev/null >"$statedir/azurite.log" 2>&1 &
  az_pid=$!  # global: used by the EXIT trap
  (cd "$statedir" && exec node "$COSMOS_MAIN" --port 0) \
    </dev/null >"$statedir/cosmos.log" 2>&1 &
  co_pid=$!
  # Never leave half-started servers behind if anything below fails.
  trap 'kill_pid "$az_pid" "$AZURITE_MAIN"; kill_pid "$co_pid" "$COSMOS_MAIN"' EXIT

  local deadline=$((SECONDS + WAIT_SECONDS)) az_port="" co_port="" ready=""
  while ((SECONDS < deadline)); do
    alive "$az_pid" || break
    alive "$co_pid" || break
    [[ -n "$az_port" ]] || az_port="$(port_from_log "$statedir/azurite.log")"
    [[ -n "$co_port" ]] || co_port="$(port_from_log "$statedir/cosmos.log")"
    if [[ -n "$az_port" && -n "$co_port" ]] &&
      answers_http "http://127.0.0.1:$az_port/devstoreaccount1?comp=list" &&
      answers_http "http://127.0.0.1:$co_port/"; then
      ready=1
      break
    fi
    sleep 0.2
  done
  if [[ -z "$ready" ]]; then
    local why="did not answer within ${WAIT_SECONDS}s"
    alive "$az_pid" || why="azurite exited"
    alive "$co_pid" || why="cosmos-server exited"
    kill_pid "$az_pid" "$AZURITE_MAIN"
    kill_pid "$co_pid" "$COSMOS_MAIN"
    {
      echo "emulators.sh: start failed: $why"
      echo "--- last lines of $statedir/azurite.log:"
      tail -n 20 "$statedir/azurite.log"
      echo "--- last lines of $statedir/cosmos.log:"
      tail -n 20 "$statedir/cosmos.log"
    } >&2
    exit 1
  fi

  local sas
  sas="$(node "$EMU/sas.js")"
  write_env "$statedir/env" "$co_port" "$az_port" "$sas" "$az_pid" "$co_pid"
  trap - EXIT
  echo "emulators.sh: cosmos http://127.0.0.1:$co_port/ (pid $co_pid), azurite blob http://127.0.0.1:$az_port/devstoreaccount1 (pid $az_pid); env: $statedir/env"
}

write_env() {
  local file="$1" co_port="$2" az_port="$3" sas="$4" az_pid="$5" co_pid="$6"
  cat >"$file.tmp" <<EOF
# Written by scripts/emulators.sh start; source it. Stop: scripts/emulators.sh stop $(dirname "$file")
export COSMOS_ENDPOINT='http://127.0.0.1:$co_port/'
export COSMOS_KEY='$COSMOS_EMULATOR_KEY'
export ARCHIVE_BLOB_ENDPOINT='http://127.0.0.1:$az_port/devstoreaccount1'
export ARCHIVE_BLOB_SAS='$sas'
# What azure_data_cosmos 1.0 needs against this emulator (client side):
export AZURE_COSMOS_CONNECTION_POOL_IS_HTTP2_ALLOWED=false
export AZURE_COSMOS_BINARY_ENCODING_ENABLED=false
export COSMOS_DISABLE_IMDS=1
export EMULATOR_AZURITE_PID=$az_pid
export EMULATOR_COSMOS_PID=$co_pid
EOF
  mv "$file.tmp" "$file"
}

stop() {
  local statedir="$1"
  [[ -f "$statedir/env" ]] || { echo "emulators.sh: no $statedir/env; nothing to stop" >&2; return 0; }
  local az_pid co_pid
  az_pid="$(sed -n 's/^export EMULATOR_AZURITE_PID=//p' "$statedir/env")"
  co_pid="$(sed -n 's/^export EMULATOR_COSMOS_PID=//p' "$statedir/env")"
  kill_pid "$co_pid" "$COSMOS_MAIN"
  kill_pid "$az_pid" "$AZURITE_MAIN"
  rm -f "$statedir/env"
  echo "emulators.sh: stopped (pids ${az_pid:-none} ${co_pid:-none})"
}

# Runs a command with both emulators up and their settings in its environment,
# then stops them, whatever the command's outcome; exits with its status.
with_emulators() {
  # Global, so the EXIT trap still sees it; the trap is set only after start(),
  # which uses (and clears) an EXIT trap of its own while starting.
  WITH_STATEDIR="$(mktemp -d "${TMPDIR:-/tmp}/billing-emulators.XXXXXX")"
  start "$WITH_STATEDIR"
  trap 'stop "$WITH_STATEDIR" || true' EXIT
  set -a
  # shellcheck disable=SC1091
  . "$WITH_STATEDIR/env"
  set +a
  "$@"
}

case "${1:-}" in
  start) [[ $# -eq 2 ]] || usage; start "$2" ;;
  stop) [[ $# -eq 2 ]] || usage; stop "$2" ;;
  with) [[ $# -ge 2 ]] || usage; shift; with_emulators "$@" ;;
  *) usage ;;
esac
