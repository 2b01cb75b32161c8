"""A run whose execution ends without its own release of the dataset's lock (stopped by hand,
timed out, failed where nothing catches) does not keep the lock: Step Functions' status-change
events start the release machine, and a run that finds the lock held by an execution that no
longer runs starts it too."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from aws_cdk.assertions import Template

from infra.training_pipeline import RELEASE_ASL, TRAINING_ASL


@pytest.fixture(scope="module")
def app(templates: Callable[[str], dict[str, Template]]) -> Template:
    return templates("dev")["sluice-dev-app"]


def _states(asl: Any) -> dict[str, Any]:
    return dict(json.loads(asl.read_text())["States"])


def _logical_id(template: Template, name: str) -> str:
    (found,) = [
        lid
        for lid, m in template.find_resources("AWS::StepFunctions::StateMachine").items()
        if m["Properties"]["StateMachineName"] == name
    ]
    return found


def test_every_unreleased_end_of_a_run_starts_the_release(app: Template) -> None:
    training = _logical_id(app, "sluice-dev-training")
    release = _logical_id(app, "sluice-dev-release-lock")
    rules = [
        r["Properties"]
        for r in app.find_resources("AWS::Events::Rule").values()
        if r["Properties"].get("EventPattern", {}).get("source") == ["aws.states"]
    ]
    (rule,) = rules
    assert rule["EventPattern"]["detail-type"] == ["Step Functions Execution Status Change"]
    detail = rule["EventPattern"]["detail"]
    assert sorted(detail["status"]) == ["ABORTED", "FAILED", "TIMED_OUT"]  # never SUCCEEDED
    assert detail["stateMachineArn"] == [{"Ref": training}]
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Ref": release}
    assert "Input" not in target and "InputTransformer" not in target  # the event itself


def test_the_release_frees_only_a_lock_the_ended_execution_still_holds() -> None:
    states = _states(RELEASE_ASL)
    release = states["Release the run's lock"]
    assert release["Resource"] == "arn:aws:states:::dynamodb:deleteItem"
    params = release["Parameters"]
    assert params["ConditionExpression"] == "execution = :run"
    assert params["ExpressionAttributeValues"][":run"] == {"S.$": "$.execution"}
    assert params["ReturnValues"] == "ALL_OLD"
    (held_by_another,) = [
        c
        for c in release["Catch"]
        if c["ErrorEquals"] == ["DynamoDB.ConditionalCheckFailedException"]
    ]
    assert states[held_by_another["Next"]]["Type"] == "Succeed"
    # then the run's end is recorded and the queued triggers get their one follow-up run
    assert release["Next"] == "Record the run's end"
    record = states["Record the run's end"]["Parameters"]["Payload"]
    assert record["action"] == "run_stopped"
    follow_up = states["Start follow-up run"]["Parameters"]
    assert follow_up["StateMachineArn"] == "${TrainingStateMachineArn}"
    assert follow_up["Input"]["trigger"]["type"] == "coalesced"
    assert follow_up["Input"]["trigger"]["triggers.$"] == (
        "$.released.Attributes.pending_triggers.L[*].S"
    )


def test_a_run_queued_behind_a_holder_that_no_longer_runs_starts_the_release() -> None:
    states = _states(TRAINING_ASL)
    queue = states["Queue behind the running run"]
    assert queue["Parameters"]["ReturnValues"] == "ALL_NEW"  # its trigger is queued first
    check = states[queue["Next"]]
    assert check["Resource"] == "arn:aws:states:::aws-sdk:sfn:describeExecution"
    running = states[check["Next"]]
    (still,) = running["Choices"]
    assert (still["StringEquals"], still["Next"]) == ("RUNNING", "Queued")
    start = states[running["Default"]]
    assert start["Resource"] == "arn:aws:states:::states:startExecution"
    assert start["Parameters"]["StateMachineArn"] == "${ReleaseLockStateMachineArn}"
    detail = start["Parameters"]["Input"]["detail"]
    assert detail["executionArn.$"] == "$.holder.execution"
    assert "$$.Execution.Input" in detail["input.$"]  # the dataset, whatever the holder was
    # an execution long gone (Step Functions keeps them 90 days) holds nothing either
    (gone,) = [
        c for c in check["Catch"] if c["ErrorEquals"] == ["Sfn.ExecutionDoesNotExistException"]
    ]
    assert gone["Next"] == running["Default"]
    assert start["Next"] == "Queued"
    # a lookup or a start that fails leaves the trigger queued: nothing is lost
    assert {c["Next"] for c in start["Catch"]} == {"Queued"}
    assert check["Catch"][-1] == {
        "ErrorEquals": ["States.ALL"],
        "ResultPath": "$.holder_error",
        "Next": "Queued",
    }


def _statements(template: Template, fragment: str) -> list[dict[str, Any]]:
    return [
        statement
        for pid, policy in template.find_resources("AWS::IAM::Policy").items()
        if fragment in pid
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def test_the_release_may_delete_locks_record_and_start_runs_only(app: Template) -> None:
    statements = _statements(app, "TrainingPipelineReleaseMachineAccess")
    actions = sorted(
        a
        for s in statements
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    )
    assert actions == sorted([
        "dynamodb:DeleteItem", "kms:Decrypt", "kms:DescribeKey", "kms:Encrypt",
        "kms:GenerateDataKey", "lambda:InvokeFunction", "states:StartExecution",
    ])  # fmt: skip
    (start,) = [s for s in statements if s["Action"] == "states:StartExecution"]
    assert ":stateMachine:sluice-dev-training" in json.dumps(start["Resource"])
    (delete,) = [s for s in statements if s["Action"] == "dynamodb:DeleteItem"]
    assert "TrainingPipelineLocks" in json.dumps(delete["Resource"])
    # and the record function may read how a run ended
    record = _statements(app, "TrainingPipelineRecordAccess")
    (describe,) = [s for s in record if s["Action"] == "states:DescribeExecution"]
    assert ":execution:sluice-dev-training:*" in json.dumps(describe["Resource"])
