"""Step Functions announces how each execution ends on EventBridge, in AWS's shape: the training
pipeline's release of unreleased locks is a rule on these events."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.integration.conftest import LocalCloud
from tests.integration.helpers import wait_for
from tests.integration.pipeline_helpers import Inbox

pytestmark = pytest.mark.integration

ROLE = "arn:aws:iam::000000000000:role/sfn-events-it"


@pytest.fixture
def machine(local_cloud: LocalCloud, aws: Callable[[str], Any]) -> Iterator[tuple[str, Inbox]]:
    """A state machine that waits 30 s (and times out after 2 s), and an inbox of its ends."""
    sfn, events = aws("stepfunctions"), aws("events")
    name = f"sfn-events-{uuid.uuid4().hex[:8]}"
    definition = {
        "StartAt": "Wait",
        "TimeoutSeconds": 2,
        "States": {"Wait": {"Type": "Wait", "Seconds": 30, "End": True}},
    }
    arn = sfn.create_state_machine(name=name, roleArn=ROLE, definition=json.dumps(definition))[
        "stateMachineArn"
    ]
    inbox = Inbox(aws, name)
    events.put_rule(
        Name=name,
        EventPattern=json.dumps(
            {
                "source": ["aws.states"],
                "detail-type": ["Step Functions Execution Status Change"],
                "detail": {"status": ["ABORTED", "TIMED_OUT", "FAILED"], "stateMachineArn": [arn]},
            }
        ),
    )
    events.put_targets(Rule=name, Targets=[{"Id": "inbox", "Arn": inbox.arn}])
    yield arn, inbox
    events.remove_targets(Rule=name, Ids=["inbox"])
    events.delete_rule(Name=name)
    sfn.delete_state_machine(stateMachineArn=arn)


def _event_of(inbox: Inbox, execution: str) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        inbox.poll()
        return next((e for e in inbox.seen if e["detail"]["executionArn"] == execution), None)

    return dict(wait_for(found, timeout=30, what=f"the status change event of {execution}"))


def test_a_stopped_execution_is_announced_with_its_error_and_cause(
    machine: tuple[str, Inbox], aws: Callable[[str], Any]
) -> None:
    arn, inbox = machine
    sfn = aws("stepfunctions")
    # Given a running execution with input
    started = time.time()
    execution = sfn.start_execution(
        stateMachineArn=arn, name="stopped", input=json.dumps({"dataset": "churn"})
    )["executionArn"]
    # When it is stopped by hand
    sfn.stop_execution(executionArn=execution, error="ByHand", cause="an operator stopped it")
    # Then one event says so, as AWS writes it
    event = _event_of(inbox, execution)
    assert (event["source"], event["detail-type"]) == (
        "aws.states",
        "Step Functions Execution Status Change",
    )
    assert event["resources"] == [execution]
    detail = event["detail"]
    assert detail["status"] == "ABORTED"
    assert (detail["stateMachineArn"], detail["name"]) == (arn, "stopped")
    assert (detail["error"], detail["cause"]) == ("ByHand", "an operator stopped it")
    assert json.loads(detail["input"]) == {"dataset": "churn"}  # a JSON string, not an object
    assert detail["inputDetails"] == {"included": True}
    assert isinstance(detail["startDate"], int) and isinstance(detail["stopDate"], int)
    assert started - 5 <= detail["startDate"] / 1000 <= detail["stopDate"] / 1000 <= time.time()
    assert detail["output"] is None
    # and DescribeExecution keeps the stop's error and cause too
    described = sfn.describe_execution(executionArn=execution)
    assert (described["status"], described.get("error"), described.get("cause")) == (
        "ABORTED",
        "ByHand",
        "an operator stopped it",
    )


def test_a_timed_out_execution_is_announced(
    machine: tuple[str, Inbox], aws: Callable[[str], Any]
) -> None:
    arn, inbox = machine
    execution = aws("stepfunctions").start_execution(stateMachineArn=arn, name="late")[
        "executionArn"
    ]
    detail = _event_of(inbox, execution)["detail"]
    assert detail["status"] == "TIMED_OUT"
    assert detail["input"] == "{}"  # no input: still a string
