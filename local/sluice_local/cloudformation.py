"""CloudFormation that fails loudly, as AWS does, and the resource types LocalStack lacks.

``start.sh`` sets ``CFN_IGNORE_UNSUPPORTED_RESOURCE_TYPES=0``: a type with no resource provider
then fails its stack instead of being skipped with CREATE_COMPLETE. Two things make that usable:

- LocalStack's change-set check asks its service catalog whether a type is supported. Offline
  (host mode, no remote catalog) the catalog knows nothing and rejects every type, even
  ``AWS::S3::Bucket``. ``install_support_check`` makes the check ask what the deploy itself
  uses: is a resource provider registered for the type (LocalStack's or ours; ``Custom::*``
  resolve to the custom-resource provider, as in LocalStack's executor).
- providers for the types the app uses that LocalStack 2026.3.0 has none for:
  ``AWS::EC2::SecurityGroupIngress`` (the interface endpoints admit each workload's group)
  and ``AWS::EC2::FlowLog`` (the created VPC logs rejected traffic), both through the EC2 API.

``install_log_group_properties`` also applies what LocalStack's ``AWS::Logs::LogGroup`` provider
drops (``KmsKeyId``, ``RetentionInDays``), so a local group is encrypted and expires as its
template says (``CreateLogGroup`` with the key, then ``PutRetentionPolicy``).
"""

from __future__ import annotations

import contextlib
from typing import Any, ClassVar

from localstack.services.cloudformation.resource_provider import (
    OperationStatus,
    ProgressEvent,
    ResourceProvider,
    ResourceRequest,
)

Properties = dict[str, Any]


def _has_provider(resource_type: str) -> bool:
    from localstack.services.cloudformation.resource_provider import ResourceProviderExecutor

    return ResourceProviderExecutor.try_load_resource_provider(resource_type) is not None


def install_support_check() -> None:
    from localstack.services.cloudformation.engine.v2 import change_set_resource_support_checker
    from localstack.utils.catalog.common import (
        CloudFormationResourcesSupportAtRuntime,
        CloudFormationResourcesSupportInLatest,
    )

    checker = change_set_resource_support_checker.ChangeSetResourceSupportChecker
    if getattr(checker._resource_support_status, "_sluice", False):
        return

    def _resource_support_status(self: Any, resource_type: str) -> Any:
        if _has_provider(resource_type):
            return CloudFormationResourcesSupportAtRuntime.AVAILABLE
        return CloudFormationResourcesSupportInLatest.NOT_SUPPORTED

    _resource_support_status._sluice = True  # type: ignore[attr-defined]
    checker._resource_support_status = _resource_support_status  # type: ignore[method-assign]


def install_log_group_properties() -> None:
    from localstack.services.cloudformation import provider_utils as util
    from localstack.services.logs.resource_providers.aws_logs_loggroup import (
        LogsLogGroupProvider,
    )

    if getattr(LogsLogGroupProvider.create, "_sluice", False):
        return

    def create(self: Any, request: ResourceRequest[Properties]) -> ProgressEvent[Properties]:
        model = request.desired_state
        logs = request.aws_client_factory.logs
        if not model.get("LogGroupName"):
            model["LogGroupName"] = util.generate_default_name(
                stack_name=request.stack_name, logical_resource_id=request.logical_resource_id
            )
        name = model["LogGroupName"]
        extra = {"kmsKeyId": model["KmsKeyId"]} if model.get("KmsKeyId") else {}
        logs.create_log_group(logGroupName=name, **extra)
        if model.get("RetentionInDays"):
            logs.put_retention_policy(
                logGroupName=name, retentionInDays=int(model["RetentionInDays"])
            )
        described = logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
        model["Arn"] = next(g["arn"] for g in described if g["logGroupName"] == name)
        return ProgressEvent(
            status=OperationStatus.SUCCESS,
            resource_model=model,
            custom_context=request.custom_context,
        )

    create._sluice = True  # type: ignore[attr-defined]
    LogsLogGroupProvider.create = create  # type: ignore[method-assign]


def install_alarm_update() -> None:
    """``AWS::CloudWatch::Alarm`` updates: LocalStack's provider raises NotImplementedError and
    the stack update still completes, leaving the alarm as it was (a changed period or
    threshold silently not applied). An update is a PutMetricAlarm of the whole new
    configuration under the same name, as CloudFormation does (a new name replaces it)."""
    from localstack.services.cloudwatch.resource_providers.aws_cloudwatch_alarm import (
        CloudWatchAlarmProvider,
    )

    if getattr(CloudWatchAlarmProvider.update, "_sluice", False):
        return

    def update(self: Any, request: ResourceRequest[Any]) -> ProgressEvent[Any]:
        model = request.desired_state
        model["AlarmName"] = model.get("AlarmName") or request.previous_state.get("AlarmName")
        return self.create(request)  # PutMetricAlarm overwrites the alarm's configuration

    update._sluice = True  # type: ignore[attr-defined]
    CloudWatchAlarmProvider.update = update  # type: ignore[method-assign]


def _tags(model: Properties, resource_type: str) -> list[dict[str, Any]]:
    tags = model.get("Tags") or []
    return [{"ResourceType": resource_type, "Tags": tags}] if tags else []


class SecurityGroupIngressProvider(ResourceProvider[Properties]):
    """``AWS::EC2::SecurityGroupIngress``: one rule added to a group (its Authorize call).

    The physical id is the rule's id, as on AWS; delete revokes exactly that rule.
    """

    TYPE = "AWS::EC2::SecurityGroupIngress"
    SCHEMA: ClassVar[dict[str, Any]] = {
        "typeName": TYPE,
        "primaryIdentifier": ["/properties/Id"],
        "readOnlyProperties": ["/properties/Id"],
        "createOnlyProperties": [
            "/properties/GroupId", "/properties/IpProtocol", "/properties/FromPort",
            "/properties/ToPort", "/properties/CidrIp", "/properties/CidrIpv6",
            "/properties/SourceSecurityGroupId", "/properties/SourcePrefixListId",
        ],
    }  # fmt: skip

    @staticmethod
    def _permission(model: Properties) -> dict[str, Any]:
        permission: dict[str, Any] = {"IpProtocol": str(model["IpProtocol"])}
        for key in ("FromPort", "ToPort"):
            if model.get(key) is not None:
                permission[key] = int(model[key])
        description = {"Description": model["Description"]} if model.get("Description") else {}
        if model.get("CidrIp"):
            permission["IpRanges"] = [{"CidrIp": model["CidrIp"], **description}]
        if model.get("CidrIpv6"):
            permission["Ipv6Ranges"] = [{"CidrIpv6": model["CidrIpv6"], **description}]
        if model.get("SourceSecurityGroupId"):
            permission["UserIdGroupPairs"] = [
                {"GroupId": model["SourceSecurityGroupId"], **description}
            ]
        if model.get("SourcePrefixListId"):
            permission["PrefixListIds"] = [
                {"PrefixListId": model["SourcePrefixListId"], **description}
            ]
        return permission

    def create(self, request: ResourceRequest[Properties]) -> ProgressEvent[Properties]:
        model = request.desired_state
        ec2 = request.aws_client_factory.ec2
        response = ec2.authorize_security_group_ingress(
            GroupId=model["GroupId"], IpPermissions=[self._permission(model)]
        )
        rules = response.get("SecurityGroupRules") or []
        model["Id"] = rules[0]["SecurityGroupRuleId"] if rules else f"sgr-{model['GroupId']}"
        return ProgressEvent(status=OperationStatus.SUCCESS, resource_model=model)

    def delete(self, request: ResourceRequest[Properties]) -> ProgressEvent[Properties]:
        model = request.previous_state
        ec2 = request.aws_client_factory.ec2
        try:
            ec2.revoke_security_group_ingress(
                GroupId=model["GroupId"], IpPermissions=[self._permission(model)]
            )
        except ec2.exceptions.ClientError as exc:  # the group went first: the rule with it
            if "NotFound" not in exc.response["Error"]["Code"]:
                raise
        return ProgressEvent(status=OperationStatus.SUCCESS, resource_model=model)

    def update(self, request: ResourceRequest[Properties]) -> ProgressEvent[Properties]:
        # only Description is mutable in place; everything else replaces the rule
        model = request.desired_state
        model["Id"] = request.previous_state.get("Id")
        return ProgressEvent(status=OperationStatus.SUCCESS, resource_model=model)


class FlowLogProvider(ResourceProvider[Properties]):
    """``AWS::EC2::FlowLog`` through CreateFlowLogs/DeleteFlowLogs (recorded; nothing flows
    locally, since there is no traffic to log)."""

    TYPE = "AWS::EC2::FlowLog"
    SCHEMA: ClassVar[dict[str, Any]] = {
        "typeName": TYPE,
        "primaryIdentifier": ["/properties/Id"],
        "readOnlyProperties": ["/properties/Id"],
        "createOnlyProperties": [
            "/properties/ResourceId", "/properties/ResourceType", "/properties/TrafficType",
            "/properties/LogDestination", "/properties/LogDestinationType",
            "/properties/LogGroupName", "/properties/DeliverLogsPermissionArn",
            "/properties/LogFormat", "/properties/MaxAggregationInterval",
        ],
    }  # fmt: skip

    def create(self, request: ResourceRequest[Properties]) -> ProgressEvent[Properties]:
        model = request.desired_state
        ec2 = request.aws_client_factory.ec2
        params: dict[str, Any] = {
            "ResourceIds": [model["ResourceId"]],
            "ResourceType": model["ResourceType"],
            "LogDestinationType": model.get("LogDestinationType", "cloud-watch-logs"),
        }
        if model.get("TrafficType"):
            params["TrafficType"] = model["TrafficType"]
        for key in ("LogGroupName", "LogDestination", "DeliverLogsPermissionArn", "LogFormat"):
            if model.get(key):
                params[key] = model[key]
        if model.get("MaxAggregationInterval"):
            params["MaxAggregationInterval"] = int(model["MaxAggregationInterval"])
        if tags := _tags(model, "vpc-flow-log"):
            params["TagSpecifications"] = tags
        response = ec2.create_flow_logs(**params)
        if response.get("Unsuccessful"):
            return ProgressEvent(
                status=OperationStatus.FAILED,
                resource_model=model,
                message=str(response["Unsuccessful"][0].get("Error")),
            )
        model["Id"] = response["FlowLogIds"][0]
        return ProgressEvent(status=OperationStatus.SUCCESS, resource_model=model)

    def delete(self, request: ResourceRequest[Properties]) -> ProgressEvent[Properties]:
        model = request.previous_state
        request.aws_client_factory.ec2.delete_flow_logs(FlowLogIds=[model["Id"]])
        return ProgressEvent(status=OperationStatus.SUCCESS, resource_model=model)

    def update(self, request: ResourceRequest[Properties]) -> ProgressEvent[Properties]:
        model = request.desired_state  # only Tags change in place
        model["Id"] = request.previous_state.get("Id")
        return ProgressEvent(status=OperationStatus.SUCCESS, resource_model=model)


class DashboardProvider(ResourceProvider[Properties]):
    """``AWS::CloudWatch::Dashboard`` through PutDashboard/DeleteDashboards (LocalStack serves
    the API but has no resource provider, and would skip the type).

    The physical id is the dashboard's name, as on AWS; without ``DashboardName`` one is made
    from the stack and logical id. A body CloudWatch refuses fails the resource with its
    message (``DashboardValidationMessages``), as CloudFormation does.
    """

    TYPE = "AWS::CloudWatch::Dashboard"
    SCHEMA: ClassVar[dict[str, Any]] = {
        "typeName": TYPE,
        "primaryIdentifier": ["/properties/DashboardName"],
        "createOnlyProperties": ["/properties/DashboardName"],
        "required": ["DashboardBody"],
    }

    def _put(
        self, request: ResourceRequest[Properties], model: Properties
    ) -> ProgressEvent[Properties]:
        cloudwatch = request.aws_client_factory.cloudwatch
        response = cloudwatch.put_dashboard(
            DashboardName=model["DashboardName"], DashboardBody=model["DashboardBody"]
        )
        problems = response.get("DashboardValidationMessages") or []
        if problems:
            return ProgressEvent(
                status=OperationStatus.FAILED,
                resource_model=model,
                message="; ".join(f"{p.get('DataPath')}: {p.get('Message')}" for p in problems),
            )
        return ProgressEvent(status=OperationStatus.SUCCESS, resource_model=model)

    def create(self, request: ResourceRequest[Properties]) -> ProgressEvent[Properties]:
        from localstack.services.cloudformation import provider_utils as util

        model = request.desired_state
        if not model.get("DashboardName"):
            model["DashboardName"] = util.generate_default_name(
                stack_name=request.stack_name, logical_resource_id=request.logical_resource_id
            )
        return self._put(request, model)

    def update(self, request: ResourceRequest[Properties]) -> ProgressEvent[Properties]:
        model = request.desired_state  # a new name replaces the dashboard (create, delete)
        model["DashboardName"] = model.get("DashboardName") or request.previous_state.get(
            "DashboardName"
        )
        return self._put(request, model)

    def delete(self, request: ResourceRequest[Properties]) -> ProgressEvent[Properties]:
        model = request.previous_state
        cloudwatch = request.aws_client_factory.cloudwatch
        # gone already: deleting is done
        with contextlib.suppress(cloudwatch.exceptions.ResourceNotFound):
            cloudwatch.delete_dashboards(DashboardNames=[model["DashboardName"]])
        return ProgressEvent(status=OperationStatus.SUCCESS, resource_model=model)
