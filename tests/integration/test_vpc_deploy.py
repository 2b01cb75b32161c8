"""The private-network stage option deploys for real on the local cloud (prod stage, so it
runs beside the dev stage the other tests use): VPC, endpoints, security groups, flow log, the
function in the private subnets. Nothing of the data path changes."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.conftest import ROOT, _cdklocal, host_architecture

pytestmark = pytest.mark.integration

STAGE = "prod"
APP_STACK = f"sluice-{STAGE}-app"
#: the services the functions call (ingestion; predictions: SageMaker runtime, Firehose capture)
#: what the functions call besides S3 and DynamoDB: ingestion, serving, the training pipeline
#: (its deploys: CloudWatch for the rollback alarms' history, Application Auto Scaling),
#: monitoring (CloudWatch metrics)
INTERFACES = {
    "events", "firehose", "sagemaker.api", "sagemaker.runtime", "secretsmanager", "sns", "states",
    "monitoring", "application-autoscaling",
}  # fmt: skip


@pytest.fixture(scope="module")
def vpc_outputs(
    app_outputs: dict[str, dict[str, str]], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, str]]:
    """Deploys the prod stage with ``-c vpc=create`` (after the dev stage: bootstrapped)."""
    outdir = tmp_path_factory.mktemp("vpc-out")
    outputs_file = outdir / "outputs.json"

    context = [
        "-c", f"stage={STAGE}", "-c", "vpc=create",
        "-c", f"lambda_architecture={host_architecture()}",
    ]  # fmt: skip
    _cdklocal(
        ["deploy", "--all", *context, "--require-approval", "never",
         "--outputs-file", str(outputs_file)],
        outdir / "assembly",
        cwd=ROOT,
    )  # fmt: skip
    outputs: dict[str, dict[str, str]] = json.loads(outputs_file.read_text())
    return outputs


def _resources(aws: Callable[[str], Any], stack: str) -> list[dict[str, Any]]:
    pages = aws("cloudformation").get_paginator("list_stack_resources").paginate(StackName=stack)
    return [r for page in pages for r in page["StackResourceSummaries"]]


def test_every_resource_of_the_vpc_stage_exists(
    vpc_outputs: dict[str, dict[str, str]], aws: Callable[[str], Any]
) -> None:
    resources = _resources(aws, APP_STACK)
    types = {r["ResourceType"] for r in resources}
    assert {"AWS::EC2::VPC", "AWS::EC2::VPCEndpoint", "AWS::EC2::SecurityGroupIngress",
            "AWS::EC2::FlowLog"} <= types  # fmt: skip
    for resource in resources:
        assert resource["ResourceStatus"] in ("CREATE_COMPLETE", "UPDATE_COMPLETE"), resource
        assert resource["PhysicalResourceId"] not in ("", "unknown"), resource


def test_the_vpc_has_its_endpoints_and_logs_rejected_traffic(
    vpc_outputs: dict[str, dict[str, str]], aws: Callable[[str], Any]
) -> None:
    ec2 = aws("ec2")
    vpc = vpc_outputs[APP_STACK]["VpcId"]
    endpoints = ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [vpc]}])
    found = {
        (e["ServiceName"].split(".", 3)[-1], e["VpcEndpointType"])
        for e in endpoints["VpcEndpoints"]
        if e["State"].lower() == "available"
    }
    assert found == {("s3", "Gateway"), ("dynamodb", "Gateway")} | {
        (service, "Interface") for service in INTERFACES
    }
    (flow_log,) = [f for f in ec2.describe_flow_logs()["FlowLogs"] if f["ResourceId"] == vpc]
    assert flow_log["TrafficType"] == "REJECT"
    assert (
        ec2.describe_internet_gateways(Filters=[{"Name": "attachment.vpc-id", "Values": [vpc]}])[
            "InternetGateways"
        ]
        == []
    )


def test_the_function_runs_in_the_private_subnets_and_only_it_reaches_the_endpoints(
    vpc_outputs: dict[str, dict[str, str]], aws: Callable[[str], Any]
) -> None:
    outputs = vpc_outputs[APP_STACK]
    config = aws("lambda").get_function_configuration(
        FunctionName=outputs["PreprocessFunctionName"]
    )
    vpc_config = config["VpcConfig"]
    assert vpc_config["VpcId"] == outputs["VpcId"]
    subnets = {
        r["PhysicalResourceId"]
        for r in _resources(aws, APP_STACK)
        if r["ResourceType"] == "AWS::EC2::Subnet"
    }
    assert set(vpc_config["SubnetIds"]) == subnets and len(subnets) == 2
    (function_group,) = vpc_config["SecurityGroupIds"]
    groups = aws("ec2").describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [outputs["VpcId"]]}]
    )["SecurityGroups"]
    (endpoints,) = [g for g in groups if "interface endpoints" in g["Description"]]
    admitted = {
        pair["GroupId"]
        for permission in endpoints["IpPermissions"]
        if permission.get("FromPort") == 443
        for pair in permission["UserIdGroupPairs"]
    }
    assert function_group in admitted
    assert all(not p.get("IpRanges") for p in endpoints["IpPermissions"])
