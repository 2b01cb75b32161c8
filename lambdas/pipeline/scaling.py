"""Autoscaling of a real-time dataset endpoint: Application Auto Scaling around each deploy.

A variant can only be registered once its endpoint exists, so this is not CloudFormation's: the
deploy steps call it.

- ``release`` (before an update that changes the instance type): deregister the variant, since
  SageMaker refuses to change the instance type of a variant registered for autoscaling.
- ``apply`` (after every deploy, whatever its outcome): the endpoint as it now serves, if it is
  in service and real-time, is registered with the dataset's bounds (RegisterScalableTarget
  updates an existing registration) and has its target tracking policy on invocations per
  instance. After a first deploy this registers it; after an update (rolled back or not) it keeps
  it, or registers it again after a release. Serverless endpoints have no instances to scale.

Teardown deregisters what is left (``teardown.py``).
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

NAMESPACE = "sagemaker"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"
METRIC = "SageMakerVariantInvocationsPerInstance"


def resource_id(endpoint: str, variant: str) -> str:
    return f"endpoint/{endpoint}/variant/{variant}"


def policy_name(endpoint: str) -> str:
    return f"{endpoint}-invocations-per-instance"


def registered(autoscaling: Any, resource: str) -> dict[str, Any] | None:
    targets = autoscaling.describe_scalable_targets(
        ServiceNamespace=NAMESPACE, ResourceIds=[resource], ScalableDimension=DIMENSION
    )["ScalableTargets"]
    return dict(targets[0]) if targets else None


def deregister(autoscaling: Any, resource: str) -> bool:
    """Deregister ``resource`` (its policies go with it); False when it was not registered."""
    if registered(autoscaling, resource) is None:
        return False
    autoscaling.deregister_scalable_target(
        ServiceNamespace=NAMESPACE, ResourceId=resource, ScalableDimension=DIMENSION
    )
    return True


def release(event: dict[str, Any], *, autoscaling: Any) -> dict[str, Any]:
    deploy = event["deploy"]
    resource = resource_id(deploy["endpoint"], deploy["variant"]["VariantName"])
    return {"released": deregister(autoscaling, resource), "resource": resource}


def _serving_variant(sagemaker: Any, endpoint: str) -> dict[str, Any] | None:
    """The endpoint's variant when it is in service and real-time, else None."""
    try:
        described = sagemaker.describe_endpoint(EndpointName=endpoint)
    except ClientError:
        return None
    if described["EndpointStatus"] != "InService":
        return None
    for variant in described.get("ProductionVariants") or []:
        if "CurrentServerlessConfig" not in variant and "DesiredServerlessConfig" not in variant:
            return dict(variant)
    return None


def apply(event: dict[str, Any], *, sagemaker: Any, autoscaling: Any) -> dict[str, Any]:
    deploy = event["deploy"]
    bounds = deploy.get("scaling")
    endpoint = deploy["endpoint"]
    variant = _serving_variant(sagemaker, endpoint)
    if not bounds or variant is None:
        why = "serverless" if not bounds else "the endpoint is not a real-time one in service"
        return {"registered": False, "why": why}
    resource = resource_id(endpoint, variant["VariantName"])
    autoscaling.register_scalable_target(
        ServiceNamespace=NAMESPACE,
        ResourceId=resource,
        ScalableDimension=DIMENSION,
        MinCapacity=int(bounds["min"]),
        MaxCapacity=int(bounds["max"]),
    )
    autoscaling.put_scaling_policy(
        PolicyName=policy_name(endpoint),
        ServiceNamespace=NAMESPACE,
        ResourceId=resource,
        ScalableDimension=DIMENSION,
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            # invocations per instance per minute, averaged over the variant's instances
            "TargetValue": float(bounds["target"]),
            "PredefinedMetricSpecification": {"PredefinedMetricType": METRIC},
            "ScaleInCooldown": int(bounds["scale_in_cooldown"]),
            "ScaleOutCooldown": int(bounds["scale_out_cooldown"]),
        },
    )
    return {
        "registered": True,
        "resource": resource,
        "min": int(bounds["min"]),
        "max": int(bounds["max"]),
        "target": int(bounds["target"]),
        "policy": policy_name(endpoint),
    }
