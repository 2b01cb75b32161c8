"""Metric samples as CloudWatch receives them, kept in memory for the local alarm evaluator.

``MetricStore`` holds the raw values put to a namespace (``PutMetricData`` feeds it, see
``alarm_evaluator.py``) so alarms can be evaluated the way CloudWatch does it, percentiles
included, at the local time scale. ``endpoint_invocation`` is what SageMaker publishes for one
``InvokeEndpoint`` request (namespace ``AWS/SageMaker``, dimensions ``EndpointName`` and
``VariantName``). ``Publisher`` batches metric data off the request path.

Standard library only, so unit tests import it from the project venv.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

LOG = logging.getLogger(__name__)

SAGEMAKER_NAMESPACE = "AWS/SageMaker"
#: how long samples are kept (local seconds): the longest evaluation range worth keeping
RETENTION_SECONDS = 3 * 3600.0
#: samples kept per series at most (oldest dropped first)
MAX_SAMPLES_PER_SERIES = 200_000

Dimensions = tuple[tuple[str, str], ...]


def dimension_key(dimensions: Iterable[Mapping[str, str]] | None) -> Dimensions:
    """CloudWatch matches the exact set of dimensions, in any order."""
    return tuple(sorted((d["Name"], d["Value"]) for d in dimensions or ()))


@dataclass(frozen=True)
class Sample:
    """What one value (or one ``StatisticValues`` set) put at ``time`` contributes to a period."""

    time: float
    count: float
    total: float
    minimum: float
    maximum: float
    #: a value repeated ``count`` times; aggregates (StatisticValues) carry no distribution
    raw: bool = True

    @classmethod
    def of(cls, at: float, value: float, count: float = 1.0) -> Sample:
        return cls(at, count, value * count, value, value, True)

    @classmethod
    def aggregate(cls, at: float, stats: Mapping[str, float]) -> Sample:
        return cls(
            at,
            float(stats["SampleCount"]),
            float(stats["Sum"]),
            float(stats["Minimum"]),
            float(stats["Maximum"]),
            False,
        )


SeriesKey = tuple[str, str, str, str, Dimensions]


class MetricStore:
    """Thread-safe samples per (account, region, namespace, metric, dimensions)."""

    def __init__(
        self,
        *,
        retention_seconds: float = RETENTION_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._series: dict[SeriesKey, collections.deque[Sample]] = {}
        self._lock = threading.Lock()
        self._retention = retention_seconds
        self._clock = clock

    def add(
        self,
        account: str,
        region: str,
        namespace: str,
        metric_data: Sequence[Mapping[str, Any]],
    ) -> None:
        """Record a ``PutMetricData`` request's ``MetricData`` as CloudWatch would store it."""
        horizon = self._clock() - self._retention
        with self._lock:
            for datum in metric_data:
                at = _epoch(datum.get("Timestamp")) or self._clock()
                key = (
                    account,
                    region,
                    namespace,
                    datum["MetricName"],
                    dimension_key(datum.get("Dimensions")),
                )
                series = self._series.setdefault(
                    key, collections.deque(maxlen=MAX_SAMPLES_PER_SERIES)
                )
                for sample in _samples(datum, at):
                    series.append(sample)
                while series and series[0].time < horizon:
                    series.popleft()

    def samples(
        self,
        account: str,
        region: str,
        namespace: str,
        metric: str,
        dimensions: Iterable[Mapping[str, str]] | None,
        since: float,
    ) -> list[Sample]:
        key = (account, region, namespace, metric, dimension_key(dimensions))
        with self._lock:
            return [sample for sample in self._series.get(key, ()) if sample.time >= since]

    def accounts(self) -> set[tuple[str, str]]:
        """(account, region) pairs that have data."""
        with self._lock:
            return {(key[0], key[1]) for key in self._series}

    def clear(self) -> None:
        with self._lock:
            self._series.clear()


def _epoch(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _samples(datum: Mapping[str, Any], at: float) -> list[Sample]:
    if datum.get("Value") is not None:
        return [Sample.of(at, float(datum["Value"]))]
    if datum.get("Values"):
        counts = datum.get("Counts") or [1.0] * len(datum["Values"])
        return [
            Sample.of(at, float(value), float(count))
            for value, count in zip(datum["Values"], counts, strict=False)
        ]
    if datum.get("StatisticValues"):
        return [Sample.aggregate(at, datum["StatisticValues"])]
    return []


# ---------------------------------------------------------------- what SageMaker publishes


@dataclass(frozen=True)
class Invocation:
    """One ``InvokeEndpoint`` request as the endpoint's metrics see it."""

    endpoint: str
    variant: str
    #: the container's HTTP status; None when the container could not be reached (counts as 5xx)
    status: int | None
    #: time the container took, seconds (None when it never answered)
    model_seconds: float | None
    #: time spent outside the container by the runtime API, seconds
    overhead_seconds: float
    #: instances behind the variant (InvocationsPerInstance = 1/instances per request)
    instances: int = 1
    at: float = 0.0


def endpoint_invocation(invocation: Invocation) -> list[dict[str, Any]]:
    """The ``MetricData`` SageMaker publishes for one request (units as AWS documents them).

    ``Invocations`` counts every request that reached the model; the error metrics are 1 or 0 per
    request (their Average is the error rate); latencies are in microseconds.
    """
    dimensions = [
        {"Name": "EndpointName", "Value": invocation.endpoint},
        {"Name": "VariantName", "Value": invocation.variant},
    ]
    at = datetime.fromtimestamp(invocation.at or time.time(), tz=UTC)
    status = invocation.status if invocation.status is not None else 500
    values: list[tuple[str, float, str]] = [
        ("Invocations", 1.0, "None"),
        ("InvocationsPerInstance", 1.0 / max(invocation.instances, 1), "None"),
        ("Invocation4XXErrors", 1.0 if 400 <= status < 500 else 0.0, "None"),
        ("Invocation5XXErrors", 1.0 if status >= 500 else 0.0, "None"),
        ("OverheadLatency", round(invocation.overhead_seconds * 1e6), "Microseconds"),
    ]
    if invocation.model_seconds is not None:
        values.append(("ModelLatency", round(invocation.model_seconds * 1e6), "Microseconds"))
    return [
        {
            "MetricName": name,
            "Dimensions": dimensions,
            "Timestamp": at,
            "Value": value,
            "Unit": unit,
        }
        for name, value, unit in values
    ]


#: PutMetricData takes at most 150 distinct values per metric datum
MAX_VALUES_PER_DATUM = 150


def aggregate(metric_data: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Single-value data folded into ``Values``/``Counts`` per metric, dimensions, unit and
    second (what SDKs do before PutMetricData: far fewer data for CloudWatch to store)."""
    groups: dict[tuple[Any, ...], dict[float, float]] = {}
    stamps: dict[tuple[Any, ...], Any] = {}
    passthrough: list[dict[str, Any]] = []
    for datum in metric_data:
        if datum.get("Value") is None:
            passthrough.append(dict(datum))
            continue
        at = _epoch(datum.get("Timestamp")) or time.time()
        key = (
            datum["MetricName"],
            dimension_key(datum.get("Dimensions")),
            datum.get("Unit"),
            int(at),
        )
        counts = groups.setdefault(key, {})
        counts[float(datum["Value"])] = counts.get(float(datum["Value"]), 0.0) + 1.0
        stamps.setdefault(key, datetime.fromtimestamp(int(at), tz=UTC))
    folded: list[dict[str, Any]] = []
    for key, counts in groups.items():
        name, dimensions, unit, _ = key
        values = sorted(counts)
        for start in range(0, len(values), MAX_VALUES_PER_DATUM):
            chunk = values[start : start + MAX_VALUES_PER_DATUM]
            datum: dict[str, Any] = {
                "MetricName": name,
                "Dimensions": [{"Name": n, "Value": v} for n, v in dimensions],
                "Timestamp": stamps[key],
                "Values": chunk,
                "Counts": [counts[value] for value in chunk],
            }
            if unit:
                datum["Unit"] = unit
            folded.append(datum)
    return folded + passthrough


class Publisher:
    """Queues metric data and puts it, ``aggregate``d, from a background thread (every
    ``interval``).

    ``put(namespace, metric_data)`` does the call (a CloudWatch client's ``put_metric_data``);
    a failed put is logged and dropped, never raised into the request that produced the data.
    """

    #: PutMetricData takes at most 1000 metric data per request
    BATCH = 500

    def __init__(
        self, put: Callable[[str, list[dict[str, Any]]], None], *, interval: float = 0.2
    ) -> None:
        self._put = put
        self._interval = interval
        self._queue: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    def publish(self, namespace: str, metric_data: Iterable[dict[str, Any]]) -> None:
        with self._lock:
            self._queue.extend((namespace, datum) for datum in metric_data)
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(
                    target=self._run, name="sluice-metrics-publisher", daemon=True
                )
                self._thread.start()

    def flush(self) -> None:
        with self._lock:
            pending, self._queue = self._queue, []
        by_namespace: dict[str, list[dict[str, Any]]] = {}
        for namespace, datum in pending:
            by_namespace.setdefault(namespace, []).append(datum)
        for namespace, raw in by_namespace.items():
            data = aggregate(raw)
            for start in range(0, len(data), self.BATCH):
                try:
                    self._put(namespace, data[start : start + self.BATCH])
                except Exception:
                    LOG.warning(
                        "could not put %d metric data to %s", len(data), namespace, exc_info=True
                    )

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self._interval)
            self.flush()
