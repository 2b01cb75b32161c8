"""The subprocess Lambda executor behaves like Lambda for results, errors and timeouts."""

from __future__ import annotations

import io
import json
import uuid
import zipfile

import pytest

pytestmark = pytest.mark.integration

HANDLER = """
import os
import time


def handler(event, context):
    if event.get("fail"):
        raise ValueError(f"bad input: {event['fail']}")
    if event.get("sleep"):
        time.sleep(event["sleep"])
    return {"greeting": os.environ["GREETING"], "request_id": context.aws_request_id}
"""


@pytest.fixture(scope="module")
def function_name(aws):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("app.py", HANDLER)
    name = f"executor-test-{uuid.uuid4().hex[:8]}"
    client = aws("lambda")
    client.create_function(
        FunctionName=name,
        Runtime="python3.13",
        Role="arn:aws:iam::000000000000:role/executor-test",
        Handler="app.handler",
        Code={"ZipFile": archive.getvalue()},
        Timeout=2,
        Environment={"Variables": {"GREETING": "hello"}},
    )
    client.get_waiter("function_active_v2").wait(FunctionName=name)
    yield name
    client.delete_function(FunctionName=name)


def _invoke(aws, name, event):
    response = aws("lambda").invoke(FunctionName=name, Payload=json.dumps(event))
    return response.get("FunctionError"), json.loads(response["Payload"].read())


def test_handler_result_with_function_environment(aws, function_name):
    error, payload = _invoke(aws, function_name, {})
    assert error is None
    assert payload["greeting"] == "hello"
    assert payload["request_id"]


def test_exception_is_reported_as_unhandled_function_error(aws, function_name):
    error, payload = _invoke(aws, function_name, {"fail": "x"})
    assert error == "Unhandled"
    assert payload["errorType"] == "ValueError"
    assert payload["errorMessage"] == "bad input: x"
    assert payload["stackTrace"]


def test_timeout_is_enforced(aws, function_name):
    error, payload = _invoke(aws, function_name, {"sleep": 30})
    assert error == "Unhandled"
    assert payload["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 2.00 seconds" in payload["errorMessage"]
