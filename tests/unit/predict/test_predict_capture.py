"""Capture: a share of requests, one JSON line per instance, without PII, through Firehose."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from lambdas.predict import capture
from tests.unit.predict.fakes import PII_VALUES, World, api_event, predictions_body, record


def post(instances: list[dict[str, Any]], request_id: str = "req-1") -> dict[str, Any]:
    return api_event(
        "POST", "/v1/churn/predictions", json.dumps({"instances": instances}), request_id=request_id
    )


def test_captured_lines_hold_declared_columns_without_pii_and_the_predictions(world: World) -> None:
    # Given
    world.answers(predictions_body(2))
    # When two records (with PII and an undeclared field) are predicted
    status, _, _ = world.call(post([record(0, note="undeclared"), record(1)]))
    # Then Firehose delivered one line per instance in the Capture contract's shape
    assert status == 200
    lines = world.captured()
    assert [line["instance"] for line in lines] == [0, 1]
    first = lines[0]
    assert set(first) == {
        "request_id", "instance", "time", "dataset", "model_version", "record", "prediction",
    }  # fmt: skip
    assert first["request_id"] == "req-1"
    assert first["dataset"] == "churn"
    assert first["model_version"] == "7"
    assert first["prediction"] == {"id": "C-000000", "label": 0, "probability": 0.1}
    assert first["record"] == {
        "customer_id": "C-000000",
        "signup_ts": "2024-03-05T10:15:00Z",
        "last_active_ts": "2025-01-20T08:00:00Z",
        "plan": "standard",
        "region": "eu",
        "monthly_charges": 49.9,
        "tenure_months": 10,
        "support_calls": 2,
    }
    datetime.fromisoformat(first["time"].replace("Z", "+00:00"))
    # and no PII value anywhere in what was written
    text = world.captured_text()
    assert not any(value in text for value in PII_VALUES)
    assert "email" not in text and "phone" not in text


def test_pii_never_reaches_the_logs(world: World, logs: Any) -> None:
    world.answers(predictions_body(1))
    world.call(post([record(0)]))
    text = json.dumps(logs())
    assert "prediction served" in text
    assert not any(value in text for value in PII_VALUES)


def test_nothing_is_captured_with_share_zero(world: World) -> None:
    world.answers(predictions_body(1))
    status, _, _ = world.call(post([record(0)]), capture_share=0.0)
    assert status == 200
    assert world.captured() == []


def test_a_failed_request_is_not_captured(world: World) -> None:
    world.fails("ValidationError", "Endpoint sluice-test-churn of account 1 not found.")
    status, _, _ = world.call(post([record(0)]))
    assert status == 503
    assert world.captured() == []


def test_a_capture_failure_never_fails_the_prediction(world: World, logs: Any) -> None:
    # Given a capture stream that does not exist
    world.answers(predictions_body(1))
    status, _, body = world.call(post([record(0)]), capture_streams={"churn": "missing"})
    # Then the caller still gets the prediction; the log says capture failed
    assert status == 200
    assert body["predictions"][0]["label"] == 0
    assert any(entry["message"] == "capture failed" for entry in logs())


def test_sampling_is_a_stable_share_of_request_ids() -> None:
    ids = [f"req-{i}" for i in range(4000)]
    chosen = [i for i in ids if capture.sampled(i, 0.25)]
    assert 0.22 < len(chosen) / len(ids) < 0.28
    assert chosen == [i for i in ids if capture.sampled(i, 0.25)]  # same ids every time
    assert all(capture.sampled(i, 1.0) for i in ids[:10])
    assert not any(capture.sampled(i, 0.0) for i in ids[:10])


class _Firehose:
    """Refuses the first record of the first call, then accepts everything."""

    def __init__(self) -> None:
        self.calls: list[list[bytes]] = []

    def put_record_batch(self, DeliveryStreamName: str, Records: list[dict[str, bytes]]) -> dict:
        data = [r["Data"] for r in Records]
        self.calls.append(data)
        if len(self.calls) == 1:
            responses = [{"ErrorCode": "ServiceUnavailableException"}] + [{"RecordId": "x"}] * (
                len(data) - 1
            )
            return {"FailedPutCount": 1, "RequestResponses": responses}
        return {"FailedPutCount": 0, "RequestResponses": [{"RecordId": "x"}] * len(data)}


def test_send_batches_500_records_and_retries_refused_ones_once() -> None:
    lines = [b"{}\n"] * 1200
    firehose = _Firehose()
    failed = capture.send(firehose, "s", lines)
    assert failed == 0
    assert [len(call) for call in firehose.calls] == [500, 1, 500, 200]


@pytest.mark.parametrize("share", [1.5, -0.1])
def test_settings_reject_a_share_outside_0_to_1(share: float) -> None:
    from lambdas.predict.settings import Settings, SettingsError

    with pytest.raises(SettingsError, match="capture_share"):
        Settings.from_env({"SLUICE_PREFIX": "sluice-dev", "CAPTURE_SHARE": str(share)})


def test_records_time_is_utc_iso() -> None:
    lines = capture.records(
        request_id="r",
        dataset="churn",
        model_version="1",
        instances=[{"plan": "basic"}],
        predictions=[{"label": 1}],
        declared=frozenset({"plan"}),
        pii=frozenset(),
        at=datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
    )
    assert json.loads(lines[0])["time"] == "2026-01-02T03:04:05.678Z"
