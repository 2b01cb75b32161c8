"""Resolve a deploy: which package, which names, create or update, how, and whether to skip it.

The deploy steps start from three places with one input shape after this step: the training
pipeline (``{"package_arn", "source": "pipeline"}``), an approval in the model registry (the
"SageMaker Model Package State Change" event itself), or a person (``"source": "manual"``,
``make deploy-model``). Approval events may arrive more than once: the first claims the run's
``approval_deploy`` in the ledger, later ones are duplicates and deploy nothing.

How it deploys comes from the dataset's endpoint settings (stage config, ``infra/rollout.py``):
the production variant (real-time: instance type and count; serverless: memory and concurrency),
the ``DeploymentConfig`` of an update (blue/green canary, baking, rollback alarms) and the
autoscaling bounds. Against the endpoint as it is now:

- an update of a real-time endpoint keeps its scaled-out instance count (the current count,
  within the configured bounds, becomes the new config's initial count);
- an update that changes the instance type must release the variant from Application Auto
  Scaling first (``release_scaling``; SageMaker refuses it otherwise) and register it again after;
- a real-time endpoint cannot become serverless by an update (SageMaker does not support it):
  refused here, before anything is created, with what to do instead.
"""

from __future__ import annotations

import copy
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


class EndpointTypeChange(ValueError):
    """The stage now configures a serverless endpoint where a real-time one serves."""


def _source(event: dict[str, Any]) -> tuple[str, str]:
    if event.get("detail-type") == APPROVAL_EVENT:
        return "approval", event["detail"]["ModelPackageArn"]
    source = str(event.get("source") or "manual")
    return ("pipeline" if source == "pipeline" else "manual"), str(event["package_arn"])


def _describe_endpoint(sagemaker: Any, endpoint: str) -> dict[str, Any] | None:
    try:
        return dict(sagemaker.describe_endpoint(EndpointName=endpoint))
    except ClientError as exc:
        if "not find" in exc.response.get("Error", {}).get("Message", "").lower():
            return None
        raise


def _replace_failed(sagemaker: Any, endpoint: str) -> None:
    """An endpoint whose creation failed cannot be updated: delete it, then create it again."""
    sagemaker.delete_endpoint(EndpointName=endpoint)
    deadline = time.monotonic() + DELETE_WAIT_SECONDS
    while _describe_endpoint(sagemaker, endpoint) is not None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"endpoint {endpoint} is still being deleted")
        time.sleep(2)


def serving_now(sagemaker: Any, described: dict[str, Any]) -> dict[str, Any]:
    """What the endpoint serves now: its config, model, model version, kind, instance type and
    (real-time) current instance count."""
    config_name = described["EndpointConfigName"]
    config = sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
    variant = config["ProductionVariants"][0]
    summary: dict[str, Any] = next(
        (
            v
            for v in described.get("ProductionVariants") or []
            if v.get("VariantName") == variant["VariantName"]
        ),
        {},
    )
    version = ""
    try:
        model = sagemaker.describe_model(ModelName=variant["ModelName"])
        version = (
            (model.get("PrimaryContainer") or {})
            .get("Environment", {})
            .get("SLUICE_MODEL_VERSION", "")
        )
    except ClientError:
        pass  # a model deleted by hand: the version is unknown, the rest still holds
    serverless = "ServerlessConfig" in variant
    count = summary.get("DesiredInstanceCount") or summary.get("CurrentInstanceCount")
    return {
        "config": config_name,
        "model": variant["ModelName"],
        "version": str(version),
        "kind": "serverless" if serverless else "real_time",
        "instance_type": variant.get("InstanceType", ""),
        "instance_count": None if serverless else int(count or variant["InitialInstanceCount"]),
    }


def type_change_message(endpoint: str, dataset: str) -> str:
    return (
        f"endpoint {endpoint} is real-time and the stage now configures dataset {dataset!r} as "
        "serverless: SageMaker cannot update a real-time endpoint to serverless, so nothing was "
        "deployed and the current model keeps serving. To switch, delete the endpoint (aws "
        f"sagemaker delete-endpoint --endpoint-name {endpoint}; predictions fail until it is "
        f"back), then deploy again: make deploy-model DATASET={dataset} VERSION=<version>, or "
        "the next training run creates it as serverless."
    )


def plan_variant(
    endpoint_settings: dict[str, Any], current: dict[str, Any] | None, model: str
) -> tuple[dict[str, Any], bool]:
    """The new config's production variant, and whether the update changes the instance type
    of a real-time endpoint (autoscaling must be released around it)."""
    variant = {**copy.deepcopy(endpoint_settings["variant"]), "ModelName": model}
    scaling = endpoint_settings.get("scaling")
    if (
        current is None
        or current["kind"] != "real_time"
        or endpoint_settings["kind"] != "real_time"
        or scaling is None
    ):
        return variant, False
    if current["instance_type"] != variant["InstanceType"]:
        return variant, True
    # keep what autoscaling scaled out to (an update would otherwise shrink to the initial count)
    running = int(current["instance_count"] or variant["InitialInstanceCount"])
    variant["InitialInstanceCount"] = max(scaling["min"], min(scaling["max"], running))
    return variant, False


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
    endpoint_settings = settings.endpoint(dataset)
    metadata = package.get("CustomerMetadataProperties") or {}
    run_id = metadata.get("run_id", "")
    version = int(package["ModelPackageVersion"])
    duplicate = False
    if source == "approval" and run_id:
        ledger = Ledger(settings.ledger_table, dynamodb)
        duplicate = not ledger.claim(dataset, run_id, "approval_deploy", event["execution"])
    endpoint = names.endpoint_name(settings.prefix, dataset)
    described = _describe_endpoint(sagemaker, endpoint)
    if described is not None and described["EndpointStatus"] == "Failed" and not duplicate:
        _replace_failed(sagemaker, endpoint)
        described = None
    current = serving_now(sagemaker, described) if described is not None else None
    if current and current["kind"] == "real_time" and endpoint_settings["kind"] == "serverless":
        raise EndpointTypeChange(type_change_message(endpoint, dataset))
    suffix = f"v{version}-{hashlib.sha256(event['execution_name'].encode()).hexdigest()[:6]}"
    model = names.run_resource_name(settings.prefix, dataset, suffix, "model")
    variant, release_scaling = plan_variant(endpoint_settings, current, model)
    container = package["InferenceSpecification"]["Containers"][0]
    tags = [
        {"Key": names.TAG_STAGE, "Value": settings.stage},
        {"Key": names.TAG_DATASET, "Value": dataset},
        {"Key": names.TAG_RUN, "Value": run_id or "none"},
        {"Key": names.TAG_MANAGED_BY, "Value": names.MANAGED_BY_PIPELINE},
        {"Key": PACKAGE_TAG, "Value": arn},
    ]
    serverless = endpoint_settings["kind"] == "serverless"
    return {
        "deploy": {
            "source": source,
            "by": str(request.get("by") or ""),
            "dataset": dataset,
            "run_id": run_id,
            "package_arn": arn,
            "version": version,
            "endpoint": endpoint,
            "exists": current is not None,
            "previous": current,
            "model": model,
            "config": names.run_resource_name(settings.prefix, dataset, suffix, "config"),
            "image": container["Image"],
            "model_data": container["ModelDataUrl"],
            "environment": {**SERVING_ENVIRONMENT, "SLUICE_MODEL_VERSION": str(version)},
            "kind": endpoint_settings["kind"],
            # SageMaker Serverless Inference supports neither network isolation nor a VPC
            "network_isolation": not serverless,
            "variant": variant,
            "deployment_config": endpoint_settings["deployment"],
            "scaling": endpoint_settings.get("scaling"),
            "release_scaling": release_scaling,
            "tags": tags,
        },
        "duplicate": duplicate,
        "timing": {
            "poll_seconds": settings.poll_seconds,
            "backoff": list(settings.backoff_seconds),
        },
        "retry": {"count": 0, "wait": 0},
    }
