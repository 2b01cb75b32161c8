"""Start a retraining run when a drift or model-quality alarm goes to ALARM, at most one per
dataset per cool-down.

The alarms notify an SNS topic this function subscribes to (CloudWatch's alarm message: name,
new state, reason, the metric and its dimensions). For an ALARM on ``DriftMax`` or
``ModelQuality`` of a dataset:

1. the cool-down: a conditional write to the dataset's item in the cool-down table succeeds
   only when no run was started by an alarm in the last ``retrain.cooldown_hours`` (the spec's;
   default 24) — one atomic check, so two alarms at once (drift and quality) start one run;
   within the cool-down the alarm is logged and counted (``RetrainSuppressed``), no run starts;
2. the run: ``StartExecution`` of the training pipeline with the input every trigger uses,
   ``{"dataset": ..., "trigger": {"type": "drift" | "quality", "alarm": ..., ...}}``. The
   pipeline takes the dataset's lock (a run in progress gets the trigger queued), records the
   trigger in the ledger, and ends at once as ``skipped`` when its inputs are the serving
   model's.

A redelivered message (SNS and Lambda retry) finds its own item (the same message id) and starts
the same execution name, which Step Functions refuses to start twice.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from datasets import names
from datasets.spec import load_spec, spec_path
from lambdas.retrain.settings import Settings

#: the alarm metric → the trigger type it records
TRIGGERS = {names.DRIFT_MAX_METRIC: "drift", names.MODEL_QUALITY_METRIC: "quality"}


class NotARetrainAlarm(ValueError):
    """A message that is not a drift or quality alarm of a declared dataset."""


@dataclass(frozen=True)
class Alarm:
    name: str
    state: str
    metric: str
    dataset: str
    reason: str
    at: str
    message_id: str

    @classmethod
    def of(cls, message: dict[str, Any], message_id: str) -> Alarm:
        trigger = message.get("Trigger") or {}
        dimensions = {
            str(d.get("name") or d.get("Name")): str(d.get("value") or d.get("Value"))
            for d in trigger.get("Dimensions") or []
            if isinstance(d, dict)
        }
        return cls(
            name=str(message.get("AlarmName", "")),
            state=str(message.get("NewStateValue", "")),
            metric=str(trigger.get("MetricName", "")),
            dataset=dimensions.get("Dataset", ""),
            reason=str(message.get("NewStateReason", ""))[:500],
            at=str(message.get("StateChangeTime", "")),
            message_id=message_id,
        )


def cooldown_seconds(settings: Settings, dataset: str) -> float:
    if settings.cooldown_minutes_override is not None:
        return settings.cooldown_minutes_override * 60.0
    path = spec_path(dataset)
    if path is None:
        raise NotARetrainAlarm(f"{dataset!r} is not a declared dataset")
    return load_spec(path).retrain.cooldown_hours * 3600.0


def execution_name(trigger: str, dataset: str, message_id: str) -> str:
    """One name per alarm message: Step Functions starts a name once."""
    digest = hashlib.sha256(message_id.encode()).hexdigest()[:16]
    return f"{trigger}-{dataset}-{digest}"[:80]


@dataclass
class Retrainer:
    settings: Settings
    dynamodb: Any
    sfn: Any
    clock: Any = time.time

    def on_alarm(self, alarm: Alarm) -> dict[str, Any]:
        if alarm.state != "ALARM":
            return {"status": "ignored", "reason": f"state {alarm.state}", "alarm": alarm.name}
        trigger = TRIGGERS.get(alarm.metric)
        if trigger is None or not names.DATASET_NAME.match(alarm.dataset):
            raise NotARetrainAlarm(
                f"alarm {alarm.name}: metric {alarm.metric!r} of dataset {alarm.dataset!r} "
                "is not a drift or quality alarm"
            )
        now = self.clock()
        cooldown = cooldown_seconds(self.settings, alarm.dataset)
        if not self._take_cooldown(alarm, trigger, now, cooldown):
            held = self._cooldown_item(alarm.dataset)
            since = float(held.get("started_at", {}).get("N", now))
            return {
                "status": "cooling_down",
                "dataset": alarm.dataset,
                "trigger": trigger,
                "alarm": alarm.name,
                "last_run": held.get("execution", {}).get("S", ""),
                "last_trigger": held.get("trigger", {}).get("S", ""),
                "next_run_after_seconds": round(since + cooldown - now, 1),
            }
        request = {
            "dataset": alarm.dataset,
            "trigger": {
                "type": trigger,
                "alarm": alarm.name,
                "metric": alarm.metric,
                "reason": alarm.reason,
                "at": alarm.at,
            },
        }
        name = execution_name(trigger, alarm.dataset, alarm.message_id)
        try:
            started = self.sfn.start_execution(
                stateMachineArn=self.settings.state_machine_arn,
                name=name,
                input=json.dumps(request),
            )
            execution = started["executionArn"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ExecutionAlreadyExists":
                raise
            execution = (
                self.settings.state_machine_arn.replace(":stateMachine:", ":execution:")
                + f":{name}"
            )
        self.dynamodb.update_item(
            TableName=self.settings.cooldown_table,
            Key={"dataset": {"S": alarm.dataset}},
            UpdateExpression="SET execution = :e",
            ExpressionAttributeValues={":e": {"S": execution}},
        )
        return {
            "status": "started",
            "dataset": alarm.dataset,
            "trigger": trigger,
            "alarm": alarm.name,
            "execution": execution,
        }

    def _take_cooldown(self, alarm: Alarm, trigger: str, now: float, cooldown: float) -> bool:
        try:
            self.dynamodb.update_item(
                TableName=self.settings.cooldown_table,
                Key={"dataset": {"S": alarm.dataset}},
                UpdateExpression="SET started_at = :now, #t = :trigger, alarm = :alarm, "
                "message_id = :message",
                ConditionExpression="attribute_not_exists(dataset) OR started_at <= :cutoff "
                "OR message_id = :message",
                ExpressionAttributeNames={"#t": "trigger"},
                ExpressionAttributeValues={
                    ":now": {"N": repr(now)},
                    ":cutoff": {"N": repr(now - cooldown)},
                    ":trigger": {"S": trigger},
                    ":alarm": {"S": alarm.name},
                    ":message": {"S": alarm.message_id},
                },
            )
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise

    def _cooldown_item(self, dataset: str) -> dict[str, Any]:
        return dict(
            self.dynamodb.get_item(
                TableName=self.settings.cooldown_table,
                Key={"dataset": {"S": dataset}},
                ConsistentRead=True,
            ).get("Item")
            or {}
        )
