"""EventBridge → Step Functions targets with an ``InputTransformer``, as on AWS.

LocalStack names the execution after the event's ``id``, but reads it from the *transformed*
input, which has none: every rule with an input transformer failed with
``TargetDeliveryFailure: 'id'``. AWS names such executions itself; so does this.
"""

from __future__ import annotations

from typing import Any

from localstack.services.events import target as targets
from localstack.services.events.utils import to_json_str
from localstack.utils.strings import long_uid


def install() -> None:
    sender = targets.StatesTargetSender
    if getattr(sender.send_event, "sluice_patched", False):
        return

    def send_event(self: Any, event: Any, trace_header: Any) -> None:
        self.service = "stepfunctions"
        name = event.get("id") if isinstance(event, dict) and not self.target.get("Input") else None
        self.client.start_execution(
            stateMachineArn=self.target["Arn"], name=name or long_uid(), input=to_json_str(event)
        )

    send_event.sluice_patched = True  # type: ignore[attr-defined]
    sender.send_event = send_event
