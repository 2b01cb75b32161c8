"""Record how a run (or a deploy) ended: the ledger, and one message on the notifications topic.

``run_end``: every end of a run — deployed, rolled back, rejected, awaiting approval, skipped,
failed — with the step durations read from the execution's history. ``run_stopped``: a run that
never reached its own ending (stopped, timed out), recorded when its lock is released for it.
``deploy_end``: a deploy's outcome. A pipeline's deploy is recorded against its run (and
announced with it); an approval's against the run whose package it deployed, and announced; a
person's (``make deploy-model``) as a ledger item of its own (trigger ``deploy``), and announced.

A rollback is told from a model that could not start by the rollback alarms: an update that
ended on the old config while one of the ``AutoRollbackConfiguration`` alarms was in ALARM
(having gone there during the deploy, or being there when it started) was rolled back by
SageMaker. Which alarm and when come from the alarm's history (``DescribeAlarmHistory``; the
transition time is read from ``HistoryData``, where CloudWatch puts the evaluation's
``queryDate``, before the item's ``Timestamp``). The challenger's model package becomes
``Rejected`` with that reason.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from datasets import names
from lambdas.pipeline.ledger import Ledger, now
from lambdas.pipeline.prepare import triggers as parse_triggers
from lambdas.pipeline.settings import Settings

SUBJECT_LIMIT = 100
#: the execution's status for an outcome (the others end SUCCEEDED)
EXECUTION_STATUS = {"failed": "FAILED", "stopped": "ABORTED", "timed_out": "TIMED_OUT"}
#: the outcome of a run that ended without its own ending, by the execution's status
STOPPED_OUTCOMES = {"ABORTED": "stopped", "TIMED_OUT": "timed_out", "FAILED": "failed"}


def reason_of(error: dict[str, Any] | None) -> str:
    """The human reason inside a Step Functions error (job FailureReason, child cause, ...)."""
    if not error:
        return ""
    cause: Any = error.get("Cause", "")
    for _ in range(4):  # causes nest: a child execution's cause holds a job's description
        try:
            parsed = json.loads(cause) if isinstance(cause, str) else cause
        except ValueError:
            break
        if not isinstance(parsed, dict):
            break
        cause = (
            parsed.get("FailureReason")
            or parsed.get("Cause")
            or parsed.get("cause")
            or parsed.get("errorMessage")
            or cause
        )
        if cause is parsed:
            break
    return str(cause)[:2000]


def durations(sfn: Any, execution: str) -> dict[str, float]:
    """Seconds spent in each state of the execution (summed over retries and loops)."""
    entered: dict[str, datetime] = {}
    spent: dict[str, float] = {}
    kwargs: dict[str, Any] = {"executionArn": execution, "maxResults": 1000}
    while True:
        page = sfn.get_execution_history(**kwargs)
        for event in page["events"]:
            if "stateEnteredEventDetails" in event:
                entered[event["stateEnteredEventDetails"]["name"]] = event["timestamp"]
            elif "stateExitedEventDetails" in event:
                name = event["stateExitedEventDetails"]["name"]
                if name in entered:
                    seconds = (event["timestamp"] - entered.pop(name)).total_seconds()
                    spent[name] = round(spent.get(name, 0.0) + seconds, 3)
        if not page.get("nextToken"):
            return spent
        kwargs["nextToken"] = page["nextToken"]


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _transition_time(item: dict[str, Any], data: dict[str, Any]) -> datetime:
    """When an alarm history item's transition happened: the evaluation's ``queryDate`` in
    ``HistoryData`` (LocalStack's ``Timestamp`` is the previous transition's), else
    ``Timestamp``."""
    query = ((data.get("newState") or {}).get("stateReasonData") or {}).get("queryDate")
    if query:
        return _when(str(query))
    stamp = item["Timestamp"]
    return stamp if isinstance(stamp, datetime) else _when(str(stamp))


def _alarm_history(cloudwatch: Any, alarm: str) -> list[tuple[datetime, dict[str, Any]]]:
    """(time, new state) of every state change of ``alarm``, oldest first."""
    changes: list[tuple[datetime, dict[str, Any]]] = []
    kwargs: dict[str, Any] = {"AlarmName": alarm, "HistoryItemType": "StateUpdate"}
    for _ in range(20):  # at most 2,000 items: far more than a deploy's window holds
        page = cloudwatch.describe_alarm_history(MaxRecords=100, **kwargs)
        for item in page.get("AlarmHistoryItems", []):
            data = json.loads(item.get("HistoryData") or "{}")
            changes.append((_transition_time(item, data), data.get("newState") or {}))
        if not page.get("NextToken"):
            break
        kwargs["NextToken"] = page["NextToken"]
    changes.sort(key=lambda change: change[0])
    return changes


def rollback_alarm(
    cloudwatch: Any, alarms: list[str], *, since: datetime, failure_reason: str = ""
) -> dict[str, Any] | None:
    """The rollback alarm that stopped an update that began at ``since``: ``{"name", "at",
    "reason", "before_deploy"}``, or None when none of ``alarms`` was in ALARM during it.

    An alarm named in the endpoint's FailureReason wins; otherwise the first to go to ALARM
    during the deploy, or one already in ALARM when it began (the old fleet's own errors: the
    alarms watch the whole endpoint).
    """
    found: list[dict[str, Any]] = []
    for name in alarms:
        state_at_start = "OK"
        entered_before: dict[str, Any] = {}
        for at, new in _alarm_history(cloudwatch, name):
            value = new.get("stateValue")
            if at < since:
                state_at_start = str(value)
                entered_before = {"at": at, "reason": new.get("stateReason", "")}
                continue
            if value == "ALARM":
                found.append({"name": name, "at": at, "reason": new.get("stateReason", "")})
                break
        else:
            if state_at_start == "ALARM":
                found.append({"name": name, **entered_before, "before_deploy": True})
    if not found:
        return None
    named = [f for f in found if f["name"] in failure_reason]
    first = min(named or found, key=lambda f: f["at"])
    return {
        "name": first["name"],
        "at": first["at"].astimezone(UTC).isoformat(timespec="seconds"),
        "reason": str(first["reason"])[:500],
        "before_deploy": bool(first.get("before_deploy")),
    }


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "n/a"


def message(settings: Settings, run: dict[str, Any]) -> tuple[str, str]:
    """(subject, body) of a run's notification: what happened, the numbers, where to look."""
    outcome = run["outcome"]
    dataset, run_id = run["dataset"], run["run_id"]
    package = run.get("model_package") or {}
    metrics = run.get("metrics") or {}
    lines = [
        f"Dataset: {dataset}",
        f"Run: {run_id} ({run.get('execution', '')})",
        f"Outcome: {outcome.replace('_', ' ')}",
    ]
    if run.get("verdict"):
        lines.append(f"Verdict: {run['verdict']} - {run.get('reason', '')}")
    elif outcome == "skipped" and run.get("reason"):
        lines.append(f"Why: {run['reason']}")
    triggers = run.get("triggers") or []
    if triggers:
        kinds = ", ".join(str(t.get("type", "?")) for t in triggers)
        lines.append(f"Started by: {kinds}")
    if metrics.get("name"):
        lines.append(
            f"{metrics['name']}: challenger {_fmt(metrics.get('challenger'))}, "
            f"champion {_fmt(metrics.get('champion'))}"
        )
    if package:
        lines.append(
            f"Model package: version {package.get('version')} ({package.get('status')}) "
            f"{package.get('package_arn', '')}"
        )
    if run.get("report"):
        lines.append(f"Report: {run['report']}")
    deployment = run.get("deployment") or {}
    if deployment.get("endpoint"):
        lines.append(f"Endpoint: {deployment['endpoint']} ({deployment.get('status')})")
    if deployment.get("status") == "rolled_back":
        reason = str(deployment.get("reason") or "rolled back")
        lines += [
            "",
            reason[0].upper() + reason[1:] + ".",
            "The model package is now Rejected with that reason; the previous model served "
            "throughout (make runs; the deploy execution shows each step).",
        ]
    if outcome == "awaiting_approval":
        arn = package.get("package_arn", "<model package ARN>")
        lines += [
            "",
            "The model passed the gate and waits for approval. Approve it (this deploys it):",
            f"  aws sagemaker update-model-package --model-package-arn {arn} "
            "--model-approval-status Approved",
            "or reject it (nothing is deployed):",
            f"  aws sagemaker update-model-package --model-package-arn {arn} "
            "--model-approval-status Rejected",
        ]
    error = run.get("error") or {}
    if error:
        lines += ["", f"Error: {error.get('error', '')}: {error.get('reason', '')}"]
    lines += ["", f"All runs: make runs DATASET={dataset} (ledger {settings.ledger_table})"]
    what = outcome.replace("_", " ")
    if outcome == "deployed" and package:
        what = f"deployed version {package.get('version')}"
    elif outcome == "rolled_back" and package:
        what = f"rolled back version {package.get('version')}"
    subject = f"Sluice {settings.stage} {dataset}: {what} (run {run_id})"
    return subject[:SUBJECT_LIMIT], "\n".join(lines)


def _publish(settings: Settings, sns: Any, run: dict[str, Any]) -> None:
    subject, body = message(settings, run)
    sns.publish(
        TopicArn=settings.topic_arn,
        Subject=subject,
        Message=body,
        MessageAttributes={
            "dataset": {"DataType": "String", "StringValue": run["dataset"]},
            "outcome": {"DataType": "String", "StringValue": run["outcome"]},
        },
    )


def run_end(
    event: dict[str, Any], settings: Settings, *, dynamodb: Any, sns: Any, sfn: Any
) -> dict[str, Any]:
    state = event["state"]
    outcome = state["outcome"]["status"]
    run = state.get("run") or {}
    dataset = run.get("dataset") or str(state.get("dataset") or "unknown")
    run_id = run.get("id") or names.run_id(event["started_at"], event["execution_name"])
    ledger = Ledger(settings.ledger_table, dynamodb)
    error = state.get("error")
    values: dict[str, Any] = {
        "execution": event["execution"],
        "status": EXECUTION_STATUS.get(outcome, "SUCCEEDED"),
        "outcome": outcome,
        "ended_at": now(),
        "durations": durations(sfn, event["execution"]),
    }
    started = run.get("started_at") or event["started_at"]
    try:
        begun = datetime.fromisoformat(started.replace("Z", "+00:00"))
        values["seconds"] = round(
            (datetime.fromisoformat(values["ended_at"]) - begun).total_seconds(), 1
        )
    except ValueError:
        pass
    if not run:  # failed before prepare recorded it
        values.update(started_at=started, triggers=parse_triggers(state.get("trigger")))
    if error and outcome != "rolled_back":  # a rollback is recorded by the deploy (deployment)
        values["error"] = {"error": error.get("Error", ""), "reason": reason_of(error)}
    if state["outcome"].get("reason"):
        values["reason"] = state["outcome"]["reason"]
    recorded_before = ledger.get(dataset, run_id) or {}
    if state.get("deployed") and not recorded_before.get("deployment"):
        values["deployment"] = {"endpoint": run.get("endpoint"), "status": "deployed"}
    ledger.update(dataset, run_id, values)
    recorded = ledger.get(dataset, run_id) or {**values, "dataset": dataset, "run_id": run_id}
    _publish(settings, sns, recorded)
    return {"run_id": run_id, "outcome": outcome}


def _deploy_reason(state: dict[str, Any]) -> str:
    endpoint = state.get("endpoint") or {}
    if state.get("error"):
        return reason_of(state["error"])
    return str(endpoint.get("FailureReason") or "") or (
        f"the endpoint stayed on {endpoint.get('EndpointConfigName')} "
        f"({endpoint.get('EndpointStatus')})"
    )


def _rollback(state: dict[str, Any], started_at: str, cloudwatch: Any) -> dict[str, Any] | None:
    """The alarm that rolled an update back, if an update ended on the old config because of one."""
    deploy, endpoint = state["deploy"], state.get("endpoint") or {}
    updated_and_back = (
        deploy.get("exists")
        and state.get("error") is None
        and endpoint.get("EndpointStatus") == "InService"
        and endpoint.get("EndpointConfigName") != deploy["config"]
    )
    if not updated_and_back:
        return None
    alarms = [
        a["AlarmName"]
        for a in (deploy.get("deployment_config") or {})
        .get("AutoRollbackConfiguration", {})
        .get("Alarms", [])
    ]
    return rollback_alarm(
        cloudwatch,
        alarms,
        since=_when(started_at),
        failure_reason=str(endpoint.get("FailureReason") or ""),
    )


def rollback_reason(alarm: dict[str, Any], previous_version: str) -> str:
    when = (
        f"was already in ALARM when the deploy began (since {alarm['at']}; the alarms watch the "
        "whole endpoint, old fleet included)"
        if alarm["before_deploy"]
        else f"went to ALARM at {alarm['at']}"
    )
    reason = f" ({alarm['reason']})" if alarm["reason"] else ""
    serving = f"version {previous_version}" if previous_version else "the previous model"
    return (
        f"rolled back by SageMaker: rollback alarm {alarm['name']} {when}{reason}; "
        f"{serving} kept serving"
    )


def run_stopped(
    event: dict[str, Any], settings: Settings, *, dynamodb: Any, sns: Any, sfn: Any
) -> dict[str, Any]:
    """A run that ended without reaching its own ending (stopped by hand, timed out, or failed
    where the definition catches nothing), recorded by the release of its lock
    (``statemachines/release_lock.asl.json``): ``{"action": "run_stopped", "execution": ARN}``.
    The execution itself says how it ended and what it was started with."""
    described = sfn.describe_execution(executionArn=event["execution"])
    status = described["status"]
    if status not in STOPPED_OUTCOMES:
        raise ValueError(f"execution {event['execution']} is {status}, not stopped")
    try:
        state = json.loads(described.get("input") or "{}")
    except ValueError:
        state = {}
    state = {k: v for k, v in state.items() if k in ("dataset", "trigger")}
    state["outcome"] = {"status": STOPPED_OUTCOMES[status]}
    state["error"] = {
        "Error": described.get("error") or f"Execution{status.title().replace('_', '')}",
        "Cause": described.get("cause")
        or {
            "ABORTED": "the execution was stopped (StopExecution) before the run ended",
            "TIMED_OUT": "the execution ran past the state machine's TimeoutSeconds",
            "FAILED": "the execution failed where the run's definition catches nothing",
        }[status],
    }
    started = described["startDate"].astimezone(UTC).isoformat().replace("+00:00", "Z")
    return run_end(
        {
            "state": state,
            "execution": event["execution"],
            "execution_name": described["name"],
            "started_at": started,
        },
        settings,
        dynamodb=dynamodb,
        sns=sns,
        sfn=sfn,
    )


def deploy_end(
    event: dict[str, Any],
    settings: Settings,
    *,
    dynamodb: Any,
    sns: Any,
    sagemaker: Any,
    cloudwatch: Any,
) -> dict[str, Any]:
    state = event["state"]
    deploy = state["deploy"]
    failed = state.get("error") is not None or state.get("endpoint_failed", False)
    previous = deploy.get("previous") or {}
    alarm = _rollback(state, event["started_at"], cloudwatch) if failed else None
    status = "rolled_back" if alarm else ("failed" if failed else "deployed")
    reason = ""
    if alarm:
        reason = rollback_reason(alarm, str(previous.get("version") or ""))
        sagemaker.update_model_package(
            ModelPackageArn=deploy["package_arn"],
            ModelApprovalStatus="Rejected",
            ApprovalDescription=reason[:1000],
        )
    elif failed:
        reason = _deploy_reason(state)
    scaling = state.get("scaling") or {}
    deployment = {
        "status": status,
        "endpoint": deploy["endpoint"],
        "version": deploy["version"],
        "package_arn": deploy["package_arn"],
        "source": deploy["source"],
        "kind": deploy.get("kind"),
        "config": deploy["config"],
        "previous_version": previous.get("version") or None,
        "execution": event["execution"],
        "at": now(),
        "reason": reason or None,
        "alarm": alarm,
        "autoscaling": scaling or None,
        "autoscaling_error": reason_of(state["scaling_error"])
        if state.get("scaling_error")
        else None,
    }
    outcome = {"deployed": "deployed", "rolled_back": "rolled_back"}.get(status, "deploy_failed")
    package_status = "Rejected" if alarm else "Approved"
    ledger = Ledger(settings.ledger_table, dynamodb)
    if deploy["source"] == "manual":
        run_id = names.run_id(event["started_at"], event["execution_name"])
        record = manual_deploy_item(deploy, deployment, outcome, package_status, event, run_id)
        ledger.update(deploy["dataset"], run_id, record)
        _publish(settings, sns, {**record, "dataset": deploy["dataset"], "run_id": run_id})
    elif deploy["run_id"]:
        values: dict[str, Any] = {"deployment": deployment}
        run = ledger.get(deploy["dataset"], deploy["run_id"]) or {}
        if run.get("model_package"):
            values["model_package"] = {**run["model_package"], "status": package_status}
        if deploy["source"] != "pipeline":  # the pipeline records its own run's end
            values["outcome"] = outcome
        ledger.update(deploy["dataset"], deploy["run_id"], values)
        if deploy["source"] != "pipeline":
            run = ledger.get(deploy["dataset"], deploy["run_id"]) or {}
            if status == "failed":
                run["error"] = {"error": "DeployFailed", "reason": reason}
            _publish(
                settings, sns, {**run, "dataset": deploy["dataset"], "run_id": deploy["run_id"]}
            )
    return {"status": status, "reason": reason or "deployed"}


def manual_deploy_item(
    deploy: dict[str, Any],
    deployment: dict[str, Any],
    outcome: str,
    package_status: str,
    event: dict[str, Any],
    run_id: str,
) -> dict[str, Any]:
    """The ledger item of a deploy a person started (``make deploy-model``): trigger ``deploy``,
    the package it put back, how it went."""
    ended = now()
    item: dict[str, Any] = {
        "execution": event["execution"],
        "status": "FAILED" if outcome == "deploy_failed" else "SUCCEEDED",
        "outcome": outcome,
        "started_at": _when(event["started_at"]).astimezone(UTC).isoformat(timespec="seconds"),
        "ended_at": ended,
        "triggers": [
            {
                "type": "deploy",
                "by": deploy.get("by") or "unknown",
                "version": deploy["version"],
                "package_arn": deploy["package_arn"],
            }
        ],
        "model_package": {
            "package_arn": deploy["package_arn"],
            "version": deploy["version"],
            "status": package_status,
            "run_id": deploy["run_id"] or None,
        },
        "deployment": deployment,
    }
    item["seconds"] = round((_when(ended) - _when(event["started_at"])).total_seconds(), 1)
    if outcome == "deploy_failed":
        item["error"] = {"error": "DeployFailed", "reason": deployment["reason"] or ""}
    return item
