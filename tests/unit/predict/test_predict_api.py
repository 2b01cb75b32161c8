"""The prediction API's answers: every status with its exact body, as the function builds it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError

from tests.unit.predict.fakes import (
    ENDPOINT,
    PII_VALUES,
    World,
    api_event,
    deploy_model,
    predictions_body,
    record,
)

URL = "/v1/churn/predictions"


def post(body: object, **kwargs: object) -> dict:
    text = body if isinstance(body, str | bytes) else json.dumps(body)
    return api_event("POST", URL, text, **kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------- 200
def test_one_prediction_per_instance_in_order_with_the_id_echoed(world: World) -> None:
    # Given a model that answers two predictions (it never sees the id)
    world.answers(predictions_body(2))
    # When two records are posted, one with its id and one without
    status, headers, body = world.call(
        post({"instances": [record(0), record(1, customer_id=None)]})
    )
    # Then
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert body == {
        "predictions": [
            {"id": "C-000000", "label": 0, "probability": 0.1},
            {"id": None, "label": 1, "probability": 0.11},
        ],
        "model_version": "7",
        "request_id": "req-1",
    }


def test_a_record_without_its_id_column_gets_no_id(world: World) -> None:
    world.answers(predictions_body(1))
    row = record(0)
    del row["customer_id"]
    status, _, body = world.call(post({"instances": [row]}))
    assert status == 200
    assert body["predictions"] == [{"label": 0, "probability": 0.1}]


def test_pii_and_the_id_never_reach_the_endpoint(world: World) -> None:
    # Given the endpoint's request is recorded
    sent: list[bytes] = []
    world.runtime.meta.events.register(
        "provide-client-params.sagemaker-runtime.InvokeEndpoint",
        lambda params, **_: sent.append(params["Body"].encode()),
    )
    world.answers(predictions_body(1))
    # When a record with PII and id is posted
    status, _, _ = world.call(post({"instances": [record(0, extra="kept")]}))
    # Then the model got the record minus PII and id (undeclared fields go on: the model
    # names them in its 400)
    assert status == 200
    forwarded = json.loads(sent[0])
    assert forwarded == {
        "instances": [
            {
                "signup_ts": "2024-03-05T10:15:00Z",
                "last_active_ts": "2025-01-20T08:00:00Z",
                "plan": "standard",
                "region": "eu",
                "monthly_charges": 49.9,
                "tenure_months": 10,
                "support_calls": 2,
                "extra": "kept",
            }
        ]
    }
    assert not any(value.encode() in sent[0] for value in PII_VALUES)


def test_model_version_from_sagemaker_when_the_model_does_not_say(world: World) -> None:
    deploy_model(world, version="12")
    world.answers(predictions_body(1, version=None))
    status, _, body = world.call(post({"instances": [record(0)]}))
    assert status == 200
    assert body["model_version"] == "12"


# ------------------------------------------------------------------------------------- 400
@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            '{"instances": [',
            "the body is not valid JSON: Expecting value: line 1 column 16 (char 15)",
        ),
        (
            '{"instances": [{"plan": basic}]}',
            "the body is not valid JSON: Expecting value: line 1 column 25 (char 24)",
        ),
        ("", "the body is not valid JSON: the body is empty"),
    ],
)
def test_malformed_json_is_400_invalid_json(world: World, raw: str, message: str) -> None:
    status, _, body = world.call(post(raw))
    assert status == 400
    assert body == {"error": {"code": "invalid_json", "message": message, "details": []}}


ENVELOPE = 'the body must be {"instances": [record, ...]} with at least one record (an object)'


@pytest.mark.parametrize(
    ("document", "details"),
    [
        ({}, [{"field": "instances", "message": "Field required"}]),
        (
            {"instances": []},
            [
                {
                    "field": "instances",
                    "message": "List should have at least 1 item after validation, not 0",
                }
            ],
        ),
        ({"instances": "x"}, [{"field": "instances", "message": "Input should be a valid list"}]),
        (
            {"instances": [{"plan": "basic"}, 3]},
            [{"instance": 1, "message": "Input should be a valid dictionary"}],
        ),
        (
            {"instances": [{}], "limit": 3},
            [{"field": "limit", "message": "Extra inputs are not permitted"}],
        ),
        (
            [1, 2],
            [{"message": "Input should be a valid dictionary or object to extract fields from"}],
        ),
    ],
)  # fmt: skip
def test_a_wrong_envelope_is_400_invalid_request(
    world: World, document: object, details: list
) -> None:
    status, _, body = world.call(post(document))
    assert status == 400
    assert body == {"error": {"code": "invalid_request", "message": ENVELOPE, "details": details}}


MODEL_400 = {
    "error": {
        "code": "invalid_input",
        "message": "2 instances do not match the dataset",
        "details": [
            {"instance": 0, "field": "plan", "message": "unknown category 'gold'"},
            {"instance": 1, "field": "tenure_months", "message": "expected an integer, got 'x'"},
        ],
    }
}


def test_the_models_validation_errors_become_400_with_instance_and_field(world: World) -> None:
    # Given the container answers 400 with the contract's body; SageMaker wraps it in a
    # ModelError (424) that carries the container's status and body
    world.fails(
        "ModelError",
        f'Received client error (400) from primary with message "{json.dumps(MODEL_400)}". '
        "See https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1"
        f"#logEventViewer:group=/aws/sagemaker/Endpoints/{ENDPOINT} in account 123456789012 "
        "for more information.",
        status=424,
        OriginalStatusCode=400,
        OriginalMessage=json.dumps(MODEL_400),
        LogStreamArn="arn:aws:logs:eu-west-1:123456789012:log-group:/aws/sagemaker/Endpoints/x",
    )
    status, _, body = world.call(post({"instances": [record(0, plan="gold"), record(1)]}))
    # Then the caller gets the model's message and details, and nothing of AWS's text
    assert status == 400
    assert body == MODEL_400


def test_model_error_without_modeled_fields_is_read_from_its_message(world: World) -> None:
    world.fails(
        "ModelError",
        f'Received client error (400) from primary with message "{json.dumps(MODEL_400)}". '
        "See https://console.aws.amazon.com/cloudwatch in account 1 for more information.",
        status=424,
    )
    status, _, body = world.call(post({"instances": [record(0), record(1)]}))
    assert status == 400
    assert body == MODEL_400


def test_model_details_are_sanitized_to_instance_field_and_message(world: World) -> None:
    noisy = {
        "error": {
            "code": "invalid_input",
            "message": "bad",
            "details": [{"instance": 0, "field": "plan", "message": "x", "trace": "File a.py"}, 7],
        },
        "stack": "Traceback ...",
    }
    world.fails(
        "ModelError", "m", status=424, OriginalStatusCode=400, OriginalMessage=json.dumps(noisy)
    )
    status, _, body = world.call(post({"instances": [record(0)]}))
    assert status == 400
    assert body == {
        "error": {
            "code": "invalid_input",
            "message": "bad",
            "details": [{"instance": 0, "field": "plan", "message": "x"}],
        }
    }


def test_model_415_stays_415(world: World) -> None:
    doc = {"error": {"code": "unsupported_media_type", "message": "use application/json"}}
    world.fails(
        "ModelError", "m", status=424, OriginalStatusCode=415, OriginalMessage=json.dumps(doc)
    )
    status, _, body = world.call(post({"instances": [record(0)]}))
    assert (status, body) == (
        415,
        {
            "error": {
                "code": "unsupported_media_type",
                "message": "use application/json",
                "details": [],
            }
        },
    )


# ------------------------------------------------------------------------------------- 404
@pytest.mark.parametrize("dataset", ["unknown", "..%2Fetc", "Churn"])
def test_an_undeclared_dataset_is_404(world: World, dataset: str) -> None:
    status, _, body = world.call(
        api_event("POST", f"/v1/{dataset}/predictions", '{"instances": [{}]}')
    )
    assert status == 404
    assert body == {
        "error": {
            "code": "not_found",
            "message": f"dataset {dataset!r} is not declared",
            "details": [],
        }
    }


def test_get_of_an_undeclared_dataset_is_404(world: World) -> None:
    status, _, body = world.call(api_event("GET", "/v1/nope"))
    assert (status, body["error"]["code"]) == (404, "not_found")


def test_an_unknown_route_is_404(world: World) -> None:
    status, _, body = world.call(api_event("GET", "/v2/churn"))
    assert status == 404
    assert body == {"error": {"code": "not_found", "message": "no such route", "details": []}}


# ------------------------------------------------------------------------------------- 413
def test_a_body_above_the_limit_is_413(world: World) -> None:
    raw = json.dumps({"instances": [record(0, note="x" * 200)]})
    status, _, body = world.call(post(raw), max_body_bytes=100)
    assert status == 413
    assert body == {
        "error": {
            "code": "payload_too_large",
            "message": f"the body has {len(raw)} bytes, above the limit of 100 bytes: split the "
            "instances over several requests, or use batch scoring for files",
            "details": [],
        }
    }


def test_a_malformed_body_above_the_limit_is_still_413(world: World) -> None:
    status, _, body = world.call(post("{" * 300), max_body_bytes=100)
    assert (status, body["error"]["code"]) == (413, "payload_too_large")


def test_too_many_instances_is_413(world: World) -> None:
    status, _, body = world.call(post({"instances": [record(i) for i in range(6)]}))
    assert status == 413
    assert body == {
        "error": {
            "code": "payload_too_large",
            "message": "the request has 6 instances, above the limit of 5: split them over "
            "several requests, or use batch scoring for files",
            "details": [],
        }
    }


# ------------------------------------------------------------------------------------- 415
@pytest.mark.parametrize("content_type", ["text/csv", None, "application/x-www-form-urlencoded"])
def test_a_body_that_is_not_json_is_415(world: World, content_type: str | None) -> None:
    status, _, body = world.call(post("plan,region\nbasic,eu\n", content_type=content_type))
    assert status == 415
    got = content_type or "none"
    assert body == {
        "error": {
            "code": "unsupported_media_type",
            "message": f"Content-Type {got!r} is not supported; send application/json",
            "details": [],
        }
    }


def test_json_with_a_charset_is_accepted(world: World) -> None:
    world.answers(predictions_body(1))
    status, _, _ = world.call(
        post({"instances": [record(0)]}, content_type="application/json; charset=utf-8")
    )
    assert status == 200


# ------------------------------------------------------------------------------------- 503
def test_no_endpoint_yet_is_503_with_retry_after(world: World) -> None:
    world.fails("ValidationError", f"Endpoint {ENDPOINT} of account 123456789012 not found.")
    status, headers, body = world.call(post({"instances": [record(0)]}), retry_after_seconds=45)
    assert status == 503
    assert headers["Retry-After"] == "45"
    assert body == {
        "error": {
            "code": "model_not_deployed",
            "message": "no model serves dataset 'churn' yet; retry later",
            "details": [],
        }
    }


# ------------------------------------------------------------------------------------- 5xx
def test_endpoint_timeout_is_504(world: World) -> None:
    world.stub.add_client_error("invoke_endpoint")  # placeholder replaced below
    world.stub._queue.clear()  # type: ignore[attr-defined]

    def timeout(**_: object) -> None:
        raise ReadTimeoutError(endpoint_url="https://runtime.sagemaker.eu-west-1.amazonaws.com")

    world.runtime.invoke_endpoint = timeout  # type: ignore[method-assign]
    status, headers, body = world.call(post({"instances": [record(0)]}))
    assert status == 504
    assert "Retry-After" not in headers
    assert body == {
        "error": {
            "code": "endpoint_timeout",
            "message": "the model of dataset 'churn' did not answer in time",
            "details": [],
        }
    }


def test_container_timeout_model_error_is_504(world: World) -> None:
    world.fails(
        "ModelError",
        "Your invocation timed out while waiting for a response from container primary.",
        status=424,
    )
    status, _, body = world.call(post({"instances": [record(0)]}))
    assert (status, body["error"]["code"]) == (504, "endpoint_timeout")


def test_model_server_error_is_502_without_its_text(world: World) -> None:
    world.fails(
        "ModelError",
        'Received server error (500) from primary with message "KeyError: plan\nTraceback". See x',
        status=424,
        OriginalStatusCode=500,
        OriginalMessage="KeyError: plan\nTraceback (most recent call last): File inference.py",
    )
    status, _, body = world.call(post({"instances": [record(0)]}))
    assert status == 502
    assert body == {
        "error": {
            "code": "model_error",
            "message": "the model of dataset 'churn' failed to answer",
            "details": [],
        }
    }


def test_endpoint_throttling_is_429_with_retry_after(world: World) -> None:
    world.fails("ThrottlingException", "Rate exceeded", status=429)
    status, headers, body = world.call(post({"instances": [record(0)]}))
    assert (status, headers["Retry-After"], body["error"]["code"]) == (429, "1", "throttled")


def test_an_unexpected_failure_is_500_with_no_trace(world: World, logs: Any) -> None:
    def broken(**_: object) -> None:
        raise RuntimeError("secret internals at /var/task/lambdas/predict/service.py")

    world.runtime.invoke_endpoint = broken  # type: ignore[method-assign]
    status, _, body = world.call(post({"instances": [record(0)]}))
    assert status == 500
    assert body == {
        "error": {
            "code": "internal_error",
            "message": "the request could not be processed",
            "details": [],
        }
    }
    # the log has it, with the request id
    failure = next(entry for entry in logs() if entry.get("message") == "unexpected error")
    assert "secret internals" in failure["exception"]


def test_an_updating_endpoint_is_served_not_503(world: World) -> None:
    # Given SageMaker answers while the endpoint is Updating (blue/green keeps serving)
    deploy_model(world)
    world.answers(predictions_body(1))
    status, _, _ = world.call(post({"instances": [record(0)]}))
    assert status == 200


# ------------------------------------------------------------------------------------- GET
def test_get_describes_the_record_shape_and_the_serving_model(world: World) -> None:
    deploy_model(world, version="7")
    status, _, body = world.call(api_event("GET", "/v1/churn"))
    assert status == 200
    assert body["dataset"] == "churn"
    assert body["problem_type"] == "binary"
    assert body["prediction_fields"] == ["id", "label", "probability"]
    assert body["max_instances"] == 5
    fields = {f["name"]: f for f in body["fields"]}
    assert "churned" not in fields  # the target is not part of a request
    assert fields["customer_id"]["role"] == "id"
    assert fields["email"]["role"] == "pii"
    assert fields["plan"] == {
        "name": "plan",
        "type": "category",
        "required": True,
        "role": "input",
        "categories": ["basic", "standard", "premium"],
    }
    assert fields["tenure_months"] == {
        "name": "tenure_months",
        "type": "int",
        "required": False,
        "role": "input",
        "min": 0,
        "max": 240,
    }
    assert body["model"]["endpoint"] == ENDPOINT
    assert body["model"]["model_version"] == "7"


def test_get_before_any_deployment_says_no_model(world: World) -> None:
    status, _, body = world.call(api_event("GET", "/v1/churn"))
    assert status == 200
    assert body["model"] is None


def test_the_first_deployment_shows_at_once(world: World) -> None:
    # Given a warm function that saw no endpoint
    predictor = world.predictor()
    assert predictor.model("churn") is None
    # When the endpoint appears, the same function sees it (no remembered "no model")
    deploy_model(world, version="3")
    info = predictor.model("churn")
    assert info is not None and info["model_version"] == "3"
