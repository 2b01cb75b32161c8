"""Helpers shared by the integration tests."""

from __future__ import annotations

import os
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

#: the local cloud's port (``SLUICE_LOCAL_PORT``, as ``make local-up`` reads it)
PORT = int(os.environ.get("SLUICE_LOCAL_PORT") or 4566)
ENDPOINT = f"http://127.0.0.1:{PORT}"
REGION = "us-east-1"
#: fake credentials for the local endpoint only (never exported to this process's environment)
LOCAL_CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}


def healthy() -> bool:
    try:
        with urllib.request.urlopen(f"{ENDPOINT}/_localstack/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def metric_sum(aws: Any, endpoint: str, metric: str, variant: str = "AllTraffic") -> float:
    """The sum of an endpoint variant's ``AWS/SageMaker`` metric over the last hour."""
    response = aws("cloudwatch").get_metric_statistics(
        Namespace="AWS/SageMaker",
        MetricName=metric,
        Dimensions=[
            {"Name": "EndpointName", "Value": endpoint},
            {"Name": "VariantName", "Value": variant},
        ],
        StartTime=time.time() - 3600,
        EndTime=time.time() + 60,
        Period=60,
        Statistics=["Sum"],
    )
    return float(sum(point["Sum"] for point in response["Datapoints"]))


def wait_for(
    condition: Callable[[], Any], *, timeout: float, interval: float = 0.5, what: str
) -> Any:
    """Poll ``condition`` until it returns something truthy; fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
