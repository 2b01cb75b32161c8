"""Population stability index (PSI): the one implementation of drift binning and its math.

Training writes each model's drift baseline with these functions (``training/baseline.py``)
and the drift monitor bins live traffic with them (``lambdas/drift``), so the two can never
disagree on a bin. Values are the model's encoded inputs (``training/schema.py``): numbers as
float, a categorical value as its index in the saved category list, a missing value as NaN.

Bins:

- numeric: by the baseline's ``edges`` (training deciles); a value ``x`` falls in bin
  ``searchsorted(edges, x, side="right")``, so there are ``len(edges) + 1`` bins;
- categorical: one bin per category, in the saved order (a code outside the list is missing);
- missing: its own bin, always last.

Fractions are of all rows, missing included, so a distribution sums to 1. PSI of expected
``e`` and actual ``a`` fractions: ``sum((a - e) * ln(a / e))``, both clipped at ``EPSILON`` so an
empty bin counts as very small, not as infinite. Rules of thumb: below 0.1 no real change,
0.1-0.25 a moderate shift, above 0.25 a significant one.

Needs numpy only; runs on Python 3.10 (the SageMaker XGBoost image).
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: the floor of a bin's fraction in PSI (an empty bin would make the logarithm infinite)
EPSILON = 1e-4
#: deciles: the default number of numeric bins
DEFAULT_BINS = 10


def numeric_edges(present: np.ndarray, bins: int = DEFAULT_BINS) -> np.ndarray:
    """Inner bin edges of the present (non-missing) values: their quantiles, deduplicated."""
    if present.size == 0:
        return np.empty(0, dtype=np.float64)
    return np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1]))


def numeric_counts(values: np.ndarray, edges: np.ndarray | list[float]) -> tuple[np.ndarray, int]:
    """Counts per numeric bin, and the count of missing values."""
    values = np.asarray(values, dtype=np.float64)
    present = values[~np.isnan(values)]
    cut = np.asarray(edges, dtype=np.float64)
    counts = np.bincount(np.searchsorted(cut, present, side="right"), minlength=cut.size + 1)
    return counts, int(values.size - present.size)


def categorical_counts(values: np.ndarray, categories: int) -> tuple[np.ndarray, int]:
    """Counts per category index (``0..categories-1``), and the count of missing values
    (NaN, or a code outside the list)."""
    values = np.asarray(values, dtype=np.float64)
    known = ~np.isnan(values) & (values >= 0) & (values < categories)
    counts = np.bincount(values[known].astype(np.int64), minlength=categories)[:categories]
    return counts, int(values.size - int(known.sum()))


def counts(feature: dict[str, Any], values: np.ndarray) -> tuple[np.ndarray, int]:
    """Bin counts of ``values`` binned as ``feature`` (a baseline entry) bins them."""
    if feature["kind"] == "categorical":
        return categorical_counts(values, len(feature["categories"]))
    return numeric_counts(values, feature.get("edges") or [])


def distribution(feature: dict[str, Any], values: np.ndarray) -> np.ndarray:
    """Fractions of ``values`` per bin of ``feature``, the missing bin last (sums to 1)."""
    binned, missing = counts(feature, values)
    n = max(int(binned.sum()) + missing, 1)
    return np.append(binned, missing).astype(np.float64) / n


def expected(feature: dict[str, Any]) -> np.ndarray:
    """The baseline's own fractions per bin, the missing bin last."""
    return np.append(
        np.asarray(feature["fractions"], dtype=np.float64), float(feature["null_fraction"])
    )


def psi(expected: np.ndarray, actual: np.ndarray, eps: float = EPSILON) -> float:
    """Population stability index of two fraction vectors over the same bins."""
    e = np.clip(np.asarray(expected, dtype=np.float64), eps, None)
    a = np.clip(np.asarray(actual, dtype=np.float64), eps, None)
    if e.shape != a.shape:
        raise ValueError(f"PSI needs the same bins: {e.shape} expected vs {a.shape} actual")
    return float(np.sum((a - e) * np.log(a / e)))


def feature_psi(feature: dict[str, Any], values: np.ndarray) -> float:
    """PSI of live ``values`` of one feature against its baseline entry."""
    return psi(expected(feature), distribution(feature, values))


def numeric_histogram(values: np.ndarray, bins: int = DEFAULT_BINS) -> dict[str, Any]:
    """A numeric feature's baseline histogram: ``edges``, ``fractions`` (of all rows) and
    ``null_fraction``."""
    values = np.asarray(values, dtype=np.float64)
    present = values[~np.isnan(values)]
    if present.size == 0:
        return {"edges": [], "fractions": [0.0], "null_fraction": 1.0}
    edges = numeric_edges(present, bins)
    binned, missing = numeric_counts(values, edges)
    n = max(values.size, 1)
    return {
        "edges": [float(e) for e in edges],
        "fractions": [float(c) / n for c in binned],
        "null_fraction": missing / n,
    }


def categorical_histogram(values: np.ndarray, categories: int) -> dict[str, Any]:
    """A categorical feature's baseline histogram: ``fractions`` per category index and
    ``null_fraction``."""
    values = np.asarray(values, dtype=np.float64)
    binned, missing = categorical_counts(values, categories)
    n = max(values.size, 1)
    return {"fractions": [float(c) / n for c in binned], "null_fraction": missing / n}
