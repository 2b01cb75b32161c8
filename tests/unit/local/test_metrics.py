"""What an endpoint publishes per request, and how samples are kept for the alarms."""

from __future__ import annotations

from datetime import UTC, datetime

from sluice_local.metrics import Invocation, MetricStore, Publisher, aggregate, endpoint_invocation


def by_name(data):
    return {d["MetricName"]: d for d in data}


def test_a_successful_request_counts_one_invocation_no_errors_and_latencies_in_microseconds():
    data = by_name(
        endpoint_invocation(Invocation("ep", "AllTraffic", 200, 0.012, 0.003, instances=4))
    )
    assert data["Invocations"]["Value"] == 1.0
    assert data["InvocationsPerInstance"]["Value"] == 0.25
    assert data["Invocation4XXErrors"]["Value"] == 0.0
    assert data["Invocation5XXErrors"]["Value"] == 0.0
    assert (
        data["ModelLatency"]["Value"] == 12_000 and data["ModelLatency"]["Unit"] == "Microseconds"
    )
    assert data["OverheadLatency"]["Value"] == 3_000
    assert data["Invocations"]["Dimensions"] == [
        {"Name": "EndpointName", "Value": "ep"},
        {"Name": "VariantName", "Value": "AllTraffic"},
    ]


def test_a_client_error_counts_as_4xx_never_as_5xx():
    data = by_name(endpoint_invocation(Invocation("ep", "AllTraffic", 400, 0.001, 0.001)))
    assert data["Invocation4XXErrors"]["Value"] == 1.0
    assert data["Invocation5XXErrors"]["Value"] == 0.0


def test_a_model_error_or_an_unreachable_container_counts_as_5xx():
    failed = by_name(endpoint_invocation(Invocation("ep", "AllTraffic", 500, 0.001, 0.001)))
    unreachable = by_name(endpoint_invocation(Invocation("ep", "AllTraffic", None, None, 0.001)))
    assert failed["Invocation5XXErrors"]["Value"] == 1.0
    assert unreachable["Invocation5XXErrors"]["Value"] == 1.0
    assert "ModelLatency" not in unreachable


def test_store_matches_the_exact_dimension_set_in_any_order():
    store = MetricStore(clock=lambda: 100.0)
    dims = [{"Name": "VariantName", "Value": "AllTraffic"}, {"Name": "EndpointName", "Value": "ep"}]
    store.add(
        "1", "r", "AWS/SageMaker", [{"MetricName": "Invocations", "Dimensions": dims, "Value": 1.0}]
    )
    wider = [*dims, {"Name": "EndpointConfigName", "Value": "c2"}]
    store.add(
        "1",
        "r",
        "AWS/SageMaker",
        [{"MetricName": "Invocations", "Dimensions": wider, "Value": 5.0}],
    )
    found = store.samples("1", "r", "AWS/SageMaker", "Invocations", list(reversed(dims)), since=0)
    assert [s.total for s in found] == [1.0]


def test_store_keeps_values_with_counts_and_drops_what_is_past_retention():
    now = [1000.0]
    store = MetricStore(retention_seconds=60, clock=lambda: now[0])
    store.add(
        "1",
        "r",
        "ns",
        [{"MetricName": "m", "Values": [1.0, 2.0], "Counts": [3, 1], "Timestamp": 990.0}],
    )
    assert [(s.maximum, s.count) for s in store.samples("1", "r", "ns", "m", None, 0)] == [
        (1.0, 3.0),
        (2.0, 1.0),
    ]
    now[0] = 2000.0
    store.add("1", "r", "ns", [{"MetricName": "m", "Value": 9.0}])
    assert [s.total for s in store.samples("1", "r", "ns", "m", None, 0)] == [9.0]


def test_aggregate_folds_single_values_per_metric_and_second():
    t = datetime(2026, 11, 27, 12, 0, 0, 250_000, tzinfo=UTC)
    data = [
        {
            "MetricName": "ModelLatency",
            "Dimensions": [],
            "Unit": "Microseconds",
            "Value": v,
            "Timestamp": t,
        }
        for v in (5.0, 5.0, 7.0)
    ]
    (folded,) = aggregate(data)
    assert folded["Values"] == [5.0, 7.0] and folded["Counts"] == [2.0, 1.0]
    assert folded["Unit"] == "Microseconds"
    assert folded["Timestamp"] == datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)


def test_publisher_puts_in_batches_and_survives_a_failing_put():
    calls = []

    def put(namespace, data):
        calls.append((namespace, len(data)))
        raise RuntimeError("CloudWatch is down")

    publisher = Publisher(put, interval=60)
    publisher.publish("AWS/SageMaker", [{"MetricName": f"m{i}", "Value": 1.0} for i in range(3)])
    publisher.flush()  # logs, does not raise
    assert calls == [("AWS/SageMaker", 3)]
    publisher.close()
