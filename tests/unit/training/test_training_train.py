"""train.py: quality, split, artifacts, metric lines, checkpoints and resume."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import xgboost as xgb
from sklearn.metrics import roc_auc_score
from training_helpers import CHURN_SPEC, metadata, run_train

from datasets.spec import DatasetSpec
from training import train
from training.artifacts import load_model_dir
from training.data import (
    TEST,
    TRAIN,
    SplitConfig,
    assign_split,
    encode_target,
    load_curated,
    needed_columns,
    schema_from_spec,
)
from training.schema import encode_table


def _holdout(spec: DatasetSpec, data: Path) -> tuple[np.ndarray, np.ndarray]:
    schema = schema_from_spec(spec)
    table = load_curated([data], *needed_columns(spec, schema)).table
    test = assign_split(table, SplitConfig.from_spec(spec)) == TEST
    y, _ = encode_target(table, schema)
    return encode_table(table, schema)[test], y[test]


def test_churn_model_reaches_the_auc_bar_on_the_holdout(churn_spec, churn_data, churn_model):
    # Given a model trained on 20k generated churn rows
    model = load_model_dir(churn_model, device="cpu")
    # When it scores the test share of the split, which it never trained on
    x, y = _holdout(churn_spec, churn_data)
    auc = roc_auc_score(y, model.scores(x))
    # Then the ROC-AUC clears 0.85, and metrics.json reports the same test AUC
    assert auc >= 0.85
    reported = json.loads((churn_model / "metrics.json").read_text())["test"]["roc_auc"]
    assert reported == pytest.approx(auc, abs=1e-6)


def test_split_is_a_function_of_the_id_and_holds_out_about_the_spec_share(churn_spec, churn_data):
    # Given the curated churn table and the same table with rows in another order
    schema = schema_from_spec(churn_spec)
    table = load_curated([churn_data], *needed_columns(churn_spec, schema)).table
    shuffled = table.take(np.random.default_rng(1).permutation(table.num_rows))
    config = SplitConfig.from_spec(churn_spec)
    # When both are split
    a = dict(zip(table["customer_id"].to_pylist(), assign_split(table, config), strict=True))
    b = dict(zip(shuffled["customer_id"].to_pylist(), assign_split(shuffled, config), strict=True))
    # Then every id lands in the same share, and the shares match the spec's fractions
    assert a == b
    shares = np.bincount(list(a.values()), minlength=3) / len(a)
    assert shares[TEST] == pytest.approx(churn_spec.split.test, abs=0.015)
    assert shares[TRAIN] == pytest.approx(1 - 0.15 - 0.15, abs=0.02)


def test_model_dir_records_the_run(churn_spec, churn_model):
    # Given the trained churn model directory
    meta = metadata(churn_model)
    # Then it holds the model, schema, baseline and serving code
    for name in ("model.ubj", "schema.json", "baseline.json", "metrics.json", "code/inference.py"):
        assert (churn_model / name).is_file(), name
    # And the metadata records data manifests, spec, code, split, hyperparameters, libs and seed
    assert len(meta["data"]["manifests"]) == 2
    assert all("quarantine" not in f["path"] for f in meta["data"]["files"])
    assert meta["spec"] == {"name": "churn", "version": 1, "fingerprint": churn_spec.fingerprint}
    assert len(meta["code"]["source_sha256"]) == 16
    assert meta["split"]["column"] == "customer_id"
    assert sum(meta["split"]["rows"].values()) == 20_000
    assert meta["hyperparameters"]["eta"] == 0.2 and meta["seed"] == 42
    assert meta["libraries"]["xgboost"] == xgb.__version__
    assert meta["device"] == "cpu"


def test_schema_saves_the_categorical_encoding(churn_model):
    # Given the saved feature schema
    schema = json.loads((churn_model / "schema.json").read_text())
    features = {f["name"]: f for f in schema["features"]}
    # Then categoricals carry their category order (the encoding), and PII/ids are not inputs
    assert features["plan"]["categories"] == ["basic", "standard", "premium"]
    assert features["plan"]["kind"] == "categorical"
    assert {"customer_id", "email", "phone", "churned"}.isdisjoint(features)
    assert schema["classes"] == [0, 1]


def test_baseline_has_histograms_that_cover_every_row(churn_model):
    # Given the training baseline
    baseline = json.loads((churn_model / "baseline.json").read_text())
    # Then every feature's bin fractions and null fraction add up to one
    for name, feature in baseline["features"].items():
        total = sum(feature["fractions"]) + feature["null_fraction"]
        assert total == pytest.approx(1.0), name
    assert len(baseline["features"]["monthly_charges"]["edges"]) == 9
    assert baseline["features"]["region"]["categories"] == ["eu", "us", "apac"]
    assert baseline["predictions"]["count"] > 0


def test_metric_lines_are_scrapeable(tmp_path, churn_data, capsys):
    # When a short run trains
    run_train(CHURN_SPEC, churn_data, tmp_path, "--num_round", "5", "--early_stopping_rounds", "0")
    out = capsys.readouterr().out
    # Then per-round and final metrics match the regexes of SageMaker metric definitions
    rounds = re.findall(r"validation-auc=([0-9.]+);", out)
    assert len(rounds) == 5
    assert 0.5 < float(re.findall(r"test-roc_auc=([0-9.]+);", out)[0]) <= 1
    assert re.search(r"best_iteration=(\d+);", out)


class _Interrupted(Exception):
    pass


class _KillAt(xgb.callback.TrainingCallback):
    """Simulates a spot interruption after a number of rounds."""

    def __init__(self, rounds: int) -> None:
        super().__init__()
        self.rounds = rounds

    def after_iteration(self, model, epoch, evals_log):
        if model.num_boosted_rounds() >= self.rounds:
            raise _Interrupted
        return False


RESUME_HPS = ("--num_round", "60", "--eta", "0.3", "--checkpoint_interval", "10")


def test_resumed_run_continues_from_the_checkpoint(tmp_path, churn_data, monkeypatch):
    # Given a run interrupted after 37 rounds, with checkpoints every 10 rounds
    original = train.training_callbacks
    monkeypatch.setattr(train, "training_callbacks", lambda *a: [*original(*a), _KillAt(37)])
    with pytest.raises(_Interrupted):
        run_train(CHURN_SPEC, churn_data, tmp_path / "job", *RESUME_HPS)
    assert [p.name for p in (tmp_path / "job" / "checkpoints").glob("*.ubj")] == [
        "checkpoint-30.ubj"
    ]
    monkeypatch.setattr(train, "training_callbacks", original)
    # When the same job starts again with the same checkpoint folder
    resumed = run_train(CHURN_SPEC, churn_data, tmp_path / "job", *RESUME_HPS)
    # Then it continues from round 30 instead of starting over
    info = metadata(resumed)["training"]
    assert info["resumed_from_round"] == 30
    # And it ends with the model an uninterrupted run trains
    fresh = run_train(CHURN_SPEC, churn_data, tmp_path / "fresh", *RESUME_HPS)
    assert metadata(fresh)["training"]["resumed_from_round"] == 0
    assert info["rounds"] == metadata(fresh)["training"]["rounds"]
    x = np.random.default_rng(0).random((200, 8)).astype(np.float32) * 50
    a = load_model_dir(resumed, device="cpu").scores(x)
    b = load_model_dir(fresh, device="cpu").scores(x)
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_checkpoint_of_another_run_is_not_resumed(tmp_path, churn_data):
    # Given checkpoints left by a run with other hyperparameters
    run_train(CHURN_SPEC, churn_data, tmp_path / "old", "--num_round", "20", "--eta", "0.3")
    shutil.copytree(tmp_path / "old" / "checkpoints", tmp_path / "new" / "checkpoints")
    # When a different run uses that checkpoint folder
    model = run_train(CHURN_SPEC, churn_data, tmp_path / "new", "--num_round", "20")
    # Then it starts from scratch and says why
    info = metadata(model)["training"]
    assert info["resumed_from_round"] == 0
    assert "another run" in info["checkpoint"]


def test_device_is_cuda_only_when_the_instance_has_a_gpu(churn_spec):
    # Given default hyperparameters
    args = train.parse_args([], {})
    # Then the device follows SM_NUM_GPUS
    assert train.xgb_params(args, churn_spec, {"SM_NUM_GPUS": "0"})["device"] == "cpu"
    assert train.xgb_params(args, churn_spec, {"SM_NUM_GPUS": "1"})["device"] == "cuda"


def test_missing_column_fails_with_a_message_naming_it(tmp_path, churn_data, capsys):
    # Given curated data without the support_calls column
    bad = tmp_path / "bad"
    bad.mkdir()
    table = pq.read_table(next(churn_data.rglob("part-0.parquet")))
    pq.write_table(table.drop_columns(["support_calls"]), bad / "part.parquet")
    # When training runs on it
    rc = train.main(
        ["--spec", str(CHURN_SPEC), "--train", str(bad), "--model_dir", str(tmp_path / "m"),
         "--output_data_dir", str(tmp_path / "o"), "--checkpoint_dir", str(tmp_path / "c")],
        environ={},
    )  # fmt: skip
    # Then it exits 1 with an error that names the file and the column
    assert rc == 1
    err = capsys.readouterr().err
    assert "support_calls" in err and "part.parquet" in err


def test_validation_channel_replaces_the_hashed_validation_share(tmp_path, churn_data, churn_spec):
    # Given a separate validation channel of curated rows
    from training.sample import write_curated

    val = write_curated(churn_spec, tmp_path / "val", 2_000, seed=9, files=1)
    # When training gets it
    model = run_train(
        CHURN_SPEC, churn_data, tmp_path, "--num_round", "10", "--validation", str(val)
    )
    # Then the run records the channel it stopped on
    meta = metadata(model)
    assert meta["data"]["validation_channel"][0]["path"].endswith("part-0.parquet")
    assert meta["split"]["rows"]["validation"] > 0
