"""Multiclass and regression specs train, evaluate and serve."""

from __future__ import annotations

import json

import numpy as np
from training_helpers import SPECS, metadata, run_train

from training import inference


def test_multiclass_spec_trains_and_serves(tmp_path, curated_for):
    # Given a 3-class spec and 6k curated rows
    data = curated_for("multiclass", 6_000)
    # When it trains
    model_dir = run_train(SPECS / "multiclass.yaml", data, tmp_path, "--eta", "0.3")
    # Then the model beats chance on the holdout and records a softprob objective
    test = json.loads((model_dir / "metrics.json").read_text())["test"]
    assert test["accuracy"] > 0.6 and test["macro_f1"] > 0.55
    assert metadata(model_dir)["xgboost_params"]["num_class"] == 3
    # And serving answers a label and a probability per class
    model = inference.model_fn(str(model_dir))
    row = {"account_id": "A1", "opened_ts": "2023-04-02T08:00:00Z", "segment": "smb",
           "seats": 20, "spend": 500.0, "logins": 10.0}  # fmt: skip
    batch = inference.input_fn(json.dumps({"instances": [row, row]}), "application/json")
    answer, _ = inference.output_fn(inference.predict_fn(batch, model), "application/json")
    pred = json.loads(answer)["predictions"][0]
    assert pred["id"] == "A1"
    assert pred["label"] in ("bronze", "silver", "gold")
    assert set(pred["probabilities"]) == {"bronze", "silver", "gold"}
    assert np.isclose(sum(pred["probabilities"].values()), 1.0, atol=1e-5)
    assert max(pred["probabilities"], key=pred["probabilities"].get) == pred["label"]


def test_regression_spec_trains_and_serves(tmp_path, curated_for):
    # Given a regression spec without an id column (bool and categorical inputs)
    data = curated_for("regression", 6_000)
    # When it trains
    model_dir = run_train(SPECS / "regression.yaml", data, tmp_path, "--eta", "0.3")
    # Then it explains most of the variance on the holdout, split by row hash
    test = json.loads((model_dir / "metrics.json").read_text())["test"]
    assert test["r2"] > 0.5
    assert metadata(model_dir)["split"]["column"] is None
    # And serving answers a value per instance, from JSON and CSV alike
    model = inference.model_fn(str(model_dir))
    row = {"store": "east", "promo": True, "price": 12.5, "temperature": None}
    batch = inference.input_fn(json.dumps({"instances": [row]}), "application/json")
    answer, _ = inference.output_fn(inference.predict_fn(batch, model), "application/json")
    assert set(json.loads(answer)["predictions"][0]) == {"value"}
    csv_batch = inference.input_fn("store,promo,price,temperature\neast,true,12.5,\n", "text/csv")
    np.testing.assert_array_equal(csv_batch.matrix, batch.matrix)
    error = inference.input_fn(json.dumps({"instances": [{**row, "promo": 2}]}), "application/json")
    assert isinstance(error, inference.InvalidInputError)
    assert "field 'promo': expected true or false, got 2" in str(error)
