"""PSI against known distributions: the one binning/PSI implementation (datasets.drift)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from datasets import drift


def _phi(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def _numeric_baseline(values: np.ndarray) -> dict:
    return {"kind": "numeric", **drift.numeric_histogram(values)}


def test_identical_distributions_have_a_psi_of_about_zero() -> None:
    # Given a baseline of a standard normal sample, When a second sample of it is compared
    rng = np.random.default_rng(1)
    baseline = _numeric_baseline(rng.normal(0, 1, 50_000))
    live = rng.normal(0, 1, 50_000)
    # Then PSI is about zero (only sampling noise)
    assert drift.feature_psi(baseline, live) < 0.005


def test_a_known_mean_shift_gives_the_expected_psi() -> None:
    # Given decile bins of N(0, 1), When live values come from N(0.5, 1)
    rng = np.random.default_rng(2)
    baseline = _numeric_baseline(rng.normal(0, 1, 200_000))
    live = rng.normal(0.5, 1, 200_000)
    # Then PSI is what the bins' probabilities under both normals give
    edges = [-math.inf, *baseline["edges"], math.inf]
    e = np.diff([_phi(x) for x in edges])
    a = np.diff([_phi(x - 0.5) for x in edges])
    exact = float(np.sum((a - e) * np.log(a / e)))
    assert 0.2 < exact < 0.26  # close to the continuous value, delta^2 = 0.25
    assert drift.feature_psi(baseline, live) == pytest.approx(exact, abs=0.01)


def test_psi_of_fractions_is_the_textbook_formula() -> None:
    assert drift.psi(np.array([0.5, 0.5]), np.array([0.8, 0.2])) == pytest.approx(
        0.3 * math.log(0.8 / 0.5) + (-0.3) * math.log(0.2 / 0.5)
    )
    with pytest.raises(ValueError, match="same bins"):
        drift.psi(np.array([0.5, 0.5]), np.array([1.0]))


def test_categorical_drift_is_measured_by_category() -> None:
    # Given a baseline of three categories 50/30/20 (codes 0, 1, 2)
    baseline = {
        "kind": "categorical",
        "categories": ["basic", "standard", "premium"],
        **drift.categorical_histogram(np.repeat([0.0, 1.0, 2.0], [500, 300, 200]), 3),
    }
    # When live traffic is 20/30/50
    live = np.repeat([0.0, 1.0, 2.0], [200, 300, 500])
    # Then PSI is the categories' (and the empty missing bin contributes nothing)
    expected = 0.3 * math.log(0.5 / 0.2) * 2
    assert drift.feature_psi(baseline, live) == pytest.approx(expected, rel=1e-6)
    assert drift.feature_psi(baseline, np.repeat([0.0, 1.0, 2.0], [50, 30, 20])) < 1e-9


def test_missing_values_are_a_bin_of_their_own() -> None:
    # Given a numeric baseline with 10% missing values
    rng = np.random.default_rng(3)
    values = rng.normal(0, 1, 10_000)
    values[:1000] = np.nan
    baseline = _numeric_baseline(values)
    assert baseline["null_fraction"] == pytest.approx(0.1)
    assert sum(baseline["fractions"]) + baseline["null_fraction"] == pytest.approx(1.0)
    # When live values have the same distribution but 40% missing
    live = rng.normal(0, 1, 10_000)
    live[:4000] = np.nan
    # Then the missing bin alone makes the drift: present values shrink to 60/90 each
    share = drift.distribution(baseline, live)
    assert share[-1] == pytest.approx(0.4) and share.sum() == pytest.approx(1.0)
    missing_part = 0.3 * math.log(0.4 / 0.1)
    present_part = (0.6 - 0.9) * math.log(0.6 / 0.9)
    assert drift.feature_psi(baseline, live) == pytest.approx(missing_part + present_part, abs=0.02)


def test_categorical_codes_outside_the_list_count_as_missing() -> None:
    counts, missing = drift.categorical_counts(np.array([0.0, 1.0, 5.0, np.nan, -1.0]), 2)
    assert counts.tolist() == [1, 1] and missing == 3


def test_values_go_to_the_bin_searchsorted_right_names() -> None:
    counts, missing = drift.numeric_counts(np.array([0.0, 1.0, 1.5, 2.0, 9.0, np.nan]), [1.0, 2.0])
    # (-inf, 1) | [1, 2) | [2, inf)
    assert counts.tolist() == [1, 2, 2] and missing == 1


def test_training_baseline_uses_the_same_binning(tmp_path: object) -> None:
    # the baseline training writes and the live binning agree: a sample of the training
    # values themselves is binned into the baseline's fractions exactly
    from training import baseline
    from training.schema import FeatureSchema, FeatureSpec

    rng = np.random.default_rng(4)
    x = np.column_stack([rng.normal(0, 1, 2000), rng.integers(0, 3, 2000).astype(float)])
    x[:50, 0] = np.nan
    schema = FeatureSchema(
        dataset="t",
        spec_version=1,
        spec_fingerprint="f",
        problem_type="binary",
        target="y",
        features=(
            FeatureSpec("n", "numeric", "float"),
            FeatureSpec("c", "categorical", "string", categories=("a", "b", "c")),
        ),
        classes=(0, 1),
    )
    doc = baseline.build(x, schema, rng.random(100))
    for j, name in enumerate(("n", "c")):
        feature = doc["features"][name]
        assert np.allclose(drift.distribution(feature, x[:, j]), drift.expected(feature))
        assert drift.feature_psi(feature, x[:, j]) == pytest.approx(0.0, abs=1e-12)
        shares, nulls = baseline.fractions(feature, x[:, j])
        assert np.allclose(shares, feature["fractions"]) and nulls == feature["null_fraction"]
