"""Run every ``benchmarks/bench_*.py`` and print its ratios against their limits.

Each module exposes ``run() -> list[tuple[str, float, float]]``: (what, measured ratio, limit),
where a ratio at or below its limit holds. Ratios, not seconds: the floor is measured on the same
machine in the same run, so the verdict does not depend on how fast or busy the machine is.

    python -m benchmarks [NAME ...]     # e.g. python -m benchmarks preprocess
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    here = Path(__file__).resolve().parent
    names = argv or sorted(p.stem.removeprefix("bench_") for p in here.glob("bench_*.py"))
    failures = 0
    print(f"{'benchmark':<62} {'ratio':>8} {'limit':>8}  verdict")
    for name in names:
        module = importlib.import_module(f"benchmarks.bench_{name}")
        for what, ratio, limit in module.run():
            holds = ratio <= limit
            failures += not holds
            print(f"{what:<62} {ratio:>8.3f} {limit:>8.3f}  {'ok' if holds else 'OVER'}")
            sys.stdout.flush()
    print(f"{failures} over the limit" if failures else "all within limits")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
