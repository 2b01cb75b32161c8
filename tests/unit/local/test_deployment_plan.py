"""How a DeploymentConfig becomes traffic steps, and what SageMaker refuses."""

from __future__ import annotations

import random

import pytest
from sluice_local.sagemaker.deployment import (
    DeploymentConfigError,
    Step,
    plan,
    to_green,
)


def blue_green(routing: dict, termination: int = 120, timeout: int | None = None, alarms=("a",)):
    policy: dict = {"TrafficRoutingConfiguration": routing, "TerminationWaitInSeconds": termination}
    if timeout is not None:
        policy["MaximumExecutionTimeoutInSeconds"] = timeout
    config: dict = {"BlueGreenUpdatePolicy": policy}
    if alarms:
        config["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": a} for a in alarms]}
    return config


def canary(kind: str, value: int, wait: int = 300) -> dict:
    return {
        "Type": "CANARY",
        "CanarySize": {"Type": kind, "Value": value},
        "WaitIntervalInSeconds": wait,
    }


def test_canary_of_one_instance_in_four_answers_a_quarter_then_all_then_bakes():
    steps = plan(blue_green(canary("INSTANCE_COUNT", 1)), capacity=4)
    assert steps.mode == "CANARY"
    assert steps.steps == (Step(0.25, 300.0), Step(1.0, 120.0, final=True))
    assert steps.alarms == ("a",)
    assert steps.guarded


def test_canary_capacity_percent_rounds_down_to_whole_instances():
    # 30% of 4 instances is 1.2: one instance, a quarter of the traffic
    assert plan(blue_green(canary("CAPACITY_PERCENT", 30)), capacity=4).steps[0].share == 0.25
    assert plan(blue_green(canary("CAPACITY_PERCENT", 50)), capacity=2).steps[0].share == 0.5


@pytest.mark.parametrize(
    ("kind", "value", "capacity"),
    [
        ("INSTANCE_COUNT", 3, 4),  # 75% of the fleet
        ("INSTANCE_COUNT", 1, 1),  # one instance: a canary would be all of it
        ("CAPACITY_PERCENT", 60, 10),
        ("CAPACITY_PERCENT", 40, 2),  # 0.8 instance: less than one
    ],
)
def test_canary_larger_than_half_the_fleet_or_smaller_than_an_instance_is_refused(
    kind, value, capacity
):
    with pytest.raises(DeploymentConfigError, match="CanarySize"):
        plan(blue_green(canary(kind, value)), capacity=capacity)


def test_linear_steps_shift_equal_shares_then_bake_at_the_end():
    routing = {
        "Type": "LINEAR",
        "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 34},
        "WaitIntervalInSeconds": 60,
    }
    steps = plan(blue_green(routing, termination=30), capacity=3).steps
    assert [round(s.share, 3) for s in steps] == [0.333, 0.667, 1.0]
    assert [s.bake_seconds for s in steps] == [60.0, 60.0, 30.0]
    assert steps[-1].final


def test_linear_step_below_ten_percent_is_refused():
    routing = {
        "Type": "LINEAR",
        "LinearStepSize": {"Type": "INSTANCE_COUNT", "Value": 1},
        "WaitIntervalInSeconds": 60,
    }
    with pytest.raises(DeploymentConfigError, match="between 10% and 50%"):
        plan(blue_green(routing), capacity=20)


def test_all_at_once_bakes_for_the_termination_wait():
    steps = plan(blue_green({"Type": "ALL_AT_ONCE"}, termination=600), capacity=1)
    assert steps.steps == (Step(1.0, 600.0, final=True),)


def test_no_deployment_config_switches_at_once_unwatched():
    steps = plan(None, capacity=2)
    assert steps.steps == (Step(1.0, 0.0, final=True),)
    assert not steps.guarded


def test_serverless_canary_takes_a_share_of_requests_and_no_instance_count():
    assert plan(blue_green(canary("CAPACITY_PERCENT", 20)), capacity=None).steps[0].share == 0.2
    with pytest.raises(DeploymentConfigError, match="serverless"):
        plan(blue_green(canary("INSTANCE_COUNT", 1)), capacity=None)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (blue_green(canary("INSTANCE_COUNT", 1), timeout=300), "MaximumExecutionTimeoutInSeconds"),
        (blue_green(canary("INSTANCE_COUNT", 1), termination=3601), "TerminationWaitInSeconds"),
        (blue_green(canary("INSTANCE_COUNT", 1, wait=4000)), "WaitIntervalInSeconds"),
        (blue_green({"Type": "CANARY", "WaitIntervalInSeconds": 60}), "CanarySize is required"),
        (blue_green({"Type": "SLOW"}), "Type 'SLOW'"),
        (
            blue_green(canary("INSTANCE_COUNT", 1), alarms=[f"a{i}" for i in range(11)]),
            "between 1 and 10",
        ),
        (
            {"RollingUpdatePolicy": {"MaximumBatchSize": {"Type": "INSTANCE_COUNT", "Value": 1}}},
            "not emulated",
        ),
    ],
)
def test_invalid_deployment_configs_are_refused(config, message):
    with pytest.raises(DeploymentConfigError, match=message):
        plan(config, capacity=4)


def test_traffic_split_sends_the_canary_share_of_requests_to_the_new_fleet():
    draw = random.Random(7).random
    green = sum(to_green(0.25, draw) for _ in range(20_000))
    assert green / 20_000 == pytest.approx(0.25, abs=0.01)
    assert not any(to_green(0.0, draw) for _ in range(1000))
    assert all(to_green(1.0, draw) for _ in range(1000))
