"""Metric alarms evaluated as CloudWatch does, on the local time scale."""

from __future__ import annotations

import pytest
from sluice_local.alarms import (
    ALARM,
    INSUFFICIENT_DATA,
    OK,
    UnsupportedAlarm,
    evaluate,
    evaluated_here,
    local_interval,
    percentile,
)
from sluice_local.metrics import Sample

#: local time scale of the tests: a 60 s period lasts 1 s
SCALE = 60.0
NOW = 1_200_000.0  # a period boundary at scale 1 and at scale 60


def alarm(**overrides) -> dict:
    return {
        "AlarmName": "sluice-dev-churn-5xx",
        "Namespace": "AWS/SageMaker",
        "MetricName": "Invocation5XXErrors",
        "Statistic": "Sum",
        "Period": 60,
        "EvaluationPeriods": 1,
        "Threshold": 1.0,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "TreatMissingData": "notBreaching",
        **overrides,
    }


def at(offset: float, value: float, count: float = 1.0) -> Sample:
    return Sample.of(NOW + offset, value, count)


def test_errors_in_the_last_complete_period_trip_a_sum_alarm():
    samples = [at(-0.9, 0.0), at(-0.5, 1.0), at(-0.2, 1.0)]
    result = evaluate(alarm(), samples, now=NOW, scale=SCALE)
    assert result.state == ALARM
    assert result.reason.startswith("Threshold Crossed: 1 out of the last 1 datapoints [2.0")
    assert result.reason_data["recentDatapoints"] == [2.0]
    assert result.reason_data["period"] == 60


def test_a_period_still_in_progress_is_not_evaluated():
    # errors at NOW+0.3 belong to the period ending at NOW+1, which is not complete yet
    assert evaluate(alarm(), [at(0.3, 1.0)], now=NOW + 0.5, scale=SCALE).state == OK


def test_periods_follow_the_time_scale():
    # scale 1: the same errors 30 s ago are inside the last (60 s) period
    assert evaluate(alarm(), [at(-30, 1.0)], now=NOW, scale=1.0).state == ALARM
    # scale 60: 30 s ago is 30 periods ago, outside a one-period evaluation range
    assert evaluate(alarm(), [at(-30, 1.0)], now=NOW, scale=SCALE).state == OK


def test_client_errors_alone_never_reach_a_5xx_alarm():
    # what the 4xx path publishes for the 5xx metric: zeros
    samples = [at(-0.5, 0.0, count=50)]
    assert evaluate(alarm(), samples, now=NOW, scale=SCALE).state == OK


def test_average_is_the_error_rate():
    rate = alarm(Statistic="Average", Threshold=0.05, ComparisonOperator="GreaterThanThreshold")
    samples = [at(-0.5, 0.0, count=90), at(-0.4, 1.0, count=10)]
    result = evaluate(rate, samples, now=NOW, scale=SCALE)
    assert result.state == ALARM and result.reason_data["recentDatapoints"] == [0.1]


def test_p99_latency_in_microseconds_uses_the_nearest_rank():
    latency = alarm(
        MetricName="ModelLatency",
        Statistic=None,
        ExtendedStatistic="p99",
        Threshold=500_000.0,
        ComparisonOperator="GreaterThanThreshold",
    )
    fast = [at(-0.5, 20_000.0, count=99)]
    assert evaluate(latency, [*fast, at(-0.4, 900_000.0)], now=NOW, scale=SCALE).state == OK
    assert (
        evaluate(latency, [*fast, at(-0.4, 900_000.0, count=2)], now=NOW, scale=SCALE).state
        == ALARM
    )


def test_percentile_nearest_rank():
    samples = [Sample.of(0, float(v)) for v in range(1, 101)]
    assert percentile(samples, 99) == 99.0
    assert percentile(samples, 50) == 50.0
    assert percentile([Sample.of(0, 7.0)], 99) == 7.0


def test_low_sample_count_percentile_keeps_the_state_when_told_to_ignore():
    latency = alarm(
        MetricName="ModelLatency",
        Statistic=None,
        ExtendedStatistic="p99",
        Threshold=1.0,
        EvaluateLowSampleCountPercentile="ignore",
    )
    assert evaluate(latency, [at(-0.5, 5.0)], now=NOW, scale=SCALE).state is None


@pytest.mark.parametrize(
    ("treat", "state"),
    [("missing", INSUFFICIENT_DATA), ("notBreaching", OK), ("breaching", ALARM), ("ignore", None)],
)
def test_no_data_at_all_follows_treat_missing_data(treat, state):
    assert evaluate(alarm(TreatMissingData=treat), [], now=NOW, scale=SCALE).state == state


def test_m_out_of_n_datapoints_to_alarm():
    two_of_three = alarm(EvaluationPeriods=3, DatapointsToAlarm=2)
    one_bad = [at(-2.5, 0.0), at(-1.5, 3.0), at(-0.5, 0.0)]
    two_bad = [at(-2.5, 2.0), at(-1.5, 0.0), at(-0.5, 5.0)]
    assert evaluate(two_of_three, one_bad, now=NOW, scale=SCALE).state == OK
    assert evaluate(two_of_three, two_bad, now=NOW, scale=SCALE).state == ALARM


def test_missing_periods_count_as_breaching_when_told_so():
    two_of_three = alarm(EvaluationPeriods=3, DatapointsToAlarm=2, TreatMissingData="breaching")
    assert evaluate(two_of_three, [at(-0.5, 5.0)], now=NOW, scale=SCALE).state == ALARM


def test_metric_math_alarms_are_not_evaluated_locally():
    with pytest.raises(UnsupportedAlarm):
        evaluate(
            {**alarm(), "MetricName": None, "Metrics": [{"Id": "m1"}]}, [], now=NOW, scale=SCALE
        )


# ---------------------------------------------------------------- the app's own metrics


@pytest.mark.parametrize(
    ("namespace", "here"),
    [("AWS/SageMaker", True), ("Sluice", True), ("MyApp/Custom", True),
     ("AWS/Lambda", False), ("AWS/SQS", False), (None, False)],
)  # fmt: skip
def test_endpoint_and_custom_namespaces_are_evaluated_here_other_aws_ones_by_localstack(
    namespace, here
):
    assert evaluated_here(namespace) is here


def drift_alarm(**overrides) -> dict:
    """Sluice's drift alarm: the largest feature PSI of a window, 5-minute period."""
    return {
        **alarm(
            AlarmName="sluice-dev-churn-drift",
            Namespace="Sluice",
            MetricName="DriftMax",
            Statistic="Maximum",
            Period=300,
            Threshold=0.25,
        ),
        **overrides,
    }


def test_a_drifted_window_alarms_in_its_period_at_the_local_time_scale():
    # Given one DriftMax datapoint of 0.6 (a 300 s period lasts 5 s at scale 60)
    samples = [Sample.of(NOW - 2.0, 0.6)]
    # When the period that holds it completes
    result = evaluate(drift_alarm(), samples, now=NOW, scale=SCALE)
    # Then the alarm is in ALARM, with the datapoint in its reason
    assert result.state == ALARM
    assert "[0.6" in result.reason


def test_the_next_window_without_drift_data_is_not_breaching():
    # a skipped window publishes no DriftMax: a missing datapoint, treated as not breaching
    samples = [Sample.of(NOW - 7.0, 0.6)]  # in the period before the last complete one
    assert evaluate(drift_alarm(), samples, now=NOW, scale=SCALE).state == OK


def test_quality_below_the_specs_threshold_alarms_above_it_does_not():
    quality = drift_alarm(
        MetricName="ModelQuality", Statistic="Minimum", Threshold=0.8,
        ComparisonOperator="LessThanThreshold",
    )  # fmt: skip
    assert evaluate(quality, [Sample.of(NOW - 1.0, 0.55)], now=NOW, scale=SCALE).state == ALARM
    assert evaluate(quality, [Sample.of(NOW - 1.0, 0.91)], now=NOW, scale=SCALE).state == OK


@pytest.mark.parametrize(("period", "every"), [(10, 10 / SCALE), (60, 1.0), (300, 1.0)])
def test_alarms_are_evaluated_every_minute_or_every_shorter_period(period, every):
    # a 5-minute period is evaluated every minute (AWS time), so data late for it is still seen
    assert local_interval(alarm(Period=period), SCALE) == every


def test_a_datapoint_late_for_its_period_is_seen_by_the_next_evaluation():
    # Given a DriftMax datapoint stamped 3 s (local) before the end of its 5 s period
    samples = [Sample.of(NOW - 3.0, 0.6)]
    # When the evaluation one local minute later still has that period as its last complete one
    assert evaluate(drift_alarm(), samples, now=NOW + 1.0, scale=SCALE).state == ALARM
