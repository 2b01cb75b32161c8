"""Curated sample data without the ingestion pipeline: for tests, benchmarks and demos.

Writes what ingestion writes (the curated-data contract): declared columns in spec order with
curated types (PII as a hex HMAC, timestamps as timestamp[us, UTC], int64/float64/bool/string,
int-typed categories as int64), then the spec's engineered features, one ``manifest.json`` per
Parquet file. Not part of the job's sourcedir.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from datasets import generate
from datasets.spec import DatasetSpec

_SAMPLE_KEY = b"sluice-sample-key"


def raw_table(spec: DatasetSpec, rows: int, seed: int = 42, drift: float = 0.0) -> pa.Table:
    """Generator output for a spec (churn's own generator, the generic one for any other)."""
    return pa.concat_tables(generate.spec_chunks(spec, rows, seed, drift))


def curate(spec: DatasetSpec, raw: pa.Table) -> pa.Table:
    """Cast a raw table to the curated types and add the engineered features."""
    out: dict[str, pa.Array] = {}
    for col in spec.columns:
        values = raw.column(col.name)
        if col.pii:
            digest = [
                None if v is None else hmac.new(_SAMPLE_KEY, v.encode(), hashlib.sha256).hexdigest()
                for v in values.cast(pa.string()).to_pylist()
            ]
            out[col.name] = pa.array(digest, pa.string())
        elif col.type == "timestamp":
            out[col.name] = pc.cast(
                pc.strptime(values.cast(pa.string()), format="%Y-%m-%dT%H:%M:%SZ", unit="s"),
                pa.timestamp("us", tz="UTC"),
            )
        elif col.type == "int":
            out[col.name] = pc.cast(values, pa.int64())
        elif col.type == "float":
            out[col.name] = pc.cast(values, pa.float64())
        elif col.type == "bool":
            out[col.name] = pc.cast(values, pa.bool_())
        else:
            out[col.name] = pc.cast(values, pa.string())
    for feat in spec.features:
        if feat.kind.startswith("duration"):
            start, end = out[feat.start or ""], out[feat.end or ""]
            seconds = pc.divide(pc.cast(pc.subtract(end, start), pa.int64()), 1_000_000.0)
            out[feat.name] = pc.divide(seconds, 86400.0 if feat.kind == "duration_days" else 3600.0)
        else:
            fn = {"day_of_week": pc.day_of_week, "hour": pc.hour, "month": pc.month}[feat.kind]
            out[feat.name] = pc.cast(fn(out[feat.column or ""]), pa.int64())
    return pa.table(out)


def write_curated(
    spec: DatasetSpec,
    out_dir: Path,
    rows: int,
    *,
    seed: int = 42,
    drift: float = 0.0,
    files: int = 2,
) -> Path:
    """A curated directory with ``files`` Parquet files in nested folders, and manifests."""
    table = curate(spec, raw_table(spec, rows, seed, drift))
    bounds = np.linspace(0, table.num_rows, files + 1).astype(int)
    for i in range(files):
        part = table.slice(bounds[i], bounds[i + 1] - bounds[i])
        folder = out_dir / f"batch={i}"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(part, folder / "part-0.parquet")
        manifest = {
            "dataset": spec.name,
            "spec_version": spec.version,
            "spec_fingerprint": spec.fingerprint,
            "source": f"sample://{spec.name}?seed={seed}&drift={drift}&part={i}",
            "rows_in": part.num_rows,
            "rows_curated": part.num_rows,
            "rows_quarantined": 0,
            "curated": "part-0.parquet",
        }
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return out_dir
