"""Building small uploads and checking what ingestion made of them."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from datasets.spec import DatasetSpec, load_spec, spec_path
from lambdas.preprocess.pipeline import Outcome, process_file

KEY = b"unit-test-pii-key-0123456789"
HEADER = [
    "customer_id",
    "email",
    "phone",
    "signup_ts",
    "last_active_ts",
    "plan",
    "region",
    "monthly_charges",
    "tenure_months",
    "support_calls",
    "churned",
]


def churn_spec(**changes: Any) -> DatasetSpec:
    spec = load_spec(spec_path("churn") or "")
    return replace(spec, **changes) if changes else spec


def row(i: int = 0, **overrides: str) -> dict[str, str]:
    values = {
        "customer_id": f"C{i}",
        "email": f"user{i}@example.com",
        "phone": f"+1-555-{i:07d}",
        "signup_ts": "2024-01-01T10:30:00Z",  # a Monday
        "last_active_ts": "2024-01-11T22:30:00Z",
        "plan": "basic",
        "region": "eu",
        "monthly_charges": "29.5",
        "tenure_months": "12",
        "support_calls": "1",
        "churned": str(i % 2),
    }
    values.update(overrides)
    return values


def csv_text(rows: list[dict[str, str]], header: list[str] | None = None, eol: str = "\n") -> str:
    header = header or HEADER
    lines = [",".join(header)] + [",".join(r.get(h, "") for h in header) for r in rows]
    return eol.join(lines) + eol


def good_rows(n: int, start: int = 0) -> list[dict[str, str]]:
    return [row(i) for i in range(start, start + n)]


def run(
    tmp_path: Path,
    content: bytes | str,
    name: str = "upload.csv",
    spec: DatasetSpec | None = None,
    *,
    undeclared: bool = False,
    workers: int = 0,
) -> Outcome:
    tmp_path.mkdir(parents=True, exist_ok=True)
    src = tmp_path / name
    src.write_bytes(content.encode() if isinstance(content, str) else content)
    out = tmp_path / "out"
    outcome = process_file(
        src,
        out,
        spec=None if undeclared else (spec or churn_spec()),
        dataset="nosuch" if undeclared else None,
        pii_key=KEY,
        workers=workers,
    )
    assert_accounted(outcome)
    return outcome


def quarantined(outcome: Outcome) -> list[dict[str, Any]]:
    path = outcome.output_dir / "quarantine" / "rows.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def table(out: Path) -> pa.Table:
    return pa.concat_tables([pq.read_table(p) for p in sorted(out.glob("*.parquet"))])


def curated(outcome: Outcome) -> list[dict[str, Any]]:
    assert outcome.accepted, outcome.rejection
    return table(outcome.output_dir).to_pylist()  # type: ignore[no-any-return]


def assert_accounted(outcome: Outcome) -> None:
    """The invariant, every time: rows in = curated + quarantined; a rejection leaves no data."""
    out = outcome.output_dir
    if not outcome.accepted:
        assert (out / "rejection.json").is_file()
        assert not list(out.glob("*.parquet"))
        assert not (out / "manifest.json").exists()
        assert not (out / "quarantine").exists()
        doc = json.loads((out / "rejection.json").read_text())
        assert outcome.rejection is not None and doc["code"] == outcome.rejection.code
        return
    manifest = json.loads((out / "manifest.json").read_text())
    rows = manifest["rows"]
    assert rows["in"] == rows["curated"] + rows["quarantined"]
    assert table(out).num_rows == rows["curated"]
    assert len(quarantined(outcome)) == rows["quarantined"]
    assert not (out / "rejection.json").exists()
