"""Drift Lambda: run by an EventBridge schedule (every ``schedule_minutes``), or by hand.

Event: the scheduled event (every declared dataset), or ``{"dataset": "churn"}`` /
``{"datasets": [...]}`` to check some now (``{"window_minutes": N}`` widens the window).
Returns each dataset's window: status (computed, skipped and why), samples, PSI per feature.
"""

from __future__ import annotations

import dataclasses
import functools
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.drift.monitor import DriftMonitor
from lambdas.drift.settings import Settings
from lambdas.shared.observability import logger, metrics, tracer


@functools.cache
def _monitor() -> DriftMonitor:
    import boto3

    settings = Settings.from_env()
    return DriftMonitor(
        stage=settings.stage,
        prefix=settings.prefix,
        artifacts_bucket=settings.artifacts_bucket,
        s3=boto3.client("s3"),
        sagemaker=boto3.client("sagemaker"),
        cloudwatch=boto3.client("cloudwatch"),
        window_minutes=settings.window_minutes,
        min_samples=settings.min_samples,
        max_samples=settings.max_samples,
    )


def datasets_of(event: dict[str, Any], declared: tuple[str, ...]) -> list[str]:
    asked = event.get("datasets") or ([event["dataset"]] if event.get("dataset") else None)
    if asked is None:
        return list(declared)
    unknown = sorted(set(asked) - set(declared))
    if unknown:
        raise ValueError(f"not declared datasets: {', '.join(unknown)}")
    return list(asked)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext, monitor: Any = None) -> Any:
    monitor = monitor or _monitor()
    settings = Settings.from_env()
    if event.get("window_minutes"):
        monitor = dataclasses.replace(monitor, window_minutes=int(event["window_minutes"]))
    windows = monitor.run(datasets_of(event, settings.datasets), datetime.now(UTC))
    for window in windows:
        logger.info(
            f"drift of {window.dataset}: {window.status}",
            extra={"window": window.as_dict()},
        )
    return {"windows": [w.as_dict() for w in windows]}
