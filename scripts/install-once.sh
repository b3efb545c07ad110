#!/usr/bin/env bash
# Installs pinned packages once (source this file): runs an install command unless
# a stamp file already holds the hash of the pinned list, one install at a time
# per target (a lock outside the repo). Used for the emulators' npm packages
# (scripts/emulators.sh) and the Python venvs (scripts/python-venv.sh).
#
#   install_once <who> <target> <pinned list> <stamp> <log> <command...>
# The command's output goes to <log> (a new temporary file when empty); on
# failure its tail is printed and the caller exits. On success the stamp records the pinned list's hash.
# shellcheck shell=bash

install_once() {
  local who="$1" target="$2" pinned="$3" stamp="$4" log="$5"
  shift 5
  local want
  want="$(sha256sum "$pinned" | cut -d' ' -f1)"
  (
    if command -v flock >/dev/null; then
      exec 9>"${TMPDIR:-/tmp}/install-once-$(echo "$target" | sha256sum | cut -c1-16).lock"
      flock 9
    fi
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
      exit 0
    fi
    echo "$who: installing $pinned into $target ..." >&2
    [[ -n "$log" ]] || log="$(mktemp "${TMPDIR:-/tmp}/install-once.XXXXXX")"
    if ! "$@" >"$log" 2>&1; then
      tail -n 30 "$log" >&2
      echo "$who: installing $pinned failed (full log: $log)" >&2
      exit 1
    fi
    echo "$want" >"$stamp"
  ) || exit 1
}
