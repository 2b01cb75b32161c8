"""Resolve a deploy: which package, which names, create or update, and whether to skip it.

The deploy steps start from three places with one input shape after this step: the training
pipeline (``{"package_arn", "source": "pipeline"}``), an approval in the model registry (the
"SageMaker Model Package State Change" event itself), or a person (``"source": "manual"``).
Approval events may arrive more than once: the first claims the run's ``approval_deploy`` in the
ledger, later ones are duplicates and deploy nothing.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from botocore.exceptions import ClientError

from datasets import names
from lambdas.pipeline.champion import PACKAGE_TAG
from lambdas.pipeline.ledger import Ledger
from lambdas.pipeline.register import SERVING_ENVIRONMENT
from lambdas.pipeline.settings import Settings

APPROVAL_EVENT = "SageMaker Model Package State Change"
#: how long to wait for a Failed endpoint to be deleted before it is created again
DELETE_WAIT_SECONDS = 240


class NotApproved(ValueError):
    """Only an Approved model package is deployed."""


def _source(event: dict[str, Any]) -> tuple[str, str]:
    if event.get("detail-type") == APPROVAL_EVENT:
        return "approval", event["detail"]["ModelPackageArn"]
    source = str(event.get("source") or "manual")
    return ("pipeline" if source == "pipeline" else "manual"), str(event["package_arn"])


def _endpoint_status(sagemaker: Any, endpoint: str) -> str | None:
    try:
        return str(sagemaker.describe_endpoint(EndpointName=endpoint)["EndpointStatus"])
    except ClientError as exc:
        if "not find" in exc.response.get("Error", {}).get("Message", "").lower():
            return None
        raise


def _replace_failed(sagemaker: Any, endpoint: str) -> None:
    """An endpoint whose creation failed cannot be updated: delete it, then create it again."""
    sagemaker.delete_endpoint(EndpointName=endpoint)
    deadline = time.monotonic() + DELETE_WAIT_SECONDS
    while _endpoint_status(sagemaker, endpoint) is not None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"endpoint {endpoint} is still being deleted")
        time.sleep(2)


def resolve(
    event: dict[str, Any], settings: Settings, *, sagemaker: Any, dynamodb: Any
) -> dict[str, Any]:
    request = event["input"]
    source, arn = _source(request)
    package = sagemaker.describe_model_package(ModelPackageName=arn)
    if package.get("ModelApprovalStatus") != "Approved":
        raise NotApproved(f"{arn} is {package.get('ModelApprovalStatus')}, not Approved")
    group = package["ModelPackageGroupName"]
    dataset = group.removeprefix(f"{settings.prefix}-")
    metadata = package.get("CustomerMetadataProperties") or {}
    run_id = metadata.get("run_id", "")
    version = int(package["ModelPackageVersion"])
    duplicate = False
    if source == "approval" and run_id:
        ledger = Ledger(settings.ledger_table, dynamodb)
        duplicate = not ledger.claim(dataset, run_id, "approval_deploy", event["execution"])
    endpoint = names.endpoint_name(settings.prefix, dataset)
    status = _endpoint_status(sagemaker, endpoint)
    if status == "Failed" and not duplicate:
        _replace_failed(sagemaker, endpoint)
        status = None
    suffix = f"v{version}-{hashlib.sha256(event['execution_name'].encode()).hexdigest()[:6]}"
    container = package["InferenceSpecification"]["Containers"][0]
    tags = [
        {"Key": names.TAG_STAGE, "Value": settings.stage},
        {"Key": names.TAG_DATASET, "Value": dataset},
        {"Key": names.TAG_RUN, "Value": run_id or "none"},
        {"Key": names.TAG_MANAGED_BY, "Value": names.MANAGED_BY_PIPELINE},
        {"Key": PACKAGE_TAG, "Value": arn},
    ]
    return {
        "deploy": {
            "source": source,
            "dataset": dataset,
            "run_id": run_id,
            "package_arn": arn,
            "version": version,
            "endpoint": endpoint,
            "exists": status is not None,
            "model": names.run_resource_name(settings.prefix, dataset, suffix, "model"),
            "config": names.run_resource_name(settings.prefix, dataset, suffix, "config"),
            "image": container["Image"],
            "model_data": container["ModelDataUrl"],
            "environment": {**SERVING_ENVIRONMENT, "SLUICE_MODEL_VERSION": str(version)},
            "instance_type": settings.endpoint_instance_type,
            "instance_count": settings.endpoint_instance_count,
            "tags": tags,
        },
        "duplicate": duplicate,
        "timing": {
            "poll_seconds": settings.poll_seconds,
            "backoff": list(settings.backoff_seconds),
        },
        "retry": {"count": 0, "wait": 0},
    }
