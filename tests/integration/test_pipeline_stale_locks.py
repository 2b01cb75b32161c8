"""A run that never reaches its own end does not keep its dataset: stopped by hand (or timed
out), its lock is released for it and the trigger queued behind it runs; and a lock held by an
execution that is gone is taken over by the next run. On the deployed dev app, dataset leads
(after the pipeline's paths: its story is over by then)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.helpers import wait_for
from tests.integration.pipeline_helpers import Pipeline, arm_fault, clear_faults

pytestmark = pytest.mark.integration
DATASET = "leads"
FAST = {"num_round": 3, "max_depth": 2}


@pytest.fixture(scope="module")
def pipeline(aws: Callable[[str], Any], app_outputs: dict[str, dict[str, str]]) -> Pipeline:
    return Pipeline(aws, {**app_outputs["sluice-dev-data"], **app_outputs["sluice-dev-app"]})


@pytest.fixture(scope="module")
def seeded(pipeline: Pipeline, tmp_path_factory: pytest.TempPathFactory) -> None:
    pipeline.seed_curated(DATASET, 600, 31, tmp_path_factory.mktemp("stale-locks"))


def _lock(pipeline: Pipeline) -> dict[str, Any] | None:
    item = pipeline.aws("dynamodb").get_item(
        TableName=pipeline.outputs["RunLockTableName"], Key={"dataset": {"S": DATASET}}
    )
    return item.get("Item")


def _follow_up(pipeline: Pipeline, after: str) -> str | None:
    """The run started for the triggers queued behind ``after``."""
    sfn = pipeline.aws("stepfunctions")
    for execution in pipeline.executions():
        described = sfn.describe_execution(executionArn=execution["executionArn"])
        trigger = json.loads(described.get("input") or "{}").get("trigger") or {}
        if trigger.get("type") == "coalesced" and trigger.get("after") == after:
            return str(execution["executionArn"])
    return None


def _run_of(pipeline: Pipeline, execution: str) -> dict[str, Any] | None:
    try:
        return pipeline.run_of(execution)
    except AssertionError:
        return None


def _release_of(pipeline: Pipeline, holder: str) -> dict[str, Any] | None:
    """The release machine's (finished) execution for ``holder``."""
    sfn = pipeline.aws("stepfunctions")
    arn = pipeline.outputs["ReleaseLockStateMachineArn"]
    for execution in sfn.list_executions(stateMachineArn=arn)["executions"]:
        described = sfn.describe_execution(executionArn=execution["executionArn"])
        if holder in (described.get("input") or "") and described["status"] != "RUNNING":
            return dict(described)
    return None


def _stop_and_wait_released(pipeline: Pipeline, execution: str) -> None:
    """Stop a run and wait until its lock is released for it (by the status change event)."""
    pipeline.aws("stepfunctions").stop_execution(executionArn=execution, cause="test over")
    wait_for(
        lambda: (_lock(pipeline) or {}).get("execution", {}).get("S") != execution,
        timeout=60,
        what=f"the lock of {execution} to be released",
    )


def test_a_stopped_run_releases_its_dataset_and_the_trigger_queued_behind_it_runs(
    pipeline: Pipeline, seeded: None
) -> None:
    sfn = pipeline.aws("stepfunctions")
    # Given a run held mid-way (its training calls are throttled: it backs off and waits)
    arm_fault("CreateTrainingJob", match=f"-{DATASET}-", count=5)
    try:
        running = pipeline.start(DATASET, hyperparameters=FAST)
        wait_for(
            lambda: "Train: wait" in pipeline.states(running),
            timeout=90,
            what="the run to back off from training",
        )
        # and a trigger queued behind it
        queued = pipeline.start(DATASET, trigger={"type": "manual", "by": "stale-lock-test"})
        assert pipeline.wait(queued, timeout=60)["status"] == "SUCCEEDED"
        assert "Queued" in pipeline.states(queued)
        # When the run is stopped by hand
        sfn.stop_execution(executionArn=running, error="ByHand", cause="stopped by the test")
    finally:
        clear_faults()
    # Then its lock is released for it, and exactly one follow-up run carries the queued trigger
    follow_up = wait_for(
        lambda: _follow_up(pipeline, running), timeout=60, what="the follow-up run"
    )
    run = wait_for(lambda: _run_of(pipeline, follow_up), timeout=60, what="the follow-up's run")
    assert [t.get("by") for t in run["triggers"][1:]] == ["stale-lock-test"]
    released = wait_for(lambda: _release_of(pipeline, running), timeout=30, what="the release")
    assert released["status"] == "SUCCEEDED"
    # and the stopped run is in the ledger as stopped, with why
    stopped = wait_for(
        lambda: (r := _run_of(pipeline, running)) and r.get("outcome") and r,
        timeout=30,
        what="the stopped run's record",
    )
    assert (stopped["status"], stopped["outcome"]) == ("ABORTED", "stopped")
    assert stopped["error"] == {"error": "ByHand", "reason": "stopped by the test"}
    # the follow-up holds the dataset now (never two runs at once); stopped too, it frees it
    lock = _lock(pipeline)
    assert lock is None or lock["execution"]["S"] == follow_up
    _stop_and_wait_released(pipeline, follow_up)


def test_a_lock_held_by_an_execution_that_is_gone_is_taken_over_by_the_next_run(
    pipeline: Pipeline, seeded: None
) -> None:
    # Given the dataset's lock held by an execution that no longer exists (its end event was
    # missed, and Step Functions forgets executions 90 days after they end)
    gone = (
        "arn:aws:states:us-east-1:000000000000:execution:sluice-dev-training:"
        f"gone-{uuid.uuid4().hex[:8]}"
    )
    wait_for(lambda: _lock(pipeline) is None, timeout=60, what="the dataset to be free")
    pipeline.aws("dynamodb").put_item(
        TableName=pipeline.outputs["RunLockTableName"],
        Item={"dataset": {"S": DATASET}, "execution": {"S": gone},
              "since": {"S": "2026-01-01T00:00:00Z"}},
    )  # fmt: skip
    # When a run is started
    execution = pipeline.start(DATASET, trigger={"type": "manual", "by": "takeover-test"})
    # Then it queues its trigger, releases the stale lock, and the trigger runs right away
    assert pipeline.wait(execution, timeout=60)["status"] == "SUCCEEDED"
    states = pipeline.states(execution)
    assert "Queued" in states and "Release the stale lock" in states
    follow_up = wait_for(lambda: _follow_up(pipeline, gone), timeout=60, what="the follow-up run")
    run = wait_for(lambda: _run_of(pipeline, follow_up), timeout=60, what="the follow-up's run")
    assert [t.get("by") for t in run["triggers"][1:]] == ["takeover-test"]
    _stop_and_wait_released(pipeline, follow_up)
