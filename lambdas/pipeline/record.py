"""Record how a run (or a deploy) ended: the ledger, and one message on the notifications topic.

``run_end``: every end of a run — deployed, rejected, awaiting approval, skipped, failed — with
the step durations read from the execution's history; ``run_stopped``: a run that never reached
its own ending (stopped, timed out), recorded when its lock is released for it; ``deploy_end``:
a deploy's outcome, recorded against the run whose package it deployed; announced when an
approval (or a person) started it, since a pipeline's own deploy is announced with its run.
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
    if error:
        values["error"] = {"error": error.get("Error", ""), "reason": reason_of(error)}
    if state["outcome"].get("reason"):
        values["reason"] = state["outcome"]["reason"]
    if state.get("deployed"):
        values["deployment"] = {"endpoint": run.get("endpoint"), "status": "InService"}
    ledger.update(dataset, run_id, values)
    recorded = ledger.get(dataset, run_id) or {**values, "dataset": dataset, "run_id": run_id}
    _publish(settings, sns, recorded)
    return {"run_id": run_id, "outcome": outcome}


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
    event: dict[str, Any], settings: Settings, *, dynamodb: Any, sns: Any
) -> dict[str, Any]:
    state = event["state"]
    deploy = state["deploy"]
    failed = state.get("error") is not None or state.get("endpoint_failed", False)
    endpoint = state.get("endpoint") or {}
    reason = (
        reason_of(state.get("error")) if state.get("error") else endpoint.get("FailureReason", "")
    )
    if failed and not reason:
        reason = (
            f"the endpoint stayed on {endpoint.get('EndpointConfigName')} "
            f"({endpoint.get('EndpointStatus')})"
        )
    deployment = {
        "status": "failed" if failed else "deployed",
        "endpoint": deploy["endpoint"],
        "version": deploy["version"],
        "package_arn": deploy["package_arn"],
        "source": deploy["source"],
        "execution": event["execution"],
        "at": now(),
        "reason": reason or None,
    }
    if deploy["run_id"]:
        ledger = Ledger(settings.ledger_table, dynamodb)
        values: dict[str, Any] = {"deployment": deployment}
        if deploy["source"] != "pipeline":  # the pipeline records its own run's end
            values["outcome"] = "deployed" if not failed else "deploy_failed"
        ledger.update(deploy["dataset"], deploy["run_id"], values)
        if deploy["source"] != "pipeline":
            run = ledger.get(deploy["dataset"], deploy["run_id"]) or {}
            if failed:
                run["error"] = {"error": "DeployFailed", "reason": reason}
            _publish(
                settings, sns, {**run, "dataset": deploy["dataset"], "run_id": deploy["run_id"]}
            )
    return {"status": deployment["status"], "reason": reason or "deployed"}
