"""Training/serving parity: the features a prediction computes from raw rows are, value for value,
the engineered columns ingestion curated for the same rows, and the ones training reads back."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from datasets.generate import write_csv
from datasets.record import RecordShape
from datasets.spec import DatasetSpec, load_spec, spec_path
from lambdas.preprocess.pipeline import process_file
from training.data import load_curated, needed_columns, schema_from_spec

ROWS = 3000
FEATURES = ("signup_dow", "signup_hour", "days_active")


def _offsets(rows: list[dict[str, str]]) -> None:
    """Rewrite the generator's UTC timestamps the ways exports write them (same wall clock)."""
    for i, row in enumerate(rows):
        wall = row["signup_ts"].removesuffix("Z")
        row["signup_ts"] = [
            f"{wall}Z", f"{wall}-08:00", f"{wall}+0530", wall.replace("T", " "), f"{wall}+14:00"
        ][i % 5]  # fmt: skip
        if i % 6 == 0:
            row["last_active_ts"] = ""  # missing: no days_active
        elif i % 7 == 3:
            row["last_active_ts"] = row["last_active_ts"].removesuffix("Z") + "+09:00"


@pytest.fixture(scope="module")
def spec() -> DatasetSpec:
    return load_spec(spec_path("churn") or "")


@pytest.fixture(scope="module")
def upload(
    tmp_path_factory: pytest.TempPathFactory, spec: DatasetSpec
) -> tuple[list[dict[str, str]], Path]:
    """Generated churn rows with offsets and missing last_active_ts, and ingestion's output."""
    work = tmp_path_factory.mktemp("parity")
    write_csv("churn", ROWS, work / "generated.csv", seed=5)
    rows = list(csv.DictReader(io.StringIO((work / "generated.csv").read_text())))
    _offsets(rows)
    with (work / "upload.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    outcome = process_file(
        work / "upload.csv", work / "curated", spec=spec, pii_key=b"parity-key-0123456", workers=0
    )
    assert outcome.accepted and outcome.rows_curated == ROWS, outcome.rejection
    return rows, work / "curated"


def _curated_features(curated: Path) -> dict[str, list]:
    table = pq.read_table(sorted(curated.glob("*.parquet")))
    return {name: table.column(name).to_pylist() for name in ("customer_id", *FEATURES)}


def test_prediction_features_equal_ingestions_curated_columns(spec, upload):
    rows, curated = upload
    # Given the raw rows of an upload minus the target, as a prediction request holds them
    instances = [{k: v for k, v in row.items() if k != "churned"} for row in rows]
    # When the serving code computes the features from them
    records = RecordShape(spec).from_instances(instances)
    # Then they equal, value for value, what ingestion curated for the same rows
    expected = _curated_features(curated)
    assert [records.ids[i] for i in range(ROWS)] == expected["customer_id"]
    for name in FEATURES:
        assert records.columns[name].to_pylist() == expected[name], name
    # including the rows with offsets (in UTC: -08:00 is eight hours later) and no last_active_ts
    assert rows[1]["signup_ts"].endswith("-08:00")
    assert expected["signup_hour"][1] == (int(rows[1]["signup_ts"][11:13]) + 8) % 24
    assert expected["days_active"].count(None) == ROWS // 6 + (ROWS % 6 > 0)
    assert len(set(expected["signup_hour"])) == 24


def test_a_csv_request_of_the_upload_gives_the_same_features(spec, upload):
    rows, curated = upload
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[k for k in rows[0] if k != "churned"],
                            extrasaction="ignore", lineterminator="\n")  # fmt: skip
    writer.writeheader()
    writer.writerows(rows)
    records = RecordShape(spec).from_csv(out.getvalue())
    expected = _curated_features(curated)
    for name in FEATURES:
        assert records.columns[name].to_pylist() == expected[name], name


def test_training_reads_the_same_features_back(spec, upload):
    _, curated = upload
    columns, features = needed_columns(spec, schema_from_spec(spec))
    assert not set(FEATURES) & set(columns)  # recomputed from the curated timestamps
    table = load_curated([curated], columns, features).table
    expected = _curated_features(curated)
    for name in FEATURES:
        assert table.column(name).to_pylist() == expected[name], name
