"""The batch-scoring construct as synthesized: rule, state machine, function, permissions."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from infra.batch_scoring import ASL
from infra.rollout import declared_datasets
from tests.infra.conftest import make_app, stack


@pytest.fixture(scope="module")
def dev() -> Template:
    return Template.from_stack(stack(make_app("dev"), "sluice-dev-app"))


def _definition(template: Template) -> dict[str, Any]:
    """The ASL file as CloudFormation substitutes it (see test_backfill.py)."""
    machines = template.find_resources(
        "AWS::StepFunctions::StateMachine",
        {"Properties": {"StateMachineName": "sluice-dev-batch-scoring"}},
    )
    (machine,) = machines.values()
    props = machine["Properties"]
    assert set(props["DefinitionS3Location"]) == {"Bucket", "Key"}
    assert set(props["DefinitionSubstitutions"]) == {"ScoreFunctionArn"}
    definition: dict[str, Any] = json.loads(ASL.read_text())
    return definition


def test_a_file_under_score_of_every_declared_dataset_starts_a_run(dev: Template) -> None:
    dev.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": {
                "source": ["aws.s3"],
                "detail-type": ["Object Created"],
                "detail": {
                    "bucket": {"name": [Match.any_value()]},
                    "object": {"key": [{"prefix": f"{d}/_score/"} for d in declared_datasets()]},
                },
            },
            "Targets": [
                Match.object_like(
                    {"Arn": {"Ref": Match.string_like_regexp("BatchScoringStateMachine")}}
                )
            ],
        },
    )


def test_the_run_prepares_transforms_and_finishes(dev: Template) -> None:
    states = _definition(dev)["States"]
    assert states["Prepare"]["Parameters"]["Payload"] == {"step": "prepare", "event.$": "$"}
    transform = states["Transform"]
    assert transform["Resource"] == "arn:aws:states:::sagemaker:createTransformJob.sync"
    assert transform["Parameters"]["DataProcessing.$"] == "$.transform.DataProcessing"
    assert transform["Catch"] == [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": "Finish"}
    ]
    assert states["Scorable?"]["Default"] == "Rejected"
    assert states["Scored?"]["Default"] == "ScoringFailed"
    assert states["ScoringFailed"]["Type"] == "Fail"


def test_the_score_function_reads_only_score_files_and_writes_only_results(dev: Template) -> None:
    functions = dev.find_resources(
        "AWS::Lambda::Function", {"Properties": {"Handler": "lambdas.score.handler.handler"}}
    )
    (function,) = functions.values()
    env = function["Properties"]["Environment"]["Variables"]
    assert env["SLUICE_PREFIX"] == "sluice-dev"
    assert env["TRANSFORM_INSTANCE_TYPE"] == "ml.m5.xlarge"
    policies = dev.find_resources("AWS::IAM::Policy")
    statements = next(
        p["Properties"]["PolicyDocument"]["Statement"]
        for k, p in policies.items()
        if "BatchScoringScoreAccess" in k
    )
    reads = next(s for s in statements if s["Action"] == ["s3:GetObject", "s3:GetObjectVersion"])
    assert "/churn/_score/*" in json.dumps(reads["Resource"])
    writes = next(s for s in statements if "s3:PutObject" in s["Action"])
    rendered = json.dumps(writes["Resource"])
    assert "/churn/predictions/*" in rendered and "/churn/scoring/*" in rendered


def test_the_state_machine_may_run_only_the_stages_scoring_jobs(dev: Template) -> None:
    policies = dev.find_resources("AWS::IAM::Policy")
    statements = next(
        p["Properties"]["PolicyDocument"]["Statement"]
        for k, p in policies.items()
        if "BatchScoringStateMachineAccess" in k
    )
    jobs = next(s for s in statements if "sagemaker:CreateTransformJob" in s["Action"])
    assert ":transform-job/sluice-dev-score-*" in json.dumps(jobs["Resource"])
