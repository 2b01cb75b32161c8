"""Retraining on alarms: one run per cool-down, through the pipeline's own input (moto)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambdas.retrain.handler import handler
from lambdas.retrain.policy import Alarm, NotARetrainAlarm, Retrainer
from lambdas.retrain.settings import Settings

TABLE = "cooldowns"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def world() -> Iterator[tuple[Retrainer, Clock, Any]]:
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="eu-west-1")
        dynamodb.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "dataset", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "dataset", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        sfn = boto3.client("stepfunctions", region_name="eu-west-1")
        machine = sfn.create_state_machine(
            name="sluice-test-training",
            definition=json.dumps({"StartAt": "S", "States": {"S": {"Type": "Succeed"}}}),
            roleArn="arn:aws:iam::123456789012:role/r",
        )["stateMachineArn"]
        settings = Settings(
            stage="test", prefix="sluice-test", state_machine_arn=machine, cooldown_table=TABLE
        )
        clock = Clock()
        yield Retrainer(settings, dynamodb=dynamodb, sfn=sfn, clock=clock), clock, sfn


def message(metric: str = "DriftMax", state: str = "ALARM", dataset: str = "churn") -> dict:
    """An alarm's SNS message as CloudWatch writes it."""
    return {
        "AlarmName": f"sluice-test-{dataset}-drift",
        "NewStateValue": state,
        "NewStateReason": "Threshold Crossed: 1 out of the last 1 datapoints [0.61] was greater "
        "than or equal to the threshold (0.25)",
        "StateChangeTime": "2026-11-30T10:00:00.000+0000",
        "Trigger": {
            "MetricName": metric,
            "Namespace": "Sluice",
            "Dimensions": [
                {"value": "test", "name": "Stage"},
                {"value": dataset, "name": "Dataset"},
            ],
        },
    }


def executions(sfn: Any, machine: str) -> list[dict[str, Any]]:
    listed = sfn.list_executions(stateMachineArn=machine)["executions"]
    return [sfn.describe_execution(executionArn=e["executionArn"]) for e in listed]


def test_a_drift_alarm_starts_one_run_and_the_cool_down_holds_the_next(
    world: tuple[Retrainer, Clock, Any],
) -> None:
    retrainer, clock, sfn = world
    machine = retrainer.settings.state_machine_arn
    # When the drift alarm fires
    first = retrainer.on_alarm(Alarm.of(message(), "m1"))
    # Then one run starts, through the pipeline's own input, recording the trigger
    assert first["status"] == "started" and first["trigger"] == "drift"
    (run,) = executions(sfn, machine)
    request = json.loads(run["input"])
    assert request["dataset"] == "churn"
    assert request["trigger"]["type"] == "drift"
    assert request["trigger"]["alarm"] == "sluice-test-churn-drift"
    assert "0.61" in request["trigger"]["reason"]
    # When it fires again within churn's cool-down (24 h in its spec), and quality too
    clock.now += 23 * 3600
    again = retrainer.on_alarm(Alarm.of(message(), "m2"))
    quality = retrainer.on_alarm(Alarm.of(message("ModelQuality"), "m3"))
    # Then no run starts, and the answer says when one may
    assert again["status"] == quality["status"] == "cooling_down"
    assert again["last_trigger"] == "drift" and again["last_run"] == run["executionArn"]
    assert again["next_run_after_seconds"] == pytest.approx(3600)
    assert len(executions(sfn, machine)) == 1
    # When the cool-down has passed, Then the next alarm starts the next run
    clock.now += 3601
    later = retrainer.on_alarm(Alarm.of(message("ModelQuality"), "m4"))
    assert later["status"] == "started" and later["trigger"] == "quality"
    assert len(executions(sfn, machine)) == 2


def test_a_redelivered_message_starts_no_second_run(world: tuple[Retrainer, Clock, Any]) -> None:
    retrainer, _, sfn = world
    first = retrainer.on_alarm(Alarm.of(message(), "same"))
    second = retrainer.on_alarm(Alarm.of(message(), "same"))
    assert first["status"] == second["status"] == "started"
    assert first["execution"] == second["execution"]
    assert len(executions(sfn, retrainer.settings.state_machine_arn)) == 1


def test_ok_is_ignored_and_other_alarms_are_refused(world: tuple[Retrainer, Clock, Any]) -> None:
    retrainer, _, _ = world
    assert retrainer.on_alarm(Alarm.of(message(state="OK"), "m"))["status"] == "ignored"
    with pytest.raises(NotARetrainAlarm):
        retrainer.on_alarm(Alarm.of(message(metric="Errors"), "m"))
    with pytest.raises(NotARetrainAlarm):
        retrainer.on_alarm(Alarm.of(message(dataset="nope"), "m"))


def test_the_stage_may_shorten_every_cool_down(world: tuple[Retrainer, Clock, Any]) -> None:
    retrainer, clock, _ = world
    retrainer.settings = Settings(**{**retrainer.settings.__dict__, "cooldown_minutes_override": 2})
    assert retrainer.on_alarm(Alarm.of(message(), "a"))["status"] == "started"
    clock.now += 119
    assert retrainer.on_alarm(Alarm.of(message(), "b"))["status"] == "cooling_down"
    clock.now += 2
    assert retrainer.on_alarm(Alarm.of(message(), "c"))["status"] == "started"


def test_the_handler_reads_sns_records(world: tuple[Retrainer, Clock, Any]) -> None:
    retrainer, _, _ = world
    event = {"Records": [{"Sns": {"MessageId": "x1", "Message": json.dumps(message())}}]}

    class Context:
        function_name, memory_limit_in_mb, aws_request_id = "retrain", 256, "r"
        invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:retrain"

    result = handler(event, Context(), retrainer=retrainer)  # type: ignore[arg-type]
    assert [r["status"] for r in result["results"]] == ["started"]
