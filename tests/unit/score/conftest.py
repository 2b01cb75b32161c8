"""Fixtures of the batch-scoring tests: moto's S3 and SageMaker with a churn endpoint."""

import os

os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "SluiceTest")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "score")
os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")

from collections.abc import Iterator
from pathlib import Path

import pytest
from moto import mock_aws

from tests.unit.score.fakes import World, make_world


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with mock_aws():
        yield make_world(tmp_path)
