"""The processing job for objects too large for the function: role, grants, image, code."""

from __future__ import annotations

import aws_cdk as cdk
import pytest
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Template

from infra.config import STAGES
from infra.data_lake import DataLake
from infra.ingestion import Ingestion
from infra.sagemaker_images import xgboost_image_uris
from tests.infra.conftest import CDK_CONTEXT


@pytest.fixture(scope="module")
def template() -> Template:
    app = cdk.App(context={**CDK_CONTEXT, "aws:cdk:bundling-stacks": []})
    stack = cdk.Stack(app, "LargeObjectsTest")
    lake = DataLake(stack, "Lake", config=STAGES["dev"])
    Ingestion(
        stack, "Ingestion", config=STAGES["dev"], lake=lake, alerts=sns.Topic(stack, "Alerts")
    )
    return Template.from_stack(stack)


def _roles(template: Template, service: str) -> list[str]:
    return [
        logical_id
        for logical_id, role in template.find_resources("AWS::IAM::Role").items()
        if role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"].get(
            "Service"
        )
        == service
    ]


def _statements(template: Template, role_id: str) -> list[dict]:
    return [
        statement
        for policy in template.find_resources("AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _actions(statement: dict) -> list[str]:
    actions = statement["Action"]
    return sorted(actions if isinstance(actions, list) else [actions])


@pytest.fixture(scope="module")
def job_role(template: Template) -> str:
    [role] = _roles(template, "sagemaker.amazonaws.com")
    return role


@pytest.fixture(scope="module")
def function_role(template: Template) -> str:
    [function] = template.find_resources(
        "AWS::Lambda::Function", {"Properties": {"Handler": "lambdas.preprocess.handler.handler"}}
    ).values()
    return str(function["Properties"]["Role"]["Fn::GetAtt"][0])


def test_function_may_pass_exactly_the_job_role_to_sagemaker_only(
    template: Template, function_role: str, job_role: str
) -> None:
    [pass_role] = [
        s for s in _statements(template, function_role) if _actions(s) == ["iam:PassRole"]
    ]
    assert pass_role["Resource"] == {"Fn::GetAtt": [job_role, "Arn"]}
    assert pass_role["Condition"] == {
        "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
    }


def test_function_may_create_and_describe_only_the_stages_processing_jobs(
    template: Template, function_role: str
) -> None:
    [sagemaker] = [
        s for s in _statements(template, function_role) if "sagemaker:" in str(s["Action"])
    ]
    assert _actions(sagemaker) == [
        "sagemaker:CreateProcessingJob",
        "sagemaker:DescribeProcessingJob",
    ]
    assert ":processing-job/sluice-dev-*" in str(sagemaker["Resource"])


def test_job_role_reads_raw_writes_curated_quarantine_and_never_deletes(
    template: Template, job_role: str
) -> None:
    statements = _statements(template, job_role)
    by_actions = {tuple(_actions(s)): s for s in statements}
    assert ("s3:GetObject", "s3:GetObjectVersion") in by_actions
    assert ("s3:PutObject",) in by_actions
    written = str(by_actions[("s3:PutObject",)]["Resource"])
    assert "LakeCurated" in written and "LakeQuarantine" in written and "LakeRaw" not in written
    for statement in statements:
        assert not any(a.startswith(("s3:Delete", "iam:")) or "*" in a for a in _actions(statement))


def test_job_role_uses_the_key_only_through_s3_and_secrets_manager(
    template: Template, job_role: str
) -> None:
    kms = [s for s in _statements(template, job_role) if "kms:" in str(s["Action"])]
    data = [s for s in kms if "kms:Decrypt" in _actions(s)]
    [statement] = data
    services = str(statement["Condition"]["StringEquals"]["kms:ViaService"])
    assert "'s3." in services and "'secretsmanager." in services and "sqs" not in services
    [grant] = [s for s in kms if _actions(s) == ["kms:CreateGrant"]]
    assert grant["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}


def test_job_role_puts_events_on_the_default_bus_and_logs_to_processing_jobs(
    template: Template, job_role: str
) -> None:
    statements = _statements(template, job_role)
    [events] = [s for s in statements if _actions(s) == ["events:PutEvents"]]
    assert ":event-bus/default" in str(events["Resource"])
    [logs] = [s for s in statements if "logs:PutLogEvents" in _actions(s)]
    assert ":log-group:/aws/sagemaker/ProcessingJobs:*" in str(logs["Resource"])


def test_function_knows_threshold_image_code_role_and_key(
    template: Template, job_role: str
) -> None:
    [function] = template.find_resources(
        "AWS::Lambda::Function", {"Properties": {"Handler": "lambdas.preprocess.handler.handler"}}
    ).values()
    env = function["Properties"]["Environment"]["Variables"]
    assert env["LARGE_OBJECT_BYTES"] == str(STAGES["dev"].large_object_threshold_bytes)
    assert env["PROCESSING_ROLE_ARN"] == {"Fn::GetAtt": [job_role, "Arn"]}
    assert env["PROCESSING_IMAGE_URI"]["Fn::FindInMap"][1:] == [{"Ref": "AWS::Region"}, "uri"]
    assert ".zip" in str(env["PROCESSING_CODE_URI"])
    assert "LakeKey" in str(env["PROCESSING_KMS_KEY_ARN"])
    assert env["PROCESSING_JOB_PREFIX"] == "sluice-dev"


def test_image_registry_is_mapped_per_region(template: Template) -> None:
    # Given the SageMaker SDK's registry table, Then every region it knows is mapped, from it
    [mapping] = template.find_mappings("*").values()
    assert set(mapping) == set(xgboost_image_uris())
    assert mapping["us-east-1"] == {
        "uri": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:3.0-5",
        "account": "683313688378",
    }
    assert mapping["cn-north-1"]["uri"].endswith(".amazonaws.com.cn/sagemaker-xgboost:3.0-5")


def test_a_synth_pinned_to_an_unmapped_region_fails_clearly() -> None:
    app = cdk.App(context={**CDK_CONTEXT, "aws:cdk:bundling-stacks": []})
    stack = cdk.Stack(
        app, "Pinned", env=cdk.Environment(account="123456789012", region="xx-east-9")
    )
    lake = DataLake(stack, "Lake", config=STAGES["dev"])
    with pytest.raises(Exception, match="xx-east-9"):
        Ingestion(
            stack, "Ingestion", config=STAGES["dev"], lake=lake, alerts=sns.Topic(stack, "Alerts")
        )
        Template.from_stack(stack)


def test_the_job_may_pull_only_the_xgboost_image_of_the_regions_registry(
    template: Template, job_role: str
) -> None:
    (pull,) = [s for s in _statements(template, job_role) if "ecr:BatchGetImage" in _actions(s)]
    assert _actions(pull) == ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    parts = pull["Resource"]["Fn::Join"][1]
    assert "Token[" not in str(parts)  # a token cut apart by string operations renders broken
    (lookup,) = [p for p in parts if isinstance(p, dict) and "Fn::FindInMap" in p]
    assert lookup["Fn::FindInMap"][1:] == [{"Ref": "AWS::Region"}, "account"]
    assert parts[-1] == ":repository/sagemaker-xgboost"
