"""Step Functions' "Step Functions Execution Status Change" events, shaped as AWS sends them.

LocalStack 2026.3.0 puts one on the default bus at every start and end of a standard execution,
but not quite in AWS's shape: ``startDate``/``stopDate`` are ISO strings (AWS: milliseconds since
the epoch), ``input`` is ``{}`` (an object) when the execution had none (AWS: always the JSON
string), and an execution stopped with StopExecution carries neither the ``error`` nor the
``cause`` it was stopped with (AWS: both, as DescribeExecution shows them; LocalStack's
DescribeExecution drops them too). ``install`` replaces the publisher with one that writes
AWS's shape (the EventBridge events reference for Step Functions) and keeps the stop's error and
cause on the execution.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

LOG = logging.getLogger(__name__)
DETAIL_TYPE = "Step Functions Execution Status Change"


def _millis(value: datetime.datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


def detail(execution: Any) -> dict[str, Any]:
    """The event's ``detail`` for a LocalStack ``Execution``, as AWS documents it."""
    from localstack.aws.api.stepfunctions import ExecutionStatus
    from localstack.services.stepfunctions.asl.utils.encoding import to_json_str

    status = execution.exec_status
    output = (
        to_json_str(execution.output, separators=(",", ":"))
        if status == ExecutionStatus.SUCCEEDED and execution.output is not None
        else None
    )
    return {
        "executionArn": execution.exec_arn,
        "stateMachineArn": execution.state_machine_arn,
        "stateMachineVersionArn": execution.state_machine_version_arn,
        "stateMachineAliasArn": execution.state_machine_alias_arn,
        "name": execution.name,
        "status": status,
        "startDate": _millis(execution.start_date),
        "stopDate": _millis(execution.stop_date),
        "input": to_json_str(
            execution.input_data if execution.input_data is not None else {},
            separators=(",", ":"),
        ),
        "inputDetails": {"included": True},
        "output": output,
        "outputDetails": {"included": True} if output is not None else None,
        "error": execution.error,
        "cause": execution.cause,
    }


def _keep_stop_reason(execution: Any) -> None:
    """A stopped execution keeps the error and cause StopExecution gave it."""
    from localstack.aws.api.stepfunctions import ExecutionStatus
    from localstack.services.stepfunctions.asl.eval.program_state import ProgramStopped

    if execution.exec_status != ExecutionStatus.ABORTED or execution.exec_worker is None:
        return
    state = execution.exec_worker.env.program_state()
    if isinstance(state, ProgramStopped):
        execution.error = execution.error or state.error
        execution.cause = execution.cause or state.cause


def install() -> None:
    import json

    from localstack.aws.api.events import PutEventsRequestEntry
    from localstack.services.stepfunctions.backend.execution import Execution

    if getattr(Execution.publish_execution_status_change_event, "_sluice", False):
        return

    def publish_execution_status_change_event(self: Any) -> None:
        _keep_stop_reason(self)
        entry = PutEventsRequestEntry(
            Source="aws.states",
            Resources=[self.exec_arn],
            DetailType=DETAIL_TYPE,
            Detail=json.dumps(detail(self)),
        )
        try:
            self._get_events_client().put_events(Entries=[entry])
        except Exception:  # as LocalStack does: an event bus problem never fails an execution
            LOG.exception("could not put the status change event of %s", self.exec_arn)

    publish_execution_status_change_event._sluice = True  # type: ignore[attr-defined]
    Execution.publish_execution_status_change_event = publish_execution_status_change_event  # type: ignore[method-assign]
