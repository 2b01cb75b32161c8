"""Helpers shared by the training tests (a uniquely named module: no clash with other suites)."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

from training import train

REPO = Path(__file__).resolve().parents[3]
SPECS = Path(__file__).resolve().parent / "specs"
CHURN_SPEC = REPO / "datasets" / "churn.yaml"
CHURN_ROWS = 20_000
#: quick but faithful settings for the shared churn model
FAST = ["--eta", "0.2", "--num_round", "150", "--early_stopping_rounds", "15"]
NO_GPU = {"SM_NUM_GPUS": "0"}


def run_train(spec: Path, data: Path, work: Path, *hps: str) -> Path:
    """Train in-process; returns the model directory (asserts success)."""
    model_dir = work / "model"
    argv = [
        *hps,
        "--spec", str(spec),
        "--train", str(data),
        "--model_dir", str(model_dir),
        "--output_data_dir", str(work / "output"),
    ]  # fmt: skip
    if "--checkpoint_dir" not in hps:
        argv += ["--checkpoint_dir", str(work / "checkpoints")]
    assert train.main(argv, environ=dict(NO_GPU)) == 0
    return model_dir


def pack(model_dir: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(model_dir.iterdir()):
            tar.add(path, arcname=path.name)
    return archive


def metadata(model_dir: Path) -> dict:
    return json.loads((model_dir / "metadata.json").read_text())
