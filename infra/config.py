"""Typed stage configuration, chosen in ``app.py`` from CDK context (``-c stage=prod``).

Differences between stages are known at synth time, so they live here, in code, not in
CloudFormation parameters or conditions. Constructs receive a ``StageConfig``; they never read
environment variables.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs

Architecture = Literal["arm64", "x86_64"]
EndpointKind = Literal["real_time", "serverless"]


# ---------------------------------------------------------------- endpoints (safe rollout)


@dataclass(frozen=True)
class RealTimeEndpoint:
    """A dataset endpoint on instances, scaled by Application Auto Scaling between
    ``min_instances`` and ``max_instances`` (target tracking on invocations per instance)."""

    instance_type: str = "ml.m5.large"
    initial_instance_count: int = 2
    min_instances: int = 2
    max_instances: int = 4
    #: SageMakerVariantInvocationsPerInstance target: requests per instance per minute
    target_invocations_per_instance: int = 600
    scale_in_cooldown_seconds: int = 300
    scale_out_cooldown_seconds: int = 60
    #: instances of the new fleet that take the canary's traffic first (CanarySize
    #: INSTANCE_COUNT); a canary needs at least two instances, with one it is all at once
    canary_instances: int = 1


@dataclass(frozen=True)
class ServerlessEndpoint:
    """A dataset endpoint on SageMaker Serverless Inference (no instances, no autoscaling)."""

    memory_mb: int = 2048
    max_concurrency: int = 5
    #: kept warm (billed while configured); None = on demand only
    provisioned_concurrency: int | None = None
    #: share of requests the new version takes first (CanarySize CAPACITY_PERCENT)
    canary_percent: int = 25


@dataclass(frozen=True)
class EndpointAlarms:
    """The rollback alarms of a dataset endpoint (5xx errors, p99 model latency)."""

    #: SageMaker publishes endpoint metrics every minute: periods are whole minutes
    period_seconds: int = 60
    evaluation_periods: int = 1
    #: None = all evaluation periods must breach
    datapoints_to_alarm: int | None = None
    #: model errors (HTTP 5xx) in one period that trip the alarm; client errors never count
    errors_5xx_threshold: int = 1
    #: p99 of ModelLatency above this trips the alarm (the metric is in microseconds)
    latency_p99_ms: int = 1000
    #: how late SageMaker's endpoint metrics reach CloudWatch, at most
    metric_delay_seconds: int = 60

    @property
    def detection_seconds(self) -> int:
        """How long a rollout must watch so that an alarm can fire at all."""
        return self.period_seconds * self.evaluation_periods + self.metric_delay_seconds


@dataclass(frozen=True)
class RolloutTiming:
    #: how long the canary takes its share before all traffic shifts (WaitIntervalInSeconds)
    canary_wait_seconds: int = 600
    #: final baking with all traffic on the new version (TerminationWaitInSeconds)
    baking_seconds: int = 600
    #: the whole deployment, provisioning included (MaximumExecutionTimeoutInSeconds)
    max_execution_seconds: int = 3600


@dataclass(frozen=True)
class EndpointSettings:
    """How one dataset's endpoint is served and rolled out in a stage."""

    kind: EndpointKind = "real_time"
    real_time: RealTimeEndpoint = RealTimeEndpoint()
    serverless: ServerlessEndpoint = ServerlessEndpoint()
    rollout: RolloutTiming = RolloutTiming()
    alarms: EndpointAlarms = EndpointAlarms()

    @property
    def canary(self) -> bool:
        """Whether updates go through a canary: serverless always; real-time with 2+ instances
        in the smallest fleet an update can meet (fewer: all at once, then baking)."""
        if self.kind == "serverless":
            return True
        smallest = min(self.real_time.initial_instance_count, self.real_time.min_instances)
        return smallest >= 2 * self.real_time.canary_instances


@dataclass(frozen=True)
class VpcConfig:
    """Private networking: functions and SageMaker jobs in private subnets, AWS via endpoints.

    With no ``vpc_id`` the app creates a VPC of its own (``cidr``, ``max_azs`` zones, isolated
    subnets only: no internet gateway, no NAT). With ``vpc_id`` it uses an existing VPC, given
    in full so synth makes no lookups: its private subnets (no route to the internet), their
    availability zones and route tables (for the S3 and DynamoDB gateway endpoints). The VPC
    must have DNS support and DNS hostnames on (interface endpoints use private DNS).
    """

    vpc_id: str | None = None
    subnet_ids: tuple[str, ...] = ()
    availability_zones: tuple[str, ...] = ()
    route_table_ids: tuple[str, ...] = ()
    cidr: str = "10.42.0.0/16"
    max_azs: int = 2

    @classmethod
    def parse(cls, value: Any) -> VpcConfig | None:
        """From context: ``create``/``true``, ``false``/``off``, or an object (or its JSON)."""
        if isinstance(value, VpcConfig) or value is None:
            return value
        if isinstance(value, bool):
            return cls() if value else None
        if isinstance(value, str):
            text = value.strip()
            if text.lower() in ("create", "true", "on", "1"):
                return cls()
            if text.lower() in ("", "false", "off", "0", "none"):
                return None
            try:
                value = json.loads(text)
            except ValueError as exc:
                raise ConfigError(
                    "-c vpc must be 'create', 'off', or a JSON object "
                    '{"vpc_id", "subnet_ids", "availability_zones", "route_table_ids"}'
                ) from exc
        if not isinstance(value, dict):
            raise ConfigError(f"-c vpc: expected an object, got {value!r}")
        unknown = set(value) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"-c vpc: unknown key(s) {', '.join(sorted(unknown))}")
        fields: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in value.items()
        }
        config = cls(**fields)
        config.validate()
        return config

    def validate(self) -> None:
        if self.vpc_id is None:
            if self.subnet_ids or self.route_table_ids or self.availability_zones:
                raise ConfigError("-c vpc: subnet ids and route tables need a vpc_id")
            if not 1 <= self.max_azs <= 6:
                raise ConfigError("-c vpc: max_azs must be 1 to 6")
            return
        if not self.subnet_ids:
            raise ConfigError("-c vpc: an existing VPC needs its private subnet_ids")
        for prefix, ids in (
            ("vpc-", (self.vpc_id,)),
            ("subnet-", self.subnet_ids),
            ("rtb-", self.route_table_ids),
        ):
            wrong = [i for i in ids if not str(i).startswith(prefix)]
            if wrong:
                raise ConfigError(f"-c vpc: {', '.join(map(str, wrong))} is not a {prefix}... id")
        if len(self.availability_zones) != len(self.subnet_ids):
            raise ConfigError("-c vpc: give one availability zone per subnet, in order")
        if len(self.route_table_ids) != len(self.subnet_ids):
            raise ConfigError("-c vpc: give one route table per subnet, in order")


#: CloudWatch alarm periods: 10 or 30 seconds (high resolution), or whole minutes
def valid_period(seconds: int) -> bool:
    return seconds in (10, 30) or (seconds >= 60 and seconds % 60 == 0)


@dataclass(frozen=True)
class MonitoringSettings:
    """Alarms, drift and model-quality monitoring of a stage (``infra/monitoring.py``).

    Defaults are documented in README ("Monitoring"); override any of them for a stage with
    ``-c monitoring='{"drift_threshold": 0.3}'`` (a JSON object of these fields).
    """

    # ------------------------------------------------------------- drift and model quality
    #: drift and model quality are computed this often (an EventBridge rule), in minutes
    schedule_minutes: int = 60
    #: drift compares the records captured in the last window with the serving model's
    #: training baseline
    drift_window_minutes: int = 60
    #: a window with fewer captured records is skipped, and says so (PSI of a few is noise)
    drift_min_samples: int = 200
    #: at most this many records of a window are compared (a uniform sample of the rest)
    drift_max_samples: int = 100_000
    #: the drift alarm: the largest feature PSI of a window at or above this
    #: (below 0.1 no real change, 0.1-0.25 moderate, above 0.25 significant)
    drift_threshold: float = 0.25
    #: model quality: the spec's metric on the serving model's labelled traffic of this many
    #: days; fewer labelled records than ``quality_min_samples`` skip the computation
    quality_window_days: int = 7
    quality_min_samples: int = 100
    #: feedback labels are joined with the predictions captured in this many days before
    feedback_join_days: int = 14
    #: label files, joined records and monitoring reports expire after this many days
    feedback_expire_days: int = 30
    #: period of the drift and quality alarms: shorter than the schedule, so that every
    #: window that drifts alarms again (the spec's cool-down keeps runs apart), one datapoint
    #: each; missing data is not breaching
    model_alarm_period_seconds: int = 300
    #: every spec's ``retrain.cooldown_hours``, replaced (minutes); for tests and demos
    retrain_cooldown_minutes: int | None = None
    # ------------------------------------------------------------- component alarms
    #: period and evaluation periods of the alarms on functions, queues, state machines, API
    alarm_period_seconds: int = 300
    alarm_evaluation_periods: int = 1
    #: a function's Errors, or Throttles, summed over a period at or above these
    function_errors_threshold: int = 1
    function_throttles_threshold: int = 1
    #: messages visible in a dead-letter queue (Maximum over a period) at or above this
    dead_letters_threshold: int = 1
    #: the oldest message of any other queue at least this old (seconds): its consumer is
    #: stuck (ingestion: 3 receives of 90 minutes each fit below the default 6 hours)
    queue_age_seconds: int = 6 * 3600
    #: executions of a state machine failed, timed out or aborted in a period
    executions_failed_threshold: int = 1
    #: the API's share of requests answered 5xx in a period (5XXError Average)
    api_5xx_rate: float = 0.05
    #: the API's p99 latency (whole request, ms) over a period
    api_latency_p99_ms: int = 5000
    #: a capture stream's share of records delivered to S3 below this (Minimum over a period)
    capture_delivery_min: float = 0.99

    @classmethod
    def parse(cls, value: Any, base: MonitoringSettings | None = None) -> MonitoringSettings:
        """``-c monitoring='{"drift_threshold": 0.3}'``: fields replaced on the stage's own."""
        if isinstance(value, MonitoringSettings):
            return value
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError as exc:
                raise ConfigError("-c monitoring must be a JSON object of settings") from exc
        if not isinstance(value, dict):
            raise ConfigError(f"-c monitoring: expected an object, got {value!r}")
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(value) - set(known)
        if unknown:
            raise ConfigError(f"-c monitoring: unknown key(s) {', '.join(sorted(unknown))}")
        settings = dataclasses.replace(base or cls(), **value)
        settings.validate()
        return settings

    def validate(self) -> None:
        errors = []
        for name in ("alarm_period_seconds", "model_alarm_period_seconds"):
            if not valid_period(getattr(self, name)):
                errors.append(f"{name} must be 10, 30 or a multiple of 60")
        for name in (
            "schedule_minutes", "drift_window_minutes", "drift_min_samples", "drift_max_samples",
            "quality_window_days", "quality_min_samples", "feedback_join_days",
            "feedback_expire_days", "alarm_evaluation_periods", "function_errors_threshold",
            "function_throttles_threshold", "dead_letters_threshold",
            "executions_failed_threshold", "api_latency_p99_ms", "queue_age_seconds",
        ):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                errors.append(f"{name} must be a whole number >= 1")
        if self.drift_threshold <= 0:
            errors.append("drift_threshold must be above 0")
        if not 0 < self.api_5xx_rate <= 1 or not 0 < self.capture_delivery_min <= 1:
            errors.append("api_5xx_rate and capture_delivery_min must be in (0, 1]")
        if self.retrain_cooldown_minutes is not None and self.retrain_cooldown_minutes < 0:
            errors.append("retrain_cooldown_minutes must be >= 0")
        if self.drift_max_samples < self.drift_min_samples:
            errors.append("drift_max_samples must be at least drift_min_samples")
        if errors:
            raise ConfigError("monitoring: " + "; ".join(errors))


@dataclass(frozen=True)
class StageConfig:
    """Everything that differs between stages."""

    stage: str
    #: prod keeps data when a stack is deleted; dev cleans up after itself
    retain_data: bool
    termination_protection: bool
    #: arm64 on AWS (cheaper per GB-second); the local cloud uses the host's architecture
    lambda_architecture: Architecture = "arm64"
    lambda_python: str = "3.13"
    log_retention_days: int = 30
    #: most preprocess functions the SQS event source runs at once (its MaximumConcurrency;
    #: 2 is SQS's minimum). It caps the function without reserving account concurrency.
    preprocess_max_concurrency: int = 2
    #: opt-in reserved concurrency for the preprocess function. Off by default: a new account
    #: may have an account concurrency limit of 10, and any reservation then fails the deploy
    #: (Lambda keeps 10 unreserved). Set it where the account's limit has room.
    preprocess_reserved_concurrency: int | None = None
    #: objects above this size are ingested by a SageMaker Processing job, not the function
    #: (3 GiB: the file plus its outputs, 2.4x its size, must fit the function's 10 GB /tmp
    #: with room; at ~40-70 s per GB on its 2 vCPUs that takes a third of the 15-minute
    #: timeout at most; measured in lambdas/preprocess/README.md). Compressed inputs (gzip,
    #: Parquet) hold ~4x their size in CSV: their threshold is a quarter of this.
    large_object_threshold_bytes: int = 3 * 1024**3
    processing_instance_type: str = "ml.m5.2xlarge"
    processing_volume_gb: int = 200
    #: backfill items processed at once (direct invocations, beside the event source's own
    #: cap); with a reservation, keep the two together below it so live uploads are not throttled
    backfill_max_concurrency: int = 1
    # data lake lifecycle
    raw_infrequent_access_after_days: int = 30
    raw_glacier_after_days: int = 90
    noncurrent_versions_expire_after_days: int = 30
    access_logs_expire_after_days: int = 365
    abort_multipart_after_days: int = 7
    # training pipeline (infra/training_pipeline.py)
    #: a GPU type (ml.g5.*, ml.p3.*) makes train.py train on the GPU (SM_NUM_GPUS > 0)
    training_instance_type: str = "ml.m5.xlarge"
    #: one instance until distributed training lands; synth rejects more
    training_instance_count: int = 1
    training_volume_gb: int = 30
    training_max_runtime_seconds: int = 6 * 3600
    #: managed spot training (up to ~70% cheaper; checkpoints make interruptions resumable)
    training_spot: bool = True
    training_max_wait_seconds: int = 12 * 3600
    evaluation_instance_type: str = "ml.m5.large"
    evaluation_max_runtime_seconds: int = 3600
    #: "auto": a model that passes the gate is Approved and deployed; "manual": registered
    #: PendingManualApproval, deployed when someone approves it
    model_approval: Literal["auto", "manual"] = "auto"
    #: seconds between endpoint status polls, and the throttling back-off steps (seconds)
    pipeline_poll_seconds: int = 30
    pipeline_backoff_seconds: tuple[int, ...] = (2, 4, 8, 16, 32)
    # ------------------------------------------------------------------ serving (infra/serving.py)
    #: per API key (usage plan): steady requests per second, burst, and requests per day
    api_rate_limit: float = 20.0
    api_burst_limit: int = 10
    api_daily_quota: int = 100_000
    #: also require SigV4-signed requests (IAM authorization) on every route, beside the key
    api_iam_auth: bool = False
    #: browser origins allowed to call the API (CORS); empty: no CORS headers at all
    cors_origins: tuple[str, ...] = ()
    #: a WAF web ACL (regional) to associate with the API stage, by ARN
    waf_web_acl_arn: str | None = None
    #: most instances one prediction request may carry (413 above)
    max_instances: int = 1000
    #: the documented body limit (413 above): well below Lambda's 6 MB synchronous payload,
    #: which the body reaches JSON-escaped inside the API Gateway event (quotes double)
    max_body_bytes: int = 1024 * 1024
    #: the predict function's own wait for the endpoint (504 after); below API Gateway's 29 s
    endpoint_timeout_seconds: int = 20
    #: opt-in reserved concurrency of the predict function (a new account's limit of 10
    #: makes any reservation fail the deploy); when set, keep it above the usage plan's burst
    #: so that API Gateway throttles (429) before Lambda would (a Lambda throttle is a 5xx)
    predict_reserved_concurrency: int | None = None
    predict_memory_mb: int = 1024
    #: seconds a client is told to wait (Retry-After) while a dataset has no endpoint yet
    retry_after_seconds: int = 60
    # capture (Firehose → artifacts bucket <dataset>/capture/)
    #: share of prediction requests captured (0..1)
    capture_share: float = 1.0
    capture_buffer_seconds: int = 15
    capture_buffer_mb: int = 1
    #: captured records hold customer ids: they expire after this many days
    capture_expire_days: int = 30
    # batch scoring (infra/batch_scoring.py)
    transform_instance_type: str = "ml.m5.xlarge"
    transform_max_payload_mb: int = 6
    transform_max_runtime_seconds: int = 6 * 3600
    #: alarms, dashboard, drift and model quality (infra/monitoring.py)
    monitoring: MonitoringSettings = MonitoringSettings()
    #: private networking (``-c vpc=create`` or an existing VPC); None: AWS's public endpoints
    vpc: VpcConfig | None = None
    #: subscribed to the notifications topic when set
    notification_email: str | None = None
    #: optional fixed account/region; None keeps templates environment-agnostic
    account: str | None = None
    region: str | None = None
    #: endpoint settings of every dataset (type, size, rollout, alarms), unless ``endpoints``
    #: names the dataset (in code, or ``-c endpoints='{"wine": {"kind": "serverless"}}'``)
    default_endpoint: EndpointSettings = EndpointSettings()
    endpoints: Mapping[str, EndpointSettings] = field(default_factory=lambda: MappingProxyType({}))

    def endpoint_settings(self, dataset: str) -> EndpointSettings:
        return self.endpoints.get(dataset, self.default_endpoint)

    @property
    def prefix(self) -> str:
        """Prefix for the few physical names that outside tools must find."""
        return f"sluice-{self.stage}"

    @property
    def removal_policy(self) -> cdk.RemovalPolicy:
        return cdk.RemovalPolicy.RETAIN if self.retain_data else cdk.RemovalPolicy.DESTROY

    @property
    def architecture(self) -> lambda_.Architecture:
        return (
            lambda_.Architecture.ARM_64
            if self.lambda_architecture == "arm64"
            else (lambda_.Architecture.X86_64)
        )

    @property
    def runtime(self) -> lambda_.Runtime:
        return lambda_.Runtime(f"python{self.lambda_python}", lambda_.RuntimeFamily.PYTHON)

    @property
    def log_retention(self) -> logs.RetentionDays:
        return LOG_RETENTION[self.log_retention_days]

    @property
    def env(self) -> cdk.Environment | None:
        if self.account is None and self.region is None:
            return None
        return cdk.Environment(account=self.account, region=self.region)


STAGES: dict[str, StageConfig] = {
    # dev: the smallest fleet that still rolls out through a canary (1 of 2 instances); a
    # 5-minute canary (the alarms need one 60 s period + 60 s metric delay, so the canary
    # watches for more than twice that) and a baking as short as the alarms allow
    "dev": StageConfig(
        stage="dev",
        retain_data=False,
        termination_protection=False,
        default_endpoint=EndpointSettings(
            real_time=RealTimeEndpoint(
                instance_type="ml.t2.medium",
                initial_instance_count=2,
                min_instances=2,
                max_instances=3,
                target_invocations_per_instance=300,
            ),
            rollout=RolloutTiming(
                canary_wait_seconds=300, baking_seconds=120, max_execution_seconds=1800
            ),
            alarms=EndpointAlarms(errors_5xx_threshold=1, latency_p99_ms=1000),
        ),
    ),
    # prod: two alarm periods out of three must breach, so one bad minute does not roll back
    "prod": StageConfig(
        stage="prod",
        retain_data=True,
        termination_protection=True,
        log_retention_days=365,
        preprocess_max_concurrency=10,
        backfill_max_concurrency=5,
        noncurrent_versions_expire_after_days=90,
        model_approval="manual",
        api_rate_limit=100.0,
        api_burst_limit=50,
        api_daily_quota=1_000_000,
        capture_share=0.1,
        capture_buffer_seconds=300,
        capture_buffer_mb=64,
        capture_expire_days=90,
        # prod captures a tenth of the requests: a drift window needs more of them to count
        monitoring=MonitoringSettings(
            drift_min_samples=500, feedback_expire_days=90, alarm_evaluation_periods=2
        ),
        default_endpoint=EndpointSettings(
            real_time=RealTimeEndpoint(
                instance_type="ml.m5.large",
                initial_instance_count=2,
                min_instances=2,
                max_instances=6,
                target_invocations_per_instance=600,
            ),
            rollout=RolloutTiming(
                canary_wait_seconds=600, baking_seconds=600, max_execution_seconds=3600
            ),
            alarms=EndpointAlarms(
                evaluation_periods=3,
                datapoints_to_alarm=2,
                errors_5xx_threshold=5,
                latency_p99_ms=500,
            ),
        ),
    ),
}

#: CloudWatch Logs accepts these retention periods only (days → CDK enum)
LOG_RETENTION: dict[int, logs.RetentionDays] = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    731: logs.RetentionDays.TWO_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}


def _boolean(value: Any) -> bool:
    """``-c api_iam_auth=true``: context values arrive as strings (or JSON booleans)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ValueError(value)


def _origins(value: Any) -> tuple[str, ...]:
    """``-c cors_origins=https://a.example,https://b.example`` (or a JSON list in cdk.json)."""
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    return tuple(item.strip() for item in items if str(item).strip())


#: context keys that may override a stage's defaults, with the type they are parsed to
_OVERRIDES: dict[str, Callable[[Any], Any]] = {
    "lambda_architecture": str,
    "account": str,
    "notification_email": str,
    "region": str,
    "preprocess_reserved_concurrency": int,
    "preprocess_max_concurrency": int,
    "log_retention_days": int,
    "pipeline_poll_seconds": int,
    "training_instance_type": str,
    "training_instance_count": int,
    "api_rate_limit": float,
    "api_burst_limit": int,
    "api_daily_quota": int,
    "api_iam_auth": _boolean,
    "cors_origins": _origins,
    "waf_web_acl_arn": str,
    "capture_share": float,
    "capture_expire_days": int,
    "predict_reserved_concurrency": int,
    "vpc": VpcConfig.parse,
    "monitoring": MonitoringSettings.parse,
}


OVERRIDABLE: tuple[str, ...] = (*_OVERRIDES, "endpoints")


class ConfigError(ValueError):
    """The stage or an override given with ``-c`` is invalid."""


#: what ``-c endpoints=...`` may set per dataset: the kind and the fields of its kind's settings
_ENDPOINT_KEYS: dict[str, str] = {
    **{f.name: "real_time" for f in dataclasses.fields(RealTimeEndpoint)},
    **{f.name: "serverless" for f in dataclasses.fields(ServerlessEndpoint)},
}


def endpoint_overrides(base: StageConfig, value: Any) -> Mapping[str, EndpointSettings]:
    """``-c endpoints='{"wine": {"kind": "serverless", "memory_mb": 3072}, "churn":
    {"instance_type": "ml.c5.large", "max_instances": 6}}'``: per dataset, the kind and any
    field of the real-time or serverless settings, over the stage's settings for the dataset.
    Rollout timing and alarms stay the stage's (in code)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ConfigError(
                "-c endpoints must be a JSON object: dataset -> {kind, settings}"
            ) from exc
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise ConfigError("-c endpoints must be a JSON object: dataset -> {kind, settings}")
    found = dict(base.endpoints)
    for dataset, keys in value.items():
        settings = base.endpoint_settings(dataset)
        unknown = set(keys) - {"kind", *_ENDPOINT_KEYS}
        if unknown:
            raise ConfigError(
                f"-c endpoints: {dataset}: unknown key(s) {', '.join(sorted(unknown))} "
                f"(known: kind, {', '.join(_ENDPOINT_KEYS)})"
            )
        for key, given in keys.items():
            expected = str if key in ("kind", "instance_type") else int
            optional = key == "provisioned_concurrency" and given is None
            if not optional and (not isinstance(given, expected) or isinstance(given, bool)):
                raise ConfigError(
                    f"-c endpoints: {dataset}.{key}: expected {expected.__name__}, got {given!r}"
                )
        kind = keys.get("kind", settings.kind)
        if kind not in ("real_time", "serverless"):
            raise ConfigError(f"-c endpoints: {dataset}: kind must be real_time or serverless")
        try:
            real_time = dataclasses.replace(
                settings.real_time,
                **{k: v for k, v in keys.items() if _ENDPOINT_KEYS.get(k) == "real_time"},
            )
            serverless = dataclasses.replace(
                settings.serverless,
                **{k: v for k, v in keys.items() if _ENDPOINT_KEYS.get(k) == "serverless"},
            )
        except TypeError as exc:
            raise ConfigError(f"-c endpoints: {dataset}: {exc}") from exc
        found[dataset] = dataclasses.replace(
            settings, kind=kind, real_time=real_time, serverless=serverless
        )
    return MappingProxyType(found)


def stage_config(stage: str, context: dict[str, Any] | None = None) -> StageConfig:
    """The config of ``stage``, with overrides from CDK context (``-c key=value``)."""
    if stage not in STAGES:
        raise ConfigError(f"unknown stage {stage!r}; choose one of {', '.join(STAGES)}")
    changes: dict[str, Any] = {}
    if (context or {}).get("endpoints") is not None:
        changes["endpoints"] = endpoint_overrides(STAGES[stage], (context or {})["endpoints"])
    for key, kind in _OVERRIDES.items():
        value = (context or {}).get(key)
        if value is None:
            continue
        try:
            if key == "monitoring":  # fields replaced on the stage's own settings
                changes[key] = MonitoringSettings.parse(value, STAGES[stage].monitoring)
                continue
            changes[key] = kind(value)
        except ConfigError:
            raise
        except ValueError as exc:
            expected = getattr(kind, "__name__", "")
            expected = "a boolean" if key == "api_iam_auth" else expected
            raise ConfigError(f"-c {key}={value!r}: expected {expected}") from exc
    if changes.get("lambda_architecture", "arm64") not in ("arm64", "x86_64"):
        raise ConfigError("-c lambda_architecture must be arm64 or x86_64")
    if changes.get("log_retention_days", 30) not in LOG_RETENTION:
        raise ConfigError(
            f"-c log_retention_days must be one of {', '.join(map(str, LOG_RETENTION))}"
        )
    if changes.get("training_instance_count", 1) != 1:
        raise ConfigError(
            "-c training_instance_count: one training instance only (distributed training is "
            "not supported yet); use a larger instance type (or a GPU type) instead"
        )
    if changes.get("pipeline_poll_seconds", 30) < 1:
        raise ConfigError("-c pipeline_poll_seconds must be at least 1")
    if not 0.0 <= changes.get("capture_share", 0.0) <= 1.0:
        raise ConfigError("-c capture_share must be between 0 and 1")
    if not 2 <= changes.get("preprocess_max_concurrency", 2) <= 1000:
        raise ConfigError("-c preprocess_max_concurrency must be 2 to 1000 (SQS event sources)")
    return dataclasses.replace(STAGES[stage], **changes)
