"""Entry points LocalStack discovers through plux (declared in ``local/pyproject.toml``).

Everything heavy is imported lazily inside the factories, so discovery stays cheap.
"""

from __future__ import annotations

from typing import Any

from localstack.runtime import hooks
from localstack.services.cloudformation.resource_provider import (
    CloudFormationResourceProviderPlugin,
    ResourceProvider,
)
from localstack.services.lambda_.invocation.plugins import RuntimeExecutorPlugin
from localstack.services.plugins import Service, aws_provider


class SubprocessExecutorPlugin(RuntimeExecutorPlugin):
    """``LAMBDA_RUNTIME_EXECUTOR=subprocess``."""

    name = "subprocess"

    def load(self, *args: Any, **kwargs: Any) -> type:
        from sluice_local.lambda_executor import SubprocessRuntimeExecutor

        return SubprocessRuntimeExecutor


class CustomResourceProviderPlugin(CloudFormationResourceProviderPlugin):
    """``AWS::CloudFormation::CustomResource`` and every ``Custom::*`` type."""

    name = "AWS::CloudFormation::CustomResource"

    def __init__(self) -> None:
        self.factory: type[ResourceProvider] | None = None

    def load(self) -> None:
        from sluice_local.custom_resources import CustomResourceProvider

        self.factory = CustomResourceProvider


class ModelPackageGroupProviderPlugin(CloudFormationResourceProviderPlugin):
    """``AWS::SageMaker::ModelPackageGroup``."""

    name = "AWS::SageMaker::ModelPackageGroup"

    def __init__(self) -> None:
        self.factory: type[ResourceProvider] | None = None

    def load(self) -> None:
        from sluice_local.sagemaker.registry import ModelPackageGroupProvider

        self.factory = ModelPackageGroupProvider


class SecurityGroupIngressProviderPlugin(CloudFormationResourceProviderPlugin):
    """``AWS::EC2::SecurityGroupIngress`` (LocalStack has none)."""

    name = "AWS::EC2::SecurityGroupIngress"

    def __init__(self) -> None:
        self.factory: type[ResourceProvider] | None = None

    def load(self) -> None:
        from sluice_local.cloudformation import SecurityGroupIngressProvider

        self.factory = SecurityGroupIngressProvider


class FlowLogProviderPlugin(CloudFormationResourceProviderPlugin):
    """``AWS::EC2::FlowLog`` (LocalStack has none)."""

    name = "AWS::EC2::FlowLog"

    def __init__(self) -> None:
        self.factory: type[ResourceProvider] | None = None

    def load(self) -> None:
        from sluice_local.cloudformation import FlowLogProvider

        self.factory = FlowLogProvider


class WebACLAssociationProviderPlugin(CloudFormationResourceProviderPlugin):
    """``AWS::WAFv2::WebACLAssociation`` (LocalStack has no wafv2)."""

    name = "AWS::WAFv2::WebACLAssociation"

    def __init__(self) -> None:
        self.factory: type[ResourceProvider] | None = None

    def load(self) -> None:
        from sluice_local.wafv2 import WebACLAssociationProvider

        self.factory = WebACLAssociationProvider


@aws_provider(api="sagemaker")
def sagemaker() -> Service:
    from sluice_local.sagemaker.provider import create_sagemaker_service

    return create_sagemaker_service()


@aws_provider(api="sagemaker-runtime")
def sagemaker_runtime() -> Service:
    from sluice_local.sagemaker.provider import create_runtime_service

    return create_runtime_service()


@aws_provider(api="application-autoscaling")
def application_autoscaling() -> Service:
    from sluice_local.autoscaling import create_service

    return create_service()


@aws_provider(api="wafv2")
def wafv2() -> Service:
    from sluice_local.wafv2 import create_service

    return create_service()


@aws_provider(api="dynamodb", name="moto")
def dynamodb_moto() -> Service:
    from sluice_local.dynamodb import create_dynamodb_service

    return create_dynamodb_service()


@hooks.on_infra_start()
def install_sagemaker_sync_tasks() -> None:
    from sluice_local.sfn_sagemaker import install

    install()


@hooks.on_infra_start()
def install_cfn_response_route() -> None:
    from sluice_local.custom_resources import register_response_route

    register_response_route()


@hooks.on_infra_start()
def install_s3_bucket_properties() -> None:
    from sluice_local.s3_bucket import install

    install()


@hooks.on_infra_start()
def install_fault_route() -> None:
    from sluice_local.faults import install

    install()


@hooks.on_infra_start()
def install_apigateway_limits() -> None:
    from sluice_local.apigateway import install

    install()


@hooks.on_infra_start()
def install_firehose_delivery() -> None:
    from sluice_local.firehose import install

    install()


@hooks.on_infra_start()
def install_endpoint_alarms() -> None:
    from sluice_local.cloudwatch import install

    install()


@hooks.on_infra_start()
def install_events_target_fix() -> None:
    from sluice_local.events_targets import install

    install()


@hooks.on_infra_start()
def install_settings_route() -> None:
    from sluice_local.routes import install

    install()


@hooks.on_infra_start()
def install_cfn_support_check() -> None:
    from sluice_local.cloudformation import install_log_group_properties, install_support_check

    install_support_check()
    install_log_group_properties()


@hooks.on_infra_start()
def install_sfn_status_events() -> None:
    from sluice_local.sfn_events import install

    install()
