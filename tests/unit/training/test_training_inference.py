"""inference.py: records in the dataset's shape in, predictions out, client errors as 4xx."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from training import inference

#: a churn row as an upload holds it, minus the target
ROW = {
    "customer_id": "C17",
    "email": "ann@example.com",
    "phone": "+1-555-0000017",
    "signup_ts": "2024-01-01T10:30:00Z",
    "last_active_ts": "2024-03-11T22:30:00+02:00",
    "plan": "basic",
    "region": "eu",
    "monthly_charges": 35.5,
    "tenure_months": 3,
    "support_calls": 4,
}
HEADER = list(ROW)


@pytest.fixture(scope="module")
def model(churn_model):
    return inference.model_fn(str(churn_model))


def _body(*rows: dict) -> str:
    return json.dumps({"instances": list(rows)})


def _csv(rows: list[dict], header: list[str] = HEADER) -> str:
    lines = [",".join(header)]
    lines += [",".join("" if r.get(h) is None else str(r[h]) for h in header) for r in rows]
    return "\n".join(lines) + "\n"


def _predict(body: str, content_type: str = inference.JSON) -> dict:
    model = inference._model()
    batch = inference.input_fn(body, content_type)
    answer, media = inference.output_fn(inference.predict_fn(batch, model), "application/json")
    assert media == "application/json"
    return json.loads(answer)


def _reject(body: str, content_type: str = inference.JSON) -> inference.InvalidInputError:
    error = inference.input_fn(body, content_type)
    assert isinstance(error, inference.InvalidInputError), error
    return error


def test_an_uploaded_row_is_a_prediction_request(model):
    # Given a row as uploaded (id and PII included), When it is predicted
    out = _predict(_body(ROW, {**ROW, "customer_id": "C18", "plan": "premium"}))
    # Then there is one prediction per instance, the id echoed, and the model version named
    assert [p["id"] for p in out["predictions"]] == ["C17", "C18"]
    pred = out["predictions"][0]
    assert set(pred) == {"id", "label", "probability"}
    assert pred["label"] == (1 if pred["probability"] >= 0.5 else 0)
    assert (
        out["model_version"]
        == json.loads((model.directory / "metadata.json").read_text())["run_id"]
    )


def test_the_endpoints_model_version_wins(model, monkeypatch):
    monkeypatch.setenv("SLUICE_MODEL_VERSION", "7")
    assert _predict(_body(ROW))["model_version"] == "7"


def test_id_and_pii_may_be_absent_and_pii_is_never_used_nor_echoed(model):
    # Given the same customer with and without id and PII, and with other PII values
    bare = {k: v for k, v in ROW.items() if k not in ("customer_id", "email", "phone")}
    other_pii = {**ROW, "email": {"not": "even a string"}, "phone": None}
    with_all, without, other = (_predict(_body(r)) for r in (ROW, bare, other_pii))
    # Then the prediction is the same, the id only echoed when given, PII nowhere in the answer
    assert without["predictions"][0] == {
        k: v for k, v in with_all["predictions"][0].items() if k != "id"
    }
    assert other["predictions"] == with_all["predictions"]
    assert "ann@example.com" not in json.dumps(with_all)


def test_an_id_is_echoed_only_for_the_instances_that_carry_it(model):
    bare = {k: v for k, v in ROW.items() if k != "customer_id"}
    out = _predict(_body(bare, ROW))
    assert "id" not in out["predictions"][0] and out["predictions"][1]["id"] == "C17"


def test_timestamps_with_offsets_are_the_same_instant_in_utc(model):
    # 2024-01-01T10:30Z written with three offsets gives one feature vector
    forms = ["2024-01-01T10:30:00Z", "2024-01-01T16:00:00+05:30", "2024-01-01T02:30:00-0800"]
    rows = [{**ROW, "signup_ts": ts} for ts in forms]
    matrix = inference.input_fn(_body(*rows), inference.JSON).matrix
    assert (matrix == matrix[0]).all()


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"favourite_colour": "red"}, "favourite_colour", "undeclared: the churn record's fields"),
        ({"churned": 1}, "churned", "the target, which the model predicts"),
        ({"signup_ts": "31/12/2023"}, "signup_ts", "expected an ISO-8601 timestamp"),
        ({"tenure_months": 241}, "tenure_months", "expected a value <= 240, got 241"),
        ({"support_calls": -1}, "support_calls", "expected a value >= 0, got -1"),
        ({"plan": "gold"}, "plan", "expected one of basic, standard, premium, got 'gold'"),
        ({"plan": None}, "plan", "missing required value"),
        ({"plan": ""}, "plan", "missing required value"),
        ({"tenure_months": "twelve"}, "tenure_months", "expected an integer, got 'twelve'"),
        ({"tenure_months": 3.5}, "tenure_months", "expected an integer, got 3.5"),
        ({"support_calls": True}, "support_calls", "expected an integer, got True"),
        ({"monthly_charges": [1]}, "monthly_charges", "expected a finite number, got [1]"),
        ({"customer_id": None}, "customer_id", "missing required value"),
    ],
)
def test_a_bad_value_is_an_error_naming_instance_and_field(model, change, field, message):
    # Given a good instance and a bad one
    error = _reject(_body(ROW, {**ROW, **change}))
    # Then the error names instance 1 and the field, says what is wrong, and maps to HTTP 400
    assert len(error.details) == 1
    detail = error.details[0]
    assert (detail["instance"], detail["field"]) == (1, field)
    assert message in detail["message"]
    assert error.status == 400 and error.error_code == "invalid_input"


def test_a_field_the_model_needs_may_not_be_left_out(model):
    row = {k: v for k, v in ROW.items() if k != "tenure_months"}
    error = _reject(_body(ROW, row))
    assert error.details == [
        {
            "instance": 1,
            "field": "tenure_months",
            "message": "missing: the model needs this field "
            "(send null, or an empty value, for a missing value)",
        }
    ]


def test_values_ingestion_accepts_are_accepted(model):
    # numbers as text, booleans of any spelling ingestion reads, a naive timestamp (UTC)
    row = {**ROW, "monthly_charges": "35.5", "tenure_months": "3", "signup_ts": "2024-01-01 10:30"}
    np.testing.assert_array_equal(
        inference.input_fn(_body(row), inference.JSON).matrix,
        inference.input_fn(_body(ROW), inference.JSON).matrix,
    )


def test_every_problem_is_listed_in_the_json_error_body(model):
    row = {**ROW, "plan": "gold", "x": 1, "tenure_months": "3.5"}
    error = _reject(_body(row, row))
    assert len(error.details) == 6
    body = json.loads(error.body())
    assert body["error"]["code"] == "invalid_input"
    assert body["error"]["details"][0] == {
        "instance": 0,
        "field": "plan",
        "message": "expected one of basic, standard, premium, got 'gold'",
    }
    assert "instance 1, field 'x'" in body["error"]["message"]


def test_a_client_error_travels_to_output_fn_and_leaves_as_a_400_response(model):
    # SageMaker's XGBoost container turns any exception a handler raises into a 500, and sends
    # what output_fn returns as the response: so the error is returned, never raised
    error = inference.input_fn(_body({**ROW, "plan": "gold"}), inference.JSON)
    assert isinstance(error, inference.InvalidInputError)
    passed_on = inference.predict_fn(error, model)
    response = inference.output_fn(passed_on, "application/json")
    assert passed_on is error and response.status_code == 400
    assert response.headers["Content-Type"] == "application/json"
    assert json.loads(response.get_data())["error"]["details"][0]["field"] == "plan"


@pytest.mark.parametrize(
    "body",
    ["not json", "[]", '{"instances": []}', '{"instances": [1]}', '{"rows": 1, "instances": [{}]}'],
)
def test_malformed_bodies_are_rejected(model, body):
    assert _reject(body).status == 400


def test_csv_with_the_upload_header_in_any_order_or_no_header_agrees_with_json(model):
    rows = [ROW, {**ROW, "region": None, "last_active_ts": None, "tenure_months": 40}]
    via_json = inference.input_fn(_body(*rows), inference.JSON)
    no_pii = [h for h in HEADER if h not in ("email", "phone")]
    bodies = [
        _csv(rows),
        _csv(rows, list(reversed(HEADER))),
        _csv(rows, no_pii).split("\n", 1)[1],  # rows only, in the record's order without PII
    ]
    for body in bodies:
        batch = inference.input_fn(body, "text/csv")
        np.testing.assert_array_equal(batch.matrix, via_json.matrix)
        assert batch.ids == via_json.ids == {0: "C17", 1: "C17"}


def test_csv_errors_name_the_field_and_the_row(model):
    bad_value = _reject(_csv([ROW, {**ROW, "tenure_months": "x"}]), inference.CSV)
    assert (bad_value.details[0]["instance"], bad_value.details[0]["field"]) == (1, "tenure_months")
    extra = _reject(_csv([ROW], [*HEADER, "extra"]), inference.CSV)
    assert extra.details[0]["field"] == "extra"
    short = _reject(_csv([ROW]) + "C1,x\n", inference.CSV)
    assert short.details[0] == {
        "instance": 1,
        "field": None,
        "message": "expected 10 fields, found 2",
    }
    lacking = _reject(_csv([ROW], [h for h in HEADER if h != "plan"]), inference.CSV)
    assert (lacking.details[0]["instance"], lacking.details[0]["field"]) == (None, "plan")


def test_unsupported_media_types_answer_415_and_406(model):
    error = inference.input_fn("x", "application/x-parquet")
    assert isinstance(error, inference.UnsupportedMediaError)
    assert inference.output_fn(error, "application/json").status_code == 415
    prediction = inference.predict_fn(inference.input_fn(_body(ROW), inference.JSON), model)
    refused = inference.output_fn(prediction, "application/xml")
    assert refused.status_code == 406
    assert json.loads(refused.get_data())["error"]["code"] == "not_acceptable"
    answer, media = inference.output_fn(prediction, "text/csv")
    assert media == "text/csv" and answer.count("\n") == 1


def test_a_model_without_its_spec_is_refused_at_load(churn_model, tmp_path):
    copy = shutil.copytree(churn_model, tmp_path / "model")
    (copy / "spec.json").unlink()
    with pytest.raises(ValueError, match=r"no spec\.json"):
        inference.model_fn(str(copy))
    inference.model_fn(str(churn_model))  # the module's model again, for the other tests


def test_model_tarball_code_serves_in_a_fresh_process(churn_model, tmp_path):
    # Given only the model directory (its code/ folder, as SAGEMAKER_SUBMIT_DIRECTORY)
    driver = (
        "import inference, sys, json\n"
        "m = inference.model_fn(sys.argv[1])\n"
        "b = inference.input_fn(sys.argv[2], 'application/json')\n"
        "print(inference.output_fn(inference.predict_fn(b, m), 'application/json')[0])\n"
    )
    code = churn_model / "code"
    env = {**os.environ, "PYTHONPATH": str(code)}
    # When the container imports inference.py from there and serves a raw record
    out = subprocess.run(
        [sys.executable, "-c", driver, str(churn_model), _body(ROW)],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    # Then it answers in the API shape without the repository on the path
    assert json.loads(out.stdout)["predictions"][0]["id"] == "C17"
