"""The training baseline saved with the model: what drift detection compares live data against.

For every feature: null fraction and summary statistics, and a histogram that PSI can use —
numeric features by training deciles (``edges``; a value goes to bin
``searchsorted(edges, x, side="right")``), categorical ones by category. Fractions are of all
rows, so ``sum(fractions) + null_fraction == 1``. The model's score distribution on the
validation split is recorded the same way (``predictions``), for prediction drift.

The binning and the PSI math are ``datasets.drift``'s: the drift monitor (``lambdas/drift``)
bins live traffic with the same functions, so training and monitoring cannot disagree.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from datasets import drift
from training.schema import FeatureSchema, FeatureSpec

BASELINE_FORMAT = "sluice-baseline/1"
_MAX_ROWS = 1_000_000
_QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


def _numeric(values: np.ndarray, bins: int) -> dict[str, Any]:
    present = values[~np.isnan(values)]
    histogram = drift.numeric_histogram(values, bins)
    if present.size == 0:
        return {"count": 0, **histogram}
    q = np.quantile(present, _QUANTILES)
    return {
        "count": int(present.size),
        "null_fraction": histogram["null_fraction"],
        "mean": float(present.mean()),
        "std": float(present.std()),
        "min": float(present.min()),
        "max": float(present.max()),
        "quantiles": {f"p{int(k * 100):02d}": float(v) for k, v in zip(_QUANTILES, q, strict=True)},
        "edges": histogram["edges"],
        "fractions": histogram["fractions"],
    }


def _categorical(values: np.ndarray, feature: FeatureSpec) -> dict[str, Any]:
    cats = list(feature.categories or ())
    histogram = drift.categorical_histogram(values, len(cats))
    return {
        "count": int(np.count_nonzero(~np.isnan(values))),
        "null_fraction": histogram["null_fraction"],
        "categories": cats,
        "fractions": histogram["fractions"],
    }


def _sample(x: np.ndarray, seed: int) -> np.ndarray:
    if x.shape[0] <= _MAX_ROWS:
        return x
    idx = np.sort(np.random.default_rng(seed).choice(x.shape[0], _MAX_ROWS, replace=False))
    return x[idx]


def build(
    x_train: np.ndarray,
    schema: FeatureSchema,
    val_scores: np.ndarray,
    *,
    bins: int = drift.DEFAULT_BINS,
    seed: int = 0,
) -> dict[str, Any]:
    """The baseline document for ``baseline.json`` (large inputs are sampled to 1M rows)."""
    x = _sample(x_train, seed)
    features = {}
    for j, feature in enumerate(schema.features):
        col = x[:, j].astype(np.float64)
        if feature.kind == "categorical":
            features[feature.name] = {"kind": "categorical", **_categorical(col, feature)}
        else:
            features[feature.name] = {"kind": "numeric", **_numeric(col, bins)}
    scores = val_scores if val_scores.ndim == 1 else val_scores.max(axis=1)
    return {
        "format": BASELINE_FORMAT,
        "rows": int(x_train.shape[0]),
        "sampled_rows": int(x.shape[0]),
        "features": features,
        "predictions": {"kind": "numeric", **_numeric(scores.astype(np.float64), bins)},
    }


def fractions(feature_baseline: dict[str, Any], values: np.ndarray) -> tuple[np.ndarray, float]:
    """Bin fractions and null fraction of new encoded values, binned like the baseline."""
    shares = drift.distribution(feature_baseline, values)
    return shares[:-1], float(shares[-1])


#: the PSI of two fraction vectors (``datasets.drift.psi``)
psi = drift.psi
