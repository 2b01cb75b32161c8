"""Fixtures of the predict tests; Powertools settings before the handler is imported."""

import os

os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "SluiceTest")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "predict")
os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")

import io
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from moto import mock_aws

from tests.unit.predict.fakes import World, make_world


@pytest.fixture
def world() -> Iterator[World]:
    with mock_aws():
        yield make_world()


@pytest.fixture
def logs() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The JSON log lines the function writes (Powertools' handler writes to its own stream)."""
    from lambdas.shared.observability import logger

    handler = logger.registered_handler
    stream = io.StringIO()
    previous = handler.setStream(stream)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines() if line]
    handler.setStream(previous)
