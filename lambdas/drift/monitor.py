"""Drift of one dataset's live traffic: the captured records of the last window against the
training baseline of the model that serves now.

For each model feature, the records are featurized as the model featurizes them (the model's own
``spec.json`` through ``datasets.record``: the checks and engineered features ingestion and
serving use), encoded as training encodes them (numbers as floats, a category as its index in
the baseline's list, missing as NaN), binned as the baseline is binned and compared by PSI
(``datasets.drift``: numeric by the baseline's deciles, categorical by category, missing values
their own bin). The model's scores are compared with the baseline's validation scores too
(prediction drift).

A window with fewer than ``min_samples`` records is skipped, and says so: no PSI is published
for it (the drift alarm treats the missing datapoint as not breaching). Records the model's
spec no longer accepts are counted and left out, never guessed.

Publishes per dataset: ``FeatureDrift`` per feature, ``DriftMax`` (the alarm's metric),
``PredictionDrift`` and ``DriftSamples``; writes a report to
``s3://<artifacts>/<dataset>/monitoring/drift/<yyyy>/<MM>/<dd>/<HHMMSS>.json``.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from datasets import drift, names
from datasets.record import RecordError, Records, RecordShape
from datasets.spec import DatasetSpec, parse_spec
from lambdas.shared import monitoring

BASELINE_FILE, SPEC_FILE = "baseline.json", "spec.json"


@dataclass
class Baseline:
    """What drift needs of a served model: its version, baseline and record shape."""

    version: str
    baseline: dict[str, Any]
    spec: DatasetSpec

    @property
    def shape(self) -> RecordShape:
        return RecordShape(self.spec)


@dataclass
class Window:
    dataset: str
    start: datetime
    end: datetime
    status: str = "computed"
    reason: str = ""
    model_version: str = ""
    samples: int = 0
    #: records the model's spec refuses (left out)
    refused: int = 0
    features: dict[str, float] = field(default_factory=dict)
    prediction_psi: float | None = None

    @property
    def max_psi(self) -> float | None:
        return max(self.features.values()) if self.features else None

    @property
    def drifted(self) -> list[str]:
        """Features by PSI, largest first."""
        return sorted(self.features, key=lambda f: -self.features[f])

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "window": {"start": self.start.isoformat(), "end": self.end.isoformat()},
            "status": self.status,
            "reason": self.reason,
            "model_version": self.model_version,
            "samples": self.samples,
            "refused": self.refused,
            "max_psi": self.max_psi,
            "features": {name: round(self.features[name], 6) for name in self.drifted},
            "prediction_psi": self.prediction_psi,
        }


def encoded(feature: dict[str, Any], column: pa.Array) -> np.ndarray:
    """One typed model input as training encodes it: float, category index, NaN missing."""
    if feature["kind"] == "categorical":
        value_set = pa.array(feature["categories"])
        if value_set.type != column.type:
            value_set = pc.cast(value_set, column.type)
        column = pc.index_in(column, value_set=value_set)
    return np.asarray(pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False), np.float64)


def featurize(shape: RecordShape, records: list[dict[str, Any]]) -> tuple[Records | None, int]:
    """Typed model inputs of the records; those the shape refuses are left out (counted)."""
    fields = set(shape.fields)
    rows = [{k: v for k, v in r.items() if k in fields} for r in records]
    try:
        return shape.from_instances(rows), 0
    except RecordError as exc:
        bad = {d.instance for d in exc.details if d.instance is not None}
        if not bad or exc.more > 0:  # find them one by one
            bad = set()
            for i, row in enumerate(rows):
                try:
                    shape.from_instances([row])
                except RecordError:
                    bad.add(i)
        kept = [row for i, row in enumerate(rows) if i not in bad]
        if not kept:
            return None, len(rows)
        try:
            return shape.from_instances(kept), len(rows) - len(kept)
        except RecordError:
            return None, len(rows)


def scores(problem: str, predictions: list[dict[str, Any]]) -> np.ndarray:
    """The score the baseline's ``predictions`` histogram holds: P(positive), the largest class
    probability, or the regression value."""
    out = []
    for p in predictions:
        if problem == "binary":
            value = p.get("probability")
        elif problem == "multiclass":
            probabilities = p.get("probabilities") or {}
            values = probabilities.values() if isinstance(probabilities, dict) else probabilities
            value = max(values) if values else None
        else:
            value = p.get("value")
        out.append(float(value) if isinstance(value, int | float) else np.nan)
    return np.asarray(out, dtype=np.float64)


def compute(
    baseline: Baseline, records: list[dict[str, Any]], window: Window, min_samples: int
) -> Window:
    """PSI per feature of the window's captured lines (fills in ``window``)."""
    window.model_version = baseline.version
    window.samples = len(records)
    if len(records) < min_samples:
        window.status = "skipped"
        window.reason = (
            f"{len(records)} captured record(s) in the window, fewer than the "
            f"{min_samples} drift needs: skipped, no drift published"
        )
        return window
    typed, refused = featurize(baseline.shape, [r.get("record") or {} for r in records])
    window.refused = refused
    usable = len(records) - refused
    if typed is None or usable < min_samples:
        window.status = "skipped"
        window.reason = (
            f"{usable} usable record(s) ({refused} refused by the model's record shape), "
            f"fewer than the {min_samples} drift needs: skipped, no drift published"
        )
        return window
    for name, feature in baseline.baseline["features"].items():
        column = typed.columns.get(name)
        if column is None:
            continue
        window.features[name] = drift.feature_psi(feature, encoded(feature, column))
    predictions = baseline.baseline.get("predictions")
    if predictions:
        values = scores(baseline.spec.problem_type, [r.get("prediction") or {} for r in records])
        window.prediction_psi = drift.feature_psi(predictions, values)
    return window


def metrics(window: Window, stage: str, at: datetime) -> list[dict[str, Any]]:
    """The window's datapoints (none of PSI when it was skipped)."""
    dims = {"Stage": stage, "Dataset": window.dataset}
    data = [monitoring.datum(names.DRIFT_SAMPLES_METRIC, window.samples, dims, at, "Count")]
    if window.status != "computed":
        return data
    for name, value in window.features.items():
        data.append(
            monitoring.datum(names.FEATURE_DRIFT_METRIC, value, {**dims, "Feature": name}, at)
        )
    if window.max_psi is not None:
        data.append(monitoring.datum(names.DRIFT_MAX_METRIC, window.max_psi, dims, at))
    if window.prediction_psi is not None:
        data.append(
            monitoring.datum(names.PREDICTION_DRIFT_METRIC, window.prediction_psi, dims, at)
        )
    return data


@dataclass
class DriftMonitor:
    """Computes and publishes the drift of the datasets' last window."""

    stage: str
    prefix: str
    artifacts_bucket: str
    s3: Any
    sagemaker: Any
    cloudwatch: Any
    window_minutes: int = 60
    min_samples: int = 200
    max_samples: int = 100_000
    _baselines: dict[str, Baseline] = field(default_factory=dict)

    def baseline(self, dataset: str) -> tuple[Baseline | None, str]:
        """The serving model's baseline (remembered per model), or why there is none."""
        serving = monitoring.serving_model(
            self.sagemaker, names.endpoint_name(self.prefix, dataset)
        )
        if serving is None or not serving.model_data:
            return None, "no model serves the dataset yet"
        cached = self._baselines.get(serving.model_data)
        if cached is not None:
            return cached, ""
        files = monitoring.model_files(self.s3, serving.model_data, (BASELINE_FILE, SPEC_FILE))
        if BASELINE_FILE not in files or SPEC_FILE not in files:
            return None, f"the serving model {serving.version} has no baseline.json/spec.json"
        found = Baseline(
            version=serving.version,
            baseline=json.loads(files[BASELINE_FILE]),
            spec=parse_spec(json.loads(files[SPEC_FILE]), source=f"{dataset} model spec.json"),
        )
        self._baselines[serving.model_data] = found
        return found, ""

    def check(self, dataset: str, now: datetime) -> Window:
        window = Window(dataset, now - timedelta(minutes=self.window_minutes), now)
        baseline, why = self.baseline(dataset)
        if baseline is None:
            window.status, window.reason = "skipped", why
            return window
        records = list(
            monitoring.captured(self.s3, self.artifacts_bucket, dataset, window.start, now)
        )
        if len(records) > self.max_samples:
            window.reason = f"a uniform sample of {self.max_samples} of {len(records)} records"
            records = random.Random(0).sample(records, self.max_samples)  # noqa: S311
        return compute(baseline, records, window, self.min_samples)

    def run(self, datasets: list[str], now: datetime) -> list[Window]:
        windows = [self.check(dataset, now) for dataset in datasets]
        data = [d for w in windows for d in metrics(w, self.stage, now)]
        monitoring.put_metrics(self.cloudwatch, data)
        for window in windows:
            key = (
                f"{names.monitoring_reports_prefix(window.dataset)}drift/{now:%Y/%m/%d/%H%M%S}.json"
            )
            self.s3.put_object(
                Bucket=self.artifacts_bucket,
                Key=key,
                Body=json.dumps(window.as_dict(), indent=1).encode(),
                ContentType="application/json",
            )
        return windows
