"""Preprocess Lambda: SQS batches of EventBridge "Object Created" events from the raw bucket.

Thin by design: parse, hand each object to ``service.Ingestion`` (at most once per object
version, via Powertools idempotency on DynamoDB), report partial batch failures so only the
failed messages return to the queue (and, after the queue's retries, to its DLQ).
"""

from __future__ import annotations

import functools
import json
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.preprocess.service import Ingestion, ObjectRef
from lambdas.preprocess.settings import Settings
from lambdas.shared.observability import logger, metrics, tracer


class BadMessage(ValueError):
    """An SQS message that is not an S3 Object Created event (it goes to the DLQ)."""


def parse_record(record: SQSRecord) -> ObjectRef:
    try:
        event = json.loads(record.body)
        detail = event["detail"]
        return ObjectRef(
            bucket=detail["bucket"]["name"],
            key=detail["object"]["key"],
            version_id=detail["object"].get("version-id"),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise BadMessage(f"not an S3 Object Created event: {exc!r}") from exc


class App:
    """Everything built once per cold start: settings, clients, idempotent ingestion."""

    def __init__(self, settings: Settings, *, s3: Any, secrets: Any, events: Any, dynamodb: Any):
        self.ingestion = Ingestion(settings, s3=s3, secrets=secrets, events=events)
        self.processor = BatchProcessor(event_type=EventType.SQS)
        self.idempotency = IdempotencyConfig(event_key_jmespath="[bucket, key, version_id]")
        persistence = DynamoDBPersistenceLayer(
            table_name=settings.idempotency_table, boto3_client=dynamodb
        )
        self.ingest_once = idempotent_function(
            data_keyword_argument="ref",
            persistence_store=persistence,
            config=self.idempotency,
        )(self._ingest)

    def _ingest(self, ref: dict[str, Any]) -> dict[str, Any]:
        summary = self.ingestion.ingest(ObjectRef(**ref))
        if summary["status"] == "curated":
            for name, value in summary["rows"].items():
                metrics.add_metric(f"Rows{name.capitalize()}", MetricUnit.Count, value)
        else:
            metrics.add_metric("FilesRejected", MetricUnit.Count, 1)
        metrics.add_metric("ProcessingSeconds", MetricUnit.Seconds, summary["seconds"])
        logger.info("object processed", extra={"summary": summary})
        return summary

    def record_handler(self, record: SQSRecord) -> dict[str, Any]:
        ref = parse_record(record)
        logger.set_correlation_id(ref.key)
        tracer.put_annotation("object_key", ref.key)
        result: dict[str, Any] = self.ingest_once(ref=ref.as_dict())
        return result


@functools.cache
def _app() -> App:
    import boto3

    return App(
        Settings.from_env(),
        s3=boto3.client("s3"),
        secrets=boto3.client("secretsmanager"),
        events=boto3.client("events"),
        dynamodb=boto3.client("dynamodb"),
    )


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: LambdaContext, app: App | None = None) -> Any:
    app = app or _app()
    app.idempotency.register_lambda_context(context)
    return process_partial_response(
        event=event, record_handler=app.record_handler, processor=app.processor, context=context
    )
