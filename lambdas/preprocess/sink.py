"""What ingestion writes into OUTPUT_DIR: curated Parquet parts, quarantine rows, the manifest.

OUTPUT_DIR/part-00000.parquet ...     curated rows (snappy), spec columns then features
OUTPUT_DIR/manifest.json              source, checksum, row counts, schema hash, versions
OUTPUT_DIR/quarantine/rows.jsonl      {"line": N, "reasons": [...], "row": {col: raw}}
OUTPUT_DIR/rejection.json             only when the whole file is rejected (nothing else)
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from datasets.columns import arrow_ints
from lambdas.preprocess.errors import ConfigError

ROWS_PER_FILE = 5_000_000
COMPRESSION = "snappy"
MANIFEST = "manifest.json"
REJECTION = "rejection.json"
QUARANTINE_DIR = "quarantine"
QUARANTINE_ROWS = "rows.jsonl"


def prepare(output_dir: Path) -> None:
    """Create OUTPUT_DIR and clear what an earlier run left in it."""
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        for old in output_dir.glob("part-*.parquet"):
            old.unlink()
        for name in (MANIFEST, REJECTION):
            (output_dir / name).unlink(missing_ok=True)
        shutil.rmtree(output_dir / QUARANTINE_DIR, ignore_errors=True)
    except OSError as exc:
        raise ConfigError(f"cannot write to {output_dir}: {exc.strerror}") from exc


def discard(output_dir: Path) -> None:
    """Remove curated and quarantine outputs (the file was rejected after all)."""
    for old in output_dir.glob("part-*.parquet"):
        old.unlink()
    (output_dir / MANIFEST).unlink(missing_ok=True)
    shutil.rmtree(output_dir / QUARANTINE_DIR, ignore_errors=True)


def schema_hash(schema: pa.Schema) -> str:
    fields = [[f.name, str(f.type)] for f in schema]
    return hashlib.sha256(json.dumps(fields).encode()).hexdigest()[:16]


#: rows sampled from the first batch to decide which columns are worth a dictionary
_SAMPLE = 4096
#: a column whose sample has more distinct values than this share is stored plain
_DICTIONARY_BELOW = 0.5


def _repetitive(values: pa.Array) -> bool:
    """Whether dictionary-encoding ``values`` is likely to pay (decided on a sample)."""
    n = len(values)
    if n < _SAMPLE:
        return True
    sample = values.take(arrow_ints(np.linspace(0, n - 1, _SAMPLE, dtype=np.int64)))
    return bool(pc.count_distinct(sample, mode="all").as_py() < _DICTIONARY_BELOW * _SAMPLE)


class CuratedWriter:
    """Parquet parts of at most ROWS_PER_FILE rows; one row group per written batch.

    Masked PII columns are hex digests: compressing, dictionary-encoding or keeping min/max
    statistics of them gains nothing and costs a fifth of the write time, so they are stored
    plain. Dictionary encoding of the other columns is decided on a sample of the first batch:
    for columns of mostly distinct values (ids, timestamps, durations) the encoder would fill
    its dictionary page and fall back to plain anyway, after hashing every value (measured: a
    third of the write time for the churn data).
    """

    def __init__(self, output_dir: Path, schema: pa.Schema, pii: tuple[str, ...] = ()) -> None:
        self.output_dir = output_dir
        self.schema = schema
        self._other = [name for name in schema.names if name not in pii]
        self._options: dict[str, Any] = {
            "compression": {n: "none" if n in pii else COMPRESSION for n in schema.names},
            "use_dictionary": self._other,
            "write_statistics": self._other,
        }
        self._decided = False
        self.files: list[dict[str, Any]] = []
        self._writer: pq.ParquetWriter | None = None
        self._rows_in_file = 0

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        if not self._decided:
            self._options["use_dictionary"] = [
                name for name in self._other if _repetitive(batch.column(name))
            ]
            self._decided = True
        if self._writer is None or self._rows_in_file >= ROWS_PER_FILE:
            self._close_file()
            name = f"part-{len(self.files):05d}.parquet"
            self._writer = pq.ParquetWriter(
                str(self.output_dir / name), self.schema, **self._options
            )
            self.files.append({"path": name, "rows": 0})
            self._rows_in_file = 0
        self._writer.write_batch(batch)
        self._rows_in_file += batch.num_rows
        self.files[-1]["rows"] += batch.num_rows

    def _close_file(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def close(self) -> list[dict[str, Any]]:
        self._close_file()
        if not self.files:  # zero curated rows: still one (empty) part with the schema
            pq.write_table(self.schema.empty_table(), str(self.output_dir / "part-00000.parquet"))
            self.files.append({"path": "part-00000.parquet", "rows": 0})
        for part in self.files:
            part["bytes"] = (self.output_dir / part["path"]).stat().st_size
        return self.files


class QuarantineWriter:
    """Quarantined rows as JSON lines, written as they are found (memory stays flat)."""

    def __init__(self, output_dir: Path) -> None:
        self.path = output_dir / QUARANTINE_DIR / QUARANTINE_ROWS
        self.rows = 0
        self.examples: list[dict[str, Any]] = []
        self._fh: Any = None

    def add(self, line: int | None, reasons: list[str], row: dict[str, Any] | None) -> None:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("w", encoding="utf-8")
        record = {"line": line, "reasons": reasons, "row": row}
        self._fh.write(json.dumps(record, default=str, ensure_ascii=False) + "\n")
        self.rows += 1
        if len(self.examples) < 5:
            self.examples.append({"line": line, "reasons": reasons})

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
