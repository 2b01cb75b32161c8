"""The backfill state machine: Distributed Map over an S3 listing, invoking the function."""

from __future__ import annotations

import json

import aws_cdk as cdk
import pytest
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Template

from infra.backfill import ASL, Backfill
from infra.config import STAGES
from infra.data_lake import DataLake
from infra.ingestion import Ingestion
from tests.infra.conftest import CDK_CONTEXT


@pytest.fixture(scope="module")
def template() -> Template:
    app = cdk.App(context={**CDK_CONTEXT, "aws:cdk:bundling-stacks": []})
    stack = cdk.Stack(app, "BackfillTest")
    lake = DataLake(stack, "Lake", config=STAGES["dev"])
    ingestion = Ingestion(
        stack, "Ingestion", config=STAGES["dev"], lake=lake, alerts=sns.Topic(stack, "Alerts")
    )
    Backfill(
        stack, "Backfill", config=STAGES["dev"], lake=lake, function=ingestion.function.function
    )
    return Template.from_stack(stack)


@pytest.fixture(scope="module")
def machine(template: Template) -> dict:
    [resource] = template.find_resources("AWS::StepFunctions::StateMachine").values()
    return dict(resource["Properties"])


def _definition(machine: dict) -> tuple[dict, str]:
    """The deployed definition as text: ``DefinitionBody.from_file`` ships the ASL file as an
    asset (``DefinitionS3Location``) and CloudFormation fills in ``DefinitionSubstitutions``;
    do the same here, with each substituted value rendered as its JSON."""
    assert set(machine["DefinitionS3Location"]) == {"Bucket", "Key"}
    text = ASL.read_text()
    for name, value in machine["DefinitionSubstitutions"].items():
        text = text.replace(
            "${" + name + "}", value if isinstance(value, str) else json.dumps(value)
        )
    return machine, text


def test_distributed_map_reads_the_raw_bucket_listing_and_invokes_the_function(
    machine: dict,
) -> None:
    _, text = _definition(machine)
    assert '"Mode":"DISTRIBUTED"' in text.replace(" ", "")
    assert "arn:aws:states:::s3:listObjectsV2" in text
    assert '"Prefix.$":"$.prefix"' in text.replace(" ", "")
    assert "LakeRaw" in text  # the bucket the ItemReader lists
    assert "${" not in text.replace("${AWS::", "")  # every placeholder is substituted
    assert "arn:aws:states:::lambda:invoke" in text
    assert "IngestionPreprocessFunction" in text  # the preprocess function's ARN
    # no failure tolerated: the Map's default (0); the local cloud's parser rejects an explicit 0
    objects = json.loads(ASL.read_text())["States"]["Objects"]
    assert not {"ToleratedFailurePercentage", "ToleratedFailureCount"} & set(objects)
    assert "arn:aws:states:::s3:putObject" in text and "LakeArtifacts" in text  # ResultWriter
    assert "Lambda.TooManyRequestsException" in text


def test_items_are_object_created_events_the_handler_accepts(machine: dict) -> None:
    _, text = _definition(machine)
    compact = text.replace(" ", "")
    assert '"detail-type":"ObjectCreated"' in compact
    assert '"key.$":"$$.Map.Item.Value.Key"' in compact
    assert '"size.$":"$$.Map.Item.Value.Size"' in compact


def test_concurrency_comes_from_the_stage(machine: dict) -> None:
    _, text = _definition(machine)
    assert f"StringToJson('{STAGES['dev'].backfill_max_concurrency}')" in text


def test_logs_all_events_to_an_encrypted_group_and_traces(
    template: Template, machine: dict
) -> None:
    assert machine["TracingConfiguration"] == {"Enabled": True}
    assert machine["LoggingConfiguration"]["Level"] == "ALL"
    template.has_resource_properties(
        "AWS::Logs::LogGroup", {"KmsKeyId": {"Fn::GetAtt": [_key(template), "Arn"]}}
    )


def _key(template: Template) -> str:
    [key] = template.find_resources("AWS::KMS::Key")
    return key


def test_role_invokes_only_the_function_and_lists_only_the_raw_bucket(
    template: Template, machine: dict
) -> None:
    role = machine["RoleArn"]["Fn::GetAtt"][0]
    statements = [
        s
        for policy in template.find_resources("AWS::IAM::Policy").values()
        if {"Ref": role} in policy["Properties"]["Roles"]
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    [invoke] = [s for s in statements if s["Action"] == "lambda:InvokeFunction"]
    assert "IngestionPreprocessFunction" in str(invoke["Resource"])
    [listing] = [s for s in statements if s["Action"] == "s3:ListBucket"]
    assert "LakeRaw" in str(listing["Resource"])
    [start] = [s for s in statements if s["Action"] == "states:StartExecution"]
    assert ":stateMachine:sluice-dev-backfill" in str(start["Resource"])
    for s in statements:
        actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        assert not any(a.startswith("s3:Delete") or a.endswith("*") for a in actions), s
