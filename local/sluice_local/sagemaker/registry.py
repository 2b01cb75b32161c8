"""The model registry as AWS runs it: package groups from CloudFormation, idempotent
CreateModelPackage (``ClientToken``), and the "SageMaker Model Package State Change" event.

AWS puts that event on the default EventBridge bus (source ``aws.sagemaker``) when a model
package is created and when its approval status changes; its detail is the package as
DescribeModelPackage shows it. Rules on it (deploy on approval) work locally the same way.
"""

from __future__ import annotations

import datetime
import json
import logging
from typing import Any, ClassVar

from localstack.aws.api import CommonServiceException, RequestContext, ServiceRequest
from localstack.aws.connect import connect_to
from localstack.services.cloudformation.resource_provider import (
    OperationStatus,
    ProgressEvent,
    ResourceProvider,
    ResourceRequest,
)
from localstack.services.moto import call_moto
from moto.sagemaker.models import sagemaker_backends

LOG = logging.getLogger(__name__)
EVENT_DETAIL_TYPE = "SageMaker Model Package State Change"

Properties = dict[str, Any]
#: (account, region, ClientToken) -> package ARN
_TOKENS: dict[tuple[str, str, str], str] = {}


def _plain(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def emit_state_change(account: str, region: str, arn: str) -> None:
    """Put the package's state change event on the default bus, as SageMaker does."""
    try:
        clients = connect_to(aws_access_key_id=account, region_name=region)
        package = _plain(clients.sagemaker.describe_model_package(ModelPackageName=arn))
        clients.events.put_events(
            Entries=[
                {
                    "Source": "aws.sagemaker",
                    "DetailType": EVENT_DETAIL_TYPE,
                    "Detail": json.dumps(package),
                    "Resources": [arn],
                }
            ]
        )
    except Exception:
        LOG.warning("could not emit the state change event of %s", arn, exc_info=True)


def _backend(context: RequestContext) -> Any:
    return sagemaker_backends[context.account_id][context.region]


def create_model_package(context: RequestContext, request: ServiceRequest) -> Any:
    token = request.get("ClientToken")
    key = (context.account_id, context.region, str(token))
    if token and key in _TOKENS:  # a retried call: the same package, no second version
        return {"ModelPackageArn": _TOKENS[key]}
    response = call_moto(context)
    arn = response["ModelPackageArn"]
    if token:
        _TOKENS[key] = arn
    emit_state_change(context.account_id, context.region, arn)
    return response


def update_model_package(context: RequestContext, request: ServiceRequest) -> Any:
    """AWS merges ``CustomerMetadataProperties`` into the package's; moto replaces them (and
    drops them when the request has none, e.g. a plain approval): keep AWS's behaviour. An
    approval status change is announced on EventBridge."""
    wanted = request["ModelPackageArn"]
    package = next(
        (
            p
            for p in _backend(context).model_packages.values()
            if wanted in (p.arn, p.model_package_name)
        ),
        None,
    )
    before = dict(getattr(package, "customer_metadata_properties", None) or {})
    status_before = getattr(package, "model_approval_status", None)
    response = call_moto(context)
    if package is not None:
        merged = {**before, **(request.get("CustomerMetadataProperties") or {})}
        for key in request.get("CustomerMetadataPropertiesToRemove") or []:
            merged.pop(key, None)
        package.customer_metadata_properties = merged or None
        status = request.get("ModelApprovalStatus")
        if status and status != status_before:
            emit_state_change(context.account_id, context.region, package.arn)
    return response


def delete_model_package(context: RequestContext, request: ServiceRequest) -> Any:
    """DeleteModelPackage (moto has none): the version goes, its number is never reused."""
    backend = _backend(context)
    name = request["ModelPackageName"]
    arn = backend.model_package_name_mapping.get(name, name)
    package = backend.model_packages.pop(arn, None)
    if package is None:
        raise CommonServiceException(
            "ValidationException", f"Model package {name} does not exist.", status_code=400
        )
    for key in [k for k, v in backend.model_package_name_mapping.items() if v == arn]:
        del backend.model_package_name_mapping[key]
    return {}


class ModelPackageGroupProvider(ResourceProvider[Properties]):
    """``AWS::SageMaker::ModelPackageGroup`` (LocalStack has none: it would skip it silently)."""

    TYPE = "AWS::SageMaker::ModelPackageGroup"
    SCHEMA: ClassVar[dict[str, Any]] = {
        "typeName": "AWS::SageMaker::ModelPackageGroup",
        "primaryIdentifier": ["/properties/ModelPackageGroupArn"],
        "readOnlyProperties": [
            "/properties/ModelPackageGroupArn",
            "/properties/CreationTime",
            "/properties/ModelPackageGroupStatus",
        ],
        "createOnlyProperties": ["/properties/ModelPackageGroupName"],
        "required": ["ModelPackageGroupName"],
        "properties": {
            "ModelPackageGroupName": {"type": "string"},
            "ModelPackageGroupDescription": {"type": "string"},
            "ModelPackageGroupArn": {"type": "string"},
            "Tags": {"type": "array"},
        },
    }

    def create(self, request: ResourceRequest[Properties]) -> ProgressEvent[Properties]:
        model = request.desired_state
        client = request.aws_client_factory.sagemaker
        extra: dict[str, Any] = {}
        if model.get("ModelPackageGroupDescription"):
            extra["ModelPackageGroupDescription"] = model["ModelPackageGroupDescription"]
        if model.get("Tags"):
            extra["Tags"] = model["Tags"]
        created = client.create_model_package_group(
            ModelPackageGroupName=model["ModelPackageGroupName"], **extra
        )
        model["ModelPackageGroupArn"] = created["ModelPackageGroupArn"]
        model["ModelPackageGroupStatus"] = "Completed"
        return ProgressEvent(status=OperationStatus.SUCCESS, resource_model=model)

    def read(self, request: ResourceRequest[Properties]) -> ProgressEvent[Properties]:
        raise NotImplementedError

    def update(self, request: ResourceRequest[Properties]) -> ProgressEvent[Properties]:
        model = {**(request.previous_state or {}), **request.desired_state}
        return ProgressEvent(status=OperationStatus.SUCCESS, resource_model=model)

    def delete(self, request: ResourceRequest[Properties]) -> ProgressEvent[Properties]:
        model = request.desired_state
        client = request.aws_client_factory.sagemaker
        name = model["ModelPackageGroupName"]
        packages = client.list_model_packages(ModelPackageGroupName=name).get(
            "ModelPackageSummaryList", []
        )
        if packages:  # as on AWS: a group with versions cannot be deleted
            return ProgressEvent(
                status=OperationStatus.FAILED,
                resource_model=model,
                message=f"Model Package Group {name} still holds {len(packages)} model packages",
            )
        try:
            client.delete_model_package_group(ModelPackageGroupName=name)
        except client.exceptions.ClientError as exc:  # already gone
            LOG.debug("model package group %s: %s", name, exc)
        return ProgressEvent(status=OperationStatus.SUCCESS, resource_model=model)
