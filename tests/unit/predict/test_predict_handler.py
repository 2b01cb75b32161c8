"""The Lambda entry point: settings from the environment, Powertools around the resolver."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lambdas.predict import handler as module
from lambdas.predict.settings import Settings, SettingsError
from tests.unit.predict.fakes import Context, World, api_event, predictions_body, record


def test_settings_are_parsed_once_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "SLUICE_PREFIX": "sluice-dev",
            "CAPTURE_STREAMS": '{"churn": "sluice-dev-capture-churn"}',
            "CAPTURE_SHARE": "0.25",
            "MAX_INSTANCES": "100",
            "MAX_BODY_BYTES": "1048576",
            "ENDPOINT_TIMEOUT_SECONDS": "20",
            "RETRY_AFTER_SECONDS": "30",
            "CORS_ORIGINS": "https://a.example, https://b.example",
        }
    )
    assert settings.capture_streams == {"churn": "sluice-dev-capture-churn"}
    assert settings.capture_share == 0.25
    assert (settings.max_instances, settings.retry_after_seconds) == (100, 30)
    assert settings.cors_origins == ("https://a.example", "https://b.example")


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"SLUICE_PREFIX": "p", "MAX_INSTANCES": "many"},
        {"SLUICE_PREFIX": "p", "CAPTURE_STREAMS": "["},
    ],
)
def test_bad_settings_fail_with_a_clear_error(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match="invalid predict function settings"):
        Settings.from_env(env)


def test_the_decorated_handler_logs_with_the_request_id_and_emits_metrics(
    world: World, monkeypatch: pytest.MonkeyPatch, logs: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    app = module.build_app(world.predictor())
    monkeypatch.setattr(module, "_app", lambda: app)
    world.answers(predictions_body(1))
    event = api_event(
        "POST", "/v1/churn/predictions", json.dumps({"instances": [record(0)]}), request_id="abc"
    )
    with world.stub:
        answer = module.handler(event, Context())
    assert answer["statusCode"] == 200
    served = next(e for e in logs() if e["message"] == "prediction served")
    assert served["correlation_id"] == "abc"
    assert served["instances"] == 1
    assert served["endpoint_ms"] >= 0
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "_aws" in line]
    names = {m["Name"] for e in emf for d in e["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert {"Predictions", "EndpointLatency", "ColdStart"} <= names


def test_cors_headers_for_an_allowed_origin(world: World) -> None:
    world.answers(predictions_body(1))
    event = api_event(
        "POST",
        "/v1/churn/predictions",
        json.dumps({"instances": [record(0)]}),
        headers={"Origin": "https://app.example"},
    )
    _, headers, _ = world.call(event, cors_origins=("https://app.example",))
    assert headers["Access-Control-Allow-Origin"] == "https://app.example"
    _, headers, _ = world.call(
        api_event("GET", "/v1/nope", headers={"Origin": "https://evil.example"}),
        cors_origins=("https://app.example",),
    )
    assert "Access-Control-Allow-Origin" not in headers
