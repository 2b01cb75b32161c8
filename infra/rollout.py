"""Safe rollout of the dataset endpoints: rollback alarms, the deployment config, stage checks.

Every declared dataset gets two CloudWatch alarms on its endpoint (the name is known at synth:
``sluice-<stage>-<dataset>``, variant ``AllTraffic``), thresholds and periods from the stage
config, actions to the notifications topic:

- model errors: ``Invocation5XXErrors`` (Sum per period). Client errors (4xx: malformed
  requests) are a different metric and never trip it;
- model latency: ``ModelLatency`` p99, in microseconds as SageMaker publishes it.

They are the ``AutoRollbackConfiguration`` alarms of every update of that endpoint
(``deployment_config``): blue/green with a canary (or all at once with baking when the fleet
is too small for one), then a final baking period. They watch the whole endpoint, old fleet
included: an alarm the old model causes also stops a rollout.

The stage's endpoint settings are checked here, at synth: an update must watch for at least
an alarm period x evaluation periods + the metrics' delay, or it could finish before an alarm
can fire; serverless endpoints cannot run in a VPC.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_sns as sns
from constructs import Construct

from datasets import names
from datasets.spec import SPECS_DIR
from infra.config import ConfigError, EndpointSettings, StageConfig

NAMESPACE = "AWS/SageMaker"
MAX_WAIT_SECONDS = 3600
MIN_EXECUTION_SECONDS, MAX_EXECUTION_SECONDS = 600, 28800
SERVERLESS_MEMORY_MB = (1024, 2048, 3072, 4096, 5120, 6144)
SERVERLESS_MAX_CONCURRENCY = 200


def declared_datasets(specs_dir: Path = SPECS_DIR) -> tuple[str, ...]:
    """The datasets with a spec (``datasets/<name>.yaml``), sorted."""
    return tuple(sorted(path.stem for path in specs_dir.glob("*.yaml")))


def private_network(config: StageConfig) -> bool:
    """Whether the stage runs its workloads in a VPC (the ``vpc`` option, infra/network.py)."""
    return config.vpc is not None


def check_endpoint(settings: EndpointSettings, *, dataset: str, in_vpc: bool) -> list[str]:
    """Validate one dataset's endpoint settings; raise ``ConfigError`` naming what is wrong.
    Returns notes for the synth output (e.g. a fleet too small for a canary)."""
    where = f"endpoint of dataset {dataset!r}"
    alarms, timing = settings.alarms, settings.rollout
    errors: list[str] = []
    notes: list[str] = []
    if settings.kind not in ("real_time", "serverless"):
        errors.append(f"kind {settings.kind!r} is not real_time or serverless")
    if alarms.period_seconds < 60 or alarms.period_seconds % 60:
        errors.append(
            f"alarm period {alarms.period_seconds}s: SageMaker's endpoint metrics are one-minute, "
            "use a multiple of 60"
        )
    if alarms.evaluation_periods < 1:
        errors.append("alarm evaluation_periods must be at least 1")
    if alarms.datapoints_to_alarm is not None and not (
        1 <= alarms.datapoints_to_alarm <= alarms.evaluation_periods
    ):
        errors.append("alarm datapoints_to_alarm must be between 1 and evaluation_periods")
    if alarms.errors_5xx_threshold < 1 or alarms.latency_p99_ms <= 0:
        errors.append("alarm thresholds must be positive")
    watch = alarms.detection_seconds
    waits = {"baking_seconds": timing.baking_seconds}
    if settings.canary:
        waits["canary_wait_seconds"] = timing.canary_wait_seconds
    for name, seconds in waits.items():
        if seconds < watch:
            errors.append(
                f"rollout {name}={seconds} is shorter than the alarms need to fire: "
                f"{alarms.period_seconds}s period x {alarms.evaluation_periods} evaluation "
                f"period(s) + {alarms.metric_delay_seconds}s metric delay = {watch}s"
            )
        if seconds > MAX_WAIT_SECONDS:
            errors.append(f"rollout {name}={seconds} exceeds SageMaker's {MAX_WAIT_SECONDS}s")
    total = sum(waits.values())
    if not MIN_EXECUTION_SECONDS <= timing.max_execution_seconds <= MAX_EXECUTION_SECONDS:
        errors.append(
            f"rollout max_execution_seconds must be between {MIN_EXECUTION_SECONDS} and "
            f"{MAX_EXECUTION_SECONDS}"
        )
    elif timing.max_execution_seconds <= total:
        errors.append(
            f"rollout max_execution_seconds={timing.max_execution_seconds} must exceed the "
            f"waits it contains ({total}s)"
        )
    if settings.kind == "serverless":
        errors.extend(_check_serverless(settings, in_vpc))
    else:
        real_time = settings.real_time
        if (
            not 1
            <= real_time.min_instances
            <= real_time.initial_instance_count
            <= real_time.max_instances
        ):
            errors.append(
                "real-time instances must satisfy 1 <= min_instances <= initial_instance_count "
                "<= max_instances"
            )
        if real_time.canary_instances < 1 or real_time.target_invocations_per_instance < 1:
            errors.append("canary_instances and target_invocations_per_instance must be positive")
        if not settings.canary:
            smallest = min(real_time.initial_instance_count, real_time.min_instances)
            notes.append(
                f"{where}: {smallest} instance(s) cannot hold a canary of "
                f"{real_time.canary_instances} (at most half the fleet): updates shift all "
                f"traffic at once, then bake {timing.baking_seconds}s with the rollback alarms "
                "watching"
            )
    if errors:
        raise ConfigError(f"{where}: " + "; ".join(errors))
    return notes


def _check_serverless(settings: EndpointSettings, in_vpc: bool) -> list[str]:
    serverless, errors = settings.serverless, []
    if in_vpc:
        errors.append(
            "serverless endpoints cannot run in the stage's VPC (SageMaker Serverless Inference "
            "does not support VPC configuration): use kind='real_time'"
        )
    if serverless.memory_mb not in SERVERLESS_MEMORY_MB:
        errors.append(f"serverless memory_mb must be one of {SERVERLESS_MEMORY_MB}")
    if not 1 <= serverless.max_concurrency <= SERVERLESS_MAX_CONCURRENCY:
        errors.append(f"serverless max_concurrency must be 1-{SERVERLESS_MAX_CONCURRENCY}")
    provisioned = serverless.provisioned_concurrency
    if provisioned is not None and not 1 <= provisioned <= serverless.max_concurrency:
        errors.append("serverless provisioned_concurrency must be 1..max_concurrency")
    if not 1 <= serverless.canary_percent <= 50:
        errors.append("serverless canary_percent must be 1-50 (at most half the capacity)")
    return errors


def deployment_config(settings: EndpointSettings, alarm_names: Sequence[str]) -> dict[str, Any]:
    """``DeploymentConfig`` of UpdateEndpoint for this endpoint: blue/green with a canary (or
    all at once when the fleet is too small), final baking, rollback on ``alarm_names``."""
    timing = settings.rollout
    routing: dict[str, Any]
    if not settings.canary:
        routing = {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}
    else:
        size = (
            {"Type": "CAPACITY_PERCENT", "Value": settings.serverless.canary_percent}
            if settings.kind == "serverless"
            else {"Type": "INSTANCE_COUNT", "Value": settings.real_time.canary_instances}
        )
        routing = {
            "Type": "CANARY",
            "CanarySize": size,
            "WaitIntervalInSeconds": timing.canary_wait_seconds,
        }
    return {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": routing,
            "TerminationWaitInSeconds": timing.baking_seconds,
            "MaximumExecutionTimeoutInSeconds": timing.max_execution_seconds,
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": name} for name in alarm_names]},
    }


def scaling(settings: EndpointSettings) -> dict[str, int] | None:
    """What the deploy step registers with Application Auto Scaling after a real-time endpoint
    is in service (target tracking on invocations per instance); None for serverless."""
    if settings.kind == "serverless":
        return None
    real_time = settings.real_time
    return {
        "min": real_time.min_instances,
        "max": real_time.max_instances,
        "target": real_time.target_invocations_per_instance,
        "scale_in_cooldown": real_time.scale_in_cooldown_seconds,
        "scale_out_cooldown": real_time.scale_out_cooldown_seconds,
    }


def production_variant(settings: EndpointSettings) -> dict[str, Any]:
    """The endpoint config's one production variant (``ModelName`` added by the deploy step).
    No data capture: it would store request bodies, PII included, in the clear."""
    variant: dict[str, Any] = {"VariantName": names.VARIANT_NAME}
    if settings.kind == "serverless":
        serverless = settings.serverless
        config: dict[str, Any] = {
            "MemorySizeInMB": serverless.memory_mb,
            "MaxConcurrency": serverless.max_concurrency,
        }
        if serverless.provisioned_concurrency:
            config["ProvisionedConcurrency"] = serverless.provisioned_concurrency
        variant["ServerlessConfig"] = config
    else:
        variant["InstanceType"] = settings.real_time.instance_type
        variant["InitialInstanceCount"] = settings.real_time.initial_instance_count
        variant["InitialVariantWeight"] = 1.0
    return variant


@dataclass(frozen=True)
class DatasetRollout:
    """What a dataset's deploy step needs: its endpoint, alarms and deployment config."""

    dataset: str
    endpoint_name: str
    settings: EndpointSettings
    errors_alarm: cloudwatch.Alarm
    latency_alarm: cloudwatch.Alarm
    #: the AutoRollbackConfiguration alarms (plain names, known at synth)
    alarm_names: tuple[str, ...]
    deployment_config: dict[str, Any]
    production_variant: dict[str, Any]
    #: Application Auto Scaling bounds and target (None: serverless, nothing to scale)
    scaling: dict[str, int] | None

    def deploy_settings(self) -> dict[str, Any]:
        """What the deploy steps need at run time (the resolve function's ``ENDPOINTS``):
        the endpoint's kind, its variant (``ModelName`` added per deploy), the UpdateEndpoint
        ``DeploymentConfig`` with the rollback alarms, and the autoscaling settings."""
        return {
            "kind": self.settings.kind,
            "variant": self.production_variant,
            "deployment": self.deployment_config,
            "scaling": self.scaling,
        }


class Rollout(Construct):
    """The rollback alarms of every dataset endpoint, and their deployment settings."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: StageConfig,
        datasets: Sequence[str],
        alerts: sns.ITopic,
    ) -> None:
        super().__init__(scope, id_)
        self.datasets: dict[str, DatasetRollout] = {}
        in_vpc = private_network(config)
        undeclared = sorted(set(config.endpoints) - set(datasets))
        if undeclared:
            raise ConfigError(
                f"endpoint settings for undeclared dataset(s) {', '.join(undeclared)} "
                f"(declared: {', '.join(datasets)})"
            )
        for dataset in datasets:
            settings = config.endpoint_settings(dataset)
            for note in check_endpoint(settings, dataset=dataset, in_vpc=in_vpc):
                cdk.Annotations.of(self).add_info(note)
            endpoint = names.endpoint_name(config.prefix, dataset)
            errors, latency = self._alarms(config, dataset, endpoint, settings, alerts)
            alarm_names = names.endpoint_rollback_alarm_names(config.prefix, dataset)
            self.datasets[dataset] = DatasetRollout(
                dataset=dataset,
                endpoint_name=endpoint,
                settings=settings,
                errors_alarm=errors,
                latency_alarm=latency,
                alarm_names=alarm_names,
                deployment_config=deployment_config(settings, alarm_names),
                production_variant=production_variant(settings),
                scaling=scaling(settings),
            )

    def deploy_settings(self) -> dict[str, dict[str, Any]]:
        """Every dataset's ``DatasetRollout.deploy_settings``, by dataset."""
        return {name: rollout.deploy_settings() for name, rollout in self.datasets.items()}

    def _alarms(
        self,
        config: StageConfig,
        dataset: str,
        endpoint: str,
        settings: EndpointSettings,
        alerts: sns.ITopic,
    ) -> tuple[cloudwatch.Alarm, cloudwatch.Alarm]:
        limits = settings.alarms
        dimensions = {"EndpointName": endpoint, "VariantName": names.VARIANT_NAME}
        period = Duration.seconds(limits.period_seconds)
        common: dict[str, Any] = {
            "evaluation_periods": limits.evaluation_periods,
            "datapoints_to_alarm": limits.datapoints_to_alarm,
            # no traffic is not a failure: a quiet endpoint must not block a rollout
            "treat_missing_data": cloudwatch.TreatMissingData.NOT_BREACHING,
        }
        title = dataset.replace("-", " ").title().replace(" ", "")
        watched = (
            "It is a rollback alarm of every update of this endpoint, and watches the whole "
            "endpoint: while it is in ALARM, no update can complete."
        )
        errors = cloudwatch.Alarm(
            self,
            f"{title}ModelErrors",
            alarm_name=names.endpoint_errors_alarm_name(config.prefix, dataset),
            alarm_description=(
                f"Sluice {config.stage}: the {dataset} endpoint ({endpoint}) answered at least "
                f"{limits.errors_5xx_threshold} request(s) with a model error (HTTP 5xx) in "
                f"{limits.period_seconds}s. Client errors (4xx) do not count. {watched}"
            ),
            metric=cloudwatch.Metric(
                namespace=NAMESPACE,
                metric_name="Invocation5XXErrors",
                dimensions_map=dimensions,
                statistic="Sum",
                period=period,
            ),
            threshold=limits.errors_5xx_threshold,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            **common,
        )
        latency = cloudwatch.Alarm(
            self,
            f"{title}ModelLatency",
            alarm_name=names.endpoint_latency_alarm_name(config.prefix, dataset),
            alarm_description=(
                f"Sluice {config.stage}: the {dataset} endpoint's p99 model latency exceeded "
                f"{limits.latency_p99_ms} ms over {limits.period_seconds}s. {watched}"
            ),
            metric=cloudwatch.Metric(
                namespace=NAMESPACE,
                metric_name="ModelLatency",
                dimensions_map=dimensions,
                statistic="p99",
                period=period,
            ),
            # ModelLatency is in microseconds
            threshold=limits.latency_p99_ms * 1000,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            **common,
        )
        for alarm in (errors, latency):
            alarm.add_alarm_action(cw_actions.SnsAction(alerts))
        return errors, latency
