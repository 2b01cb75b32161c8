"""UpdateEndpoint as SageMaker runs it: a blue/green deployment with deployment guardrails.

``prepare()`` validates the request the way SageMaker does before it answers (variant names kept,
canary sizes, alarms that exist, no instance type change under autoscaling, no switch from
real-time to serverless) and returns the plan (``deployment.py``). ``run()`` then, in a thread:

1. starts the new (green) fleet beside the old (blue) one; if it cannot start, the endpoint stays
   on blue, InService, with FailureReason;
2. walks the plan: routes each step's share of the requests to green (``LiveEndpoint.pick``) and
   bakes, reading the ``AutoRollbackConfiguration`` alarms from CloudWatch (``DescribeAlarms``,
   as SageMaker does; the extension's evaluator keeps alarms on endpoint metrics current);
3. success: green becomes the endpoint's fleet and blue stops -> InService on the new config;
   an alarm in ALARM (or the timeout): RollingBack, all traffic back on blue (it served
   throughout), green stops -> InService on the old config with FailureReason.

DescribeEndpoint shows it as AWS does: ``EndpointStatus`` Updating -> InService, or Updating ->
RollingBack -> InService; ``PendingDeploymentSummary`` with the new variants' ``VariantStatus``
(Creating, ActivatingTraffic, Baking) while it runs; ``LastDeploymentConfig``.
Waits run on the local time scale (``timescale.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sluice_local import cloudwatch
from sluice_local.sagemaker import endpoints
from sluice_local.sagemaker.deployment import (
    DeploymentConfigError,
    Outcome,
    Plan,
    Rollout,
    Step,
    plan,
)
from sluice_local.sagemaker.jobs import now
from sluice_local.timescale import ScaledClock

LOG = logging.getLogger(__name__)
#: how long (AWS seconds) a rollback shows RollingBack before InService
ROLLBACK_SECONDS = 30.0
RETAINABLE = ("DesiredInstanceCount", "DesiredWeight", "DataCaptureConfig")


@dataclass
class Update:
    """One accepted UpdateEndpoint request."""

    endpoint: str
    config_name: str
    deployment_config: dict[str, Any] | None
    plan: Plan
    #: variant name -> config fields the new fleet takes from the running one
    retained: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: the new config's production variants (with the retained fields)
    variants: list[dict[str, Any]] = field(default_factory=list)


def prepare(
    record: Any,
    blue_config: dict[str, Any],
    green_config: dict[str, Any],
    request: dict[str, Any],
    *,
    existing_alarms: Callable[[Sequence[str]], set[str]],
    scaled_variants: set[str],
) -> Update:
    """Validate an UpdateEndpoint request against the endpoint ``record`` (moto's), the running
    config and the new one; raise ``DeploymentConfigError`` with SageMaker's reason if refused.

    ``existing_alarms(names)``: which of the named alarms exist; ``scaled_variants``: variants
    registered with Application Auto Scaling (their instance type must not change)."""
    deployment_config = request.get("DeploymentConfig")
    if request.get("RetainDeploymentConfig"):
        if deployment_config:
            raise DeploymentConfigError(
                "DeploymentConfig and RetainDeploymentConfig cannot be used together."
            )
        deployment_config = getattr(record, "last_deployment_config", None)
    blue = {v["VariantName"]: v for v in blue_config["ProductionVariants"]}
    green = {v["VariantName"]: v for v in green_config["ProductionVariants"]}
    for name, variant in green.items():
        old = blue.get(name)
        if old is None:
            continue
        if old.get("ServerlessConfig") is None and variant.get("ServerlessConfig") is not None:
            raise DeploymentConfigError(
                "Updating a real-time endpoint to a serverless endpoint is not supported: "
                f"variant {name} of endpoint {record.endpoint_name} is real-time. Create a new "
                "endpoint for the serverless configuration."
            )
        if name in scaled_variants and old.get("InstanceType") != variant.get("InstanceType"):
            raise DeploymentConfigError(
                f"The variant {name} of endpoint {record.endpoint_name} is registered with "
                "Application Auto Scaling and the update changes its instance type "
                f"({old.get('InstanceType')} -> {variant.get('InstanceType')}). Deregister the "
                "scalable target first, update, then register it again."
            )
    if (
        deployment_config
        and deployment_config.get("BlueGreenUpdatePolicy")
        and set(green) != set(blue)
    ):
        raise DeploymentConfigError(
            "A blue/green deployment needs the same variant names in the new endpoint "
            f"configuration ({', '.join(sorted(green))}) as in the current one "
            f"({', '.join(sorted(blue))})."
        )
    retained = _retained(record, request, green)
    capacity = _capacity(green, retained)
    steps = plan(deployment_config, capacity)
    found = existing_alarms(steps.alarms) if steps.alarms else set()
    missing = [name for name in steps.alarms if name not in found]
    if missing:
        raise DeploymentConfigError(
            f"The CloudWatch alarm(s) {', '.join(missing)} named in AutoRollbackConfiguration "
            "do not exist."
        )
    variants = [{**v, **retained.get(v["VariantName"], {})} for v in green.values()]
    return Update(
        record.endpoint_name,
        request["EndpointConfigName"],
        deployment_config,
        steps,
        retained,
        variants,
    )


def _retained(
    record: Any, request: dict[str, Any], green: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """RetainAllVariantProperties: the running variants' instance count and weight carry over
    (unless listed in ExcludeRetainedVariantProperties)."""
    if not request.get("RetainAllVariantProperties"):
        return {}
    excluded = {
        p["VariantPropertyType"] for p in request.get("ExcludeRetainedVariantProperties") or []
    }
    retained: dict[str, dict[str, Any]] = {}
    for summary in record.production_variants or []:
        name = summary.get("VariantName")
        if name not in green:
            continue
        fields: dict[str, Any] = {}
        if "DesiredInstanceCount" not in excluded and summary.get("DesiredInstanceCount"):
            fields["InitialInstanceCount"] = summary["DesiredInstanceCount"]
        if "DesiredWeight" not in excluded and summary.get("DesiredWeight") is not None:
            fields["InitialVariantWeight"] = summary["DesiredWeight"]
        retained[name] = fields
    return retained


def _capacity(green: dict[str, Any], retained: dict[str, dict[str, Any]]) -> int | None:
    """Instances of the new fleet; None when it is serverless."""
    counts = []
    for name, variant in green.items():
        if variant.get("ServerlessConfig") is not None:
            return None
        count = retained.get(name, {}).get(
            "InitialInstanceCount", variant.get("InitialInstanceCount")
        )
        counts.append(int(count or 1))
    return sum(counts)


# ---------------------------------------------------------------- running it


def run(record: Any, account: str, region: str, update: Update) -> None:
    """Thread target: carry out ``update`` on the endpoint ``record``."""
    name = update.endpoint
    clock = ScaledClock()
    started = clock.now()
    blue = endpoints.live(account, region, name)
    record.last_deployment_config = update.deployment_config
    record.pending_deployment_summary = {
        "EndpointConfigName": update.config_name,
        "StartTime": now(),
        "ProductionVariants": [_launching(variant) for variant in update.variants],
    }
    try:
        green = endpoints.start_fleet(account, region, name, update.config_name, update.retained)
    except Exception as exc:
        reason = endpoints.failure_reason(exc)
        LOG.warning("endpoint %s: %s", name, reason)
        _finish(record, reason)
        return
    if blue is None or endpoints.live(account, region, name) is not blue:
        green.stop()  # deleted while the new fleet started
        return
    blue.green, blue.green_share = green, 0.0

    def shift(share: float, step: Step) -> None:
        blue.green_share = share
        what = "all traffic" if share >= 1 else f"{share:.0%} of the traffic"
        status = "Baking" if step.bake_seconds > 0 else "ActivatingTraffic"
        message = (
            f"{what} on the new fleet, baking {step.bake_seconds:.0f} s"
            if step.bake_seconds
            else what
        )
        _variant_status(
            record, green, "ActivatingTraffic", f"Shifting {what} to the new fleet", share
        )
        _variant_status(record, green, status, message, share)

    rollout = Rollout(
        update.plan,
        clock,
        shift=shift,
        alarms_in_alarm=lambda names: _in_alarm(account, region, names),
        cancelled=lambda: endpoints.live(account, region, name) is not blue,
    )
    outcome = rollout.run(started)
    if endpoints.live(account, region, name) is not blue:
        green.stop()
        return
    if outcome.succeeded and endpoints.replace(account, region, name, blue, green):
        blue.stop(drain=True, replaced=True)
        record.pending_deployment_summary = None
        endpoints.serve(record, green)
        LOG.info("endpoint %s: now serving %s", name, update.config_name)
        return
    _roll_back(record, account, region, blue, green, update, outcome, clock)


def _roll_back(
    record: Any,
    account: str,
    region: str,
    blue: endpoints.LiveEndpoint,
    green: endpoints.LiveEndpoint,
    update: Update,
    outcome: Outcome,
    clock: ScaledClock,
) -> None:
    record.endpoint_status = "RollingBack"
    record.last_modified_time = now()
    blue.green_share, blue.green = 0.0, None  # every request on the old fleet from here on
    _variant_status(record, green, "Deleting", "Rolling back: terminating the new fleet", 0.0)
    green.stop(drain=True)
    LOG.warning(
        "endpoint %s: rolled back from %s: %s", update.endpoint, update.config_name, outcome.reason
    )
    clock.sleep(ROLLBACK_SECONDS)
    reason = (
        f"Automatic rollback of the update to endpoint configuration {update.config_name}: "
        f"{outcome.reason}. The endpoint serves endpoint configuration {blue.config_name}."
    )
    _finish(record, reason)


def _finish(record: Any, reason: str) -> None:
    """Back to InService on the old config, with FailureReason."""
    record.pending_deployment_summary = None
    record.failure_reason = reason[:1024]
    record.endpoint_status = "InService"
    record.last_modified_time = now()


def _pending(
    fleet: endpoints.LiveEndpoint, share: float, status: dict[str, Any] | None
) -> list[dict[str, Any]]:
    summaries = []
    for summary in fleet.summaries():
        if "DesiredInstanceCount" in summary:
            summary["CurrentInstanceCount"] = round(share * summary["DesiredInstanceCount"])
        summary["CurrentWeight"] = share * summary["DesiredWeight"]
        if status is not None:
            summary["VariantStatus"] = [status]
        summaries.append(summary)
    return summaries


def _launching(variant: dict[str, Any]) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "VariantName": variant["VariantName"],
        "CurrentWeight": 0.0,
        "DesiredWeight": float(variant.get("InitialVariantWeight", 1.0)),
        "VariantStatus": [
            {"Status": "Creating", "StatusMessage": "Launching the new fleet", "StartTime": now()}
        ],
    }
    if variant.get("ServerlessConfig") is not None:
        summary["DesiredServerlessConfig"] = variant["ServerlessConfig"]
    else:
        summary["InstanceType"] = variant.get("InstanceType")
        summary["CurrentInstanceCount"] = 0
        summary["DesiredInstanceCount"] = int(variant.get("InitialInstanceCount") or 1)
    return summary


def _variant_status(
    record: Any, green: endpoints.LiveEndpoint, status: str, message: str, share: float
) -> None:
    pending = record.pending_deployment_summary
    if pending is None:
        return
    entry = {"Status": status, "StatusMessage": message, "StartTime": now()}
    pending["ProductionVariants"] = _pending(green, share, entry)
    record.last_modified_time = now()


def _in_alarm(account: str, region: str, names: Sequence[str]) -> list[str]:
    """Which of the alarms are in ALARM, as SageMaker reads them (DescribeAlarms)."""
    states = {
        a["AlarmName"]: a["StateValue"]
        for a in cloudwatch.describe_alarms(account, region, tuple(names))
    }
    return [name for name in names if states.get(name) == "ALARM"]
