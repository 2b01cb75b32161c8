"""The champion: the model package whose model the dataset's endpoint serves now, if any.

The deploy steps create the endpoint's model with ``SLUICE_MODEL_VERSION`` (the package's
version) in its environment and the package ARN as a tag, so the endpoint tells which package
it serves without a second source of truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

PACKAGE_TAG = "sluice:model-package"


@dataclass(frozen=True)
class Serving:
    endpoint: str
    status: str
    config: str
    model: str
    model_data: str
    version: str
    package_arn: str


def _not_found(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    return error.get("Code") in ("ValidationException", "ResourceNotFound") and (
        "not find" in error.get("Message", "").lower()
        or "not found" in error.get("Message", "").lower()
    )


def serving(sagemaker: Any, endpoint: str) -> Serving | None:
    """What the endpoint serves (its AllTraffic variant), or None without an endpoint."""
    try:
        described = sagemaker.describe_endpoint(EndpointName=endpoint)
    except ClientError as exc:
        if _not_found(exc):
            return None
        raise
    config = sagemaker.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
    variant = config["ProductionVariants"][0]
    model = sagemaker.describe_model(ModelName=variant["ModelName"])
    container = model.get("PrimaryContainer") or (model.get("Containers") or [{}])[0]
    tags = {
        t["Key"]: t["Value"]
        for t in sagemaker.list_tags(ResourceArn=model["ModelArn"]).get("Tags", [])
    }
    return Serving(
        endpoint=endpoint,
        status=described["EndpointStatus"],
        config=described["EndpointConfigName"],
        model=variant["ModelName"],
        model_data=container.get("ModelDataUrl", ""),
        version=(container.get("Environment") or {}).get("SLUICE_MODEL_VERSION", ""),
        package_arn=tags.get(PACKAGE_TAG, ""),
    )
