"""Engineered features: the one implementation, for ingestion, training and serving.

A feature declared in the spec (``features:``) is computed from typed timestamp columns, as
``datasets.columns`` makes them from an upload's text (UTC, microseconds): ingestion writes the
result into the curated Parquet, training recomputes it from the curated timestamps, and serving
computes it from a prediction record. A caller never computes a feature. A null source gives a
null feature (XGBoost's missing value).

Needs pyarrow only; runs on Python 3.10 (the SageMaker XGBoost image).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from datasets.columns import arrow_number
from datasets.spec import Feature

_SECONDS = {"duration_days": 86_400.0, "duration_hours": 3_600.0}


def feature_type(feature: Feature) -> pa.DataType:
    """The Arrow type of a feature's column: float64 for durations, int64 otherwise."""
    return pa.float64() if feature.kind in _SECONDS else pa.int64()


def compute(feature: Feature, columns: dict[str, pa.Array]) -> pa.Array:
    """One feature column from the typed columns (``timestamp[us, UTC]``) it is declared on.

    ``day_of_week``: Monday = 0 ... Sunday = 6; ``hour`` 0-23 and ``month`` 1-12, all in UTC;
    ``duration_days``/``duration_hours``: ``end - start`` as a float (negative when end is first).
    """
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


def add_features(
    columns: dict[str, pa.Array], features: tuple[Feature, ...] | list[Feature]
) -> dict[str, pa.Array]:
    """``columns`` plus every feature of ``features`` (their sources must be among them)."""
    out = dict(columns)
    for feat in features:
        out[feat.name] = compute(feat, out)
    return out
