"""The private-network stage option: a VPC with no way out, endpoints, security groups, and
every function and SageMaker job inside it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_kms as kms
from aws_cdk.assertions import Template

from infra.config import ConfigError, VpcConfig, stage_config
from infra.monitoring import FUNCTIONS as MONITORING_FUNCTIONS
from infra.monitoring import SERVICES as MONITORING_SERVICES
from infra.network import Network
from infra.training_pipeline import PIPELINE_SERVICES
from infra.training_pipeline import STEPS as PIPELINE_STEPS
from tests.infra.conftest import endpoint_services, make_app, stack
from tests.infra.test_security import EXISTING_VPC

#: what the functions call besides S3 and DynamoDB (gateway endpoints): ingestion (events, the
#: SageMaker API, the PII secret), predictions (the SageMaker runtime and API, Firehose capture)
INGESTION_SERVICES = ["events", "firehose", "sagemaker.api", "sagemaker.runtime", "secretsmanager"]
#: and the training pipeline's (its functions notify and read execution history), and
#: monitoring's (metrics, the serving model's description, notifications, starting runs)
ALL_SERVICES = sorted({*INGESTION_SERVICES, *PIPELINE_SERVICES, *MONITORING_SERVICES})


@pytest.fixture(scope="module")
def created() -> Template:
    return Template.from_stack(stack(make_app("dev", vpc="create"), "sluice-dev-app"))


@pytest.fixture(scope="module")
def existing() -> Template:
    app = make_app("prod", vpc=json.dumps(EXISTING_VPC))
    return Template.from_stack(stack(app, "sluice-prod-app"))


def _ours(template: Template) -> dict[str, dict[str, Any]]:
    """The app's own functions (the factory's), not CDK's custom-resource handlers."""
    return {
        fid: f
        for fid, f in template.find_resources("AWS::Lambda::Function").items()
        if str(f["Properties"].get("Handler", "")).startswith("lambdas.")
    }


def test_the_network_is_off_by_default() -> None:
    assert stage_config("dev").vpc is None and stage_config("prod").vpc is None
    template = Template.from_stack(stack(make_app("dev"), "sluice-dev-app"))
    assert not template.find_resources("AWS::EC2::VPC")
    assert not template.find_resources("AWS::EC2::VPCEndpoint")


def test_a_created_vpc_has_private_subnets_and_no_way_to_the_internet(created: Template) -> None:
    for kind in ("InternetGateway", "NatGateway", "EIP", "EgressOnlyInternetGateway"):
        assert not created.find_resources(f"AWS::EC2::{kind}"), kind
    subnets = created.find_resources("AWS::EC2::Subnet")
    assert len(subnets) == 2
    assert all(s["Properties"]["MapPublicIpOnLaunch"] is False for s in subnets.values())
    assert (
        len({s["Properties"]["AvailabilityZone"]["Fn::Select"][0] for s in subnets.values()}) == 2
    )
    routes = created.find_resources("AWS::EC2::Route")
    assert not routes, "the only routes are the VPC's local one and the gateway endpoints'"
    created.has_resource_properties(
        "AWS::EC2::VPC", {"EnableDnsHostnames": True, "EnableDnsSupport": True}
    )


def test_rejected_traffic_is_logged_to_an_encrypted_group(created: Template) -> None:
    (flow_log,) = created.find_resources("AWS::EC2::FlowLog").values()
    assert flow_log["Properties"]["TrafficType"] == "REJECT"
    group_id = flow_log["Properties"]["LogGroupName"]["Ref"]
    group = created.find_resources("AWS::Logs::LogGroup")[group_id]
    assert "Fn::ImportValue" in group["Properties"]["KmsKeyId"]


def test_s3_and_dynamodb_are_reached_through_gateway_endpoints(created: Template) -> None:
    gateways = endpoint_services(created, "Gateway")
    assert sorted(gateways) == ["dynamodb", "s3"]
    tables = sorted(created.find_resources("AWS::EC2::RouteTable"))
    for props in gateways.values():
        assert sorted(r["Ref"] for r in props["RouteTableIds"]) == tables


def test_interface_endpoints_exist_only_for_the_services_the_functions_call(
    created: Template,
) -> None:
    interfaces = endpoint_services(created)
    assert sorted(interfaces) == ALL_SERVICES
    (endpoint_group,) = [
        gid
        for gid, g in created.find_resources("AWS::EC2::SecurityGroup").items()
        if "interface endpoints" in g["Properties"]["GroupDescription"]
    ]
    for props in interfaces.values():
        assert props["PrivateDnsEnabled"] is True
        assert props["SecurityGroupIds"] == [{"Fn::GetAtt": [endpoint_group, "GroupId"]}]
        assert len(props["SubnetIds"]) == 2


def test_workloads_may_only_send_https_and_endpoints_only_admit_the_workloads(
    created: Template,
) -> None:
    groups = created.find_resources("AWS::EC2::SecurityGroup")
    endpoint_gid = next(g for g, v in groups.items() if "interface endpoints" in str(v))
    workloads = {g: v for g, v in groups.items() if g != endpoint_gid}
    # the preprocess, predict and score functions, ingestion jobs, the pipeline's functions,
    # its jobs (train, evaluate) and the models it deploys, monitoring's functions
    assert len(workloads) == 4 + len(PIPELINE_STEPS) + 2 + len(MONITORING_FUNCTIONS)
    for gid, group in workloads.items():
        assert "SecurityGroupIngress" not in group["Properties"], gid
        (egress,) = group["Properties"]["SecurityGroupEgress"]
        assert (egress["IpProtocol"], egress["FromPort"], egress["ToPort"]) == ("tcp", 443, 443)
    endpoints = groups[endpoint_gid]["Properties"]
    # CDK's placeholder for "no egress at all" (an ICMP type that does not exist)
    assert endpoints["SecurityGroupEgress"] == [
        {"CidrIp": "255.255.255.255/32", "Description": "Disallow all traffic",
         "FromPort": 252, "IpProtocol": "icmp", "ToPort": 86}
    ]  # fmt: skip
    assert "SecurityGroupIngress" not in endpoints
    ingress = created.find_resources("AWS::EC2::SecurityGroupIngress")
    assert sorted(
        (i["Properties"]["SourceSecurityGroupId"]["Fn::GetAtt"][0], i["Properties"]["FromPort"])
        for i in ingress.values()
    ) == sorted((gid, 443) for gid in workloads)
    assert all("CidrIp" not in i["Properties"] for i in ingress.values())


def test_every_function_runs_in_the_private_subnets(created: Template) -> None:
    subnets = sorted(created.find_resources("AWS::EC2::Subnet"))
    functions = _ours(created)
    assert functions
    for fid, function in functions.items():
        vpc = function["Properties"]["VpcConfig"]
        assert sorted(s["Ref"] for s in vpc["SubnetIds"]) == subnets, fid
        assert len(vpc["SecurityGroupIds"]) == 1


def test_the_ingestion_job_runs_in_the_private_subnets_with_its_own_group(
    created: Template,
) -> None:
    (function,) = [
        f
        for f in _ours(created).values()
        if f["Properties"]["Handler"] == "lambdas.preprocess.handler.handler"
    ]
    env = function["Properties"]["Environment"]["Variables"]
    subnets = env["PROCESSING_SUBNET_IDS"]["Fn::Join"]
    assert subnets[0] == "," and sorted(s["Ref"] for s in subnets[1]) == sorted(
        created.find_resources("AWS::EC2::Subnet")
    )
    group = env["PROCESSING_SECURITY_GROUP_IDS"]["Fn::GetAtt"][0]
    assert "JobSecurityGroup" in group
    # the function may start jobs only there, and only with inter-container encryption
    statements = [
        s
        for p in created.find_resources("AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if s["Action"] == "sagemaker:CreateProcessingJob"
    ]
    (create,) = statements
    assert create["Condition"]["Bool"] == {"sagemaker:InterContainerTrafficEncryption": "true"}
    assert create["Condition"]["Null"] == {"sagemaker:VpcSubnets": "false"}
    allowed = create["Condition"]["ForAllValues:StringEquals"]
    assert allowed["sagemaker:VpcSecurityGroupIds"] == [{"Fn::GetAtt": [group, "GroupId"]}]
    assert len(allowed["sagemaker:VpcSubnets"]) == 2


def test_workload_roles_may_create_interfaces_only_in_the_stages_subnets(
    created: Template,
) -> None:
    policies = {
        pid: p["Properties"]["PolicyDocument"]["Statement"]
        for pid, p in created.find_resources("AWS::IAM::Policy").items()
        if "VpcAccess" in pid
    }
    # the functions' roles, the ingestion job's role, the pipeline's jobs' and models' role
    # (one policy for each place: the jobs' and the models' security groups), monitoring's
    assert len(policies) == 4 + len(PIPELINE_STEPS) + 2 + len(MONITORING_FUNCTIONS)
    for pid, statements in policies.items():
        (create,) = [s for s in statements if s["Action"] == "ec2:CreateNetworkInterface"]
        resources = json.dumps(create["Resource"])
        assert "network-interface/*" in resources and "security-group/" in resources, pid
        assert resources.count(":subnet/") == 2, pid
        wildcard = [s for s in statements if s["Resource"] == "*"]
        assert all(a.startswith("ec2:Describe") for s in wildcard for a in s["Action"]), (
            "only read-only lookups on *"
        )


def test_an_existing_vpc_is_used_as_given_without_lookups(existing: Template) -> None:
    for kind in ("VPC", "Subnet", "RouteTable", "InternetGateway", "FlowLog"):
        assert not existing.find_resources(f"AWS::EC2::{kind}"), kind
    for props in endpoint_services(existing, "Gateway").values():
        assert props["RouteTableIds"] == EXISTING_VPC["route_table_ids"]
        assert props["VpcId"] == EXISTING_VPC["vpc_id"]
    for function in _ours(existing).values():
        assert function["Properties"]["VpcConfig"]["SubnetIds"] == EXISTING_VPC["subnet_ids"]
    assert sorted(endpoint_services(existing)) == ALL_SERVICES


@pytest.mark.parametrize("context", ["create", json.dumps(EXISTING_VPC)])
def test_cdk_nag_finds_nothing_with_the_network_on(context: str, tmp_path: Path) -> None:
    app = make_app("prod", outdir=tmp_path, vpc=context)
    app.synth()  # raises ValidationFailed on any unacknowledged finding
    report = json.loads((tmp_path / "validation-report.json").read_text())
    assert all(r.get("summary", {}).get("status") != "failure" for r in report["pluginReports"])


def test_vpc_config_parses_what_context_can_hold() -> None:
    assert VpcConfig.parse("create") == VpcConfig()
    assert VpcConfig.parse("off") is None and VpcConfig.parse(None) is None
    parsed = VpcConfig.parse(json.dumps(EXISTING_VPC))
    assert parsed is not None and parsed.subnet_ids == tuple(EXISTING_VPC["subnet_ids"])
    assert VpcConfig.parse(EXISTING_VPC) == parsed  # an object in cdk.json
    assert stage_config("dev", {"vpc": "create"}).vpc == VpcConfig()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("maybe", "must be 'create', 'off', or a JSON object"),
        ({"vpc_id": "vpc-1"}, "needs its private subnet_ids"),
        ({**EXISTING_VPC, "availability_zones": ["us-east-1a"]}, "one availability zone"),
        ({**EXISTING_VPC, "route_table_ids": []}, "one route table per subnet"),
        ({"subnet_ids": ["subnet-1"]}, "need a vpc_id"),
        ({"cidr_block": "10.0.0.0/16"}, "unknown key"),
    ],
)
def test_vpc_config_rejects_what_cannot_work(value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        stage_config("dev", {"vpc": value})


def test_the_app_stack_outputs_the_vpc(created: Template) -> None:
    outputs = created.find_outputs("VpcId")
    assert outputs and "Ref" in outputs["VpcId"]["Value"]


def test_an_id_of_the_wrong_kind_is_named() -> None:
    with pytest.raises(ConfigError, match="rtb-0123456789abcdef0 is not a subnet-"):
        stage_config(
            "dev", {"vpc": {**EXISTING_VPC, "subnet_ids": ["rtb-0123456789abcdef0", "subnet-1"]}}
        )


def test_sagemaker_specs_put_jobs_and_models_in_the_workloads_subnets() -> None:
    app = cdk.App()
    scope = cdk.Stack(app, "S")
    network = Network(
        scope,
        "Net",
        config=stage_config("dev"),
        vpc_config=VpcConfig.parse(EXISTING_VPC) or VpcConfig(),
        key=kms.Key(scope, "Key"),
    )
    workload = network.workload(scope, "Training", description="training jobs")
    group = workload.security_group.security_group_id
    vpc = {"SecurityGroupIds": [group], "Subnets": EXISTING_VPC["subnet_ids"]}
    assert workload.sagemaker_job_network(isolated=True) == {
        "EnableNetworkIsolation": True,
        "EnableInterContainerTrafficEncryption": True,
        "VpcConfig": vpc,
    }
    assert workload.sagemaker_model_network() == {"EnableNetworkIsolation": True, "VpcConfig": vpc}
