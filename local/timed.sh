#!/usr/bin/env bash
# timed.sh NAME COMMAND...: run COMMAND and record its wall time as NAME in .local/timings.json
# (make demo prints them: local-up + local-deploy).
set -euo pipefail
name="$1"; shift
state="${SLUICE_STATE_DIR:-$(cd "$(dirname "$0")/.." && pwd)/.local}"
start=$(date +%s.%N)
"$@"
end=$(date +%s.%N)
mkdir -p "$state"
python3 - "$state/timings.json" "$name" "$start" "$end" <<'PY'
import json, sys, pathlib
path, name, start, end = pathlib.Path(sys.argv[1]), sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
timings = json.loads(path.read_text()) if path.is_file() else {}
timings[name] = round(end - start, 1)
path.write_text(json.dumps(timings))
print(f"{name}: {end - start:.1f} s")
PY
