"""The model's feature schema: saved with the model, the single source of the input encoding.

Training, evaluation and serving all turn rows into the model matrix here, so the three agree:
numeric and bool features become float32 values, a categorical feature becomes the index of its
value in the saved category list (XGBoost treats that column as categorical), and a null becomes
NaN (XGBoost's missing value). This module needs only numpy and pyarrow (no dataset spec), so the
serving container can load it from the model tarball alone.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SCHEMA_FORMAT = "sluice-feature-schema/1"
Dtype = Literal["float", "int", "bool", "string"]


@dataclass(frozen=True)
class FeatureSpec:
    """One model input, in model order."""

    name: str
    kind: Literal["numeric", "categorical"]
    dtype: Dtype
    categories: tuple[Any, ...] | None = None
    nullable: bool = True

    @property
    def xgb_type(self) -> str:
        return "c" if self.kind == "categorical" else "q"


@dataclass(frozen=True)
class FeatureSchema:
    dataset: str
    spec_version: int
    spec_fingerprint: str
    problem_type: Literal["binary", "multiclass", "regression"]
    target: str
    features: tuple[FeatureSpec, ...]
    #: class labels in model order (binary: negative first, positive last); empty for regression
    classes: tuple[Any, ...] = field(default_factory=tuple)

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def xgb_types(self) -> list[str]:
        return [f.xgb_type for f in self.features]

    def to_dict(self) -> dict[str, Any]:
        return {"format": SCHEMA_FORMAT, **asdict(self)}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> FeatureSchema:
        if doc.get("format") != SCHEMA_FORMAT:
            raise ValueError(f"not a {SCHEMA_FORMAT} document: format={doc.get('format')!r}")
        features = tuple(
            FeatureSpec(
                name=f["name"],
                kind=f["kind"],
                dtype=f["dtype"],
                categories=tuple(f["categories"]) if f.get("categories") is not None else None,
                nullable=bool(f.get("nullable", True)),
            )
            for f in doc["features"]
        )
        return cls(
            dataset=doc["dataset"],
            spec_version=int(doc["spec_version"]),
            spec_fingerprint=doc["spec_fingerprint"],
            problem_type=doc["problem_type"],
            target=doc["target"],
            features=features,
            classes=tuple(doc.get("classes") or ()),
        )

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> FeatureSchema:
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))


def arrow_type(feature: FeatureSpec) -> pa.DataType:
    """The Arrow type a column of this feature has in curated Parquet."""
    return {"float": pa.float64(), "int": pa.int64(), "bool": pa.bool_(), "string": pa.string()}[
        feature.dtype
    ]


def encode_column(feature: FeatureSpec, column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """One curated column as float64 model values (NaN for null or unknown categories)."""
    if feature.kind == "categorical":
        value_set = pa.array(list(feature.categories or ()), type=arrow_type(feature))
        if column.type != value_set.type:
            column = pc.cast(column, value_set.type)
        column = pc.index_in(column, value_set=value_set)
    return np.asarray(pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False), np.float64)


def encode_table(table: pa.Table, schema: FeatureSchema) -> np.ndarray:
    """The model matrix (float32, rows x features in schema order) of a curated table."""
    out = np.empty((table.num_rows, len(schema.features)), dtype=np.float32)
    for j, feature in enumerate(schema.features):
        out[:, j] = encode_column(feature, table.column(feature.name))
    return out
