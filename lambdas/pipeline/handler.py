"""The training pipeline's functions. Each is deployed with ``PIPELINE_STEP`` set to one step:

- ``prepare``: run id, inputs, spec, champion, job settings; records the run (ledger);
- ``register``: ``{"action": "summarize"}`` reads the verdict, ``"register"`` registers the model;
- ``resolve``: what a deploy deploys, where, and whether it is a duplicate;
- ``record``: ``{"action": "run_end" | "run_stopped" | "deploy_end"}``: ledger and notification
  (a rollback found in the alarms' history rejects the challenger's package);
- ``scaling``: ``{"action": "release" | "apply"}``: Application Auto Scaling around a deploy;
- ``teardown``: the custom resource that removes what runs created when the stack is deleted.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.pipeline.settings import Settings
from lambdas.shared.observability import logger, metrics, tracer


@functools.cache
def _clients() -> dict[str, Any]:
    import boto3

    return {
        name: boto3.client(service)
        for name, service in {
            "s3": "s3",
            "sagemaker": "sagemaker",
            "dynamodb": "dynamodb",
            "sns": "sns",
            "sfn": "stepfunctions",
            "cloudwatch": "cloudwatch",
            "autoscaling": "application-autoscaling",
        }.items()
    }


def _prepare(event: dict[str, Any], settings: Settings, c: dict[str, Any]) -> Any:
    from lambdas.pipeline.prepare import prepare

    return prepare(event, settings, s3=c["s3"], sagemaker=c["sagemaker"], dynamodb=c["dynamodb"])


def _register(event: dict[str, Any], settings: Settings, c: dict[str, Any]) -> Any:
    from lambdas.pipeline.register import register, summarize

    if event.get("action") == "summarize":
        return summarize(event, s3=c["s3"])
    return register(event, settings, s3=c["s3"], sagemaker=c["sagemaker"], dynamodb=c["dynamodb"])


def _resolve(event: dict[str, Any], settings: Settings, c: dict[str, Any]) -> Any:
    from lambdas.pipeline.resolve import resolve

    return resolve(event, settings, sagemaker=c["sagemaker"], dynamodb=c["dynamodb"])


def _record(event: dict[str, Any], settings: Settings, c: dict[str, Any]) -> Any:
    from lambdas.pipeline.record import deploy_end, run_end, run_stopped

    if event.get("action") == "deploy_end":
        return deploy_end(
            event,
            settings,
            dynamodb=c["dynamodb"],
            sns=c["sns"],
            sagemaker=c["sagemaker"],
            cloudwatch=c["cloudwatch"],
        )
    if event.get("action") == "run_stopped":
        return run_stopped(event, settings, dynamodb=c["dynamodb"], sns=c["sns"], sfn=c["sfn"])
    return run_end(event, settings, dynamodb=c["dynamodb"], sns=c["sns"], sfn=c["sfn"])


def _scaling(event: dict[str, Any], settings: Settings, c: dict[str, Any]) -> Any:
    from lambdas.pipeline.scaling import apply, release

    if event.get("action") == "release":
        return release(event, autoscaling=c["autoscaling"])
    return apply(event, sagemaker=c["sagemaker"], autoscaling=c["autoscaling"])


def _teardown(event: dict[str, Any], settings: Settings, c: dict[str, Any]) -> Any:
    from lambdas.pipeline.teardown import on_event

    return on_event(event, sagemaker=c["sagemaker"], autoscaling=c["autoscaling"])


STEPS: dict[str, Callable[[dict[str, Any], Settings, dict[str, Any]], Any]] = {
    "prepare": _prepare,
    "register": _register,
    "resolve": _resolve,
    "record": _record,
    "scaling": _scaling,
    "teardown": _teardown,
}


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> Any:
    step = os.environ.get("PIPELINE_STEP", "")
    if step not in STEPS:
        raise ValueError(f"PIPELINE_STEP={step!r} is not one of {', '.join(STEPS)}")
    settings = Settings.from_env()
    logger.append_keys(step=step)
    return STEPS[step](event, settings, _clients())
