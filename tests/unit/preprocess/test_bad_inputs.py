"""The corpus of bad uploads: each ends in a precise rejection or a quarantined row.

``run`` checks the rows-accounted invariant on every case (helpers.assert_accounted).
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.unit.preprocess.helpers import (
    HEADER,
    churn_spec,
    csv_text,
    good_rows,
    quarantined,
    row,
    run,
)

GOOD = good_rows(100)
HEADER_LINE = ",".join(HEADER) + "\n"


def _gzip(text: str) -> bytes:
    return gzip.compress(text.encode())


def _parquet(columns: dict[str, list[object]]) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table(columns), sink)
    return sink.getvalue()


# ----------------------------------------------------------------- whole file rejected
REJECTED = {
    "empty file": (b"", "upload.csv", "empty_file", None, None),
    "blank lines only": ("\n\n  \n", "upload.csv", "empty_file", None, None),
    "header only": (HEADER_LINE, "upload.csv", "no_rows", None, 2),
    "header only, CRLF": (HEADER_LINE.replace("\n", "\r\n"), "upload.csv", "no_rows", None, 2),
    "header only, gzip": (_gzip(HEADER_LINE), "upload.csv.gz", "no_rows", None, 2),
    "empty gzip": (gzip.compress(b""), "upload.csv.gz", "empty_file", None, None),
    "binary (PNG)": (
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64),
        "x.csv",
        "binary_file",
        None,
        None,
    ),
    "UTF-16 text": (csv_text(GOOD[:3]).encode("utf-16"), "upload.csv", "binary_file", None, None),
    "latin-1 value": (
        csv_text([*GOOD[:2], row(2, customer_id="caf\xe9")]).encode("latin-1"),
        "upload.csv",
        "not_utf8",
        "customer_id",
        4,
    ),
    "latin-1 header": (
        csv_text(GOOD[:2]).replace("plan", "pl\xe4n").encode("latin-1"),
        "upload.csv",
        "not_utf8",
        None,
        1,
    ),
    "truncated gzip": (
        _gzip(csv_text(good_rows(5000)))[:-2000],
        "u.csv.gz",
        "bad_gzip",
        None,
        None,
    ),
    "gzip magic, garbage": (
        b"\x1f\x8b\x08\x00" + b"garbage" * 50,
        "u.csv.gz",
        "bad_gzip",
        None,
        None,
    ),
    "missing target": (
        csv_text(GOOD, header=[h for h in HEADER if h != "churned"]),
        "upload.csv",
        "missing_columns",
        "churned",
        1,
    ),
    "missing required column": (
        csv_text(GOOD, header=[h for h in HEADER if h != "plan"]),
        "upload.csv",
        "missing_columns",
        "plan",
        1,
    ),
    "duplicate header": (
        csv_text(GOOD, header=[*HEADER, "region"]),
        "upload.csv",
        "duplicate_columns",
        "region",
        1,
    ),
    "empty header name": (
        csv_text(GOOD, header=[*HEADER, ""]),
        "upload.csv",
        "bad_header",
        None,
        1,
    ),
    "unknown column (policy reject)": (
        csv_text(GOOD, header=[*HEADER, "favourite_colour"]),
        "upload.csv",
        "unknown_columns",
        "favourite_colour",
        1,
    ),
    "too many bad rows": (
        csv_text([row(i, tenure_months="lots") for i in range(10)] + GOOD),
        "upload.csv",
        "too_many_bad_rows",
        None,
        2,
    ),
    "Parquet, truncated": (_parquet({"a": [1, 2, 3]})[:-20], "u.parquet", "unreadable", None, None),
    "Parquet, missing target": (
        _parquet({h: [r[h] for r in GOOD] for h in HEADER if h != "churned"}),
        "u.parquet",
        "missing_columns",
        "churned",
        1,
    ),
}


@pytest.mark.parametrize("case", list(REJECTED), ids=list(REJECTED))
def test_bad_file_is_rejected_with_a_precise_reason(tmp_path: Path, case: str) -> None:
    # Given a broken upload
    content, name, code, column, line = REJECTED[case]
    # When it is processed
    outcome = run(tmp_path, content, name)
    # Then the whole file is rejected, saying why and where
    assert not outcome.accepted
    assert outcome.rejection is not None
    assert outcome.rejection.code == code, outcome.rejection
    assert outcome.rejection.column == column
    if line is not None:
        assert outcome.rejection.line == line


def test_upload_for_undeclared_dataset_is_rejected(tmp_path: Path) -> None:
    outcome = run(tmp_path, csv_text(GOOD), undeclared=True)
    assert outcome.rejection is not None
    assert outcome.rejection.code == "undeclared_dataset"
    assert "nosuch" in str(outcome.rejection)


def test_unclosed_quote_swallows_the_rest_into_one_quarantined_row(tmp_path: Path) -> None:
    # Given an opening quote that is never closed on line 102
    tail = csv_text(GOOD[:3])[len(HEADER_LINE) :]
    text = csv_text(GOOD) + 'C9,"unterminated,x,2024-01-01T00:00:00Z\n' + tail
    outcome = run(tmp_path, text)
    # Then everything after it is one malformed record, reported on that line
    [bad] = quarantined(outcome)
    assert bad["line"] == 102
    assert bad["reasons"] == ["expected 11 fields, found 2"]


def test_field_over_16_mib_is_quarantined_not_fatal(tmp_path: Path) -> None:
    outcome = run(
        tmp_path, csv_text([*GOOD[:60], row(0, customer_id="x" * (17 << 20)), *GOOD[60:]])
    )
    [bad] = quarantined(outcome)
    assert bad["line"] == 62
    assert bad["reasons"][0].startswith("customer_id: expected a value of at most 65536 bytes")


# ----------------------------------------------------------------- one row quarantined
def _one_bad(**overrides: str) -> str:
    """100 good rows with a bad one on line 42 (1% bad, under the spec's 5%)."""
    rows = list(GOOD)
    rows.insert(40, row(999, **overrides))
    return csv_text(rows)


QUARANTINED = {
    "not an integer": ({"tenure_months": "abc"}, "tenure_months: expected an integer, got 'abc'"),
    "integer overflow": (
        {"support_calls": "99999999999999999999"},
        "support_calls: expected an integer",
    ),
    "float in int column": ({"tenure_months": "12.5"}, "tenure_months: expected an integer"),
    "not a number": ({"monthly_charges": "twelve"}, "monthly_charges: expected a finite number"),
    "infinite number": ({"monthly_charges": "inf"}, "monthly_charges: expected a finite number"),
    "above maximum": (
        {"tenure_months": "300"},
        "tenure_months: expected a value <= 240, got '300'",
    ),
    "below minimum": ({"monthly_charges": "-1.0"}, "monthly_charges: expected a value >= 0"),
    "unknown category": (
        {"plan": "gold"},
        "plan: expected one of basic, standard, premium, got 'gold'",
    ),
    "target outside its classes": ({"churned": "2"}, "churned: expected one of 0, 1, got '2'"),
    "missing required value": ({"plan": ""}, "plan: missing required value"),
    "missing target value": ({"churned": ""}, "churned: missing required value"),
    "not a timestamp": ({"signup_ts": "not-a-date"}, "signup_ts: expected an ISO-8601 timestamp"),
    "impossible date": (
        {"last_active_ts": "2024-13-45T99:00:00Z"},
        "last_active_ts: expected an ISO-8601 timestamp",
    ),
    "day-first date": ({"signup_ts": "31/12/2023"}, "signup_ts: expected an ISO-8601 timestamp"),
    "huge field": ({"customer_id": "x" * 70_000}, "customer_id: expected a value of at most 65536"),
}


@pytest.mark.parametrize("case", list(QUARANTINED), ids=list(QUARANTINED))
def test_bad_row_is_quarantined_with_its_line_and_reason(tmp_path: Path, case: str) -> None:
    overrides, reason = QUARANTINED[case]
    outcome = run(tmp_path, _one_bad(**overrides))
    assert outcome.accepted, outcome.rejection
    assert (outcome.rows_in, outcome.rows_quarantined) == (101, 1)
    [bad] = quarantined(outcome)
    assert bad["line"] == 42
    assert any(r.startswith(reason) for r in bad["reasons"]), bad["reasons"]
    assert bad["row"]["customer_id"].startswith("C999") or case == "huge field"


def test_row_with_wrong_field_count_is_quarantined(tmp_path: Path) -> None:
    text = (
        csv_text(GOOD[:40])
        + "C998,a@b.c,+1,2024-01-01T00:00:00Z\n"
        + csv_text(GOOD[40:])[len(HEADER_LINE) :]
    )
    outcome = run(tmp_path, text)
    assert outcome.accepted
    assert (outcome.rows_in, outcome.rows_quarantined) == (101, 1)
    [bad] = quarantined(outcome)
    assert bad["line"] == 42
    assert bad["reasons"] == ["expected 11 fields, found 4"]


def test_several_problems_on_one_row_are_all_reported(tmp_path: Path) -> None:
    outcome = run(tmp_path, _one_bad(plan="gold", tenure_months="-3", churned=""))
    [bad] = quarantined(outcome)
    assert len(bad["reasons"]) == 3


def test_line_numbers_count_quoted_line_breaks_and_blank_lines(tmp_path: Path) -> None:
    # Given a quoted value spanning 3 lines (lines 2-4), a blank line (5) and a bad row on line 7
    text = HEADER_LINE + 'C0,a@b.c,+1,2024-01-01T00:00:00Z,,basic,eu,1,"1\n\n",1,0\n'.replace(
        '"1\n\n"', "1"
    )
    text = HEADER_LINE + '"C0\nsecond\nthird",a@b.c,+1,2024-01-01T00:00:00Z,,basic,eu,1,1,1,0\n'
    text += "\n"
    text += csv_text(GOOD[1:2])[len(HEADER_LINE) :]
    text += csv_text([row(5, plan="gold")])[len(HEADER_LINE) :]
    text += csv_text(good_rows(40, 10))[len(HEADER_LINE) :]
    outcome = run(tmp_path, text)
    # Then the bad row is reported on the line an editor shows
    [bad] = quarantined(outcome)
    assert bad["line"] == 7
    assert outcome.manifest is not None and outcome.manifest["blank_lines_skipped"] == 1


def test_quarantined_rows_never_hold_raw_pii(tmp_path: Path) -> None:
    outcome = run(tmp_path, _one_bad(plan="gold"))
    [bad] = quarantined(outcome)
    assert "@" not in bad["row"]["email"]
    assert len(bad["row"]["email"]) == 64


def test_limit_is_the_specs_fraction(tmp_path: Path) -> None:
    # Given 10% bad rows and a spec that tolerates 20%
    rows = [row(i, plan="gold") for i in range(10)] + good_rows(90, 10)
    outcome = run(tmp_path, csv_text(rows), spec=churn_spec(max_bad_row_fraction=0.2))
    assert outcome.accepted
    assert (outcome.rows_curated, outcome.rows_quarantined) == (90, 10)
