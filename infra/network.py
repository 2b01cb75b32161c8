"""Private networking, a stage option (``vpc`` in ``StageConfig``; off by default).

On, every function and SageMaker job of the app runs in private subnets that have no route to
the internet and reaches AWS through VPC endpoints only:

- the VPC: created (isolated subnets in ``max_azs`` zones: no internet gateway, no NAT; flow logs
  of rejected traffic to an encrypted log group) or an existing one from ``VpcConfig`` (ids of
  the VPC, its private subnets, their zones and route tables: no lookup at synth);
- gateway endpoints for S3 and DynamoDB on the subnets' route tables (free);
- interface endpoints (private DNS) only for the services that workloads declare they call
  (``Network.use``), one network interface per zone each, billed by the hour;
- one security group per workload: egress HTTPS only; the endpoints' security group admits
  HTTPS from the workloads' groups only.

Components adopt it through the function factory (``PythonFunction(network=..., uses=...)``)
and, for SageMaker jobs and models, ``Network.sagemaker_workload`` (security group and the
execution role's interface permissions) plus ``Workload.sagemaker_job_network`` /
``sagemaker_model_network`` for requests built in code, ``asl_network`` for requests in a state
machine's ASL, and ``Workload.sagemaker_create_conditions`` for the role that starts them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from infra.config import StageConfig, VpcConfig
from infra.log_groups import encrypted_log_group
from infra.nag import checkov_skip

HTTPS = ec2.Port.tcp(443)
SUBNET_CIDR_MASK = 20  # 4,096 addresses a zone: Lambda and SageMaker network interfaces

#: read-only EC2 actions that support no resource scoping: Lambda and SageMaker look up the
#: subnets, groups and interfaces they are given (what AWS's managed VPC-access policies hold)
LAMBDA_DESCRIBE = ["ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"]
SAGEMAKER_DESCRIBE = [
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeVpcs",
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
]
#: what a workload's role does to the network interfaces in the stage's subnets
LAMBDA_INTERFACE_ACTIONS = [
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
]
SAGEMAKER_INTERFACE_ACTIONS = [
    "ec2:DeleteNetworkInterface",
    "ec2:CreateNetworkInterfacePermission",
    "ec2:DeleteNetworkInterfacePermission",
]


@dataclass(frozen=True)
class Workload:
    """A function's or job's place in the network: its security group and the subnets."""

    security_group: ec2.ISecurityGroup
    subnets: ec2.SubnetSelection
    subnet_ids: list[str]

    def sagemaker_vpc_config(self) -> dict[str, list[str]]:
        """``VpcConfig`` of a SageMaker training/processing job or model (API shape)."""
        return {
            "SecurityGroupIds": [self.security_group.security_group_id],
            "Subnets": list(self.subnet_ids),
        }

    def sagemaker_job_network(self, *, isolated: bool) -> dict[str, object]:
        """A processing job's ``NetworkConfig``, or the same three keys at the top level of a
        training job's request (``CreateTrainingJob``): in the VPC, traffic between instances
        encrypted, and the container cut off from every network (``isolated``) unless its own
        code must call AWS APIs. SageMaker itself still fetches channels and writes the model
        through the VPC's S3 gateway endpoint."""
        return {
            "EnableNetworkIsolation": isolated,
            "EnableInterContainerTrafficEncryption": True,
            "VpcConfig": self.sagemaker_vpc_config(),
        }

    def sagemaker_model_network(self) -> dict[str, object]:
        """Top-level keys of ``CreateModel``: its endpoints' containers run in the VPC, isolated
        (a model server needs no outbound network: SageMaker loads the model for it)."""
        return {"EnableNetworkIsolation": True, "VpcConfig": self.sagemaker_vpc_config()}

    def sagemaker_create_conditions(
        self, *, isolated: bool | None = None, encrypted: bool = True
    ) -> dict[str, object]:
        """IAM conditions for the role that starts jobs (or creates models) in this workload:
        only in its subnets, only with its security group, never without a VPC; with
        inter-container encryption (``encrypted``; jobs only: CreateModel has no such key) and
        network isolation when ``isolated`` says so."""
        conditions: dict[str, object] = {
            "ForAllValues:StringEquals": {
                "sagemaker:VpcSubnets": list(self.subnet_ids),
                "sagemaker:VpcSecurityGroupIds": [self.security_group.security_group_id],
            },
            "Null": {"sagemaker:VpcSubnets": "false"},
        }
        flags = {}
        if encrypted:
            flags["sagemaker:InterContainerTrafficEncryption"] = "true"
        if isolated is not None:
            flags["sagemaker:NetworkIsolation"] = "true" if isolated else "false"
        if flags:
            conditions["Bool"] = flags
        return conditions


def asl_network(workload: Workload | None, name: str) -> dict[str, str]:
    """Definition substitutions that put a state machine's SageMaker requests (training and
    processing jobs, models) into ``workload``'s place in the network: ``<name>SubnetIds`` and
    ``<name>SecurityGroupIds``, comma-joined; both ``""`` without a network.

    A substitution holds a string, never a list, and one ASL file serves stages with and without
    the network. So the ASL reads them into its state (a Pass state) and a Choice picks the
    request: ``""`` → the state without ``VpcConfig``; otherwise the one with::

        "VpcConfig": {
          "Subnets.$": "States.StringSplit($.network.subnets, ',')",
          "SecurityGroupIds.$": "States.StringSplit($.network.security_groups, ',')"
        }

    (``NetworkConfig.VpcConfig`` for a processing job). ``tests/infra/test_job_network.py`` walks
    every state machine of the app and holds each SageMaker request to it.
    """
    if workload is None:
        return {f"{name}SubnetIds": "", f"{name}SecurityGroupIds": ""}
    return {
        f"{name}SubnetIds": cdk.Fn.join(",", workload.subnet_ids),
        f"{name}SecurityGroupIds": workload.security_group.security_group_id,
    }


class Network(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: StageConfig,
        vpc_config: VpcConfig,
        key: kms.IKey,
    ) -> None:
        super().__init__(scope, id_)
        self._config = config
        if vpc_config.vpc_id is None:
            self.vpc: ec2.IVpc = self._create_vpc(vpc_config, key)
            self.subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
        else:
            self.vpc = ec2.Vpc.from_vpc_attributes(
                self,
                "Vpc",
                vpc_id=vpc_config.vpc_id,
                availability_zones=list(vpc_config.availability_zones),
                isolated_subnet_ids=list(vpc_config.subnet_ids),
                isolated_subnet_route_table_ids=list(vpc_config.route_table_ids),
            )
            self.subnets = ec2.SubnetSelection(subnets=self.vpc.isolated_subnets)
        self.subnet_ids = self.vpc.select_subnets(
            subnet_type=self.subnets.subnet_type, subnets=self.subnets.subnets
        ).subnet_ids
        self.endpoint_security_group = ec2.SecurityGroup(
            self,
            "Endpoints",
            vpc=self.vpc,
            description=f"Sluice {config.stage}: interface endpoints, HTTPS from workloads only",
            allow_all_outbound=False,  # endpoints answer; they never open connections
        )
        for service, name in (
            (ec2.GatewayVpcEndpointAwsService.S3, "S3"),
            (ec2.GatewayVpcEndpointAwsService.DYNAMODB, "DynamoDb"),
        ):
            self.vpc.add_gateway_endpoint(name, service=service, subnets=[self.subnets])
        self._interfaces: dict[str, ec2.InterfaceVpcEndpoint] = {}
        self._workloads: list[ec2.SecurityGroup] = []

    def _create_vpc(self, vpc_config: VpcConfig, key: kms.IKey) -> ec2.Vpc:
        vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(vpc_config.cidr),
            max_azs=vpc_config.max_azs,
            nat_gateways=0,
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name="private",
                    subnet_type=ec2.SubnetType.PRIVATE_ISOLATED,
                    cidr_mask=SUBNET_CIDR_MASK,
                )
            ],
            enable_dns_hostnames=True,  # private DNS of interface endpoints needs both
            enable_dns_support=True,
        )
        flow_logs = encrypted_log_group(self, "FlowLogs", config=self._config, key=key)
        vpc.add_flow_log(
            "FlowLog",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs),
            # what a reviewer needs: attempts the security groups turned away
            traffic_type=ec2.FlowLogTrafficType.REJECT,
        )
        return vpc

    def use(self, services: Iterable[str]) -> None:
        """Interface endpoints for these AWS services (``secretsmanager``, ``events``,
        ``sagemaker.api``, ``sagemaker.runtime``, ``sts``, ``kms``, ``logs``, ``sqs``, ``sns``,
        ``states``, ``firehose``, ...), once each. S3 and DynamoDB have gateways already."""
        for service in services:
            if service in ("s3", "dynamodb") or service in self._interfaces:
                continue
            parts = service.replace("-", ".").split(".")
            endpoint_id = "".join(part.capitalize() for part in parts)
            self._interfaces[service] = self.vpc.add_interface_endpoint(
                endpoint_id,
                service=ec2.InterfaceVpcEndpointAwsService(service),
                subnets=self.subnets,
                private_dns_enabled=True,
                security_groups=[self.endpoint_security_group],
                open=False,  # only the workloads' groups, below
            )

    @property
    def interface_services(self) -> list[str]:
        return sorted(self._interfaces)

    def workload(self, scope: Construct, id_: str, *, description: str) -> Workload:
        """A security group of its own for one function or job: HTTPS out (nothing routes
        beyond the VPC, so that reaches the endpoints only), admitted by the endpoints."""
        group = ec2.SecurityGroup(
            scope,
            id_,
            vpc=self.vpc,
            description=description,
            allow_all_outbound=False,
        )
        group.add_egress_rule(
            ec2.Peer.any_ipv4(),
            HTTPS,
            "HTTPS to AWS: interface endpoints in the VPC, S3/DynamoDB through the gateway "
            "endpoints (the subnets have no route to the internet)",
        )
        self.endpoint_security_group.add_ingress_rule(
            group, HTTPS, f"HTTPS from {description}"[:255]
        )
        self._workloads.append(group)
        return Workload(security_group=group, subnets=self.subnets, subnet_ids=self.subnet_ids)

    def sagemaker_workload(
        self, scope: Construct, *, role: iam.IRole, description: str
    ) -> Workload:
        """A place in the network for SageMaker jobs or models that run with ``role``: a
        security group of their own (``scope``'s ``SecurityGroup``) and the EC2 permissions
        SageMaker needs, acting with the role, to put their network interfaces there
        (``scope``'s ``VpcAccess``; see ``grant_interfaces``)."""
        workload = self.workload(scope, "SecurityGroup", description=description)
        self.grant_interfaces(scope, role, workload, service="sagemaker")
        return workload

    def grant_interfaces(
        self, scope: Construct, role: iam.IRole, workload: Workload, *, service: str
    ) -> iam.Policy:
        """What ``service`` (``lambda`` or ``sagemaker``) needs, acting with ``role``, to put
        the workload's network interfaces in the stage's subnets: create them only there and
        with the workload's group, manage interfaces of this account and region, and the
        read-only lookups (which support no resource scoping)."""
        stack = cdk.Stack.of(self)
        describe, manage = (
            (LAMBDA_DESCRIBE, LAMBDA_INTERFACE_ACTIONS)
            if service == "lambda"
            else (SAGEMAKER_DESCRIBE, SAGEMAKER_INTERFACE_ACTIONS)
        )
        interfaces = stack.format_arn(
            service="ec2", resource="network-interface", resource_name="*"
        )
        subnets = [
            stack.format_arn(service="ec2", resource="subnet", resource_name=subnet)
            for subnet in self.subnet_ids
        ]
        group = stack.format_arn(
            service="ec2",
            resource="security-group",
            resource_name=workload.security_group.security_group_id,
        )
        policy = iam.Policy(
            scope,
            "VpcAccess",
            roles=[role],
            statements=[
                iam.PolicyStatement(actions=describe, resources=["*"]),
                iam.PolicyStatement(
                    actions=["ec2:CreateNetworkInterface"],
                    resources=[interfaces, group, *subnets],
                ),
                iam.PolicyStatement(actions=manage, resources=[interfaces]),
            ],
        )
        reason = (
            f"{service} creates and removes the workload's network interfaces in the stage's "
            "private subnets: interface ids exist only once created, so the statement names "
            "interfaces of this account and region (creation is limited to the stage's subnets "
            "and the workload's security group); the Describe actions support no resource "
            "scoping and are read-only."
        )
        cdk.Validations.of(policy).acknowledge(
            cdk.Acknowledgment(id="AwsSolutions-IAM5[Resource::*]", reason=reason),
            cdk.Acknowledgment(
                id="AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:"
                "<AWS::AccountId>:network-interface/*]",
                reason=reason,
            ),
        )
        return policy


def skip_outside_vpc(resource: Construct, what: str) -> None:
    """checkov's 'Lambda inside a VPC' check, for a stage without private networking."""
    checkov_skip(
        resource,
        "CKV_AWS_117",
        f"{what}: private networking is a stage option (-c vpc=create or an existing VPC; "
        "README, Security), off by default because its interface endpoints cost about $7 a "
        "month each per zone; with it on, every function runs in private subnets.",
    )
