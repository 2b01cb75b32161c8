"""inference.py: strict validation, JSON and CSV, the output shape, training/serving parity."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from training import inference
from training.data import load_curated, schema_from_spec
from training.schema import encode_table

FEATURES = ["plan", "region", "monthly_charges", "tenure_months", "support_calls",
            "signup_dow", "signup_hour", "days_active"]  # fmt: skip
ROW = {
    "plan": "basic",
    "region": "eu",
    "monthly_charges": 35.5,
    "tenure_months": 3,
    "support_calls": 4,
    "signup_dow": 2,
    "signup_hour": 13,
    "days_active": 80.5,
}


@pytest.fixture(scope="module")
def model(churn_model):
    return inference.model_fn(str(churn_model))


def _body(*rows: dict) -> str:
    return json.dumps({"instances": list(rows)})


def _reject(body: str, content_type: str = inference.JSON) -> inference.InvalidInputError:
    with pytest.raises(inference.InvalidInputError) as info:
        inference.input_fn(body, content_type)
    return info.value


def test_missing_feature_is_rejected_by_name(model):
    row = {k: v for k, v in ROW.items() if k != "tenure_months"}
    error = _reject(_body(ROW, row))
    assert "instance 1: missing feature 'tenure_months'" in str(error)


def test_wrong_type_is_rejected_by_name(model):
    error = _reject(_body({**ROW, "monthly_charges": "35.5"}))
    assert "feature 'monthly_charges' expects a number, got string '35.5'" in str(error)


def test_bool_is_not_a_number(model):
    error = _reject(_body({**ROW, "support_calls": True}))
    assert "'support_calls' expects an integer, got boolean True" in str(error)


def test_unknown_field_is_rejected_by_name(model):
    error = _reject(_body({**ROW, "favourite_colour": "red"}))
    assert "unknown field 'favourite_colour'" in str(error)


def test_unknown_category_and_null_in_required_feature_are_rejected(model):
    error = _reject(_body({**ROW, "region": "mars"}, {**ROW, "plan": None}))
    assert "feature 'region' has unknown category 'mars'" in str(error)
    assert "instance 1: feature 'plan' must not be null" in str(error)


def test_every_problem_is_listed_and_the_error_maps_to_a_client_error(model):
    row = {k: v for k, v in ROW.items() if k != "plan"} | {"x": 1, "tenure_months": "3"}
    error = _reject(_body(row))
    assert isinstance(error, ValueError) and error.code == "invalid_input"
    assert len(error.details) == 3


@pytest.mark.parametrize(
    "body",
    ["not json", "[]", '{"instances": []}', '{"instances": [1]}', '{"rows": [], "instances": []}'],
)
def test_malformed_bodies_are_rejected(model, body):
    _reject(body)


def test_binary_prediction_carries_label_and_positive_probability(model):
    # When a valid batch is predicted
    out = json.loads(
        inference.output_fn(
            inference.predict_fn(inference.input_fn(_body(ROW, ROW), inference.JSON), model),
            "application/json",
        )
    )
    # Then each prediction has the label and P(positive), consistent with each other
    assert len(out["predictions"]) == 2
    pred = out["predictions"][0]
    assert set(pred) == {"label", "probability"}
    assert pred["label"] == (1 if pred["probability"] >= 0.5 else 0)


def test_csv_with_header_without_header_and_json_agree(model):
    rows = [ROW, {**ROW, "region": None, "tenure_months": 40}]
    header = ",".join(FEATURES) + "\n"
    lines = "".join(
        ",".join("" if r[f] is None else str(r[f]) for f in FEATURES) + "\n" for r in rows
    )
    shuffled = list(reversed(FEATURES))
    reordered = (
        ",".join(shuffled)
        + "\n"
        + "".join(
            ",".join("" if r[f] is None else str(r[f]) for f in shuffled) + "\n" for r in rows
        )
    )
    via_json = inference.input_fn(_body(*rows), inference.JSON).matrix
    for body in (header + lines, lines, reordered):
        np.testing.assert_array_equal(inference.input_fn(body, "text/csv").matrix, via_json)


def test_csv_errors_name_the_feature(model):
    header = ",".join(FEATURES) + "\n"
    assert "'tenure_months' expects an integer, got 'x'" in str(
        _reject(header + "basic,eu,35.5,x,4,2,13,80.5\n", inference.CSV)
    )
    assert "unknown field 'extra'" in str(_reject(header[:-1] + ",extra\n", inference.CSV))
    assert "model takes 8" in str(_reject("basic,eu,35.5\n", inference.CSV))


def test_serving_encodes_exactly_like_training(model, churn_spec, churn_data):
    # Given curated rows as training sees them, and the same rows as JSON instances
    schema = schema_from_spec(churn_spec)
    table = load_curated([churn_data], schema.names).table.slice(0, 500)
    instances = [{k: v for k, v in row.items()} for row in table.to_pylist()]
    # When serving validates and encodes the instances
    served = inference.input_fn(json.dumps({"instances": instances}), inference.JSON).matrix
    # Then the model matrix is identical to the training encoding
    np.testing.assert_array_equal(served, encode_table(table, schema))


def test_unsupported_media_types_are_refused(model):
    with pytest.raises(inference.UnsupportedMediaError):
        inference.input_fn("x", "application/x-parquet")
    batch = inference.input_fn(_body(ROW), inference.JSON)
    with pytest.raises(inference.UnsupportedMediaError):
        inference.output_fn(inference.predict_fn(batch, model), "application/xml")
    assert inference.output_fn(inference.predict_fn(batch, model), "text/csv").count("\n") == 1


def test_model_tarball_code_serves_in_a_fresh_process(churn_model, tmp_path):
    # Given only the model directory (its code/ folder, as SAGEMAKER_SUBMIT_DIRECTORY)
    driver = (
        "import inference, sys, json\n"
        "m = inference.model_fn(sys.argv[1])\n"
        "b = inference.input_fn(sys.argv[2], 'application/json')\n"
        "print(inference.output_fn(inference.predict_fn(b, m), 'application/json'))\n"
    )
    code = churn_model / "code"
    env = {**os.environ, "PYTHONPATH": str(code)}
    # When the container imports inference.py from there and serves a request
    out = subprocess.run(
        [sys.executable, "-c", driver, str(churn_model), _body(ROW)],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    # Then it answers in the API shape without the repository on the path
    assert json.loads(out.stdout)["predictions"][0]["label"] in (0, 1)
