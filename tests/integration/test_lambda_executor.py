"""The subprocess Lambda executor behaves like Lambda for results, errors and timeouts."""

from __future__ import annotations

import base64
import concurrent.futures
import io
import json
import re
import time
import uuid
import zipfile

import boto3
import pytest
from botocore.config import Config

from tests.integration.helpers import ENDPOINT, LOCAL_CREDENTIALS, REGION

pytestmark = pytest.mark.integration

HANDLER = """
import os
import time

CALLS = 0  # module state: kept between invocations of a warm environment


def handler(event, context):
    global CALLS
    CALLS += 1
    if event.get("fail"):
        raise ValueError(f"bad input: {event['fail']}")
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("exit"):
        os._exit(3)
    return {
        "greeting": os.environ["GREETING"],
        "request_id": context.aws_request_id,
        "calls": CALLS,
        "pid": os.getpid(),
    }
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


def _invoke_with_report(aws, name, event):
    response = aws("lambda").invoke(FunctionName=name, Payload=json.dumps(event), LogType="Tail")
    tail = base64.b64decode(response["LogResult"]).decode()
    report = next(line for line in tail.splitlines() if line.startswith("REPORT"))
    return response.get("FunctionError"), json.loads(response["Payload"].read()), report


@pytest.fixture
def fresh_function(aws):
    """A function of its own, so its environments start cold."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("app.py", HANDLER)
    name = f"warm-test-{uuid.uuid4().hex[:8]}"
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


def test_a_warm_environment_keeps_module_state_and_inits_once(aws, fresh_function):
    # When the function is called three times in a row
    results = [_invoke_with_report(aws, fresh_function, {}) for _ in range(3)]
    # Then one process served them all, its module state carried over
    payloads = [payload for _, payload, _ in results]
    assert [p["calls"] for p in payloads] == [1, 2, 3]
    assert len({p["pid"] for p in payloads}) == 1
    # and only the first paid the init (Lambda's REPORT line says so)
    reports = [report for _, _, report in results]
    assert re.search(r"Init Duration: [0-9.]+ ms", reports[0])
    assert not any("Init Duration" in report for report in reports[1:])


def test_after_a_timeout_the_environment_starts_afresh(aws, fresh_function):
    _invoke_with_report(aws, fresh_function, {})
    error, payload, _ = _invoke_with_report(aws, fresh_function, {"sleep": 30})
    assert (error, payload["errorType"]) == ("Unhandled", "Sandbox.Timedout")
    error, payload, report = _invoke_with_report(aws, fresh_function, {})
    assert error is None
    assert payload["calls"] == 1  # a new process: module state starts over
    assert "Init Duration" in report


def test_a_crashed_runtime_is_replaced(aws, fresh_function):
    error, payload, _ = _invoke_with_report(aws, fresh_function, {"exit": True})
    assert (error, payload["errorType"]) == ("Unhandled", "Runtime.ExitError")
    error, payload, _ = _invoke_with_report(aws, fresh_function, {})
    assert (error, payload["calls"]) == (None, 1)


def test_reserved_concurrency_bounds_the_environments(aws, fresh_function):
    # Given a reserved concurrency of 2 (and a client that does not retry throttled calls)
    client = boto3.client(
        "lambda",
        endpoint_url=ENDPOINT,
        region_name=REGION,
        config=Config(retries={"total_max_attempts": 1}),
        **LOCAL_CREDENTIALS,
    )
    client.put_function_concurrency(FunctionName=fresh_function, ReservedConcurrentExecutions=2)
    time.sleep(0.5)

    def call(_):
        try:
            response = client.invoke(FunctionName=fresh_function, Payload=b'{"sleep": 1}')
        except client.exceptions.TooManyRequestsException:
            return "throttled"
        return json.loads(response["Payload"].read())["pid"]

    # When six calls arrive at once
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        outcomes = list(pool.map(call, range(6)))
    # Then at most two environments (processes) served them and the rest were throttled
    pids = {o for o in outcomes if o != "throttled"}
    assert 1 <= len(pids) <= 2
    assert "throttled" in outcomes
