"""The prediction record (datasets.record): checked as ingestion checks an upload's rows."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from datasets.record import MAX_DETAILS, RecordError, RecordShape
from datasets.spec import DatasetSpec, load_spec, spec_path

ROW = {
    "customer_id": "C1",
    "email": "ann@example.com",
    "phone": "+1-555-0000001",
    "signup_ts": "2024-01-01T10:30:00Z",
    "last_active_ts": "2024-01-11T22:30:00Z",
    "plan": "basic",
    "region": "eu",
    "monthly_charges": 29.5,
    "tenure_months": 12,
    "support_calls": 1,
}


def churn(**changes: Any) -> DatasetSpec:
    spec = load_spec(spec_path("churn") or "")
    return replace(spec, **changes)


def column_changes(spec: DatasetSpec, **changes: dict) -> DatasetSpec:
    columns = tuple(replace(c, **changes[c.name]) if c.name in changes else c for c in spec.columns)
    return replace(spec, columns=columns)


def values(spec: DatasetSpec, *rows: dict) -> dict[str, list]:
    records = RecordShape(spec).from_instances(list(rows))
    return {name: column.to_pylist() for name, column in records.columns.items()}


def problems(spec: DatasetSpec, *rows: dict) -> list[tuple[Any, Any, str]]:
    with pytest.raises(RecordError) as info:
        RecordShape(spec).from_instances(list(rows))
    return [(d.instance, d.field, d.message) for d in info.value.details]


def test_the_models_inputs_are_the_declared_columns_typed_plus_the_features() -> None:
    got = values(churn(), ROW)
    assert list(got) == [
        "signup_ts", "last_active_ts", "plan", "region", "monthly_charges", "tenure_months",
        "support_calls", "signup_dow", "signup_hour", "days_active",
    ]  # fmt: skip
    assert (got["signup_dow"], got["signup_hour"], got["days_active"]) == ([0], [10], [10.5])


def test_markers_read_as_missing_at_prediction_time_as_at_ingestion() -> None:
    spec = churn(na_values=("NA",))
    got = values(spec, {**ROW, "monthly_charges": "NA", "region": "NA", "last_active_ts": "NA"})
    assert (got["monthly_charges"], got["region"], got["days_active"]) == ([None], [None], [None])
    assert problems(spec, {**ROW, "plan": "NA"}) == [(0, "plan", "missing required value")]
    assert problems(churn(), {**ROW, "monthly_charges": "NA"}) == [
        (0, "monthly_charges", "expected a finite number, got 'NA'")
    ]


def test_an_optional_column_may_be_absent_from_a_record() -> None:
    spec = column_changes(churn(), region={"optional": True})
    bare = {k: v for k, v in ROW.items() if k != "region"}
    assert values(spec, bare, ROW)["region"] == [None, "eu"]
    assert values(spec, bare)["region"] == [None]
    assert problems(churn(), bare) == [
        (None, "region", "missing: the model needs this field "
         "(send null, or an empty value, for a missing value)"),
    ]  # fmt: skip


def test_only_the_columns_the_features_come_from_are_needed() -> None:
    needed = {k: ROW[k] for k in churn().input_columns()}
    records = RecordShape(churn()).from_instances([needed])
    assert records.rows == 1 and records.ids == {}


def test_pii_is_dropped_unread() -> None:
    shape = RecordShape(churn())
    odd = {**ROW, "email": {"nested": ["anything"]}, "phone": 12}
    assert shape.from_instances([odd]).columns.keys() == shape.from_instances([ROW]).columns.keys()


def test_every_problem_is_listed_up_to_a_limit() -> None:
    rows = [{**ROW, "plan": "gold"}] * (MAX_DETAILS + 5)
    with pytest.raises(RecordError) as info:
        RecordShape(churn()).from_instances(rows)
    assert len(info.value.details) == MAX_DETAILS and info.value.more == 5
    assert str(info.value).endswith("(and 5 more)")


def test_a_csv_body_without_a_header_is_the_record_without_pii_in_spec_order() -> None:
    shape = RecordShape(churn())
    assert shape.csv_order == (
        "customer_id", "signup_ts", "last_active_ts", "plan", "region", "monthly_charges",
        "tenure_months", "support_calls",
    )  # fmt: skip
    line = ",".join(str(ROW[name]) for name in shape.csv_order) + "\n"
    records = shape.from_csv(line)
    assert records.ids == {0: "C1"}
    assert records.columns["days_active"].to_pylist() == [10.5]
    with pytest.raises(RecordError, match="neither a header"):
        shape.from_csv("C1,basic\n")


def test_the_readmes_worked_example_holds() -> None:
    # Given the README's churn row as uploaded and the request it says is made from it
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    section = readme[readme.index("## The prediction record") :]
    upload = section.split("```csv\n", 1)[1].split("```", 1)[0]
    request = json.loads(section.split("```json\n", 1)[1].split("```", 1)[0])
    shape = RecordShape(churn())
    # When both are checked: the CSV minus the target column, and the JSON request
    header, line = (next(csv.reader([text])) for text in upload.strip().splitlines())
    keep = [i for i, name in enumerate(header) if name != "churned"]
    as_csv = ",".join(header[i] for i in keep) + "\n" + ",".join(line[i] for i in keep) + "\n"
    from_csv, from_json = shape.from_csv(as_csv), shape.from_json(json.dumps(request))
    # Then both give the features the README states, and the id to echo
    for records in (from_csv, from_json):
        assert records.ids == {0: "C1042"}
        assert records.columns["signup_dow"].to_pylist() == [0]
        assert records.columns["signup_hour"].to_pylist() == [8]
        assert round(records.columns["days_active"][0].as_py(), 1) == 635.4
    assert "`days_active` 635.4" in section
