"""The deployed preprocess package against Lambda's 250 MB limit (code + layers, unzipped).

Builds the function's asset exactly as ``cdk synth`` does for AWS (arm64, the runtime's Python,
runtime-provided packages and unused pyarrow parts excluded, bytecode included when the runtime's
interpreter is here) and measures it. Limit 0.8: a fifth of the limit stays free for growth.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from infra.config import STAGES
from infra.ingestion import PYARROW_UNUSED
from infra.lambda_function import RUNTIME_PROVIDED, PipLocalBundling

LAMBDA_LIMIT_BYTES = 250 * 1024 * 1024


def _size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def run() -> list[tuple[str, float, float]]:
    config = STAGES["prod"]
    bundling = PipLocalBundling(
        sources=["lambdas/__init__.py", "lambdas/shared", "datasets", "lambdas/preprocess"],
        requirements="lambdas/preprocess/requirements.txt",
        architecture=config.lambda_architecture,
        python_version=config.lambda_python,
        exclude=(*RUNTIME_PROVIDED, *PYARROW_UNUSED),
    )
    with tempfile.TemporaryDirectory() as tmp:
        bundling.try_bundle(tmp)
        size = _size(Path(tmp))
    mb = size / 1024 / 1024
    return [
        (
            f"preprocess package ({mb:.0f} MB unzipped, arm64) / 250 MB",
            size / LAMBDA_LIMIT_BYTES,
            0.8,
        )
    ]
