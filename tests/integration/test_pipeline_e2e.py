"""End to end on the local cloud: an upload becomes a served model, through AWS APIs only.

upload a generated churn CSV to the raw bucket → ingestion curates it → its DatasetCurated
event starts a run (or queues behind a running one, which then starts the follow-up that
takes it) → trained → evaluated → registered → the churn endpoint serves real predictions for
the uploaded rows.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from datasets.generate import write_csv
from tests.integration.helpers import wait_for
from tests.integration.pipeline_helpers import Pipeline, model_request, upload_rows

pytestmark = pytest.mark.integration


def test_an_upload_is_trained_evaluated_registered_and_served(
    aws: Callable[[str], Any], app_outputs: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    pipeline = Pipeline(aws, {**app_outputs["sluice-dev-data"], **app_outputs["sluice-dev-app"]})
    started = time.monotonic()
    # Given a generated churn export, When it is uploaded to the raw bucket
    csv = tmp_path / "churn.csv"
    write_csv("churn", 2000, csv, seed=31)
    key = f"churn/it-e2e/{uuid.uuid4().hex}.csv"
    s3 = aws("s3")
    version = s3.put_object(Bucket=pipeline.outputs["RawBucket"], Key=key, Body=csv.read_bytes())[
        "VersionId"
    ]

    # Then the run that trains on it is recorded with the upload as its trigger
    def run_of_upload() -> dict[str, Any] | None:
        for run in pipeline.ledger.runs("churn", limit=50):
            if any(t.get("key") == key for t in run.get("triggers") or []):
                return run
        return None

    run = wait_for(run_of_upload, timeout=240, interval=2, what="the run of the upload")
    execution = pipeline.wait(run["execution"], timeout=300)
    run = pipeline.run_of(run["execution"])
    assert execution["status"] == "SUCCEEDED", run.get("error")
    # and it trained on the upload (the input manifest lists it) and registered its model
    assert run["outcome"] in ("deployed", "rejected")  # earlier tests may have left a champion
    listing_bucket, listing_key = run["inputs"]["list"].removeprefix("s3://").split("/", 1)
    listing = s3.get_object(Bucket=listing_bucket, Key=listing_key)["Body"].read().decode()
    assert f'"{key}"' in listing and version in listing
    package = pipeline.package(run["model_package"]["package_arn"])
    assert package["CustomerMetadataProperties"]["run_id"] == run["run_id"]
    # and the churn endpoint serves real predictions for the uploaded rows
    serving = pipeline.serving("churn")
    assert serving["status"] == "InService"
    if run["outcome"] == "deployed":
        assert serving["version"] == str(run["model_package"]["version"])
    answer = pipeline.predict("churn", model_request("churn", upload_rows(csv, limit=10)))
    assert len(answer["predictions"]) == 10
    assert {p["label"] for p in answer["predictions"]} <= {0, 1}
    print(f"\nupload -> run ended ({run['outcome']}): {time.monotonic() - started:.1f} s")
