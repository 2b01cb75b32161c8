"""Ingestion speed and memory, measured side by side in one run on a generated churn CSV.

- full preprocessing (``python -m lambdas.preprocess``: validation, HMAC of both PII columns,
  features, Parquet) vs the floor (``pyarrow.csv.read_csv`` + ``pyarrow.parquet.write_table``,
  no transforms) on the same 1,000,000-row file: limit 2.0;
- the same vs a straightforward pandas implementation (per-value ``hmac``): limit 1/3;
- peak memory (sum of the proportional set size of the process and its workers, sampled) while
  curating a 1 GB CSV, against 1.5 GB: limit 1.0. The 1 GB file takes about a minute to make and
  as long to process, so it runs only with SLUICE_BENCH_1GB=1; otherwise the 1M-row file stands
  in (named so in the output);
- the Lambda handler's cold import time against 400 ms, in the environment the Lambda runtime
  gives it (so the real X-Ray tracer loads, as deployed): limit 1.0.

Every timing is a whole process (interpreter start and imports included), the best of a few
runs that alternate between the contenders, so a busy neighbour hurts all of them alike.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".bench"
ROWS = 1_000_000
ROWS_1GB = 8_600_000  # ~125 bytes a row
ROUNDS = 3
KEY = "benchmark-pii-key-0123456789abcdef"

FLOOR = """
import sys, pyarrow.csv as c, pyarrow.parquet as p
p.write_table(c.read_csv(sys.argv[1]), sys.argv[2])
"""

PANDAS = """
import hashlib, hmac, os, sys
import pandas as pd
key = os.environ["SLUICE_PII_KEY"].encode()
df = pd.read_csv(sys.argv[1], dtype=str, keep_default_na=False)
for col in ("email", "phone"):
    df[col] = df[col].apply(lambda v: hmac.new(key, v.encode(), hashlib.sha256).hexdigest())
for col in ("signup_ts", "last_active_ts"):
    df[col] = pd.to_datetime(df[col], utc=True, errors="coerce")
for col in ("monthly_charges", "tenure_months", "support_calls", "churned"):
    df[col] = pd.to_numeric(df[col], errors="coerce")
bad = df[["signup_ts", "monthly_charges", "tenure_months", "support_calls", "churned"]].isna()
bad = bad.any(axis=1) | ~df["plan"].isin(["basic", "standard", "premium"])
bad |= (df["tenure_months"] < 0) | (df["tenure_months"] > 240) | (df["monthly_charges"] < 0)
df = df[~bad].copy()
df["signup_dow"] = df["signup_ts"].dt.dayofweek
df["signup_hour"] = df["signup_ts"].dt.hour
df["days_active"] = (df["last_active_ts"] - df["signup_ts"]).dt.total_seconds() / 86400
df.to_parquet(sys.argv[2])
"""


def _csv(rows: int) -> Path:
    path = CACHE / f"churn-{rows}.csv"
    if not path.exists():
        CACHE.mkdir(exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "datasets.generate",
                "churn",
                "--rows",
                str(rows),
                "--out",
                str(path),
                "--seed",
                "7",
            ],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
    return path


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "SLUICE_PII_KEY": KEY}


def _ours(src: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "lambdas.preprocess",
        "--spec",
        "datasets/churn.yaml",
        str(src),
        str(out),
    ]


def _timed(cmd: list[str], extra_env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    env = {**_env(), **(extra_env or {})}
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def _pss_kib(pid: int) -> int:
    """Proportional set size of a process and its descendants (shared pages split fairly)."""
    total = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1])
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                total += _pss_kib(int(child))
    except (OSError, ValueError):
        pass
    return total


def _peak_memory_bytes(cmd: list[str]) -> int:
    proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL)
    peak = 0

    def sample() -> None:
        nonlocal peak
        while proc.poll() is None:
            peak = max(peak, _pss_kib(proc.pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    if proc.wait() != 0:
        raise RuntimeError(f"{cmd} failed")
    sampler.join()
    return peak * 1024


#: what the Lambda runtime sets before it imports a handler (active tracing on): the import
#: must be measured on the path Lambda takes, where the X-Ray SDK loads and patches botocore
LAMBDA_ENV = {
    "LAMBDA_TASK_ROOT": str(ROOT),
    "AWS_LAMBDA_FUNCTION_NAME": "sluice-bench-preprocess",
    "AWS_REGION": "us-east-1",
    "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
    "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
    "_HANDLER": "lambdas.preprocess.handler.handler",
    "POWERTOOLS_SERVICE_NAME": "preprocess",
}


def _cold_import_ms() -> float:
    def once(code: str) -> float:
        return _timed([sys.executable, "-c", code], LAMBDA_ENV)

    handler = "import lambdas.preprocess.handler"
    runs = [once(handler) - once("pass") for _ in range(5)]
    return statistics.median(runs) * 1000


def run() -> list[tuple[str, float, float]]:
    src = _csv(ROWS)
    out = CACHE / "out"
    floor_out = CACHE / "floor.parquet"
    pandas_out = CACHE / "pandas.parquet"
    floor, ours, pandas = [], [], []
    for _ in range(ROUNDS):
        floor.append(_timed([sys.executable, "-c", FLOOR, str(src), str(floor_out)]))
        ours.append(_timed(_ours(src, out)))
    for _ in range(2):
        pandas.append(_timed([sys.executable, "-c", PANDAS, str(src), str(pandas_out)]))
    results = [
        ("preprocess 1M rows / pyarrow read+write floor", min(ours) / min(floor), 2.0),
        ("preprocess 1M rows / naive pandas + per-value hmac", min(ours) / min(pandas), 1 / 3),
    ]
    big = os.environ.get("SLUICE_BENCH_1GB") == "1"
    mem_src = _csv(ROWS_1GB) if big else src
    label = "1 GB CSV" if big else "1M-row CSV (SLUICE_BENCH_1GB=1 for 1 GB)"
    peak = _peak_memory_bytes(_ours(mem_src, CACHE / "out-mem"))
    results.append((f"preprocess peak memory, {label} / 1.5 GB", peak / 1.5e9, 1.0))
    if (ROOT / "lambdas" / "preprocess" / "handler.py").exists():
        results.append(("preprocess handler cold import / 400 ms", _cold_import_ms() / 400, 1.0))
    return results


if __name__ == "__main__":
    for name, ratio, limit in run():
        print(f"{name:<62} {ratio:8.3f} {limit:8.3f}")
