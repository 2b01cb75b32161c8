#!/usr/bin/env bash
# Starts the embedded local cloud: LocalStack in host mode (no Docker) with Sluice's extension,
# on 127.0.0.1:${SLUICE_LOCAL_PORT:-4566} only, state under .local/. Waits for /_localstack/health. Idempotent.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
venv="${SLUICE_LOCAL_VENV:-$root/.venv-local}"
state="${SLUICE_STATE_DIR:-$root/.local}"
pidfile="$state/localstack.pid"
logfile="$state/localstack.log"
port="${SLUICE_LOCAL_PORT:-4566}"
url="http://127.0.0.1:$port/_localstack/health"
timeout="${SLUICE_LOCAL_START_TIMEOUT:-90}"

if [[ ! -x "$venv/bin/python" ]]; then
  echo "local cloud not installed: run 'make local-install' (or 'make install')" >&2
  exit 1
fi
mkdir -p "$state"
if [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  echo "local cloud already running (pid $(cat "$pidfile"))"
  exit 0
fi
if curl -s -o /dev/null "$url"; then
  echo "port $port is taken by a process this checkout did not start" >&2
  exit 1
fi

export SLUICE_ROOT="$root" SLUICE_STATE_DIR="$state"
export SLUICE_SAGEMAKER_PYTHON="${SLUICE_SAGEMAKER_PYTHON:-$root/.venv/bin/python}"
export GATEWAY_LISTEN="127.0.0.1:$port" SLUICE_GATEWAY_URL="http://127.0.0.1:$port" GATEWAY_SERVER=hypercorn DNS_ADDRESS=0
export DISABLE_EVENTS=1 SKIP_SSL_CERT_DOWNLOAD=1 LOCALSTACK_VOLUME_DIR="$state/volume"
export LAMBDA_RUNTIME_EXECUTOR=subprocess PROVIDER_OVERRIDE_DYNAMODB=moto
# A resource type without a provider fails the deploy, as on AWS, instead of LocalStack's default
# of skipping it and still reporting CREATE_COMPLETE. Every type the app uses has a provider
# (LocalStack's or sluice_local's); tests/integration/test_cloudformation.py holds this.
export CFN_IGNORE_UNSUPPORTED_RESOURCE_TYPES=0
export LAMBDA_KEEPALIVE_MS="${LAMBDA_KEEPALIVE_MS:-60000}"
# local time runs this many times faster than AWS for deployment waits and alarms on endpoint
# metrics (a 60 s alarm period is 1 s locally); 1 = real time. See local/README.md.
export SLUICE_TIME_SCALE="${SLUICE_TIME_SCALE:-60}"
# TMPDIR too: LocalStack unzips Lambda code under it (it logs a harmless deprecation warning)
export FILESYSTEM_ROOT="$state/fs" CONFIG_DIR="$state/config" TMPDIR="$state/tmp"
mkdir -p "$TMPDIR"

# setsid: own process group, so stop.sh can end LocalStack and everything it spawned.
setsid "$venv/bin/python" -m localstack.runtime.main >"$logfile" 2>&1 < /dev/null &
echo $! >"$pidfile"
pid=$!

for ((i = 0; i < timeout * 4; i++)); do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "local cloud exited during start-up; last lines of $logfile:" >&2
    tail -n 30 "$logfile" >&2
    rm -f "$pidfile"
    exit 1
  fi
  if curl -s -o /dev/null -w '%{http_code}' "$url" | grep -q 200; then
    echo "local cloud up on http://127.0.0.1:$port (pid $pid, log $logfile)"
    exit 0
  fi
  sleep 0.25
done
echo "local cloud not healthy after ${timeout}s; see $logfile" >&2
"$here/stop.sh" >/dev/null 2>&1 || true
exit 1
