"""Model quality on live traffic: the spec's primary metric over the serving model's labelled
predictions of the last ``window_days`` days.

Reads the joined labels (``join.py``) of the window, keeps those predicted by the model version
that serves now (a new model starts with a clean slate) and by time inside the window, one per
prediction (the newest label wins), and computes the spec's metric with training's code
(``datasets.metrics``) from each prediction's score (P(positive), class probabilities, value)
and its label. Fewer than ``min_samples`` labelled predictions are skipped, and say so.

Publishes ``ModelQuality`` (dimensions Stage, Dataset, Metric: the quality alarm's) and
``LabelledSamples``; writes a report to ``<dataset>/monitoring/quality/<yyyy>/<MM>/<dd>/...``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from datasets import metrics as quality_metrics
from datasets import names
from datasets.spec import DatasetSpec
from lambdas.shared import monitoring


@dataclass
class Quality:
    dataset: str
    metric: str
    status: str = "computed"
    reason: str = ""
    model_version: str = ""
    samples: int = 0
    value: float | None = None
    threshold: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "metric": self.metric,
            "status": self.status,
            "reason": self.reason,
            "model_version": self.model_version,
            "samples": self.samples,
            "value": self.value,
            "threshold": self.threshold,
        }


def _class_index(spec: DatasetSpec, label: Any) -> int | None:
    for i, cls in enumerate(spec.classes):
        if str(cls) == str(label):
            return i
    return None


def arrays(spec: DatasetSpec, joined: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """(y, scores) as ``datasets.metrics.compute`` takes them; unusable items are left out."""
    ys: list[float] = []
    scores: list[Any] = []
    for item in joined:
        prediction = item.get("prediction") or {}
        if spec.problem_type == "regression":
            value = prediction.get("value")
            if not isinstance(value, int | float):
                continue
            try:
                ys.append(float(item["label"]))
            except (TypeError, ValueError):
                continue
            scores.append(float(value))
            continue
        y = _class_index(spec, item.get("label"))
        if y is None:
            continue
        if spec.problem_type == "binary":
            p = prediction.get("probability")
            if not isinstance(p, int | float):
                continue
            scores.append(float(p))
        else:
            probabilities = prediction.get("probabilities") or {}
            row = [probabilities.get(str(c), probabilities.get(c)) for c in spec.classes]
            values = [float(v) for v in row if isinstance(v, int | float)]
            if len(values) != len(row):
                continue
            scores.append(values)
        ys.append(float(y))
    return np.asarray(ys, dtype=np.float64), np.asarray(scores, dtype=np.float64)


def compute(
    spec: DatasetSpec, joined: list[dict[str, Any]], version: str, min_samples: int
) -> Quality:
    quality = Quality(spec.name, spec.metric.name, model_version=version)
    quality.threshold = spec.metric.threshold
    y, scores = arrays(spec, joined)
    quality.samples = int(y.size)
    if y.size < min_samples:
        quality.status = "skipped"
        quality.reason = (
            f"{y.size} labelled prediction(s) of model {version or '?'} in the window, fewer than "
            f"the {min_samples} quality needs: skipped, no quality published"
        )
        return quality
    value = quality_metrics.compute(spec.problem_type, y, scores).get(spec.metric.name)
    if value is None or math.isnan(value):
        quality.status = "skipped"
        quality.reason = f"{spec.metric.name} is undefined on these labels (one class only?)"
        return quality
    quality.value = float(value)
    return quality


@dataclass
class QualityMonitor:
    stage: str
    prefix: str
    artifacts_bucket: str
    s3: Any
    sagemaker: Any
    cloudwatch: Any
    window_days: int = 7
    min_samples: int = 100

    def labelled(self, dataset: str, version: str, now: datetime) -> list[dict[str, Any]]:
        """The serving version's labelled predictions of the window, one per prediction."""
        start = now - timedelta(days=self.window_days)
        prefixes = monitoring.day_prefixes(names.joined_prefix(dataset), start, now)
        newest: dict[tuple[str, int], dict[str, Any]] = {}
        for key in monitoring.keys(self.s3, self.artifacts_bucket, prefixes):
            for item in monitoring.json_lines(self.s3, self.artifacts_bucket, key):
                at = monitoring.parse_time(item.get("time"))
                if str(item.get("model_version")) != version or at is None or at < start:
                    continue
                ident = (str(item.get("request_id")), int(item.get("instance") or 0))
                current = newest.get(ident)
                if current is None or str(item.get("labelled_at", "")) >= str(
                    current.get("labelled_at", "")
                ):
                    newest[ident] = item
        return list(newest.values())

    def check(self, spec: DatasetSpec, now: datetime) -> Quality:
        endpoint = names.endpoint_name(self.prefix, spec.name)
        serving = monitoring.serving_model(self.sagemaker, endpoint)
        if serving is None:
            quality = Quality(spec.name, spec.metric.name, status="skipped")
            quality.reason = "no model serves the dataset yet"
            return quality
        joined = self.labelled(spec.name, serving.version, now)
        return compute(spec, joined, serving.version, self.min_samples)

    def run(self, specs: list[DatasetSpec], now: datetime) -> list[Quality]:
        results = [self.check(spec, now) for spec in specs]
        data = []
        for quality in results:
            dims = {"Stage": self.stage, "Dataset": quality.dataset}
            data.append(
                monitoring.datum(names.LABELLED_SAMPLES_METRIC, quality.samples, dims, now, "Count")
            )
            if quality.value is not None:
                data.append(
                    monitoring.datum(
                        names.MODEL_QUALITY_METRIC,
                        quality.value,
                        {**dims, "Metric": quality.metric},
                        now,
                    )
                )
            key = (
                f"{names.monitoring_reports_prefix(quality.dataset)}quality/"
                f"{now:%Y/%m/%d/%H%M%S}.json"
            )
            self.s3.put_object(
                Bucket=self.artifacts_bucket,
                Key=key,
                Body=json.dumps(quality.as_dict(), indent=1).encode(),
                ContentType="application/json",
            )
        monitoring.put_metrics(self.cloudwatch, data)
        return results
