"""The drift monitor: captured windows against the serving model's baseline (moto S3)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from lambdas.drift.monitor import DriftMonitor
from tests.unit.monitoring.fakes import ARTIFACTS, PREFIX, World


def monitor(world: World, **kw: int) -> DriftMonitor:
    return DriftMonitor(
        stage="test",
        prefix=PREFIX,
        artifacts_bucket=ARTIFACTS,
        s3=world.s3,
        sagemaker=world.sagemaker,
        cloudwatch=world.cloudwatch,
        window_minutes=kw.get("window_minutes", 60),
        min_samples=kw.get("min_samples", 200),
    )


def test_drifted_traffic_has_a_high_psi_published_per_feature_and_as_the_maximum(
    world: World,
) -> None:
    # Given a window of traffic shifted by two standard deviations
    world.capture(world.rows(600, drift=2.0))
    # When the scheduled check runs
    (window,) = monitor(world).run(["churn"], datetime.now(UTC))
    # Then the window is computed against model version 1, and it drifted
    assert window.status == "computed" and window.model_version == "1"
    assert window.samples == 600 and window.refused == 0
    assert window.max_psi is not None and window.max_psi > 0.25
    assert set(window.features) == {
        "plan", "region", "monthly_charges", "tenure_months", "support_calls",
        "signup_dow", "signup_hour", "days_active",
    }  # fmt: skip
    assert window.features["support_calls"] > 0.25
    # and one datapoint per feature, the maximum and the sample count are published
    dims = {"Stage": "test", "Dataset": "churn"}
    assert world.metric("DriftMax", **dims) == [pytest.approx(window.max_psi)]
    assert world.metric("FeatureDrift", **dims, Feature="support_calls") == [
        pytest.approx(window.features["support_calls"])
    ]
    assert world.metric("DriftSamples", **dims) == [600]
    assert world.metric("PredictionDrift", **dims)  # the model's scores, too
    # and a report says the same
    (key,) = world.keys(ARTIFACTS, "churn/monitoring/drift/")
    report = json.loads(world.text(ARTIFACTS, key))
    assert report["status"] == "computed" and report["max_psi"] == pytest.approx(window.max_psi)
    assert next(iter(report["features"])) == window.drifted[0]


def test_traffic_like_the_training_data_does_not_drift(world: World) -> None:
    world.capture(world.rows(800, seed=5))
    (window,) = monitor(world).run(["churn"], datetime.now(UTC))
    assert window.status == "computed"
    assert window.max_psi is not None and window.max_psi < 0.1


def test_a_window_below_the_minimum_sample_is_skipped_and_says_so(world: World) -> None:
    # Given fewer captured records than drift needs
    world.capture(world.rows(50, drift=3.0))
    # When the check runs
    (window,) = monitor(world, min_samples=200).run(["churn"], datetime.now(UTC))
    # Then nothing is computed: the window says why, and no PSI is published
    assert window.status == "skipped"
    assert "50 captured record(s) in the window, fewer than the 200 drift needs" in window.reason
    assert window.features == {}
    dims = {"Stage": "test", "Dataset": "churn"}
    assert world.metric("DriftMax", **dims) == []
    assert world.metric("DriftSamples", **dims) == [50]


def test_only_the_window_is_read(world: World) -> None:
    # records older than the window (drifted) and inside it (not)
    world.capture(world.rows(400, drift=3.0), at=datetime.now(UTC) - timedelta(hours=3))
    world.capture(world.rows(400, seed=9), request_id="req-2")
    (window,) = monitor(world, window_minutes=60).run(["churn"], datetime.now(UTC))
    assert window.samples == 400 and window.max_psi is not None and window.max_psi < 0.1


def test_no_serving_model_is_a_skipped_window(world: World) -> None:
    world.sagemaker.endpoints.clear()
    (window,) = monitor(world).run(["churn"], datetime.now(UTC))
    assert window.status == "skipped" and window.reason == "no model serves the dataset yet"


def test_records_the_models_shape_refuses_are_counted_and_left_out(world: World) -> None:
    rows = world.rows(300, seed=4)
    for row in rows[:20]:
        row["plan"] = "platinum"  # not a category the model knows
    world.capture(rows)
    (window,) = monitor(world).run(["churn"], datetime.now(UTC))
    assert window.status == "computed" and window.refused == 20
