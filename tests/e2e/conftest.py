"""Real-AWS end-to-end tests: opt-in, and skipped cleanly without credentials.

SLUICE_E2E_STAGE=dev .venv/bin/python -m pytest tests/e2e   # after `make deploy`
"""

from __future__ import annotations

import os
from typing import Any

import boto3
import pytest
from botocore.exceptions import BotoCoreError, ClientError


@pytest.fixture(scope="session")
def session() -> boto3.Session:
    if not os.environ.get("SLUICE_E2E_STAGE"):
        pytest.skip("real-AWS tests are opt-in: set SLUICE_E2E_STAGE=<deployed stage>")
    session = boto3.Session()
    try:
        session.client("sts").get_caller_identity()
    except (BotoCoreError, ClientError) as exc:
        pytest.skip(f"no usable AWS credentials: {exc}")
    return session


@pytest.fixture(scope="session")
def data_outputs(session: boto3.Session) -> dict[str, Any]:
    stage = os.environ["SLUICE_E2E_STAGE"]
    stack = session.client("cloudformation").describe_stacks(StackName=f"sluice-{stage}-data")
    return {o["OutputKey"]: o["OutputValue"] for o in stack["Stacks"][0]["Outputs"]}
