"""python -m training.local: train, evaluate and predict end to end through the script-mode
contract (subprocesses, SM_* variables, the /opt/ml layout, the packaged sourcedir)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from training_helpers import CHURN_SPEC, REPO

from training.package import build_sourcedir


def _local(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SM_")}
    return subprocess.run(
        [sys.executable, "-m", "training.local", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, churn_data) -> Path:
    out = tmp_path_factory.mktemp("local") / "run"
    result = _local(
        "train", "--spec", str(CHURN_SPEC), "--data", str(churn_data), "--out", str(out),
        "--hp", "eta=0.3", "--hp", "num_round=60", "--hp", "early_stopping_rounds=10",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out


def test_train_writes_a_model_tarball_at_its_root(run_dir):
    # Then model.tar.gz holds the model folder's files at the archive root, like SageMaker's
    with tarfile.open(run_dir / "model.tar.gz") as tar:
        names = set(tar.getnames())
    assert {"model.ubj", "schema.json", "baseline.json", "metadata.json"} <= names
    assert "code/inference.py" in names and "code/training/schema.py" in names
    assert {"spec.json", "code/datasets/record.py", "code/datasets/features.py"} <= names
    assert (run_dir / "output" / "metrics.json").is_file()
    assert list((run_dir / "checkpoints").glob("checkpoint-*.ubj"))


def test_train_receives_hyperparameters_as_script_arguments(run_dir, tmp_path):
    with tarfile.open(run_dir / "model.tar.gz") as tar:
        tar.extract("metadata.json", tmp_path, filter="data")
    meta = json.loads((tmp_path / "metadata.json").read_text())
    assert meta["hyperparameters"]["eta"] == 0.3
    assert meta["hyperparameters"]["num_round"] == 60
    assert meta["data"]["files"][0]["path"].startswith("part-0/")


def test_rerunning_a_finished_job_resumes_instead_of_retraining(run_dir, churn_data):
    result = _local(
        "train", "--spec", str(CHURN_SPEC), "--data", str(churn_data), "--out", str(run_dir),
        "--hp", "eta=0.3", "--hp", "num_round=60", "--hp", "early_stopping_rounds=10",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "checkpoint: resuming from checkpoint-" in result.stdout
    assert re.search(r"^iteration=", result.stdout, flags=re.M) is None


def test_evaluate_then_predict(run_dir, churn_data, tmp_path):
    # When the trained model is evaluated as a processing job, with itself as the champion
    out = tmp_path / "eval"
    model = str(run_dir / "model.tar.gz")
    result = _local(
        "evaluate", "--spec", str(CHURN_SPEC), "--data", str(churn_data),
        "--challenger", model, "--champion", model, "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    doc = json.loads((out / "evaluation.json").read_text())
    assert doc["verdict"] == "reject" and (out / "report.html").is_file()
    assert "promote=0;" in result.stdout
    # And predict prints the output_fn body for a JSON request of a raw record
    request = tmp_path / "request.json"
    row = {
        "plan": "premium",
        "region": "us",
        "monthly_charges": 99.0,
        "tenure_months": 48,
        "support_calls": 0,
        "signup_ts": "2020-01-06T09:00:00Z",
        "last_active_ts": "2024-02-14T09:00:00Z",
    }
    request.write_text(json.dumps({"instances": [row]}))
    result = _local("predict", "--model", model, "--input", str(request))
    assert result.returncode == 0, result.stderr
    assert set(json.loads(result.stdout)["predictions"][0]) == {"label", "probability"}


def test_predict_bad_input_exits_nonzero_without_a_traceback(run_dir, tmp_path):
    request = tmp_path / "bad.csv"
    request.write_text("plan,region,colour\nbasic,eu,red\n")
    result = _local("predict", "--model", str(run_dir / "model.tar.gz"), "--input", str(request))
    assert result.returncode == 2
    assert "error: field 'colour': undeclared" in result.stderr
    assert "error: field 'signup_ts': missing" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_training_failure_exits_nonzero_with_the_reason(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _local("train", "--spec", str(CHURN_SPEC), "--data", str(empty),
                    "--out", str(tmp_path / "run"))  # fmt: skip
    assert result.returncode == 1
    assert "no *.parquet files" in result.stderr
    assert (tmp_path / "run" / "failure").read_text().startswith("ExecuteUserScriptError")


def test_sourcedir_has_entry_points_at_its_root(tmp_path):
    src = build_sourcedir(tmp_path / "src")
    for name in ("train.py", "evaluate.py", "inference.py", "requirements.txt",
                 "training/train.py", "datasets/spec.py", "datasets/features.py"):  # fmt: skip
        assert (src / name).is_file(), name
    assert not (src / "training" / "local.py").exists()
