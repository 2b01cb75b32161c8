"""AWS WAF (``wafv2``): web ACLs and their associations, recorded; nothing is filtered.

LocalStack 2026.3.0 has no wafv2 service and no CloudFormation provider for
``AWS::WAFv2::WebACLAssociation`` (the app creates one when a stage sets ``waf_web_acl_arn``).
moto keeps the records here:

- the ``wafv2`` API (``create_service``): CreateWebACL, GetWebACL, AssociateWebACL,
  GetWebACLForResource, ... as moto answers them;
- ``AWS::WAFv2::WebACLAssociation`` (``WebACLAssociationProvider``): AssociateWebACL on create,
  DisassociateWebACL on delete. A web ACL that does not exist fails the resource
  (``WAFNonexistentItemException``), and so does a CloudFront (global) web ACL for a regional
  resource, as on AWS. Requests reach API Gateway whatever the ACL's rules say.
"""

from __future__ import annotations

from typing import Any, ClassVar

from localstack.aws.api import RequestContext, ServiceRequest
from localstack.aws.skeleton import DispatchTable, Skeleton
from localstack.aws.spec import load_service
from localstack.services.cloudformation.resource_provider import (
    OperationStatus,
    ProgressEvent,
    ResourceProvider,
    ResourceRequest,
)
from localstack.services.moto import call_moto
from localstack.services.plugins import Service

SERVICE = "wafv2"
Properties = dict[str, Any]


def _moto(context: RequestContext, request: ServiceRequest) -> Any:
    return call_moto(context)


def create_service() -> Service:
    model = load_service(SERVICE)
    table: DispatchTable = dict.fromkeys(model.operation_names, _moto)
    return Service(SERVICE, skeleton=Skeleton(model, table))


class WebACLAssociationProvider(ResourceProvider[Properties]):
    """``AWS::WAFv2::WebACLAssociation``: a regional web ACL in front of a resource (an API
    Gateway stage, a load balancer, ...). Both properties replace the association when they
    change. The physical id is ``<resource ARN>|<web ACL ARN>``, the way Cloud Control writes a
    composite identifier."""

    TYPE = "AWS::WAFv2::WebACLAssociation"
    SCHEMA: ClassVar[dict[str, Any]] = {
        "typeName": TYPE,
        "primaryIdentifier": ["/properties/Id"],
        "readOnlyProperties": ["/properties/Id"],
        "createOnlyProperties": ["/properties/ResourceArn", "/properties/WebACLArn"],
        "required": ["ResourceArn", "WebACLArn"],
    }

    def create(self, request: ResourceRequest[Properties]) -> ProgressEvent[Properties]:
        model = request.desired_state
        web_acl, resource = model["WebACLArn"], model["ResourceArn"]
        if ":global/webacl/" in web_acl:
            return ProgressEvent(
                status=OperationStatus.FAILED,
                resource_model=model,
                error_code="InvalidRequest",
                message=f"WAFInvalidParameterException: {web_acl} is a CloudFront (global) web "
                f"ACL; {resource} needs a regional one",
            )
        wafv2 = request.aws_client_factory.wafv2
        try:
            wafv2.associate_web_acl(WebACLArn=web_acl, ResourceArn=resource)
        except wafv2.exceptions.WAFNonexistentItemException as exc:
            return ProgressEvent(
                status=OperationStatus.FAILED,
                resource_model=model,
                error_code="NotFound",
                message=f"WAFNonexistentItemException: no web ACL {web_acl}: {exc}",
            )
        model["Id"] = f"{resource}|{web_acl}"
        return ProgressEvent(status=OperationStatus.SUCCESS, resource_model=model)

    def delete(self, request: ResourceRequest[Properties]) -> ProgressEvent[Properties]:
        model = request.previous_state
        if model.get("ResourceArn"):
            request.aws_client_factory.wafv2.disassociate_web_acl(ResourceArn=model["ResourceArn"])
        return ProgressEvent(status=OperationStatus.SUCCESS, resource_model=model)

    def update(self, request: ResourceRequest[Properties]) -> ProgressEvent[Properties]:
        # every property is create-only: CloudFormation replaces the resource instead
        model = request.desired_state
        model["Id"] = request.previous_state.get("Id")
        return ProgressEvent(status=OperationStatus.SUCCESS, resource_model=model)
