#!/usr/bin/env bash
# Installs the embedded local cloud into .venv-local (Python 3.13, exact pins):
# LocalStack host mode, this extension, the Lambda runtime stand-ins (boto3 for Python,
# AWS SDK v3 for Node.js). Idempotent; `make local-install` runs it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
venv="${SLUICE_LOCAL_VENV:-$root/.venv-local}"

find_python313() {
  if [[ -n "${SLUICE_PYTHON313:-}" ]]; then echo "$SLUICE_PYTHON313"; return; fi
  if command -v pyenv >/dev/null 2>&1; then
    local candidate
    candidate="$(pyenv root)/versions/3.13.0/bin/python"
    if [[ -x "$candidate" ]]; then echo "$candidate"; return; fi
  fi
  command -v python3.13 || { echo "Python 3.13 not found (set SLUICE_PYTHON313)" >&2; exit 1; }
}

py313="$(find_python313)"
if [[ ! -x "$venv/bin/python" ]]; then
  "$py313" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check --quiet)
"${pip[@]}" install -r "$here/requirements.txt" -c "$here/constraints.txt"
"${pip[@]}" install --no-deps -e "$here"
"${pip[@]}" install --upgrade --target "$venv/lambda-runtime" --no-deps -r "$here/lambda-runtime.txt"
(cd "$here/node" && npm ci --no-audit --no-fund --loglevel=error)
echo "local cloud installed in $venv"
