"""``training.local predict`` on the rows of an upload, as they are: one prediction per row with
its id, and the same predictions as features computed by hand from the same rows."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from training_helpers import pack

from datasets.generate import write_csv
from training import local as training_local
from training import metrics
from training.artifacts import load_model_dir
from training.schema import encode_table

ROWS = 2000


@pytest.fixture(scope="module")
def held_out(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, str]], Path]:
    """Generated churn rows the model never saw (another seed), as an upload writes them."""
    work = tmp_path_factory.mktemp("held-out")
    write_csv("churn", ROWS, work / "upload.csv", seed=2024)
    return list(csv.DictReader(io.StringIO((work / "upload.csv").read_text()))), work


@pytest.fixture(scope="module")
def archive(churn_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pack(churn_model, tmp_path_factory.mktemp("tar") / "model.tar.gz")


def _predict(archive: Path, request: Path, capsys: pytest.CaptureFixture[str]) -> list[dict]:
    capsys.readouterr()
    assert training_local.main(["predict", "--model", str(archive), "--input", str(request)]) == 0
    predictions: list[dict] = json.loads(capsys.readouterr().out)["predictions"]
    return predictions


def _by_hand(rows: list[dict[str, str]], model_dir: Path) -> np.ndarray:
    """The model's scores with the features computed here, independently, in plain Python."""
    model = load_model_dir(model_dir)

    def ts(text: str) -> datetime | None:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ") if text else None

    columns: dict[str, list] = {name: [] for name in model.schema.names}
    for row in rows:
        signup, last = ts(row["signup_ts"]), ts(row["last_active_ts"])
        assert signup is not None
        columns["plan"].append(row["plan"])
        columns["region"].append(row["region"] or None)
        columns["monthly_charges"].append(float(row["monthly_charges"]))
        columns["tenure_months"].append(int(row["tenure_months"]))
        columns["support_calls"].append(int(row["support_calls"]))
        columns["signup_dow"].append(signup.weekday())
        columns["signup_hour"].append(signup.hour)
        columns["days_active"].append(
            None if last is None else (last - signup).total_seconds() / 86400
        )
    return model.scores(encode_table(pa.table(columns), model.schema))


def test_predict_takes_upload_rows_minus_the_target_and_echoes_their_ids(
    held_out, archive, churn_model, capsys
):
    rows, work = held_out
    # Given the rows of an upload minus the target, id and PII columns included, as JSON and CSV
    instances = [{k: v for k, v in row.items() if k != "churned"} for row in rows]
    (work / "request.json").write_text(json.dumps({"instances": instances}))
    with (work / "request.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(instances[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(instances)
    # When training.local predict is asked with them
    via_json = _predict(archive, work / "request.json", capsys)
    via_csv = _predict(archive, work / "request.csv", capsys)
    # Then there is one prediction per row, in order, with the row's id, both ways alike
    assert [p["id"] for p in via_json] == [row["customer_id"] for row in rows]
    assert via_csv == via_json
    # And the quality on these held-out rows is what features computed by hand give
    served = np.array([p["probability"] for p in via_json])
    hand = _by_hand(rows, churn_model)
    np.testing.assert_array_equal(served, np.round(hand.astype(np.float64), 6))
    y = np.array([int(row["churned"]) for row in rows])
    assert metrics.roc_auc(y, served) == pytest.approx(metrics.roc_auc(y, hand), abs=1e-6)
    assert metrics.roc_auc(y, served) > 0.8


def test_predict_names_instance_and_field_of_each_bad_value_without_a_traceback(
    held_out, archive, capsys
):
    rows, work = held_out
    bad = [
        {**rows[0], "favourite_colour": "red"},
        {**rows[1], "signup_ts": "31/12/2023"},
        {**rows[2], "tenure_months": "400"},
        {**rows[3], "plan": "gold"},
        {**rows[4], "plan": ""},
    ]
    for row in bad:
        row.pop("churned")
    (work / "bad.json").write_text(json.dumps({"instances": bad}))
    capsys.readouterr()
    request = ["predict", "--model", str(archive), "--input", str(work / "bad.json")]
    code = training_local.main(request)
    out = capsys.readouterr()
    assert code == 2 and out.out == "" and "Traceback" not in out.err
    assert out.err.splitlines() == [
        "error: instance 0, field 'favourite_colour': undeclared: the churn record's fields are "
        "customer_id, email, phone, signup_ts, last_active_ts, plan, region, monthly_charges, "
        "tenure_months, support_calls",
        "error: instance 1, field 'signup_ts': expected an ISO-8601 timestamp such as "
        "2024-01-31T12:00:00Z, got '31/12/2023'",
        "error: instance 2, field 'tenure_months': expected a value <= 240, got '400'",
        "error: instance 3, field 'plan': expected one of basic, standard, premium, got 'gold'",
        "error: instance 4, field 'plan': missing required value",
    ]
