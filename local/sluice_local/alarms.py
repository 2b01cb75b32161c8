"""CloudWatch metric alarm evaluation, as AWS documents it, on a scaled clock.

``evaluate(alarm, samples, now=..., scale=...)`` decides the state of one metric alarm (the
``MetricAlarm`` shape ``DescribeAlarms`` returns) from the raw samples of its metric:

- the samples are cut into periods of ``Period / scale`` local seconds, aligned to the clock;
  the newest ``EvaluationPeriods`` complete periods are the evaluation range;
- each period's datapoint is the alarm's ``Statistic`` (SampleCount, Sum, Average, Minimum,
  Maximum) or ``ExtendedStatistic`` (``pNN`` / ``pNN.N`` percentiles, nearest rank on raw values);
- ALARM when at least ``DatapointsToAlarm`` (default: ``EvaluationPeriods``) datapoints breach the
  threshold; ``TreatMissingData`` decides empty periods (``missing``: not counted, all missing is
  INSUFFICIENT_DATA; ``ignore``: all missing keeps the state; ``breaching``/``notBreaching``:
  empty periods count as such); ``EvaluateLowSampleCountPercentile=ignore`` keeps the state while a
  percentile rests on fewer than 10/(1-p) samples.

Simplifications, said in local/README.md: no anomaly detection, metric math or composite alarms;
the evaluation range is exactly ``EvaluationPeriods`` (CloudWatch looks a little further back when
data is missing), and no premature-alarm rule.

Standard library only, so unit tests import it from the project venv.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sluice_local.metrics import Sample

OK, ALARM, INSUFFICIENT_DATA = "OK", "ALARM", "INSUFFICIENT_DATA"

COMPARISONS: dict[str, tuple[Callable[[float, float], bool], str]] = {
    "GreaterThanOrEqualToThreshold": (lambda v, t: v >= t, "greater than or equal to"),
    "GreaterThanThreshold": (lambda v, t: v > t, "greater than"),
    "LessThanThreshold": (lambda v, t: v < t, "less than"),
    "LessThanOrEqualToThreshold": (lambda v, t: v <= t, "less than or equal to"),
}
#: endpoint metrics, published by this extension on every InvokeEndpoint
SAGEMAKER_NAMESPACE = "AWS/SageMaker"
#: CloudWatch evaluates a metric alarm every minute (AWS time), or every period when shorter
#: (high-resolution alarms): data that arrives late for a period is seen at the next evaluation
EVALUATION_INTERVAL_SECONDS = 60.0
#: AWS's own namespaces start with this; every other namespace is an application's
AWS_NAMESPACE_PREFIX = "AWS/"
STATISTICS = ("SampleCount", "Sum", "Average", "Minimum", "Maximum")
PERCENTILE = re.compile(r"^p(\d{1,2}(?:\.\d+)?)$")


def evaluated_here(namespace: str | None) -> bool:
    """Whether the extension evaluates alarms on ``namespace`` (at the local time scale):
    endpoint metrics (``AWS/SageMaker``, which the extension publishes) and custom namespaces
    (metrics the app publishes itself with PutMetricData, such as Sluice's drift and model
    quality). Alarms on the other ``AWS/*`` namespaces stay with LocalStack's scheduler."""
    if not namespace:
        return False
    return namespace == SAGEMAKER_NAMESPACE or not namespace.startswith(AWS_NAMESPACE_PREFIX)


class UnsupportedAlarm(ValueError):
    """An alarm this evaluator does not handle (metric math, anomaly bands, other statistics)."""


@dataclass(frozen=True)
class Datapoint:
    start: float
    value: float | None
    sample_count: float = 0.0
    #: a percentile resting on too few samples to be significant
    low_sample_count: bool = False


@dataclass(frozen=True)
class Evaluation:
    """The state an evaluation arrives at; ``state`` None keeps the alarm's current state."""

    state: str | None
    reason: str
    reason_data: dict[str, Any] = field(default_factory=dict)


def local_period(alarm: Mapping[str, Any], scale: float) -> float:
    return float(alarm["Period"]) / scale


def local_interval(alarm: Mapping[str, Any], scale: float) -> float:
    """How often (local seconds) an alarm is evaluated: every minute of AWS time, or every
    period when the period is shorter."""
    return min(float(alarm["Period"]), EVALUATION_INTERVAL_SECONDS) / scale


def check_supported(alarm: Mapping[str, Any]) -> None:
    if alarm.get("Metrics") or not alarm.get("MetricName"):
        raise UnsupportedAlarm("metric math alarms are not evaluated locally")
    if alarm.get("ComparisonOperator") not in COMPARISONS:
        raise UnsupportedAlarm(
            f"ComparisonOperator {alarm.get('ComparisonOperator')} (anomaly bands)"
        )
    statistic = alarm.get("Statistic") or alarm.get("ExtendedStatistic")
    if statistic not in STATISTICS and not PERCENTILE.match(str(statistic)):
        raise UnsupportedAlarm(f"statistic {statistic}")


def datapoints(
    alarm: Mapping[str, Any], samples: Sequence[Sample], *, now: float, scale: float
) -> list[Datapoint]:
    """The evaluation range, oldest first: one datapoint per complete local period."""
    period = local_period(alarm, scale)
    periods = int(alarm["EvaluationPeriods"])
    end = math.floor(now / period) * period
    starts = [end - (periods - i) * period for i in range(periods)]
    buckets: list[list[Sample]] = [[] for _ in starts]
    for sample in samples:
        if starts[0] <= sample.time < end:
            buckets[min(int((sample.time - starts[0]) // period), periods - 1)].append(sample)
    return [_datapoint(alarm, start, bucket) for start, bucket in zip(starts, buckets, strict=True)]


def _datapoint(alarm: Mapping[str, Any], start: float, bucket: list[Sample]) -> Datapoint:
    count = sum(sample.count for sample in bucket)
    if count <= 0:
        return Datapoint(start, None)
    statistic = alarm.get("Statistic")
    if statistic == "SampleCount":
        return Datapoint(start, count, count)
    if statistic == "Sum":
        return Datapoint(start, sum(s.total for s in bucket), count)
    if statistic == "Average":
        return Datapoint(start, sum(s.total for s in bucket) / count, count)
    if statistic == "Minimum":
        return Datapoint(start, min(s.minimum for s in bucket), count)
    if statistic == "Maximum":
        return Datapoint(start, max(s.maximum for s in bucket), count)
    match = PERCENTILE.match(str(alarm.get("ExtendedStatistic")))
    if match is None:
        raise UnsupportedAlarm(f"statistic {statistic or alarm.get('ExtendedStatistic')}")
    percent = float(match.group(1))
    raw = [s for s in bucket if s.raw]
    raw_count = sum(s.count for s in raw)
    if raw_count <= 0:
        return Datapoint(start, None)
    value = percentile(raw, percent)
    low = raw_count < 10 / (1 - percent / 100) if percent < 100 else False
    return Datapoint(start, value, raw_count, low)


def percentile(samples: Sequence[Sample], percent: float) -> float:
    """Nearest rank: the smallest value with at least ``percent``% of the samples at or below it."""
    ordered = sorted(samples, key=lambda s: s.maximum)
    total = sum(s.count for s in ordered)
    rank = max(math.ceil(percent / 100 * total), 1)
    seen = 0.0
    for sample in ordered:
        seen += sample.count
        if seen >= rank:
            return sample.maximum
    return ordered[-1].maximum


def evaluate(
    alarm: Mapping[str, Any], samples: Sequence[Sample], *, now: float, scale: float
) -> Evaluation:
    check_supported(alarm)
    points = datapoints(alarm, samples, now=now, scale=scale)
    threshold = float(alarm["Threshold"])
    compare, phrase = COMPARISONS[alarm["ComparisonOperator"]]
    periods = len(points)
    to_alarm = int(alarm.get("DatapointsToAlarm") or periods)
    missing = alarm.get("TreatMissingData") or "missing"
    data = _reason_data(alarm, points, now)
    present = [p for p in points if p.value is not None]

    if not present:
        plural, were = ("s", "were") if periods > 1 else ("", "was")
        told = (
            f"no datapoints were received for {periods} period{plural} and {periods} missing "
            f"datapoint{plural} {were} treated as"
        )
        if missing == "breaching":
            return Evaluation(ALARM, f"Threshold Crossed: {told} [Breaching].", data)
        if missing == "notBreaching":
            return Evaluation(OK, f"Threshold Crossed: {told} [NonBreaching].", data)
        if missing == "ignore":
            return Evaluation(None, "all datapoints missing and TreatMissingData=ignore", data)
        return Evaluation(
            INSUFFICIENT_DATA,
            f"Insufficient Data: {periods} datapoint{plural} {were} unknown.",
            data,
        )
    if alarm.get("EvaluateLowSampleCountPercentile") == "ignore" and any(
        p.low_sample_count for p in present
    ):
        return Evaluation(
            None,
            "too few samples for the percentile (EvaluateLowSampleCountPercentile=ignore)",
            data,
        )

    breaching = [p for p in present if compare(float(p.value or 0.0), threshold)]
    if missing == "breaching":
        breaching_count = len(breaching) + (periods - len(present))
    else:
        breaching_count = len(breaching)
    listed = ", ".join(f"{_number(p.value)} ({_stamp(p.start)})" for p in reversed(present))
    limit = f"the threshold ({_number(threshold)})"
    if breaching_count >= to_alarm:
        reason = (
            f"Threshold Crossed: {breaching_count} out of the last {periods} datapoints [{listed}] "
            f"{_was(breaching_count)} {phrase} {limit} (minimum {to_alarm} "
            f"datapoint{'s' if to_alarm > 1 else ''} for OK -> ALARM transition)."
        )
        return Evaluation(ALARM, reason, data)
    reason = (
        f"Threshold Crossed: {len(present)} datapoint{'s' if len(present) > 1 else ''} [{listed}] "
        f"{_was(len(present))} not {phrase} {limit}."
    )
    return Evaluation(OK, reason, data)


def _was(count: int) -> str:
    return "was" if count == 1 else "were"


def _reason_data(alarm: Mapping[str, Any], points: list[Datapoint], now: float) -> dict[str, Any]:
    data: dict[str, Any] = {
        "version": "1.0",
        "queryDate": _iso(now),
        "startDate": _iso(points[0].start) if points else _iso(now),
        "period": int(alarm["Period"]),
        "recentDatapoints": [p.value for p in points if p.value is not None],
        "threshold": float(alarm["Threshold"]),
        "evaluatedDatapoints": [
            {
                "timestamp": _iso(p.start),
                **(
                    {"sampleCount": p.sample_count, "value": p.value} if p.value is not None else {}
                ),
            }
            for p in reversed(points)
        ],
    }
    if alarm.get("Statistic"):
        data["statistic"] = alarm["Statistic"]
    if alarm.get("ExtendedStatistic"):
        data["extendedStatistic"] = alarm["ExtendedStatistic"]
    if alarm.get("Unit"):
        data["unit"] = alarm["Unit"]
    return data


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


def _stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%d/%m/%y %H:%M:%S")


def _number(value: float | None) -> str:
    return repr(float(value or 0.0))
