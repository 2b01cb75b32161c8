"""The Lambda handler against moto: S3 in and out, the secret, idempotency, events, failures."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest

from lambdas.preprocess.handler import BadMessage, handler
from lambdas.shared.observability import logger
from tests.unit.preprocess.fakes import SECRET, Context, World, sqs_event
from tests.unit.preprocess.helpers import csv_text, good_rows


def keys(s3: Any, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def test_upload_is_curated_with_manifest_and_event(world: World) -> None:
    version = world.upload("churn/2024/jan.csv", csv_text(good_rows(20)))
    result = handler(sqs_event(("churn/2024/jan.csv", version)), Context(), app=world.app)
    assert result == {"batchItemFailures": []}
    prefix = f"churn/2024/jan.csv/{version}/"
    assert keys(world.s3, "curated") == [prefix + "manifest.json", prefix + "part-00000.parquet"]
    body = world.s3.get_object(Bucket="curated", Key=prefix + "manifest.json")["Body"].read()
    manifest = json.loads(body)
    assert manifest["source"]["version_id"] == version
    assert manifest["rows"] == {"in": 20, "curated": 20, "quarantined": 0}
    [event] = world.events()
    assert (event["source"], event["detail-type"]) == ("sluice.ingestion", "DatasetCurated")
    assert event["detail"]["manifest"] == f"s3://curated/{prefix}manifest.json"


def test_pii_key_comes_from_the_secret_and_is_fetched_once(world: World) -> None:
    v1 = world.upload("churn/a.csv", csv_text(good_rows(3)))
    v2 = world.upload("churn/b.csv", csv_text(good_rows(3)))
    handler(sqs_event(("churn/a.csv", v1), ("churn/b.csv", v2)), Context(), app=world.app)
    assert world.app.ingestion.pii_key() == SECRET.encode()


def test_same_object_version_twice_is_processed_once(world: World) -> None:
    version = world.upload("churn/jan.csv", csv_text(good_rows(5)))
    calls = []
    original = world.app.ingestion.ingest
    world.app.ingestion.ingest = lambda ref: calls.append(ref) or original(ref)  # type: ignore[method-assign]
    handler(sqs_event(("churn/jan.csv", version)), Context(), app=world.app)
    handler(sqs_event(("churn/jan.csv", version), message_id="again"), Context(), app=world.app)
    assert len(calls) == 1


def test_rejected_file_is_copied_to_quarantine_with_its_reason_and_event(world: World) -> None:
    version = world.upload("churn/empty.csv", b"")
    handler(sqs_event(("churn/empty.csv", version)), Context(), app=world.app)
    prefix = f"churn/rejected/empty.csv/{version}/"
    assert keys(world.s3, "quarantine") == [prefix + "empty.csv", prefix + "rejection.json"]
    reason = json.loads(
        world.s3.get_object(Bucket="quarantine", Key=prefix + "rejection.json")["Body"].read()
    )
    assert reason["code"] == "empty_file"
    assert keys(world.s3, "raw") == ["churn/empty.csv"]  # the raw object stays
    [event] = world.events()
    assert event["detail-type"] == "FileRejected"
    assert event["detail"]["reason"]["code"] == "empty_file"


def test_undeclared_dataset_is_rejected_into_quarantine(world: World) -> None:
    version = world.upload("sales/q1.csv", "a,b\n1,2\n")
    handler(sqs_event(("sales/q1.csv", version)), Context(), app=world.app)
    [event] = world.events()
    assert event["detail"]["reason"]["code"] == "undeclared_dataset"


def test_quarantined_rows_go_to_the_quarantine_bucket(world: World) -> None:
    rows = good_rows(50)
    rows[3]["plan"] = "gold"
    version = world.upload("churn/x.csv", csv_text(rows))
    handler(sqs_event(("churn/x.csv", version)), Context(), app=world.app)
    assert keys(world.s3, "quarantine") == [f"churn/rows/x.csv/{version}/rows.jsonl"]


def test_a_duplicate_arriving_while_the_first_is_processed_is_not_a_failure(world: World) -> None:
    """EventBridge may deliver twice at once: the second delivery must neither process the
    object again nor fail (a failure would park it for the 90-minute visibility timeout and
    count toward the dead-letter queue)."""
    version = world.upload("churn/jan.csv", csv_text(good_rows(5)))
    original = world.app.ingestion.ingest
    during: list[dict[str, Any]] = []

    def ingest_while_a_duplicate_arrives(ref: Any) -> dict[str, Any]:
        duplicate = sqs_event(("churn/jan.csv", version), message_id="duplicate")
        during.append(handler(duplicate, Context(), app=world.app))
        return original(ref)

    world.app.ingestion.ingest = ingest_while_a_duplicate_arrives  # type: ignore[method-assign]
    first = handler(sqs_event(("churn/jan.csv", version)), Context(), app=world.app)
    assert first == {"batchItemFailures": []}
    assert during == [{"batchItemFailures": []}]  # the duplicate did not fail...
    assert [e["detail-type"] for e in world.events()] == ["DatasetCurated"]  # ...nor process


def _metrics(stdout: str) -> dict[str, float]:
    """The metric values of the Embedded Metric Format records Powertools printed."""
    values: dict[str, float] = {}
    for line in stdout.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            record = json.loads(line)
            for directive in record["_aws"]["CloudWatchMetrics"]:
                for metric in directive["Metrics"]:
                    value = record[metric["Name"]]
                    values[metric["Name"]] = sum(value) if isinstance(value, list) else value
    return values


def test_rows_files_and_seconds_are_published_as_metrics(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    good = good_rows(30)
    bad = [{**good[0], "tenure_months": "300"}]  # 1 in 31: under the spec's 5% limit
    v1 = world.upload("churn/m.csv", csv_text(good + bad))
    handler(sqs_event(("churn/m.csv", v1)), Context(), app=world.app)
    curated = _metrics(capsys.readouterr().out)
    assert (curated["RowsIn"], curated["RowsCurated"], curated["RowsQuarantined"]) == (31, 30, 1)
    assert curated["ProcessingSeconds"] > 0
    v2 = world.upload("churn/empty.csv", "")
    handler(sqs_event(("churn/empty.csv", v2)), Context(), app=world.app)
    rejected = _metrics(capsys.readouterr().out)
    assert rejected["FilesRejected"] == 1 and "RowsIn" not in rejected


def test_logs_are_json_keyed_by_the_object_and_never_hold_the_key_or_raw_pii(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    # the Logger writes to the stream it was created with: read its records through a
    # second handler with the very same JSON formatter
    stream = io.StringIO()
    capture = logging.StreamHandler(stream)
    capture.setFormatter(logger.registered_formatter)
    logger.addHandler(capture)
    try:
        rows = good_rows(4)
        version = world.upload("churn/logged.csv", csv_text(rows))
        handler(sqs_event(("churn/logged.csv", version)), Context(), app=world.app)
    finally:
        logger.removeHandler(capture)
    logs = [json.loads(line) for line in stream.getvalue().splitlines()]
    (processed,) = [entry for entry in logs if entry["message"] == "object processed"]
    assert processed["correlation_id"] == "churn/logged.csv"
    assert processed["summary"]["status"] == "curated"
    out = capsys.readouterr()
    for text in (stream.getvalue(), out.out, out.err):
        assert SECRET not in text
        assert not any(r["email"] in text or r["phone"] in text for r in rows)


def test_poison_message_is_reported_as_a_batch_item_failure(world: World) -> None:
    version = world.upload("churn/ok.csv", csv_text(good_rows(3)))
    event = sqs_event(("churn/ok.csv", version))
    event["Records"].append({**event["Records"][0], "messageId": "poison", "body": "not json"})
    result = handler(event, Context(), app=world.app)
    assert result == {"batchItemFailures": [{"itemIdentifier": "poison"}]}


def backfill_event(key: str, size: int | None = None) -> dict[str, Any]:
    """What the backfill state machine sends for one listed object: no version id."""
    obj: dict[str, Any] = {"key": key}
    if size is not None:
        obj["size"] = size
    return {
        "source": "sluice.backfill",
        "detail-type": "Object Created",
        "detail": {"bucket": {"name": "raw"}, "object": obj},
    }


def test_backfill_event_invoked_directly_curates_the_current_version(world: World) -> None:
    world.upload("churn/old.csv", csv_text(good_rows(2)))
    current = world.upload("churn/old.csv", csv_text(good_rows(4)))
    summary = handler(backfill_event("churn/old.csv", 100), Context(), app=world.app)
    assert summary["status"] == "curated"
    assert summary["source"] == {"bucket": "raw", "key": "churn/old.csv", "version_id": current}
    assert summary["rows"]["in"] == 4
    assert f"churn/old.csv/{current}/manifest.json" in keys(world.s3, "curated")


def test_backfill_of_a_version_already_processed_returns_the_first_outcome(world: World) -> None:
    version = world.upload("churn/jan.csv", csv_text(good_rows(5)))
    handler(sqs_event(("churn/jan.csv", version)), Context(), app=world.app)
    summary = handler(backfill_event("churn/jan.csv"), Context(), app=world.app)
    assert summary["status"] == "curated"
    assert len(world.events()) == 1  # processed once: the live delivery's result is returned


def test_backfill_event_for_a_missing_object_raises_for_the_state_machine(world: World) -> None:
    with pytest.raises(Exception, match=r"404|Not Found"):
        handler(backfill_event("churn/gone.csv"), Context(), app=world.app)


def test_direct_event_that_is_not_an_object_event_raises(world: World) -> None:
    with pytest.raises(BadMessage):
        handler({"detail": {"nothing": 1}}, Context(), app=world.app)
