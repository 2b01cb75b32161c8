"""Feedback Lambda, two ways in:

- an S3 "Object Created" event (EventBridge, asynchronous) of a label file under
  ``<dataset>/_feedback/``: join it with the captured predictions (``join.py``);
- the monitoring schedule's event (or ``{"action": "quality"}``, optionally with
  ``"dataset"``): model quality of every declared dataset's serving model (``quality.py``).
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from datasets import names
from datasets.spec import load_spec, spec_path
from lambdas.feedback.join import FeedbackJoin
from lambdas.feedback.quality import QualityMonitor
from lambdas.feedback.settings import Settings
from lambdas.shared.observability import logger, metrics, tracer


class NotALabelFile(ValueError):
    """The object is not under a declared dataset's ``_feedback/`` prefix."""


@functools.cache
def _clients() -> dict[str, Any]:
    import boto3

    return {name: boto3.client(name) for name in ("s3", "sagemaker", "cloudwatch", "sns")}


def on_label_file(event: dict[str, Any], settings: Settings, c: dict[str, Any]) -> Any:
    detail = event["detail"]
    key = detail["object"]["key"]
    version = detail["object"].get("version-id")
    dataset = key.split("/", 1)[0]
    path = spec_path(dataset)
    if names.reserved_prefix(key) != names.FEEDBACK_PREFIX or path is None:
        raise NotALabelFile(f"{key} is not a label file of a declared dataset")
    logger.set_correlation_id(key)
    joiner = FeedbackJoin(
        stage=settings.stage,
        raw_bucket=settings.raw_bucket,
        artifacts_bucket=settings.artifacts_bucket,
        s3=c["s3"],
        cloudwatch=c["cloudwatch"],
        sns=c["sns"],
        topic_arn=settings.topic_arn,
        join_days=settings.join_days,
    )
    outcome = joiner.join(load_spec(path), key, version, datetime.now(UTC))
    summary = {k: v for k, v in outcome.as_dict().items() if k not in ("unmatched", "invalid")}
    logger.info("feedback joined", extra={"summary": summary})
    return summary


def on_schedule(event: dict[str, Any], settings: Settings, c: dict[str, Any]) -> Any:
    datasets = [event["dataset"]] if event.get("dataset") else list(settings.datasets)
    specs = []
    for dataset in datasets:
        path = spec_path(dataset)
        if path is None or dataset not in settings.datasets:
            raise ValueError(f"{dataset!r} is not a declared dataset")
        specs.append(load_spec(path))
    monitor = QualityMonitor(
        stage=settings.stage,
        prefix=settings.prefix,
        artifacts_bucket=settings.artifacts_bucket,
        s3=c["s3"],
        sagemaker=c["sagemaker"],
        cloudwatch=c["cloudwatch"],
        window_days=settings.window_days,
        min_samples=settings.min_samples,
    )
    results = monitor.run(specs, datetime.now(UTC))
    for quality in results:
        logger.info(f"quality of {quality.dataset}: {quality.status}", extra=quality.as_dict())
    return {"quality": [q.as_dict() for q in results]}


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext, clients: Any = None) -> Any:
    settings = Settings.from_env()
    c = clients or _clients()
    if event.get("detail-type") == "Object Created":
        return on_label_file(event, settings, c)
    return on_schedule(event, settings, c)
