#!/usr/bin/env bash
# Stops the local cloud started by start.sh (by its PID and process group) and checks that no
# process and no listener on 127.0.0.1:${SLUICE_LOCAL_PORT:-4566} is left. `--wipe` also deletes its state.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
state="${SLUICE_STATE_DIR:-$root/.local}"
pidfile="$state/localstack.pid"

port="${SLUICE_LOCAL_PORT:-4566}"
port_open() { (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; }

if [[ -f "$pidfile" ]]; then
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 60; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.25
    done
    # whatever survived the grace period (the gateway, jobs, endpoint workers)
    kill -KILL -- "-$pid" 2>/dev/null || true
    for ((i = 0; i < 20; i++)); do
      pgrep -g "$pid" >/dev/null 2>&1 || break
      sleep 0.25
    done
  fi
  rm -f "$pidfile"
fi
if port_open; then
  echo "something still listens on 127.0.0.1:$port (not started from this checkout?)" >&2
  exit 1
fi
if [[ "${1:-}" == "--wipe" ]]; then
  rm -rf "$state"
fi
echo "local cloud stopped"
