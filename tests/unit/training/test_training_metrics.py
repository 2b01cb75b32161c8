"""training.metrics agrees with scikit-learn (which the container need not have)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from training import metrics


@pytest.fixture
def binary():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 2_000)
    p = np.clip(0.3 * y + rng.random(2_000) * 0.7, 0, 1).round(2)  # ties on purpose
    return y.astype(float), p


def test_binary_metrics_match_sklearn(binary):
    y, p = binary
    got = metrics.compute("binary", y, p)
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert got["pr_auc"] == pytest.approx(skm.average_precision_score(y, p))
    assert got["f1"] == pytest.approx(skm.f1_score(y, p >= 0.5))
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, p >= 0.5))
    assert got["logloss"] == pytest.approx(skm.log_loss(y, np.clip(p, 1e-15, 1 - 1e-15)))


def test_multiclass_and_regression_metrics_match_sklearn():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 3, 1_000)
    p = rng.dirichlet([1, 1, 1], 1_000)
    got = metrics.compute("multiclass", y.astype(float), p)
    assert got["macro_f1"] == pytest.approx(skm.f1_score(y, p.argmax(1), average="macro"))
    assert got["logloss"] == pytest.approx(skm.log_loss(y, p))
    t = rng.normal(size=500)
    v = t + rng.normal(scale=0.3, size=500)
    reg = metrics.compute("regression", t, v)
    assert reg["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(t, v)))
    assert reg["r2"] == pytest.approx(skm.r2_score(t, v))


def test_auc_is_undefined_with_one_class():
    assert np.isnan(metrics.compute("binary", np.ones(5), np.linspace(0, 1, 5))["roc_auc"])
