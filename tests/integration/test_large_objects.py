"""An object above the size threshold is routed by the deployed function to a processing job."""

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
ABOVE_ANY_THRESHOLD = 50 * 1024**3


def test_large_object_is_routed_to_a_processing_job_that_curates_it(
    app_outputs: dict[str, dict[str, str]], aws: Callable[[str], Any]
) -> None:
    s3, sagemaker = aws("s3"), aws("sagemaker")
    raw, curated = app_outputs[DATA]["RawBucket"], app_outputs[DATA]["CuratedBucket"]
    key = f"churn/large-{uuid.uuid4().hex[:8]}.csv"
    version = s3.put_object(Bucket=raw, Key=key, Body=csv_text(good_rows(25)).encode())["VersionId"]
    # the event claims a size above the threshold: the function must not process it itself
    event = {
        "source": "aws.s3",
        "detail-type": "Object Created",
        "detail": {
            "bucket": {"name": raw},
            "object": {"key": key, "version-id": version, "size": ABOVE_ANY_THRESHOLD},
        },
    }
    response = aws("lambda").invoke(
        FunctionName=app_outputs[APP]["PreprocessFunctionName"], Payload=json.dumps(event)
    )
    summary = json.loads(response["Payload"].read())
    assert "FunctionError" not in response, summary
    assert summary["status"] == "routed", summary
    name = summary["job_name"]

    def finished() -> dict[str, Any] | None:
        job: dict[str, Any] = sagemaker.describe_processing_job(ProcessingJobName=name)
        return job if job["ProcessingJobStatus"] in ("Completed", "Failed", "Stopped") else None

    job = wait_for(finished, timeout=240, interval=2, what=f"processing job {name}")
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    manifest_key = f"{key}/{version}/manifest.json"
    manifest = json.loads(s3.get_object(Bucket=curated, Key=manifest_key)["Body"].read())
    assert manifest["rows"] == {"in": 25, "curated": 25, "quarantined": 0}
