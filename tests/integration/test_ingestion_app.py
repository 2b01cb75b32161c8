"""Ingestion of the real app on the local cloud: upload → curated or quarantined, once, with events.

Everything goes through the deployed wiring: S3 → EventBridge → SQS (+DLQ) → preprocess Lambda
(subprocess executor, Python 3.13, bundled as for AWS but for the host's architecture).
"""

from __future__ import annotations

import io
import json
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from datasets.generate import write_csv
from tests.integration.helpers import wait_for

pytestmark = pytest.mark.integration

DATA, APP = "sluice-dev-data", "sluice-dev-app"
TIMEOUT = 120


@pytest.fixture(scope="module")
def lake(app_outputs: dict[str, dict[str, str]]) -> dict[str, str]:
    return {**app_outputs[DATA], **app_outputs[APP]}


@pytest.fixture(scope="module")
def ingestion_events(aws: Callable[[str], Any], lake: dict[str, str]) -> Iterator[Any]:
    """A queue that receives every event ingestion puts on the default bus."""
    sqs, events = aws("sqs"), aws("events")
    name = f"ingestion-events-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(Name=name, EventPattern=json.dumps({"source": ["sluice.ingestion"]}))
    events.put_targets(Rule=name, Targets=[{"Id": "q", "Arn": arn}])
    seen: list[dict[str, Any]] = []

    def matching(detail_type: str, key: str) -> list[dict[str, Any]]:
        for message in sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", []):
            seen.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return [
            e
            for e in seen
            if e["detail-type"] == detail_type and e["detail"]["source"]["key"] == key
        ]

    yield matching
    events.remove_targets(Rule=name, Ids=["q"])
    events.delete_rule(Name=name)
    sqs.delete_queue(QueueUrl=url)


def _keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]


def _json(s3: Any, bucket: str, key: str) -> Any:
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def _upload(s3: Any, bucket: str, key: str, body: bytes) -> str:
    return str(s3.put_object(Bucket=bucket, Key=key, Body=body)["VersionId"])


def _churn_csv(tmp_path: Path, rows: int, dirty: float = 0.0) -> bytes:
    path = tmp_path / "upload.csv"
    write_csv("churn", rows, path, seed=11, dirty=dirty)
    return path.read_bytes()


def test_an_upload_is_curated_with_manifest_masked_pii_and_an_event(
    aws: Callable[[str], Any], lake: dict[str, str], ingestion_events: Any, tmp_path: Path
) -> None:
    # Given a churn export with a few malformed rows
    s3 = aws("s3")
    body = _churn_csv(tmp_path, rows=1500, dirty=0.02)
    key = f"churn/it/{uuid.uuid4().hex}.csv"
    # When it is uploaded to the raw bucket
    version = _upload(s3, lake["RawBucket"], key, body)
    # Then a manifest appears beside curated Parquet, with every row accounted for
    prefix = f"{key}/{version}/"
    manifest_key = f"{prefix}manifest.json"
    wait_for(
        lambda: manifest_key in _keys(s3, lake["CuratedBucket"], prefix),
        timeout=TIMEOUT,
        what="the curated manifest",
    )
    manifest = _json(s3, lake["CuratedBucket"], manifest_key)
    rows = manifest["rows"]
    assert rows["in"] == 1500
    assert rows["in"] == rows["curated"] + rows["quarantined"]
    assert rows["quarantined"] > 0
    assert manifest["source"]["version_id"] == version
    parts = [k for k in _keys(s3, lake["CuratedBucket"], prefix) if k.endswith(".parquet")]
    tables = [
        pq.read_table(io.BytesIO(s3.get_object(Bucket=lake["CuratedBucket"], Key=k)["Body"].read()))
        for k in parts
    ]
    assert sum(t.num_rows for t in tables) == rows["curated"]
    emails = tables[0].column("email").to_pylist()
    assert all(e is None or re.fullmatch(r"[0-9a-f]{64}", e) for e in emails)
    assert b"@example.com" not in b"".join(
        s3.get_object(Bucket=lake["CuratedBucket"], Key=k)["Body"].read() for k in parts
    )
    # and the quarantined rows with their reasons are where the manifest says
    quarantine = manifest["quarantine"]["uri"].removeprefix(f"s3://{lake['QuarantineBucket']}/")
    lines = s3.get_object(Bucket=lake["QuarantineBucket"], Key=quarantine)["Body"].read()
    records = [json.loads(line) for line in lines.splitlines()]
    assert len(records) == rows["quarantined"]
    assert all(r["reasons"] and r["line"] >= 2 for r in records)
    # and a DatasetCurated event tells the training pipeline where to look
    (event,) = wait_for(
        lambda: ingestion_events("DatasetCurated", key), timeout=TIMEOUT, what="DatasetCurated"
    )
    assert event["detail"]["manifest"] == f"s3://{lake['CuratedBucket']}/{manifest_key}"


def test_a_bad_file_is_quarantined_with_its_reason_and_stays_in_raw(
    aws: Callable[[str], Any], lake: dict[str, str], ingestion_events: Any
) -> None:
    # Given a file without the target column
    s3 = aws("s3")
    key = f"churn/it/{uuid.uuid4().hex}-no-target.csv"
    header = "customer_id,email,phone,signup_ts,last_active_ts,plan,region,monthly_charges,"
    body = (
        f"{header}tenure_months,support_calls\n"
        "C1,a@example.com,+1-555-0000001,2024-01-02T03:04:05Z,2024-02-02T03:04:05Z,basic,eu,"
        "29.5,3,0\n"
    ).encode()
    # When it is uploaded
    version = _upload(s3, lake["RawBucket"], key, body)
    # Then a rejection.json says why, beside a copy of the file, and the raw object is intact
    upload = key.split("/", 1)[1]
    reason_key = f"churn/rejected/{upload}/{version}/rejection.json"
    wait_for(
        lambda: reason_key in _keys(s3, lake["QuarantineBucket"], f"churn/rejected/{upload}/"),
        timeout=TIMEOUT,
        what="the rejection reason",
    )
    rejection = _json(s3, lake["QuarantineBucket"], reason_key)
    assert rejection["column"] == "churned"
    assert rejection["source"] == {"bucket": lake["RawBucket"], "key": key, "version_id": version}
    assert s3.get_object(Bucket=lake["RawBucket"], Key=key)["Body"].read() == body
    copy_key = f"churn/rejected/{upload}/{version}/{key.rsplit('/', 1)[1]}"
    assert s3.get_object(Bucket=lake["QuarantineBucket"], Key=copy_key)["Body"].read() == body
    # and a FileRejected event carries the reason
    (event,) = wait_for(
        lambda: ingestion_events("FileRejected", key), timeout=TIMEOUT, what="FileRejected"
    )
    assert event["detail"]["reason"] == {k: v for k, v in rejection.items() if k != "source"}


def test_an_upload_for_an_undeclared_dataset_is_quarantined_with_that_reason(
    aws: Callable[[str], Any], lake: dict[str, str]
) -> None:
    s3 = aws("s3")
    key = f"weather/{uuid.uuid4().hex}.csv"
    version = _upload(s3, lake["RawBucket"], key, b"day,temp\nmon,21\n")
    upload = key.split("/", 1)[1]
    reason_key = f"weather/rejected/{upload}/{version}/rejection.json"
    wait_for(
        lambda: reason_key in _keys(s3, lake["QuarantineBucket"], "weather/"),
        timeout=TIMEOUT,
        what="the undeclared-dataset rejection",
    )
    assert "weather" in json.dumps(_json(s3, lake["QuarantineBucket"], reason_key))


def test_the_same_object_version_delivered_again_is_processed_once(
    aws: Callable[[str], Any], lake: dict[str, str], ingestion_events: Any, tmp_path: Path
) -> None:
    # Given an upload that has been curated
    s3, sqs = aws("s3"), aws("sqs")
    key = f"churn/it/{uuid.uuid4().hex}-twice.csv"
    body = _churn_csv(tmp_path, rows=200)
    version = _upload(s3, lake["RawBucket"], key, body)
    wait_for(
        lambda: ingestion_events("DatasetCurated", key), timeout=TIMEOUT, what="first curation"
    )
    # When EventBridge delivers the same Object Created event twice more
    event = {
        "version": "0",
        "source": "aws.s3",
        "detail-type": "Object Created",
        "detail": {
            "bucket": {"name": lake["RawBucket"]},
            "object": {"key": key, "version-id": version, "size": len(body)},
        },
    }
    for _ in range(2):
        sqs.send_message(QueueUrl=lake["IngestionQueueUrl"], MessageBody=json.dumps(event))
    # Then the queue drains without a second curation: one event, one manifest version
    wait_for(
        lambda: _queue_empty(sqs, lake["IngestionQueueUrl"]), timeout=TIMEOUT, what="the queue"
    )
    manifest_key = f"{key}/{version}/manifest.json"
    versions = s3.list_object_versions(Bucket=lake["CuratedBucket"], Prefix=manifest_key)
    assert len(versions.get("Versions", [])) == 1
    assert len(ingestion_events("DatasetCurated", key)) == 1


def _queue_empty(sqs: Any, url: str) -> bool:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return all(v == "0" for v in attributes.values())


def test_a_poison_message_ends_in_the_dead_letter_queue_after_retries(
    aws: Callable[[str], Any], lake: dict[str, str]
) -> None:
    # Given the ingestion queue with a short visibility timeout (90 minutes as deployed)
    sqs = aws("sqs")
    url, dlq = lake["IngestionQueueUrl"], lake["IngestionDeadLetterQueueUrl"]
    deployed = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "2"})
    try:
        # When a message that is no S3 event arrives
        marker = uuid.uuid4().hex
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"poison": marker}))

        # Then after the queue's retries it lands in the DLQ, untouched
        def in_dlq() -> bool:
            messages = sqs.receive_message(
                QueueUrl=dlq, MaxNumberOfMessages=10, WaitTimeSeconds=1
            ).get("Messages", [])
            return any(marker in m["Body"] for m in messages)

        wait_for(in_dlq, timeout=TIMEOUT, interval=1, what="the poison message in the DLQ")
    finally:
        sqs.set_queue_attributes(QueueUrl=url, Attributes=deployed["Attributes"])
