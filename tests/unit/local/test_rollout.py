"""Walking a deployment plan: traffic shifts, baking, alarm checks, rollback, timeout."""

from __future__ import annotations

import itertools

from sluice_local.sagemaker.deployment import Plan, Rollout, Step, plan

CANARY = plan(
    {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1},
                "WaitIntervalInSeconds": 300,
            },
            "TerminationWaitInSeconds": 120,
            "MaximumExecutionTimeoutInSeconds": 1800,
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "5xx"}, {"AlarmName": "p99"}]},
    },
    capacity=2,
)


def rollout(clock, plan_=CANARY, alarm_at=None, alarm="5xx", **kwargs):
    """A rollout whose ``alarm`` is in ALARM from ``alarm_at`` (AWS seconds) on."""
    shifts: list[tuple[float, float]] = []
    checks: list[float] = []

    def in_alarm(names):
        checks.append(clock.now())
        return (
            [alarm] if alarm_at is not None and clock.now() >= alarm_at and alarm in names else []
        )

    runner = Rollout(
        plan_,
        clock,
        shift=lambda share, step: shifts.append((clock.now(), share)),
        alarms_in_alarm=in_alarm,
        **kwargs,
    )
    return runner, shifts, checks


def test_healthy_canary_shifts_all_traffic_after_the_wait_and_ends_after_baking(clock):
    runner, shifts, checks = rollout(clock)
    outcome = runner.run()
    # Then the canary share first, all traffic after the wait, success after the final baking
    assert shifts == [(0.0, 0.5), (300.0, 1.0)]
    assert outcome.succeeded and outcome.alarm is None
    assert outcome.elapsed == 420.0
    # and the alarms were read all along, every poll interval
    assert checks[0] == 0.0 and checks[-1] == 420.0
    assert max(b - a for a, b in itertools.pairwise(checks)) <= 5.0


def test_alarm_during_the_canary_rolls_back_before_any_more_traffic_shifts(clock):
    runner, shifts, _ = rollout(clock, alarm_at=42.0)
    outcome = runner.run()
    assert not outcome.succeeded
    assert outcome.alarm == "5xx"
    assert "5xx in ALARM" in (outcome.reason or "")
    assert shifts == [(0.0, 0.5)]
    # noticed within one poll interval of tripping
    assert 42.0 <= outcome.elapsed <= 47.0


def test_alarm_during_the_final_baking_still_rolls_back(clock):
    runner, shifts, _ = rollout(clock, alarm="p99", alarm_at=350.0)
    outcome = runner.run()
    assert not outcome.succeeded and outcome.alarm == "p99"
    assert shifts == [(0.0, 0.5), (300.0, 1.0)]
    assert 350.0 <= outcome.elapsed < 420.0


def test_alarm_already_in_alarm_when_traffic_first_shifts_stops_the_rollout(clock):
    # the alarms watch the whole endpoint: an alarm the old model caused stops a rollout too
    runner, _, _ = rollout(clock, alarm_at=0.0)
    outcome = runner.run()
    assert not outcome.succeeded and outcome.elapsed == 0.0


def test_deployment_past_its_maximum_execution_time_rolls_back(clock):
    slow = Plan("CANARY", (Step(0.5, 3000.0), Step(1.0, 3000.0, final=True)), ("5xx",), 600.0)
    runner, shifts, _ = rollout(clock, plan_=slow)
    outcome = runner.run()
    assert not outcome.succeeded and outcome.alarm is None
    assert "MaximumExecutionTimeoutInSeconds" in (outcome.reason or "")
    assert outcome.elapsed == 600.0
    assert shifts == [(0.0, 0.5)]


def test_timeout_counts_from_the_update_request_not_the_first_shift(clock):
    clock.t = 550.0  # the new fleet took 550 s to start
    slow = Plan("ALL_AT_ONCE", (Step(1.0, 300.0, final=True),), ("5xx",), 600.0)
    runner, _, _ = rollout(clock, plan_=slow)
    outcome = runner.run(started=0.0)
    assert not outcome.succeeded and clock.t == 600.0


def test_unwatched_switch_needs_no_alarm_reads(clock):
    at_once = plan(None, capacity=1)
    runner, shifts, checks = rollout(clock, plan_=at_once)
    assert runner.run().succeeded
    assert shifts == [(0.0, 1.0)] and checks == []


def test_deleted_endpoint_ends_the_rollout(clock):
    runner, _, _ = rollout(clock, cancelled=lambda: clock.now() >= 100.0)
    outcome = runner.run()
    assert not outcome.succeeded and outcome.reason == "the endpoint was deleted"
