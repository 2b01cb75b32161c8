"""Application Auto Scaling (``application-autoscaling``): registrations and policies, recorded.

LocalStack answers 501 for this service; moto keeps the records here. For SageMaker endpoint
variants (``sagemaker:variant:DesiredInstanceCount``) it checks what AWS checks: the endpoint and
the variant exist and the variant is instance-based; a policy needs its target registered;
deregistering a target deletes its policies; deleting an endpoint deregisters its variants
(``endpoint_deleted``). Nothing scales locally: no alarms are created for target tracking and
the instance count only changes through UpdateEndpointWeightsAndCapacities.
"""

from __future__ import annotations

import re
from typing import Any

from localstack.aws.api import CommonServiceException, RequestContext, ServiceRequest
from localstack.aws.skeleton import DispatchTable, Skeleton
from localstack.aws.spec import load_service
from localstack.services.moto import call_moto
from localstack.services.plugins import Service
from moto.applicationautoscaling.models import applicationautoscaling_backends
from moto.sagemaker.models import sagemaker_backends

SERVICE = "application-autoscaling"
NAMESPACE = "sagemaker"
INSTANCE_COUNT = "sagemaker:variant:DesiredInstanceCount"
VARIANT_RESOURCE = re.compile(r"^endpoint/(?P<endpoint>[^/]+)/variant/(?P<variant>[^/]+)$")


class ValidationException(CommonServiceException):
    def __init__(self, message: str) -> None:
        super().__init__("ValidationException", message, status_code=400)


class ObjectNotFoundException(CommonServiceException):
    def __init__(self, message: str) -> None:
        super().__init__("ObjectNotFoundException", message, status_code=400)


def _backend(account: str, region: str) -> Any:
    return applicationautoscaling_backends[account][region]


def _moto(context: RequestContext, request: ServiceRequest) -> Any:
    return call_moto(context)


def _check_variant(context: RequestContext, request: ServiceRequest) -> None:
    resource, dimension = request.get("ResourceId") or "", request.get("ScalableDimension")
    match = VARIANT_RESOURCE.match(resource)
    if match is None:
        raise ValidationException(
            f"Unsupported resource ID {resource!r} for namespace sagemaker: expected "
            "endpoint/<endpoint name>/variant/<variant name>"
        )
    endpoints = sagemaker_backends[context.account_id][context.region].endpoints
    endpoint = endpoints.get(match["endpoint"])
    if endpoint is None:
        raise ValidationException(f"The endpoint {match['endpoint']} does not exist.")
    variant = next(
        (v for v in endpoint.production_variants or [] if v.get("VariantName") == match["variant"]),
        None,
    )
    if variant is None:
        raise ValidationException(
            f"The variant {match['variant']} does not exist on endpoint {match['endpoint']}."
        )
    if dimension == INSTANCE_COUNT and variant.get("DesiredInstanceCount") is None:
        raise ValidationException(
            f"The variant {match['variant']} of endpoint {match['endpoint']} is serverless: "
            f"{INSTANCE_COUNT} does not apply to it."
        )


def register_scalable_target(context: RequestContext, request: ServiceRequest) -> Any:
    if request.get("ServiceNamespace") == NAMESPACE:
        _check_variant(context, request)
    return call_moto(context)


def put_scaling_policy(context: RequestContext, request: ServiceRequest) -> Any:
    namespace, resource = request.get("ServiceNamespace"), request.get("ResourceId")
    dimension = request.get("ScalableDimension")
    targets = _backend(context.account_id, context.region).targets
    if resource not in targets.get(dimension, {}):
        raise ObjectNotFoundException(
            f"No scalable target registered for service namespace: {namespace}, resource ID: "
            f"{resource}, scalable dimension: {dimension}"
        )
    return call_moto(context)


def deregister_scalable_target(context: RequestContext, request: ServiceRequest) -> Any:
    response = call_moto(context)
    _delete_policies(
        context.account_id, context.region, request["ResourceId"], request["ScalableDimension"]
    )
    return response


def _delete_policies(account: str, region: str, resource: str, dimension: str) -> None:
    """AWS deletes a target's scaling policies with it."""
    policies = _backend(account, region).policies
    for key, policy in list(policies.items()):
        if policy.resource_id == resource and policy.scalable_dimension == dimension:
            del policies[key]


def scaled_variants(account: str, region: str, endpoint: str) -> set[str]:
    """Variants of ``endpoint`` registered as scalable targets."""
    found = set()
    for targets in _backend(account, region).targets.values():
        for resource in targets:
            match = VARIANT_RESOURCE.match(resource)
            if match and match["endpoint"] == endpoint:
                found.add(match["variant"])
    return found


def endpoint_deleted(account: str, region: str, endpoint: str) -> None:
    """Deleting an endpoint deregisters its variants (AWS does it without telling)."""
    backend = _backend(account, region)
    for dimension, targets in backend.targets.items():
        for resource in list(targets):
            match = VARIANT_RESOURCE.match(resource)
            if match and match["endpoint"] == endpoint:
                del targets[resource]
                _delete_policies(account, region, resource, dimension)


def create_service() -> Service:
    model = load_service(SERVICE)
    table: DispatchTable = dict.fromkeys(model.operation_names, _moto)
    table.update(
        {
            "RegisterScalableTarget": register_scalable_target,
            "PutScalingPolicy": put_scaling_policy,
            "DeregisterScalableTarget": deregister_scalable_target,
        }
    )
    return Service(SERVICE, skeleton=Skeleton(model, table))
