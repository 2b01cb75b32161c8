"""Preprocess Lambda: EventBridge "Object Created" events from the raw bucket.

Two ways in, one path: SQS batches (the live path, partial batch failures so only the failed
messages return to the queue and, after its retries, to its DLQ) and one event invoked directly
(the backfill state machine; the summary is returned, a failure raised). Either way each object
version is handled at most once (Powertools idempotency on DynamoDB): processed here by
``service.Ingestion``, or, when it is too large for the function, routed to a SageMaker
Processing job that runs the same code (``service.LargeObjectRouter``).
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
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError
from aws_lambda_powertools.utilities.typing import LambdaContext

from datasets import names
from lambdas.preprocess.service import Ingestion, LargeObjectRouter, ObjectRef
from lambdas.preprocess.settings import Settings
from lambdas.shared.observability import logger, metrics, tracer


class BadMessage(ValueError):
    """An SQS message that is not an S3 Object Created event (it goes to the DLQ)."""


def parse_event(event: Any) -> tuple[ObjectRef, int | None]:
    """The object of an ``Object Created`` event, and its size when the event says it."""
    try:
        detail = event["detail"]
        obj = detail["object"]
        size = obj.get("size")
        ref = ObjectRef(
            bucket=detail["bucket"]["name"], key=obj["key"], version_id=obj.get("version-id")
        )
        return ref, None if size is None else int(size)
    except (ValueError, KeyError, TypeError) as exc:
        raise BadMessage(f"not an S3 Object Created event: {exc!r}") from exc


def parse_record(record: SQSRecord) -> tuple[ObjectRef, int | None]:
    try:
        event = json.loads(record.body)
    except ValueError as exc:
        raise BadMessage(f"not an S3 Object Created event: {exc!r}") from exc
    return parse_event(event)


class App:
    """Everything built once per cold start: settings, clients, idempotent ingestion."""

    def __init__(
        self,
        settings: Settings,
        *,
        s3: Any,
        secrets: Any,
        events: Any,
        dynamodb: Any,
        sagemaker: Any = None,
    ):
        self.s3 = s3
        self.ingestion = Ingestion(settings, s3=s3, secrets=secrets, events=events)
        self.router = (
            LargeObjectRouter(settings, settings.processing, s3=s3, sagemaker=sagemaker)
            if settings.processing is not None
            else None
        )
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
        size = ref.get("size")
        obj = ObjectRef(ref["bucket"], ref["key"], ref.get("version_id"))
        if self.router is not None and size is not None and self.router.too_large(obj, size):
            routed = self.router.route(obj, size)
            metrics.add_metric("FilesRouted", MetricUnit.Count, 1)
            if routed.get("attempts_exhausted"):
                logger.error(
                    "the object's processing job failed on every attempt: fix the cause, then "
                    "upload the object again (a new version)",
                    extra={"summary": routed},
                )
            else:
                logger.info("object routed to a processing job", extra={"summary": routed})
            return routed
        summary = self.ingestion.ingest(obj)
        if summary["status"] == "curated":
            for name, value in summary["rows"].items():
                metrics.add_metric(f"Rows{name.capitalize()}", MetricUnit.Count, value)
        else:
            metrics.add_metric("FilesRejected", MetricUnit.Count, 1)
        metrics.add_metric("ProcessingSeconds", MetricUnit.Seconds, summary["seconds"])
        logger.info("object processed", extra={"summary": summary})
        return summary

    def handle(self, ref: ObjectRef, size: int | None) -> dict[str, Any]:
        """One object, once: a backfill names no version (the current one is meant), and the
        router needs the size; S3 answers both with one HEAD."""
        logger.set_correlation_id(ref.key)
        tracer.put_annotation("object_key", ref.key)
        reserved = names.reserved_prefix(ref.key)
        if reserved is not None:  # files to score, ground-truth labels: never training data
            logger.info("not training data: skipped", extra={"reserved_prefix": reserved})
            metrics.add_metric("FilesSkipped", MetricUnit.Count, 1)
            return {"status": "skipped", "reason": f"{reserved}/", "source": ref.as_dict()}
        if ref.version_id is None or (size is None and self.router is not None):
            extra = {"VersionId": ref.version_id} if ref.version_id else {}
            head = self.s3.head_object(Bucket=ref.bucket, Key=ref.key, **extra)
            version = head.get("VersionId")
            ref = ObjectRef(ref.bucket, ref.key, None if version in (None, "null") else version)
            size = int(head["ContentLength"])
        try:
            result: dict[str, Any] = self.ingest_once(ref={**ref.as_dict(), "size": size})
        except IdempotencyAlreadyInProgressError:
            # Another invocation is processing this very object version (a duplicate delivery
            # arrived before it finished). It owns the work: should it fail, its own message is
            # delivered again. Failing this one would only park a duplicate for the queue's
            # visibility timeout (90 minutes) and count a receive toward the dead-letter queue.
            logger.info("object version already being processed by another invocation")
            return {"status": "in_progress_elsewhere", "source": ref.as_dict()}
        return result

    def record_handler(self, record: SQSRecord) -> dict[str, Any]:
        return self.handle(*parse_record(record))


@functools.cache
def _app() -> App:
    import boto3

    return App(
        Settings.from_env(),
        s3=boto3.client("s3"),
        secrets=boto3.client("secretsmanager"),
        events=boto3.client("events"),
        dynamodb=boto3.client("dynamodb"),
        sagemaker=boto3.client("sagemaker"),
    )


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: LambdaContext, app: App | None = None) -> Any:
    app = app or _app()
    app.idempotency.register_lambda_context(context)
    if "Records" not in event:  # one event, invoked directly (backfill): fail loudly
        return app.handle(*parse_event(event))
    return process_partial_response(
        event=event, record_handler=app.record_handler, processor=app.processor, context=context
    )
