"""Engineered features declared in the spec, computed from the curated (UTC) timestamps."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from datasets.spec import Feature
from lambdas.preprocess.convert import arrow_number

_SECONDS = {"duration_days": 86_400.0, "duration_hours": 3_600.0}


def feature_type(feature: Feature) -> pa.DataType:
    return pa.float64() if feature.kind in _SECONDS else pa.int64()


def compute(feature: Feature, columns: dict[str, pa.Array]) -> pa.Array:
    """One feature column; null where a source timestamp is null."""
    if feature.kind in _SECONDS:
        start = columns[feature.start or ""].cast(pa.int64())
        end = columns[feature.end or ""].cast(pa.int64())
        micros = pc.subtract(end, start).cast(pa.float64())
        return pc.divide(micros, arrow_number(_SECONDS[feature.kind] * 1e6))
    ts = columns[feature.column or ""]
    if feature.kind == "day_of_week":
        return pc.day_of_week(ts, count_from_zero=True, week_start=1).cast(pa.int64())
    if feature.kind == "hour":
        return pc.hour(ts).cast(pa.int64())
    return pc.month(ts).cast(pa.int64())
