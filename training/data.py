"""Curated data for training and evaluation: discovery, loading, the split, the target.

A curated directory (what ingestion writes) holds ``*.parquet`` files, possibly in subfolders, a
``manifest.json`` per file, and a ``quarantine/`` folder that is never read. Engineered features
are recomputed from the curated timestamps by ``datasets.features``, the code that wrote
ingestion's columns and that serving runs on a prediction record (so a file curated before a
feature was added to the spec trains too, with the values ingestion would have given it). The
split is a pure
function of each row's id (or of the whole row when the spec names no id column), so it does not
depend on file order, a re-run reproduces it, and a row of the holdout stays in the holdout in
every later dataset that contains it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from datasets.features import add_features
from datasets.spec import DatasetSpec, Feature
from training.schema import FeatureSchema, FeatureSpec

TRAIN, VALIDATION, TEST = 0, 1, 2
SPLIT_NAMES = ("train", "validation", "test")
_BUCKETS = 10_000
_ENGINEERED_DTYPES = {
    "day_of_week": "int",
    "hour": "int",
    "month": "int",
    "duration_days": "float",
    "duration_hours": "float",
}


class DataError(Exception):
    """The curated data cannot be used; the message names the file or column."""


# ---------------------------------------------------------------------- schema from spec
def schema_from_spec(spec: DatasetSpec) -> FeatureSchema:
    """The model's feature schema: spec.model_features() with dtypes and nullability."""
    engineered = {f.name: f for f in spec.features}
    features: list[FeatureSpec] = []
    for mf in spec.model_features():
        if mf.name in engineered:
            feat = engineered[mf.name]
            nullable = not all(spec.column(src).required for src in feat.sources)
            dtype = _ENGINEERED_DTYPES[feat.kind]
        else:
            col = spec.column(mf.name)
            nullable = not col.required
            dtype = {"category": "string", "timestamp": "string"}.get(col.type, col.type)
        features.append(
            FeatureSpec(
                name=mf.name,
                kind=mf.kind,
                dtype=dtype,  # type: ignore[arg-type]
                categories=mf.categories,
                nullable=nullable,
            )
        )
    return FeatureSchema(
        dataset=spec.name,
        spec_version=spec.version,
        spec_fingerprint=spec.fingerprint,
        problem_type=spec.problem_type,
        target=spec.target_column,
        features=tuple(features),
        classes=spec.classes,
    )


# ---------------------------------------------------------------------- loading
@dataclass
class CuratedData:
    table: pa.Table
    files: list[dict[str, Any]]
    manifests: list[dict[str, Any]]

    @property
    def fingerprint(self) -> str:
        """Identifies the input (file names, sizes, manifests), not a hash of every byte."""
        blob = json.dumps([self.files, self.manifests], sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _walk(root: Path) -> list[Path]:
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if d != "quarantine")
        found.extend(Path(dirpath) / name for name in sorted(filenames))
    return found


def find_curated(roots: list[Path]) -> tuple[list[Path], list[Path]]:
    """Parquet files and manifests under the roots, quarantine folders excluded."""
    parquet: list[Path] = []
    manifests: list[Path] = []
    for root in roots:
        if not root.is_dir():
            raise DataError(f"{root}: no such data directory")
        for path in _walk(root):
            if path.suffix == ".parquet":
                parquet.append(path)
            elif path.name.endswith("manifest.json"):
                manifests.append(path)
    if not parquet:
        raise DataError(f"no *.parquet files under {', '.join(map(str, roots))}")
    return parquet, manifests


def stored_columns(spec: DatasetSpec, names: list[str]) -> tuple[list[str], list[Feature]]:
    """The curated columns to read for these model inputs, and the features to compute.

    An engineered feature of the spec is read as its source timestamps and computed again.
    """
    engineered = {f.name: f for f in spec.features}
    unique = list(dict.fromkeys(names))
    columns: list[str] = []
    for name in unique:
        columns.extend(engineered[name].sources if name in engineered else (name,))
    return list(dict.fromkeys(columns)), [engineered[n] for n in unique if n in engineered]


def needed_columns(spec: DatasetSpec, schema: FeatureSchema) -> tuple[list[str], list[Feature]]:
    """What training reads (model inputs, target, segments, id) and the features it computes."""
    columns, features = stored_columns(spec, schema.names)
    columns += [spec.target_column, *spec.segments]
    if spec.id_column:
        columns.append(spec.id_column)
    return list(dict.fromkeys(columns)), features


def _relative(path: Path, roots: list[Path]) -> str:
    """A path relative to its data root (stable across machines and restarts)."""
    for i, root in enumerate(roots):
        if path.is_relative_to(root):
            rel = path.relative_to(root).as_posix()
            return rel if len(roots) == 1 else f"{i}/{rel}"
    return path.as_posix()


def load_curated(
    roots: list[Path], columns: list[str], features: list[Feature] | None = None
) -> CuratedData:
    """The columns of every curated file under the roots, plus the engineered ``features``."""
    parquet, manifest_paths = find_curated(roots)
    tables = []
    files = []
    for path in parquet:
        available = set(pq.read_schema(path).names)
        missing = [c for c in columns if c not in available]
        if missing:
            raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
        tables.append(pq.read_table(path, columns=columns))
        files.append({"path": _relative(path, roots), "bytes": path.stat().st_size})
    try:
        table = pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise DataError(f"curated files disagree on column types: {exc}") from exc
    if features:
        computed = add_features({n: table.column(n) for n in table.column_names}, features)
        for feat in features:
            table = table.append_column(feat.name, computed[feat.name])
    manifests = []
    for path in manifest_paths:
        try:
            doc = json.loads(path.read_text())
            manifests.append({"path": _relative(path, roots), "manifest": doc})
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: unreadable manifest: {exc}") from exc
    return CuratedData(table=table, files=files, manifests=manifests)


# ---------------------------------------------------------------------- split
@dataclass(frozen=True)
class SplitConfig:
    """How rows are assigned to train/validation/test; recorded with the model."""

    validation: float
    test: float
    column: str | None
    method: str = "siphash-2-4(utf8 text) mod 10000 via pandas.util.hash_array"
    key: str = "sluice-split-v1!"  # 16 bytes: the SipHash key

    @classmethod
    def from_spec(cls, spec: DatasetSpec) -> SplitConfig:
        return cls(spec.split.validation, spec.split.test, spec.id_column)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> SplitConfig:
        return cls(**{k: doc[k] for k in ("validation", "test", "column", "method", "key")})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _hash_text(values: pa.ChunkedArray | pa.Array, key: str) -> np.ndarray:
    import pandas as pd  # the container has it; only the split needs it

    text = pc.fill_null(pc.cast(values, pa.string()), "").to_numpy(zero_copy_only=False)
    return np.asarray(
        pd.util.hash_array(np.asarray(text, dtype=object), hash_key=key, categorize=False),
        dtype=np.uint64,
    )


def assign_split(table: pa.Table, config: SplitConfig) -> np.ndarray:
    """0 = train, 1 = validation, 2 = test for every row (int8)."""
    if config.column:
        h = _hash_text(table.column(config.column), config.key)
    else:  # no id: the row's own content decides, so duplicates land together
        h = np.zeros(table.num_rows, dtype=np.uint64)
        for name in sorted(table.column_names):
            h = h * np.uint64(1_000_003) ^ _hash_text(table.column(name), config.key)
    u = (h % np.uint64(_BUCKETS)).astype(np.float64) / _BUCKETS
    out = np.full(table.num_rows, TRAIN, dtype=np.int8)
    out[u < config.test + config.validation] = VALIDATION
    out[u < config.test] = TEST
    return out


# ---------------------------------------------------------------------- target
def encode_target(table: pa.Table, schema: FeatureSchema) -> tuple[np.ndarray, np.ndarray]:
    """(y, usable): class index (classification) or value (regression) and the non-null mask."""
    col = table.column(schema.target)
    if schema.problem_type == "regression":
        values = pc.cast(col, pa.float64())
    else:
        value_set = pa.array(list(schema.classes))
        if value_set.type != col.type:
            value_set = value_set.cast(col.type)
        values = pc.cast(pc.index_in(col, value_set=value_set), pa.float64())
    y = np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float64)
    return y, ~np.isnan(y)
