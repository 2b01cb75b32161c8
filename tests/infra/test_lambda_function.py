"""The Lambda factory: every function's role, logs, encryption, tracing, failures, network."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from aws_cdk.assertions import Match, Template

from infra import lambda_function
from infra.config import VpcConfig, stage_config
from infra.lambda_function import PythonFunction
from infra.network import Network
from tests.infra.conftest import endpoint_services

NO_DLQ = "Invoked synchronously by a test caller that sees every error itself."
CAP = "Capped by the test's caller."

Build = Callable[..., Template]


@pytest.fixture
def build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Build:
    (tmp_path / "lambdas" / "echo").mkdir(parents=True)
    (tmp_path / "lambdas" / "__init__.py").write_text("")
    (tmp_path / "lambdas" / "echo" / "handler.py").write_text("def handler(e, c):\n    return e\n")
    monkeypatch.setattr(lambda_function, "REPO_ROOT", tmp_path)

    def _build(*, vpc: bool = False, **kwargs: Any) -> Template:
        app = cdk.App(context={"aws:cdk:bundling-stacks": []})
        stack = cdk.Stack(app, "S")
        config = stage_config("prod", {"lambda_architecture": "x86_64"})
        key = kms.Key(stack, "Key")
        network = (
            Network(stack, "Net", config=config, vpc_config=VpcConfig(), key=key) if vpc else None
        )
        props: dict[str, Any] = {"no_dlq_reason": NO_DLQ, "concurrency_note": CAP, **kwargs}
        if "dead_letter_queue" in props and props["dead_letter_queue"] is True:
            props["dead_letter_queue"] = sqs.Queue(stack, "Dlq", encryption_master_key=key)
            props.pop("no_dlq_reason")
        PythonFunction(
            stack,
            "Echo",
            name="echo",
            config=config,
            key=key,
            description="echoes",
            network=network,
            **props,
        )
        return Template.from_stack(stack)

    return _build


def _function(template: Template) -> dict[str, Any]:
    (function,) = template.find_resources("AWS::Lambda::Function").values()
    return function


def _skips(template: Template) -> dict[str, str]:
    skips = _function(template).get("Metadata", {}).get("checkov", {}).get("skip", [])
    return {skip["id"]: skip["comment"] for skip in skips}


def _key_id(template: Template) -> str:
    (key_id,) = template.find_resources("AWS::KMS::Key")
    return key_id


def test_function_runs_the_packages_handler_on_the_configured_platform(build: Build) -> None:
    build().has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": "lambdas.echo.handler.handler",
            "Runtime": "python3.13",
            "Architectures": ["x86_64"],
            "TracingConfig": {"Mode": "Active"},
            "LoggingConfig": {"LogFormat": "JSON", "LogGroup": {"Ref": Match.any_value()}},
            "Environment": {
                "Variables": Match.object_like(
                    {"POWERTOOLS_SERVICE_NAME": "echo", "POWERTOOLS_METRICS_NAMESPACE": "Sluice"}
                )
            },
        },
    )


def test_the_environment_is_encrypted_with_the_stage_key(build: Build) -> None:
    template = build()
    key = _key_id(template)
    assert _function(template)["Properties"]["KmsKeyArn"] == {"Fn::GetAtt": [key, "Arn"]}


def test_logs_are_encrypted_and_kept_as_long_as_the_stage_says(build: Build) -> None:
    template = build()
    template.has_resource("AWS::Logs::LogGroup", {
        "Properties": {
            "RetentionInDays": 365,
            "KmsKeyId": {"Fn::GetAtt": [_key_id(template), "Arn"]},
        },
        "DeletionPolicy": "Retain",
    })  # fmt: skip


def test_the_role_may_only_write_its_logs_traces_and_decrypt_its_environment(
    build: Build,
) -> None:
    template = build()
    template.resource_properties_count_is(
        "AWS::IAM::Role", {"ManagedPolicyArns": Match.any_value()}, 0
    )
    policies = template.find_resources("AWS::IAM::Policy")
    statements = [
        s for p in policies.values() for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    (log_group_id,) = template.find_resources("AWS::Logs::LogGroup")
    (function_id,) = template.find_resources("AWS::Lambda::Function")
    key = {"Fn::GetAtt": [_key_id(template), "Arn"]}
    assert sorted(
        (tuple(sorted(s["Action"])) if isinstance(s["Action"], list) else (s["Action"],))
        + (str(s["Resource"]), str(s.get("Condition")))
        for s in statements
    ) == sorted([
        ("kms:Decrypt", str(key), str({"StringEquals": {
            "kms:EncryptionContext:aws:lambda:FunctionArn": {"Fn::GetAtt": [function_id, "Arn"]}
        }})),
        ("logs:CreateLogStream", "logs:PutLogEvents",
         str({"Fn::GetAtt": [log_group_id, "Arn"]}), "None"),
        ("xray:PutTelemetryRecords", "xray:PutTraceSegments", "*", "None"),
    ])  # fmt: skip


def test_a_function_must_say_where_its_failures_go(build: Build) -> None:
    with pytest.raises(ValueError, match=r"dead_letter_queue .* or no_dlq_reason"):
        build(no_dlq_reason=None)


def test_an_asynchronous_function_gets_its_dead_letter_queue(build: Build) -> None:
    template = build(dead_letter_queue=True)
    (queue_id,) = template.find_resources("AWS::SQS::Queue")
    assert _function(template)["Properties"]["DeadLetterConfig"] == {
        "TargetArn": {"Fn::GetAtt": [queue_id, "Arn"]}
    }
    assert "CKV_AWS_116" not in _skips(template)


def test_without_a_dead_letter_queue_the_checkov_skip_carries_the_callers_reason(
    build: Build,
) -> None:
    template = build()
    assert "DeadLetterConfig" not in _function(template)["Properties"]
    assert _skips(template)["CKV_AWS_116"] == NO_DLQ


def test_reserved_concurrency_is_opt_in_and_needs_a_stated_cap_without_it(build: Build) -> None:
    template = build()
    assert "ReservedConcurrentExecutions" not in _function(template)["Properties"]
    assert _skips(template)["CKV_AWS_115"].endswith(CAP)
    assert "account concurrency limit of 10" in _skips(template)["CKV_AWS_115"]
    reserved = build(reserved_concurrency=3, concurrency_note=None)
    assert _function(reserved)["Properties"]["ReservedConcurrentExecutions"] == 3
    assert "CKV_AWS_115" not in _skips(reserved)
    with pytest.raises(ValueError, match="concurrency_note"):
        build(concurrency_note=None)


def test_outside_a_vpc_the_skip_names_the_stage_option(build: Build) -> None:
    template = build()
    assert "VpcConfig" not in _function(template)["Properties"]
    assert "-c vpc=create" in _skips(template)["CKV_AWS_117"]


def test_with_the_network_the_function_runs_in_private_subnets_with_its_own_group(
    build: Build,
) -> None:
    template = build(vpc=True, uses=("secretsmanager",))
    function = _function(template)
    subnets = function["Properties"]["VpcConfig"]["SubnetIds"]
    isolated = template.find_resources(
        "AWS::EC2::Subnet", {"Properties": {"MapPublicIpOnLaunch": False}}
    )
    assert sorted(s["Ref"] for s in subnets) == sorted(isolated)
    (group,) = function["Properties"]["VpcConfig"]["SecurityGroupIds"]
    assert "Echo" in group["Fn::GetAtt"][0]
    assert "CKV_AWS_117" not in _skips(template)
    # Lambda creates the interfaces with the role, so the EC2 grant exists before the function
    assert any("EchoVpcAccess" in d for d in function["DependsOn"])
    interfaces = endpoint_services(template)
    assert list(interfaces) == ["secretsmanager"]
    assert interfaces["secretsmanager"]["PrivateDnsEnabled"] is True
