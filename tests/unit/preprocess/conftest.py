"""Fixtures of the preprocess tests; Powertools settings before the handler is imported."""

import os

# Powertools reads these when the handler module is imported
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "SluiceTest")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "preprocess")
os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambdas.preprocess.handler import App
from lambdas.preprocess.settings import Settings
from tests.unit.preprocess.fakes import REGION, RecordedEvents, World, make_lake


@pytest.fixture
def world(tmp_path: Any) -> Iterator[World]:
    with mock_aws():
        s3, secrets, arn = make_lake()
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        dynamodb.create_table(
            TableName="idem",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        events = RecordedEvents()
        settings = Settings.from_env(
            {
                "CURATED_BUCKET": "curated",
                "QUARANTINE_BUCKET": "quarantine",
                "PII_SECRET_ARN": arn,
                "IDEMPOTENCY_TABLE": "idem",
                "WORK_DIR": str(tmp_path),
                "PII_WORKERS": "0",
            }
        )
        app = App(settings, s3=s3, secrets=secrets, events=events, dynamodb=dynamodb)
        yield World(app=app, s3=s3, recorded=events)
