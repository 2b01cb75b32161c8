"""The Lambda factory: every function's role, logs, tracing, runtime and architecture."""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Match, Template

from infra import lambda_function
from infra.config import stage_config
from infra.lambda_function import PythonFunction


@pytest.fixture
def template(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Template:
    (tmp_path / "lambdas" / "echo").mkdir(parents=True)
    (tmp_path / "lambdas" / "__init__.py").write_text("")
    (tmp_path / "lambdas" / "echo" / "handler.py").write_text("def handler(e, c):\n    return e\n")
    monkeypatch.setattr(lambda_function, "REPO_ROOT", tmp_path)
    app = cdk.App(context={"aws:cdk:bundling-stacks": []})
    stack = cdk.Stack(app, "S")
    config = stage_config("prod", {"lambda_architecture": "x86_64"})
    PythonFunction(stack, "Echo", name="echo", config=config, description="echoes")
    return Template.from_stack(stack)


def test_function_runs_the_packages_handler_on_the_configured_platform(template: Template) -> None:
    template.has_resource_properties(
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


def test_logs_are_kept_as_long_as_the_stage_says(template: Template) -> None:
    template.has_resource("AWS::Logs::LogGroup", {
        "Properties": {"RetentionInDays": 365}, "DeletionPolicy": "Retain",
    })  # fmt: skip


def test_the_role_may_only_write_its_own_logs_and_traces(template: Template) -> None:
    template.resource_properties_count_is(
        "AWS::IAM::Role", {"ManagedPolicyArns": Match.any_value()}, 0
    )
    policies = template.find_resources("AWS::IAM::Policy")
    statements = [
        s for p in policies.values() for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    (log_group_id,) = template.find_resources("AWS::Logs::LogGroup")
    assert sorted((tuple(sorted(s["Action"])), str(s["Resource"])) for s in statements) == [
        (("logs:CreateLogStream", "logs:PutLogEvents"), str({"Fn::GetAtt": [log_group_id, "Arn"]})),
        (("xray:PutTelemetryRecords", "xray:PutTraceSegments"), "*"),
    ]
