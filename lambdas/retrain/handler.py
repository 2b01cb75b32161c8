"""Retrain Lambda: the drift and quality alarms' SNS topic (asynchronous; retried, then its
dead-letter queue). Each message is one alarm state change (``policy.py`` decides)."""

from __future__ import annotations

import functools
import json
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.retrain.policy import Alarm, Retrainer
from lambdas.retrain.settings import Settings
from lambdas.shared.observability import logger, metrics, tracer


@functools.cache
def _retrainer() -> Retrainer:
    import boto3

    return Retrainer(
        Settings.from_env(), dynamodb=boto3.client("dynamodb"), sfn=boto3.client("stepfunctions")
    )


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext, retrainer: Any = None) -> Any:
    retrainer = retrainer or _retrainer()
    results = []
    for record in event.get("Records", []):
        sns = record["Sns"]
        alarm = Alarm.of(json.loads(sns["Message"]), sns["MessageId"])
        logger.set_correlation_id(alarm.name)
        result = retrainer.on_alarm(alarm)
        if result["status"] == "cooling_down":
            metrics.add_metric("RetrainSuppressed", MetricUnit.Count, 1)
            logger.info(
                f"{result['trigger']} alarm of {alarm.dataset} within the cool-down: no run",
                extra=result,
            )
        elif result["status"] == "started":
            metrics.add_metric("RetrainStarted", MetricUnit.Count, 1)
            logger.info(f"{result['trigger']} retraining of {alarm.dataset} started", extra=result)
        results.append(result)
    return {"results": results}
