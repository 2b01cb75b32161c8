"""Column presence vs nullability, and missing-value markers (``na_values``), at ingestion."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from datasets.spec import DatasetSpec
from tests.unit.preprocess.helpers import (
    HEADER,
    churn_spec,
    csv_text,
    curated,
    good_rows,
    quarantined,
    row,
    run,
)


def _with_columns(spec: DatasetSpec, **changes: dict) -> DatasetSpec:
    columns = tuple(replace(c, **changes[c.name]) if c.name in changes else c for c in spec.columns)
    return replace(spec, columns=columns)


def test_a_file_missing_a_declared_column_is_rejected_naming_it(tmp_path: Path) -> None:
    # Given an export where an upstream rename dropped 'region' (a column whose values may be empty)
    header = [h for h in HEADER if h != "region"]
    # When it is ingested, Then the whole file is rejected, naming the column, not curated empty
    outcome = run(tmp_path, csv_text(good_rows(3), header=header))
    assert not outcome.accepted and outcome.rejection is not None
    assert outcome.rejection.code == "missing_columns"
    assert outcome.rejection.column == "region"
    assert "'region' not in the header" in outcome.rejection.message
    assert "optional: true" in outcome.rejection.message


def test_the_same_file_is_accepted_when_the_column_is_optional(tmp_path: Path) -> None:
    spec = _with_columns(churn_spec(), region={"optional": True})
    header = [h for h in HEADER if h != "region"]
    outcome = run(tmp_path, csv_text(good_rows(3), header=header), spec=spec)
    assert [r["region"] for r in curated(outcome)] == [None, None, None]
    assert outcome.manifest is not None
    assert outcome.manifest["columns"]["missing_optional"] == ["region"]


def test_an_optional_column_present_in_the_file_is_checked_like_any_other(tmp_path: Path) -> None:
    spec = _with_columns(churn_spec(), region={"optional": True})
    rows = [*good_rows(40), row(99, region="mars")]
    outcome = run(tmp_path, csv_text(rows), spec=spec)
    assert [q["reasons"] for q in quarantined(outcome)] == [
        ["region: expected one of eu, us, apac, got 'mars'"]
    ]


def test_required_still_means_the_value_may_not_be_empty(tmp_path: Path) -> None:
    outcome = run(tmp_path, csv_text([*good_rows(40), row(99, plan="")]))
    assert [q["reasons"] for q in quarantined(outcome)] == [["plan: missing required value"]]


# ------------------------------------------------------------------ na_values
R_EXPORT = {  # one row with R's NA in a float, an int, a category and a timestamp column
    "monthly_charges": "NA",
    "support_calls": "NA",
    "region": "NA",
    "last_active_ts": "NA",
}


def test_without_markers_r_na_quarantines_the_row(tmp_path: Path) -> None:
    outcome = run(tmp_path, csv_text([*good_rows(40), row(99, monthly_charges="NA")]))
    assert [q["reasons"] for q in quarantined(outcome)] == [
        ["monthly_charges: expected a finite number, got 'NA'"]
    ]


def test_na_values_read_na_as_missing_in_float_int_category_and_timestamp_columns(
    tmp_path: Path,
) -> None:
    spec = replace(churn_spec(), na_values=("NA", "null"))
    outcome = run(tmp_path, csv_text([row(0, **R_EXPORT), row(1, tenure_months="null")]), spec=spec)
    got = curated(outcome)
    assert len(got) == 2 and not quarantined(outcome)
    assert [got[0][c] for c in R_EXPORT] == [None, None, None, None]
    assert got[0]["days_active"] is None  # a feature of a missing timestamp is missing
    assert got[1]["tenure_months"] is None


def test_na_values_never_touch_a_string_column_unless_it_lists_them(tmp_path: Path) -> None:
    # 'NA' is a real customer id (and Namibia's country code): kept as a value
    spec = replace(churn_spec(), na_values=("NA",))
    kept = curated(run(tmp_path / "k", csv_text([row(0, customer_id="NA")]), spec=spec))
    assert kept[0]["customer_id"] == "NA"
    # unless the string column lists it itself: then it is missing (and customer_id is required)
    own = _with_columns(spec, customer_id={"na_values": ("NA",)})
    outcome = run(tmp_path / "o", csv_text([*good_rows(40), row(99, customer_id="NA")]), spec=own)
    assert [q["reasons"] for q in quarantined(outcome)] == [["customer_id: missing required value"]]


def test_a_columns_own_list_overrides_the_specs(tmp_path: Path) -> None:
    spec = _with_columns(
        replace(churn_spec(), na_values=("NA",)), monthly_charges={"na_values": ("-",)}
    )
    rows = [*good_rows(40), row(98, monthly_charges="-"), row(99, monthly_charges="NA")]
    outcome = run(tmp_path, csv_text(rows), spec=spec)
    by_id = {r["customer_id"]: r for r in curated(outcome)}
    assert by_id["C98"]["monthly_charges"] is None
    assert [q["reasons"] for q in quarantined(outcome)] == [
        ["monthly_charges: expected a finite number, got 'NA'"]
    ]


@pytest.mark.parametrize("marker", ["NA", "N/A"])
def test_a_marker_in_a_required_column_is_a_missing_required_value(
    tmp_path: Path, marker: str
) -> None:
    spec = replace(churn_spec(), na_values=("NA", "N/A"))
    outcome = run(tmp_path, csv_text([*good_rows(40), row(99, plan=marker)]), spec=spec)
    assert [q["reasons"] for q in quarantined(outcome)] == [["plan: missing required value"]]
