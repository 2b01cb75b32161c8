"""Backfill on the local cloud: the deployed state machine reprocesses a raw bucket prefix."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.helpers import wait_for
from tests.unit.preprocess.helpers import csv_text, good_rows

pytestmark = pytest.mark.integration

DATA, APP = "sluice-dev-data", "sluice-dev-app"


def test_backfill_curates_every_object_under_the_prefix(
    app_outputs: dict[str, dict[str, str]], aws: Callable[[str], Any]
) -> None:
    s3, sfn = aws("s3"), aws("stepfunctions")
    raw, curated = app_outputs[DATA]["RawBucket"], app_outputs[DATA]["CuratedBucket"]
    prefix = f"churn/backfill-{uuid.uuid4().hex[:8]}/"
    versions = {
        key: s3.put_object(Bucket=raw, Key=key, Body=csv_text(good_rows(rows)).encode())[
            "VersionId"
        ]
        for key, rows in ((f"{prefix}a.csv", 12), (f"{prefix}b.csv", 7))
    }
    execution = sfn.start_execution(
        stateMachineArn=app_outputs[APP]["BackfillStateMachineArn"],
        name=f"test-{uuid.uuid4().hex[:12]}",
        input=json.dumps({"prefix": prefix}),
    )["executionArn"]

    def finished() -> dict[str, Any] | None:
        described: dict[str, Any] = sfn.describe_execution(executionArn=execution)
        return None if described["status"] == "RUNNING" else described

    described = wait_for(finished, timeout=300, interval=2, what="the backfill execution")
    assert described["status"] == "SUCCEEDED", described
    for key, version in versions.items():
        upload = key.split("/", 1)[1]
        manifest_key = f"churn/{upload}/{version}/manifest.json"
        manifest = json.loads(s3.get_object(Bucket=curated, Key=manifest_key)["Body"].read())
        assert manifest["source"]["key"] == key
        assert manifest["rows"]["in"] == manifest["rows"]["curated"]
