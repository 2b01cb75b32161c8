"""Batch-scoring Lambda: the two steps of the scoring state machine around Batch Transform.

``{"step": "prepare", "event": <S3 Object Created event>}`` validates and converts the file
and answers the transform job's request (or that the file was rejected, its error report
written); ``{"step": "finish", "prepared": {..., "failure"?}}`` assembles ``predictions.csv`` or
reports the job's failure. Logic: ``service.Scoring``.
"""

from __future__ import annotations

import functools
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.score.service import Scoring, Source
from lambdas.score.settings import Settings
from lambdas.shared.observability import logger, metrics, tracer


class BadEvent(ValueError):
    """Not an event this function takes (a wiring error: fails the execution)."""


def source_of(event: dict[str, Any]) -> Source:
    try:
        detail = event["detail"]
        obj = detail["object"]
        return Source(detail["bucket"]["name"], obj["key"], obj.get("version-id"))
    except (KeyError, TypeError) as exc:
        raise BadEvent(f"not an S3 Object Created event: {exc!r}") from exc


@functools.cache
def _scoring() -> Scoring:
    import boto3

    return Scoring(Settings.from_env(), s3=boto3.client("s3"), sagemaker=boto3.client("sagemaker"))


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: LambdaContext, scoring: Scoring | None = None) -> Any:
    scoring = scoring or _scoring()
    step = event.get("step")
    if step == "prepare":
        source = source_of(event.get("event") or {})
        logger.set_correlation_id(source.key)
        result = scoring.prepare(source)
        if result["status"] == "rejected":
            metrics.add_metric("ScoringFilesRejected", MetricUnit.Count, 1)
            logger.info("file cannot be scored", extra={"error": result["error"]})
        else:
            metrics.add_metric("ScoringRowsIn", MetricUnit.Count, result["rows"]["in"])
            logger.info("file prepared for scoring", extra={"rows": result["rows"]})
        return result
    if step == "finish":
        prepared = dict(event.get("prepared") or {})
        failure = prepared.pop("failure", None)
        logger.set_correlation_id(prepared.get("source", {}).get("key"))
        result = scoring.finish(prepared, failure)
        if result["status"] == "scored":
            metrics.add_metric("ScoringRowsScored", MetricUnit.Count, result["rows"]["scored"])
        else:
            metrics.add_metric("ScoringFilesFailed", MetricUnit.Count, 1)
        logger.info("scoring finished", extra={"result": result})
        return result
    raise BadEvent(f"unknown step {step!r}")
