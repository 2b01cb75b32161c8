"""Curated sample data without the ingestion pipeline: for tests, benchmarks and demos.

Writes what ingestion writes (the curated-data contract): declared columns in spec order with
curated types (PII as a hex HMAC, timestamps as timestamp[us, UTC], int64/float64/bool/string,
int-typed categories as int64), then the spec's engineered features, one ``manifest.json`` per
Parquet file. Values are typed and features computed by the shared code ingestion uses
(``datasets.columns``, ``datasets.features``). Not part of the job's sourcedir.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from datasets import generate
from datasets.columns import convert_column
from datasets.features import add_features
from datasets.spec import DatasetSpec

_SAMPLE_KEY = b"sluice-sample-key"


def raw_table(spec: DatasetSpec, rows: int, seed: int = 42, drift: float = 0.0) -> pa.Table:
    """Generator output for a spec (churn's own generator, the generic one for any other)."""
    return pa.concat_tables(generate.spec_chunks(spec, rows, seed, drift))


def curate(spec: DatasetSpec, raw: pa.Table) -> pa.Table:
    """Type a raw (clean) table as ingestion does and add the engineered features."""
    out: dict[str, pa.Array] = {}
    for col in spec.columns:
        values = raw.column(col.name).combine_chunks()
        if col.pii:
            digest = [
                None if v is None else hmac.new(_SAMPLE_KEY, v.encode(), hashlib.sha256).hexdigest()
                for v in values.cast(pa.string()).to_pylist()
            ]
            out[col.name] = pa.array(digest, pa.string())
        else:
            out[col.name], _ = convert_column(col, values, False, spec.na_values_for(col))
    return pa.table(add_features(out, spec.features))


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
