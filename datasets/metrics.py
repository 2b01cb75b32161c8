"""Model-quality metrics in numpy (the container and the Lambda functions lack scikit-learn).

Names match ``datasets.spec.METRICS``. Binary scores are the positive-class probability,
multiclass scores an (n, k) probability matrix, regression scores the predicted values; ``y`` is
the class index (classification) or the true value (regression).
"""

from __future__ import annotations

from typing import Any

import numpy as np

_EPS = 1e-15


def _curve_points(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True/false positive counts at each distinct threshold, highest score first."""
    order = np.argsort(-p, kind="mergesort")
    p_sorted, y_sorted = p[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(p_sorted)), y.size - 1]
    tps = np.cumsum(y_sorted)[last]
    fps = (last + 1) - tps
    return tps.astype(np.float64), fps.astype(np.float64), p_sorted[last]


def roc_curve(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate), starting at (0, 0)."""
    tps, fps, _ = _curve_points(y, p)
    return np.r_[0.0, fps / max(fps[-1], 1)], np.r_[0.0, tps / max(tps[-1], 1)]


def pr_curve(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(recall, precision) at each distinct threshold, highest threshold first."""
    tps, fps, _ = _curve_points(y, p)
    return tps / max(tps[-1], 1), tps / (tps + fps)


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    if y.size == 0 or y.min() == y.max():
        return float("nan")
    fpr, tpr = roc_curve(y, p)
    return float(np.trapezoid(tpr, fpr))


def average_precision(y: np.ndarray, p: np.ndarray) -> float:
    if y.size == 0 or y.max() == 0:
        return float("nan")
    recall, precision = pr_curve(y, p)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _f1(y: np.ndarray, pred: np.ndarray, cls: int) -> float:
    tp = float(np.sum((pred == cls) & (y == cls)))
    fp = float(np.sum((pred == cls) & (y != cls)))
    fn = float(np.sum((pred != cls) & (y == cls)))
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def predicted_classes(problem: str, scores: np.ndarray) -> np.ndarray:
    if problem == "binary":
        return (scores >= 0.5).astype(np.int64)
    return np.asarray(np.argmax(scores, axis=1), dtype=np.int64)


def compute(problem: str, y: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Every metric of the problem type (NaN where undefined, e.g. one class only)."""
    if y.size == 0:
        return {}
    if problem == "regression":
        err = scores - y
        ss_tot = float(np.sum((y - y.mean()) ** 2))
        return {
            "rmse": float(np.sqrt(np.mean(err**2))),
            "mae": float(np.mean(np.abs(err))),
            "r2": 1 - float(np.sum(err**2)) / ss_tot if ss_tot > 0 else float("nan"),
        }
    yi = y.astype(np.int64)
    pred = predicted_classes(problem, scores)
    if problem == "binary":
        p = np.clip(scores, _EPS, 1 - _EPS)
        return {
            "roc_auc": roc_auc(yi, scores),
            "pr_auc": average_precision(yi, scores),
            "accuracy": float(np.mean(pred == yi)),
            "f1": _f1(yi, pred, 1),
            "logloss": float(-np.mean(yi * np.log(p) + (1 - yi) * np.log(1 - p))),
        }
    k = scores.shape[1]
    p_true = np.clip(scores[np.arange(yi.size), yi], _EPS, 1)
    return {
        "accuracy": float(np.mean(pred == yi)),
        "macro_f1": float(np.mean([_f1(yi, pred, c) for c in range(k)])),
        "logloss": float(-np.mean(np.log(p_true))),
    }


def confusion_matrix(problem: str, y: np.ndarray, scores: np.ndarray, k: int) -> list[list[int]]:
    """Rows = true class, columns = predicted class, in model class order."""
    pred = predicted_classes(problem, scores)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (y.astype(np.int64), pred), 1)
    return [[int(v) for v in row] for row in cm.tolist()]


def residual_summary(y: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    r = scores - y
    q = np.quantile(r, [0.05, 0.25, 0.5, 0.75, 0.95]) if r.size else [float("nan")] * 5
    return {
        "mean": float(np.mean(r)) if r.size else float("nan"),
        "std": float(np.std(r)) if r.size else float("nan"),
        "quantiles": dict(zip(("p05", "p25", "p50", "p75", "p95"), map(float, q), strict=True)),
    }


def is_better(name_higher_is_better: bool, a: float, b: float) -> bool:
    return a > b if name_higher_is_better else a < b
