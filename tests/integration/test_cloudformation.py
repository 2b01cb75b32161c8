"""CloudFormation on the local cloud fails loudly, as AWS does, and creates what it reports.

LocalStack's default is to skip a resource type it has no provider for and still report
CREATE_COMPLETE; ``local/start.sh`` turns that off (``CFN_IGNORE_UNSUPPORTED_RESOURCE_TYPES=0``)
and ``sluice_local`` gives every type the app uses a provider.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.conftest import LocalCloud
from tests.integration.helpers import wait_for

pytestmark = pytest.mark.integration

#: a type with no provider in LocalStack's community core nor in sluice_local
UNSUPPORTED = "AWS::GameLift::Fleet"


def _stack_resources(aws: Callable[[str], Any], name: str) -> list[dict[str, Any]]:
    pages = aws("cloudformation").get_paginator("list_stack_resources").paginate(StackName=name)
    return [r for page in pages for r in page["StackResourceSummaries"]]


def test_a_resource_type_without_a_provider_fails_the_stack_and_creates_nothing(
    local_cloud: LocalCloud, aws: Callable[[str], Any]
) -> None:
    # Given a template with an ordinary queue and a type nothing can create
    name = f"sluice-unsupported-{uuid.uuid4().hex[:8]}"
    queue = f"{name}-queue"
    template = {
        "Resources": {
            "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": queue}},
            "Fleet": {"Type": UNSUPPORTED, "Properties": {"Name": "fleet"}},
        }
    }
    cloudformation = aws("cloudformation")
    # When it is deployed
    cloudformation.create_stack(StackName=name, TemplateBody=json.dumps(template))
    try:
        stack = wait_for(
            lambda: next(
                (
                    s
                    for s in cloudformation.describe_stacks(StackName=name)["Stacks"]
                    if not s["StackStatus"].endswith("IN_PROGRESS")
                ),
                None,
            ),
            timeout=60,
            what="the stack to settle",
        )
        # Then the stack fails, says which type, and nothing of it was created
        assert stack["StackStatus"] in ("CREATE_FAILED", "ROLLBACK_COMPLETE"), stack
        events = cloudformation.describe_stack_events(StackName=name)["StackEvents"]
        reasons = " ".join(e.get("ResourceStatusReason") or "" for e in events)
        assert UNSUPPORTED in (stack.get("StackStatusReason") or "") + reasons
        queues = aws("sqs").list_queues(QueueNamePrefix=queue).get("QueueUrls", [])
        assert queues == []
    finally:
        cloudformation.delete_stack(StackName=name)


@pytest.mark.parametrize("stack", ["sluice-dev-data", "sluice-dev-app"])
def test_every_resource_of_the_deployed_app_exists(
    app_outputs: dict[str, dict[str, str]], aws: Callable[[str], Any], stack: str
) -> None:
    resources = _stack_resources(aws, stack)
    assert resources
    for resource in resources:
        assert resource["ResourceStatus"] in ("CREATE_COMPLETE", "UPDATE_COMPLETE"), resource
        # a skipped resource would have the placeholder id "unknown"
        assert resource["PhysicalResourceId"] not in ("", "unknown"), resource


def test_deployed_log_groups_are_encrypted_with_the_stage_key_and_expire(
    app_outputs: dict[str, dict[str, str]], aws: Callable[[str], Any]
) -> None:
    key = app_outputs["sluice-dev-data"]["DataKeyArn"]
    names = [
        r["PhysicalResourceId"]
        for r in _stack_resources(aws, "sluice-dev-app")
        if r["ResourceType"] == "AWS::Logs::LogGroup"
    ]
    assert len(names) >= 2  # the preprocess function's, the backfill state machine's
    logs = aws("logs")
    for name in names:
        (group,) = [
            g
            for g in logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
            if g["logGroupName"] == name
        ]
        assert name.startswith("sluice-dev-"), "inside the key policy's scope"
        assert group.get("kmsKeyId") == key, group
        assert group.get("retentionInDays") == 30, group


def _api_with_web_acl(web_acl_arn: str) -> dict[str, Any]:
    """A REST API stage with a web ACL associated, as the app does with ``waf_web_acl_arn``."""
    stage_arn = "arn:${AWS::Partition}:apigateway:${AWS::Region}::/restapis/${Api}/stages/v1"
    return {
        "Resources": {
            "Api": {"Type": "AWS::ApiGateway::RestApi", "Properties": {"Name": "waf-it"}},
            "Get": {
                "Type": "AWS::ApiGateway::Method",
                "Properties": {
                    "RestApiId": {"Ref": "Api"},
                    "ResourceId": {"Fn::GetAtt": ["Api", "RootResourceId"]},
                    "HttpMethod": "GET",
                    "AuthorizationType": "NONE",
                    "Integration": {"Type": "MOCK"},
                },
            },
            "Deployment": {
                "Type": "AWS::ApiGateway::Deployment",
                "DependsOn": ["Get"],
                "Properties": {"RestApiId": {"Ref": "Api"}, "StageName": "v1"},
            },
            "WebAcl": {
                "Type": "AWS::WAFv2::WebACLAssociation",
                "DependsOn": ["Deployment"],
                "Properties": {"ResourceArn": {"Fn::Sub": stage_arn}, "WebACLArn": web_acl_arn},
            },
        },
        "Outputs": {"ApiId": {"Value": {"Ref": "Api"}}},
    }


def _settled(aws: Callable[[str], Any], name: str) -> dict[str, Any]:
    cloudformation = aws("cloudformation")
    return dict(
        wait_for(
            lambda: next(
                (
                    s
                    for s in cloudformation.describe_stacks(StackName=name)["Stacks"]
                    if not s["StackStatus"].endswith("IN_PROGRESS")
                ),
                None,
            ),
            timeout=60,
            what=f"stack {name} to settle",
        )
    )


def test_a_web_acl_association_deploys_and_goes_with_its_stack(
    local_cloud: LocalCloud, aws: Callable[[str], Any]
) -> None:
    # Given a regional web ACL
    wafv2 = aws("wafv2")
    web_acl = wafv2.create_web_acl(
        Name=f"it-{uuid.uuid4().hex[:8]}",
        Scope="REGIONAL",
        DefaultAction={"Allow": {}},
        VisibilityConfig={"SampledRequestsEnabled": False, "CloudWatchMetricsEnabled": False,
                          "MetricName": "it"},
    )["Summary"]  # fmt: skip
    name = f"sluice-waf-{uuid.uuid4().hex[:8]}"
    cloudformation = aws("cloudformation")
    # When a stack associates it with an API stage
    cloudformation.create_stack(
        StackName=name, TemplateBody=json.dumps(_api_with_web_acl(web_acl["ARN"]))
    )
    try:
        stack = _settled(aws, name)
        assert stack["StackStatus"] == "CREATE_COMPLETE", stack
        # Then the stage is behind the web ACL (as WAF and API Gateway both report it)
        api = next(o["OutputValue"] for o in stack["Outputs"] if o["OutputKey"] == "ApiId")
        stage_arn = f"arn:aws:apigateway:us-east-1::/restapis/{api}/stages/v1"
        found = wafv2.get_web_acl_for_resource(ResourceArn=stage_arn)
        assert found["WebACL"]["ARN"] == web_acl["ARN"]
        assert (
            aws("apigateway").get_stage(restApiId=api, stageName="v1")["webAclArn"]
            == (web_acl["ARN"])
        )
        (association,) = [
            r for r in _stack_resources(aws, name) if r["LogicalResourceId"] == "WebAcl"
        ]
        assert association["PhysicalResourceId"] == f"{stage_arn}|{web_acl['ARN']}"
    finally:
        cloudformation.delete_stack(StackName=name)
    # and deleting the stack removes the association
    wait_for(
        lambda: "WebACL" not in wafv2.get_web_acl_for_resource(ResourceArn=stage_arn),
        timeout=60,
        what="the association to go",
    )


def test_an_association_with_a_web_acl_that_does_not_exist_fails_the_stack(
    local_cloud: LocalCloud, aws: Callable[[str], Any]
) -> None:
    missing = (
        "arn:aws:wafv2:us-east-1:000000000000:regional/webacl/missing/"
        "00000000-0000-0000-0000-000000000000"
    )
    name = f"sluice-waf-missing-{uuid.uuid4().hex[:8]}"
    aws("cloudformation").create_stack(
        StackName=name, TemplateBody=json.dumps(_api_with_web_acl(missing))
    )
    try:
        stack = _settled(aws, name)
        assert stack["StackStatus"] in ("CREATE_FAILED", "ROLLBACK_COMPLETE"), stack
        events = aws("cloudformation").describe_stack_events(StackName=name)["StackEvents"]
        reasons = " ".join(e.get("ResourceStatusReason") or "" for e in events)
        assert "WAFNonexistentItemException" in (stack.get("StackStatusReason") or "") + reasons
    finally:
        aws("cloudformation").delete_stack(StackName=name)
