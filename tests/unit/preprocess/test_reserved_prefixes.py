"""Files to score and ground-truth labels share the raw bucket but are never training data."""

from __future__ import annotations

import json
from typing import Any

import pytest

from datasets import names
from lambdas.preprocess.handler import handler
from tests.unit.preprocess.fakes import Context, World, sqs_event
from tests.unit.preprocess.helpers import csv_text, good_rows


def keys(s3: Any, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


@pytest.mark.parametrize(
    "key", ["churn/_score/batch.csv", "churn/_score/2026/01/x.csv", "churn/_feedback/labels.csv"]
)
def test_reserved_prefixes_are_skipped_not_curated_or_quarantined(world: World, key: str) -> None:
    # Given a perfectly good churn file, uploaded under a reserved prefix
    version = world.upload(key, csv_text(good_rows(20)))
    # When ingestion receives its event
    result = handler(sqs_event((key, version)), Context(), app=world.app)
    # Then it succeeds without curating, quarantining or announcing anything
    assert result == {"batchItemFailures": []}
    assert keys(world.s3, "curated") == []
    assert keys(world.s3, "quarantine") == []
    assert world.events() == []


def test_a_direct_invocation_says_why_it_skipped(world: World) -> None:
    version = world.upload("churn/_score/a.csv", csv_text(good_rows(3)))
    event = {
        "detail": {
            "bucket": {"name": "raw"},
            "object": {"key": "churn/_score/a.csv", "version-id": version},
        }
    }
    result = handler(event, Context(), app=world.app)
    assert result["status"] == "skipped"
    assert result["reason"] == "_score/"


def test_only_the_folder_right_below_the_dataset_is_reserved() -> None:
    assert names.reserved_prefix("churn/_score/x.csv") == "_score"
    assert names.reserved_prefix("churn/_feedback/2026/labels.csv") == "_feedback"
    assert names.reserved_prefix("churn/2026/_score/x.csv") is None
    assert names.reserved_prefix("churn/_scores/x.csv") is None
    assert names.reserved_prefix("_score/x.csv") is None


def test_labelled_feedback_is_curated_like_any_upload_with_origin_feedback(world: World) -> None:
    # Given labelled records the feedback function wrote back (and an ordinary upload)
    labelled = "churn/_labelled/2026/11/30/week-1-abc.csv"
    versions = [world.upload(labelled, csv_text(good_rows(20))),
                world.upload("churn/upload.csv", csv_text(good_rows(20)))]  # fmt: skip
    # When ingestion receives their events
    for key, version in zip((labelled, "churn/upload.csv"), versions, strict=True):
        assert handler(sqs_event((key, version)), Context(), app=world.app) == {
            "batchItemFailures": []
        }
    # Then both are curated, and the manifest and the event say where each came from
    origins = {e["detail"]["source"]["key"]: e["detail"]["origin"] for e in world.events()}
    assert origins == {labelled: "feedback", "churn/upload.csv": "upload"}
    manifest_key = next(k for k in keys(world.s3, "curated") if "_labelled" in k and
                        k.endswith("manifest.json"))  # fmt: skip
    manifest = json.loads(world.s3.get_object(Bucket="curated", Key=manifest_key)["Body"].read())
    assert manifest["source"]["origin"] == "feedback"
    assert names.origin("churn/_labelled/x.csv") == "feedback"
    assert names.origin("churn/x/_labelled/x.csv") == "upload"
