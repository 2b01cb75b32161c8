"""Teardown (a CloudFormation custom resource): on stack deletion, remove what runs created.

Endpoints, endpoint configs and models are created by the deploy steps, not by CloudFormation,
so ``cdk destroy`` would leave them running (and billing). They carry the stage's tags; this
finds them by tag and deletes them, each endpoint's Application Auto Scaling registration (and
so its scaling policy) first. Where the stage does not retain data (dev), the model packages of
the stage's groups go too, so the groups themselves can be deleted.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from datasets import names
from lambdas.pipeline.scaling import deregister, resource_id
from lambdas.shared.observability import logger


def _tags(sagemaker: Any, arn: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in sagemaker.list_tags(ResourceArn=arn).get("Tags", [])}


def _ours(sagemaker: Any, arn: str, stage: str) -> bool:
    tags = _tags(sagemaker, arn)
    return tags.get(names.TAG_STAGE) == stage and tags.get(names.TAG_MANAGED_BY) == (
        names.MANAGED_BY_PIPELINE
    )


def _release_scaling(sagemaker: Any, autoscaling: Any, endpoint: str) -> int:
    """Deregister the endpoint's variants from Application Auto Scaling (before it goes)."""
    described = sagemaker.describe_endpoint(EndpointName=endpoint)
    return sum(
        deregister(autoscaling, resource_id(endpoint, variant["VariantName"]))
        for variant in described.get("ProductionVariants") or []
    )


def remove_created(
    sagemaker: Any, autoscaling: Any, *, stage: str, prefix: str, groups: list[str]
) -> dict[str, int]:
    """Delete the stage's pipeline-made endpoints (their autoscaling first), configs, models
    (and packages of ``groups``)."""
    removed = {
        "scalable_targets": 0,
        "endpoints": 0,
        "endpoint_configs": 0,
        "models": 0,
        "model_packages": 0,
    }
    kinds = (
        ("endpoints", "list_endpoints", "Endpoints", "EndpointArn", "EndpointName",
         "delete_endpoint"),
        ("endpoint_configs", "list_endpoint_configs", "EndpointConfigs", "EndpointConfigArn",
         "EndpointConfigName", "delete_endpoint_config"),
        ("models", "list_models", "Models", "ModelArn", "ModelName", "delete_model"),
    )  # fmt: skip
    for kind, lister, key, arn_key, name_key, deleter in kinds:
        for page in sagemaker.get_paginator(lister).paginate(NameContains=prefix):
            for item in page.get(key, []):
                if _ours(sagemaker, item[arn_key], stage):
                    if kind == "endpoints":
                        removed["scalable_targets"] += _release_scaling(
                            sagemaker, autoscaling, item[name_key]
                        )
                    getattr(sagemaker, deleter)(**{name_key: item[name_key]})
                    removed[kind] += 1
    for group in groups:
        for page in sagemaker.get_paginator("list_model_packages").paginate(
            ModelPackageGroupName=group
        ):
            for package in page.get("ModelPackageSummaryList", []):
                sagemaker.delete_model_package(ModelPackageName=package["ModelPackageArn"])
                removed["model_packages"] += 1
    return removed


def respond(event: dict[str, Any], status: str, reason: str, data: dict[str, Any]) -> None:
    body = json.dumps(
        {
            "Status": status,
            "Reason": reason[:1000],
            "PhysicalResourceId": event.get("PhysicalResourceId") or "sluice-pipeline-teardown",
            "StackId": event["StackId"],
            "RequestId": event["RequestId"],
            "LogicalResourceId": event["LogicalResourceId"],
            "Data": data,
        }
    ).encode()
    request = urllib.request.Request(  # noqa: S310 (CloudFormation's pre-signed https URL)
        event["ResponseURL"], data=body, method="PUT", headers={"Content-Type": ""}
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (CloudFormation's URL)
        response.read()


def on_event(event: dict[str, Any], *, sagemaker: Any, autoscaling: Any) -> None:
    props = event.get("ResourceProperties") or {}
    try:
        data: dict[str, Any] = {}
        if event["RequestType"] == "Delete":
            groups = json.loads(props.get("PackageGroups") or "[]")
            data = remove_created(
                sagemaker, autoscaling, stage=props["Stage"], prefix=props["Prefix"], groups=groups
            )
            logger.info("removed what the pipeline created", extra={"removed": data})
        respond(event, "SUCCESS", "ok", {k: str(v) for k, v in data.items()})
    except Exception as exc:
        logger.exception("teardown failed")
        respond(event, "FAILED", f"{type(exc).__name__}: {exc}", {})
