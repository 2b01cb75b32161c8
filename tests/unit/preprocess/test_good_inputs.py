"""Good uploads in every accepted shape, and the curated data contract."""

from __future__ import annotations

import gzip
import hashlib
import hmac
import io
import json
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.unit.preprocess.helpers import (
    HEADER,
    KEY,
    churn_spec,
    csv_text,
    curated,
    good_rows,
    row,
    run,
    table,
)

ROOT = Path(__file__).resolve().parents[3]


def test_curated_schema_is_the_contract(tmp_path: Path) -> None:
    outcome = run(tmp_path, csv_text(good_rows(10)))
    schema = table(outcome.output_dir).schema
    assert [(f.name, str(f.type)) for f in schema] == [
        ("customer_id", "string"),
        ("email", "string"),
        ("phone", "string"),
        ("signup_ts", "timestamp[us, tz=UTC]"),
        ("last_active_ts", "timestamp[us, tz=UTC]"),
        ("plan", "string"),
        ("region", "string"),
        ("monthly_charges", "double"),
        ("tenure_months", "int64"),
        ("support_calls", "int64"),
        ("churned", "int64"),
        ("signup_dow", "int64"),
        ("signup_hour", "int64"),
        ("days_active", "double"),
    ]


def test_pii_is_the_hmac_of_the_value_and_never_appears_raw(tmp_path: Path) -> None:
    rows = good_rows(50)
    outcome = run(tmp_path, csv_text(rows))
    got = curated(outcome)
    for raw, out in zip(rows, got, strict=True):
        for col in ("email", "phone"):
            assert out[col] == hmac.new(KEY, raw[col].encode(), hashlib.sha256).hexdigest()
    blob = b"".join(p.read_bytes() for p in outcome.output_dir.rglob("*") if p.is_file())
    assert b"user7@example.com" not in blob
    assert b"+1-555-0000007" not in blob


def test_features_are_computed_from_utc_timestamps(tmp_path: Path) -> None:
    outcome = run(tmp_path, csv_text([row(0)]))
    [out] = curated(outcome)
    assert out["signup_ts"] == datetime(2024, 1, 1, 10, 30, tzinfo=UTC)
    assert (out["signup_dow"], out["signup_hour"]) == (0, 10)  # Monday = 0
    assert out["days_active"] == pytest.approx(10.5)


def test_timestamps_with_offsets_or_without_zone_are_normalised_to_utc(tmp_path: Path) -> None:
    rows = [
        row(0, signup_ts="2024-01-01T12:30:00+02:00"),
        row(1, signup_ts="2024-01-01 10:30:00"),
        row(2, signup_ts="2024-01-01"),
    ]
    got = curated(run(tmp_path, csv_text(rows)))
    assert [r["signup_ts"].hour for r in got] == [10, 10, 0]
    assert [r["signup_hour"] for r in got] == [10, 10, 0]


def test_bom_and_crlf(tmp_path: Path) -> None:
    content = b"\xef\xbb\xbf" + csv_text(good_rows(5), eol="\r\n").encode()
    got = curated(run(tmp_path, content))
    assert [r["customer_id"] for r in got] == [f"C{i}" for i in range(5)]
    assert got[0]["churned"] == 0


def test_quoted_fields_with_delimiters_and_line_breaks(tmp_path: Path) -> None:
    text = (
        csv_text(good_rows(2)) + '"C,9\r\nnext",x@y.z,+1,2024-01-01T00:00:00Z,,"basic",eu,1,1,1,0\n'
    )
    got = curated(run(tmp_path, text))
    assert got[-1]["customer_id"] == "C,9\r\nnext"


def test_gzip_gives_the_same_curated_data_as_plain_csv(tmp_path: Path) -> None:
    text = csv_text(good_rows(300))
    plain = curated(run(tmp_path / "a", text))
    zipped = curated(run(tmp_path / "b", gzip.compress(text.encode()), "upload.csv.gz"))
    assert zipped == plain


def test_parquet_input_typed_columns(tmp_path: Path) -> None:
    rows = good_rows(20)
    columns: dict[str, pa.Array] = {h: pa.array([r[h] for r in rows]) for h in HEADER}
    for name in ("tenure_months", "support_calls", "churned"):
        columns[name] = pa.array([int(r[name]) for r in rows], pa.int32())
    columns["monthly_charges"] = pa.array([float(r["monthly_charges"]) for r in rows])
    columns["signup_ts"] = pa.array([datetime(2024, 1, 1, 10, 30)] * 20, pa.timestamp("ms"))
    sink = io.BytesIO()
    pq.write_table(pa.table(columns), sink)
    from_parquet = curated(run(tmp_path / "p", sink.getvalue(), "upload.parquet"))
    from_csv = curated(run(tmp_path / "c", csv_text(rows)))
    assert from_parquet == from_csv


def test_unknown_columns_kept_as_strings_or_dropped_per_spec(tmp_path: Path) -> None:
    rows = [dict(r, note="hi") for r in good_rows(3)]
    text = csv_text(rows, header=[*HEADER, "note"])
    kept = run(tmp_path / "k", text, spec=churn_spec(unknown_columns="keep"))
    assert table(kept.output_dir).schema.names[-1] == "note"
    assert [r["note"] for r in curated(kept)] == ["hi"] * 3
    dropped = run(tmp_path / "d", text, spec=churn_spec(unknown_columns="drop"))
    assert "note" not in table(dropped.output_dir).schema.names
    assert dropped.manifest is not None
    assert dropped.manifest["columns"]["dropped_unknown"] == ["note"]


def test_optional_values_may_be_empty(tmp_path: Path) -> None:
    got = curated(run(tmp_path, csv_text([row(0, email="", region="", last_active_ts="")])))
    assert (got[0]["email"], got[0]["region"], got[0]["days_active"]) == (None, None, None)


def test_manifest_records_source_counts_schema_and_versions(tmp_path: Path) -> None:
    text = csv_text(good_rows(10))
    outcome = run(tmp_path, text)
    manifest = json.loads((outcome.output_dir / "manifest.json").read_text())
    assert manifest["source"]["sha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert manifest["rows"] == {"in": 10, "curated": 10, "quarantined": 0}
    spec = churn_spec()
    assert manifest["spec"] == {"name": "churn", "version": 1, "fingerprint": spec.fingerprint}
    assert len(manifest["schema"]["hash"]) == 16
    assert manifest["code_version"].startswith("1.0.0+")


def test_hashing_workers_give_the_same_output(tmp_path: Path) -> None:
    text = csv_text(good_rows(5000) + [row(1, email="")] * 3)
    alone = curated(run(tmp_path / "a", text, workers=0))
    with_workers = curated(run(tmp_path / "b", text, workers=2))
    assert with_workers == alone


def test_repeated_values_are_masked_consistently(tmp_path: Path) -> None:
    rows = [row(i, email=f"u{i % 3}@x.io") for i in range(6000)]
    got = curated(run(tmp_path, csv_text(rows), workers=2))
    assert len({r["email"] for r in got}) == 3
    assert got[4]["email"] == hmac.new(KEY, b"u1@x.io", hashlib.sha256).hexdigest()


# ---------------------------------------------------------------------------------- CLI
def _cli(
    *args: str, key: str | None = "cli-test-key-0123456789", extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **(extra_env or {})}
    if key:
        env["SLUICE_PII_KEY"] = key
    return subprocess.run(
        [sys.executable, "-m", "lambdas.preprocess", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_accepts_a_good_file(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text(csv_text(good_rows(10)))
    done = _cli("--spec", "datasets/churn.yaml", str(tmp_path / "in.csv"), str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rows_curated"] == 10


def test_cli_rejects_with_exit_2_and_rejection_json(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_bytes(b"")
    done = _cli("--spec", "datasets/churn.yaml", str(tmp_path / "in.csv"), str(tmp_path / "out"))
    assert done.returncode == 2
    assert json.loads((tmp_path / "out" / "rejection.json").read_text())["code"] == "empty_file"
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--spec", "datasets/nope.yaml", "in.csv", "out"],
        ["--spec", "datasets/churn.yaml", "does-not-exist.csv", "out"],
        ["--dataset", "nosuch", "in.csv", "out"],
    ],
    ids=["missing spec", "missing input", "undeclared dataset"],
)
def test_cli_never_shows_a_traceback(tmp_path: Path, args: list[str]) -> None:
    (tmp_path / "in.csv").write_text(csv_text(good_rows(2)))
    args = [str(tmp_path / a) if a in ("in.csv", "out", "does-not-exist.csv") else a for a in args]
    done = _cli(*args)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and done.stderr.strip()


def test_cli_without_pii_key_uses_this_machines_development_key(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text(csv_text(good_rows(3)))
    home = {"XDG_CONFIG_HOME": str(tmp_path / "config")}
    args = ("--spec", "datasets/churn.yaml", str(tmp_path / "in.csv"))
    first = _cli(*args, str(tmp_path / "a"), key=None, extra_env=home)
    assert first.returncode == 0, first.stderr
    assert "development key" in first.stderr and "SLUICE_PII_KEY" in first.stderr
    key_file = tmp_path / "config" / "sluice" / "dev-pii.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_bytes().strip()
    assert len(key) == 64
    second = _cli(*args, str(tmp_path / "b"), key=None, extra_env=home)
    assert second.returncode == 0, second.stderr
    assert key_file.read_bytes().strip() == key  # reused: local runs join with each other
    a, b = (
        [v for f in sorted((tmp_path / d).glob("*.parquet"))
         for v in pq.read_table(f).column("email").to_pylist()]
        for d in ("a", "b")
    )  # fmt: skip
    assert a == b == [hmac.new(key, r["email"].encode(), hashlib.sha256).hexdigest()
                      for r in good_rows(3)]  # fmt: skip


def test_cli_without_a_usable_key_says_how_to_give_one(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text(csv_text(good_rows(2)))
    (tmp_path / "config").write_text("a file where the config directory should be")
    done = _cli(
        "--spec", "datasets/churn.yaml", str(tmp_path / "in.csv"), str(tmp_path / "o"),
        key=None, extra_env={"XDG_CONFIG_HOME": str(tmp_path / "config")},
    )  # fmt: skip
    assert done.returncode == 2
    assert "--pii-key-file" in done.stderr and "Traceback" not in done.stderr
