"""``make cost``: a month of a stage in dollars, from its synthesized templates and stage config.

python -m infra.cost --stage prod [--templates cdk.out] [-c key=value ...] [--predictions N ...]

Standing costs are counted from the resources in the templates
(``cdk.out/<prefix>-*.template.json``) and, for the SageMaker endpoints that the deploy step
creates at run time (they are in no template), from the stage config. Costs by use come from
usage assumptions with defaults that the flags change. Prices: ``infra/prices.py`` (one dated
table, us-east-1). Pure Python: no AWS calls, no network.

Every resource type in the templates is either priced (``FIXED_TYPES``) or named as having no
standing cost, with the reason (``NO_STANDING_COST``). A type in neither is an error, so a new
kind of resource cannot slip into the estimate as a silent zero.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from infra.config import ConfigError, EndpointSettings, StageConfig, stage_config
from infra.prices import (
    HOURS_PER_MONTH,
    PRICES,
    PRICES_AS_OF,
    REGION,
    SECONDS_PER_MONTH,
    InstanceUse,
    UnknownPriceError,
    instance_hourly,
    missing_instance_prices,
)
from infra.rollout import declared_datasets

REPO_ROOT = Path(__file__).resolve().parents[1]
GB = 1024**3
MB = 1024**2
#: Firehose bills each record as at least 5 KB
FIREHOSE_RECORD_BYTES = 5 * 1024

Template = dict[str, Any]
Resources = list[tuple[str, dict[str, Any]]]  # (logical id, resource)


class CostError(Exception):
    """Something ``make cost`` cannot estimate: one clear message, no traceback."""


class UnclassifiedResourceError(CostError):
    """The templates hold a resource type that is neither priced nor known to be free."""


# ------------------------------------------------------------------ resource classification

#: resource types with a standing monthly cost; each has a counter in ``_FIXED_LINES``
FIXED_TYPES: dict[str, str] = {
    "AWS::KMS::Key": "per key per month (plus requests; S3 Bucket Keys keep those low)",
    "AWS::SecretsManager::Secret": "per secret per month (plus API calls)",
    "AWS::CloudWatch::Alarm": "per alarm metric per month; high-resolution (< 60 s) costs 3x",
    "AWS::CloudWatch::CompositeAlarm": "per composite alarm per month",
    "AWS::CloudWatch::Dashboard": "per dashboard per month; the account's first 3 are free",
    "AWS::EC2::VPCEndpoint": "interface endpoints per AZ per hour; gateway endpoints are free",
    "AWS::EC2::NatGateway": "per hour (plus per GB processed)",
    "AWS::EC2::EIP": "public IPv4 address per hour",
    "AWS::WAFv2::WebACLAssociation": "the associated web ACL per month (plus rules, requests)",
}

_DEPLOY_ONLY = "custom resource: a Lambda that runs during deploys only"
_PART_OF_API = "part of the REST API: billed through its requests"
_FREE = "no charge"

#: resource types with no standing cost: billed by use (covered below or in "not included"),
#: or free. The reason is printed with ``--resources``.
NO_STANDING_COST: dict[str, str] = {
    "AWS::CDK::Metadata": _FREE,
    "AWS::IAM::Role": _FREE,
    "AWS::IAM::Policy": _FREE,
    "AWS::Lambda::Function": "per request and GB-second (no provisioned concurrency)",
    "AWS::Lambda::Permission": _FREE,
    "AWS::Lambda::EventSourceMapping": "free; the function it invokes is billed",
    "AWS::ApiGateway::RestApi": "per request",
    "AWS::ApiGateway::ApiKey": _PART_OF_API,
    "AWS::ApiGateway::Deployment": _PART_OF_API,
    "AWS::ApiGateway::GatewayResponse": _PART_OF_API,
    "AWS::ApiGateway::Method": _PART_OF_API,
    "AWS::ApiGateway::RequestValidator": _PART_OF_API,
    "AWS::ApiGateway::Resource": _PART_OF_API,
    "AWS::ApiGateway::Stage": "part of the REST API (no cache cluster: checked)",
    "AWS::ApiGateway::UsagePlan": _PART_OF_API,
    "AWS::ApiGateway::UsagePlanKey": _PART_OF_API,
    "AWS::DynamoDB::Table": "on-demand: per request and GB stored (checked)",
    "AWS::Events::Rule": "free; custom events $1 per million, AWS service events free",
    "AWS::Scheduler::Schedule": "per invocation (first 14 million a month free)",
    "AWS::KinesisFirehose::DeliveryStream": "Direct PUT: per GB ingested, nothing while idle",
    "AWS::Logs::LogGroup": "per GB ingested and stored",
    "AWS::Logs::LogStream": _FREE,
    "AWS::S3::Bucket": "per GB stored and per request",
    "AWS::S3::BucketPolicy": _FREE,
    "AWS::SNS::Topic": "per publish and delivery",
    "AWS::SNS::TopicPolicy": _FREE,
    "AWS::SNS::Subscription": "per delivery (email: first 1,000 a month free)",
    "AWS::SQS::Queue": "per request (first million a month free)",
    "AWS::SQS::QueuePolicy": _FREE,
    "AWS::StepFunctions::StateMachine": "standard workflows: per state transition",
    "AWS::SageMaker::ModelPackageGroup": "free (the model registry); jobs and endpoints billed",
    "AWS::EC2::VPC": _FREE,
    "AWS::EC2::Subnet": _FREE,
    "AWS::EC2::RouteTable": _FREE,
    "AWS::EC2::SubnetRouteTableAssociation": _FREE,
    "AWS::EC2::SecurityGroup": _FREE,
    "AWS::EC2::SecurityGroupIngress": _FREE,
    "AWS::EC2::SecurityGroupEgress": _FREE,
    "AWS::EC2::FlowLog": "the log group's ingestion (rejected traffic only)",
    "AWS::ApplicationAutoScaling::ScalableTarget": "free; the instances it adds are billed",
    "AWS::ApplicationAutoScaling::ScalingPolicy": _FREE,
    "Custom::S3AutoDeleteObjects": _DEPLOY_ONLY,
    "Custom::S3BucketNotifications": _DEPLOY_ONLY,
    "Custom::PipelineTeardown": _DEPLOY_ONLY,
}


def unclassified(types: Iterable[str]) -> list[str]:
    return sorted({t for t in types if t not in FIXED_TYPES and t not in NO_STANDING_COST})


# ------------------------------------------------------------------ templates


def source_paths(root: Path = REPO_ROOT) -> list[Path]:
    """The files whose change changes the templates' resources (not this module or prices)."""
    paths = [root / "app.py", root / "cdk.json"]
    paths += [p for p in (root / "infra").glob("*.py") if p.stem not in ("cost", "prices")]
    paths += list((root / "datasets").glob("*.yaml"))
    paths += list((root / "statemachines").glob("*.json"))
    return [p for p in paths if p.exists()]


def load_templates(
    directory: Path, config: StageConfig, *, sources: Sequence[Path] | None = None
) -> dict[str, Template]:
    """The stage's synthesized templates by stack name; missing or stale ones are an error."""
    hint = f"run make synth STAGE={config.stage} (or make cost, which synthesizes first)"
    files = sorted(directory.glob(f"{config.prefix}-*.template.json"))
    if not files:
        raise CostError(f"no templates of stage {config.stage} in {directory}/: {hint}")
    if sources is None:
        sources = source_paths()
    oldest = min(f.stat().st_mtime for f in files)
    newer = [
        str(p.relative_to(REPO_ROOT)) if p.is_relative_to(REPO_ROOT) else str(p)
        for p in sources
        if p.stat().st_mtime > oldest
    ]
    if newer:
        raise CostError(f"templates in {directory}/ are older than {', '.join(newer)}: {hint}")
    templates = {f.name.removesuffix(".template.json"): json.loads(f.read_text()) for f in files}
    in_vpc = any(
        r.get("Type") == "AWS::EC2::VPCEndpoint" for _, r in resources_of(templates.values())
    )
    if in_vpc != (config.vpc is not None):
        raise CostError(
            f"templates in {directory}/ were synthesized "
            f"{'with' if in_vpc else 'without'} a VPC, the config has "
            f"{'one' if config.vpc is not None else 'none'}: synthesize with the same -c vpc=..."
        )
    return templates


def resources_of(templates: Iterable[Template]) -> Resources:
    return [
        (logical_id, resource)
        for template in templates
        for logical_id, resource in template.get("Resources", {}).items()
    ]


def type_counts(resources: Resources) -> Counter[str]:
    return Counter(resource["Type"] for _, resource in resources)


def _of_type(resources: Resources, type_: str) -> list[dict[str, Any]]:
    return [r.get("Properties", {}) for _, r in resources if r["Type"] == type_]


def check_no_hidden_standing_costs(resources: Resources) -> None:
    """Settings that would turn a pay-per-use resource into a standing cost."""
    found = []
    for props in _of_type(resources, "AWS::DynamoDB::Table"):
        if props.get("BillingMode") != "PAY_PER_REQUEST":
            found.append("a DynamoDB table with provisioned capacity")
    for props in _of_type(resources, "AWS::ApiGateway::Stage"):
        if props.get("CacheClusterEnabled"):
            found.append("an API Gateway stage with a cache cluster")
    for props in _of_type(resources, "AWS::Lambda::Function"):
        if props.get("ProvisionedConcurrencyConfig"):
            found.append("a Lambda function with provisioned concurrency")
    if found:
        raise CostError(f"not priced by make cost: {', '.join(sorted(set(found)))}")


# ------------------------------------------------------------------ usage assumptions


@dataclass(frozen=True)
class Usage:
    """What a month of use looks like; every field is a flag of ``python -m infra.cost``."""

    uploads: int = 30
    upload_mb: float = 10.0
    #: preprocess function time per GB of CSV (lambdas/preprocess/README.md: 40-70 s/GB)
    preprocess_seconds_per_gb: float = 60.0
    #: prediction requests a month, all serving datasets together, spread evenly over the month
    predictions: int = 100_000
    instances_per_request: int = 1
    #: predict function time per request (the endpoint call included)
    predict_ms: float = 100.0
    #: model time per request on the endpoint (serverless bills it)
    inference_ms: float = 50.0
    request_kb: float = 1.0
    training_runs: int = 4
    training_minutes: float = 15.0
    evaluation_minutes: float = 10.0
    #: managed spot training's saving on the on-demand price (AWS: up to 90%; varies)
    spot_savings: float = 0.7
    #: share of runs whose model is deployed (a blue/green update: both fleets for a while)
    deploy_share: float = 1.0
    #: state transitions of one run, deploy polling included (about 100 states visited)
    transitions_per_run: int = 200
    score_jobs: int = 0
    score_minutes: float = 15.0
    log_gb: float = 1.0
    #: None: the stage's capture_share
    capture_share: float | None = None
    #: datasets with a deployed endpoint; None: every declared dataset
    datasets: tuple[str, ...] | None = None


# ------------------------------------------------------------------ the estimate


@dataclass(frozen=True)
class Line:
    item: str
    quantity: str
    usd: float
    note: str = ""


@dataclass
class Estimate:
    stage: str
    fixed: list[Line] = field(default_factory=list)
    endpoints: list[Line] = field(default_factory=list)
    usage: list[Line] = field(default_factory=list)
    per_run: list[Line] = field(default_factory=list)
    #: one run's total with spot training and with on-demand training
    per_run_totals: list[Line] = field(default_factory=list)
    serving: list[Line] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    resource_types: Counter[str] = field(default_factory=Counter)

    @property
    def fixed_total(self) -> float:
        return sum(line.usd for line in self.fixed + self.endpoints)

    @property
    def usage_total(self) -> float:
        return sum(line.usd for line in self.usage)

    @property
    def total(self) -> float:
        return self.fixed_total + self.usage_total


def _price(key: str) -> float:
    return PRICES[key].usd


def _usd(key: str) -> str:
    """A price as the output shows it: $1.00, $0.023, $0.005."""
    usd = _price(key)
    return f"${usd:.2f}" if usd >= 0.1 else f"${usd:g}"


def _alarm_metrics(props: dict[str, Any]) -> tuple[int, bool]:
    """(alarm metrics billed, high resolution) of one AWS::CloudWatch::Alarm."""
    if "Metrics" not in props:
        return 1, int(props.get("Period", 60)) < 60
    stats = [m["MetricStat"] for m in props["Metrics"] if "MetricStat" in m]
    high = any(int(s.get("Period", 60)) < 60 for s in stats)
    # an anomaly-detection band is billed as three metrics
    bands = sum(
        1 for m in props["Metrics"] if "ANOMALY_DETECTION_BAND" in str(m.get("Expression", ""))
    )
    return len(stats) + 2 * bands, high


def _fixed_lines(resources: Resources) -> list[Line]:
    lines: list[Line] = []
    count = type_counts(resources)
    if count["AWS::KMS::Key"]:
        n = count["AWS::KMS::Key"]
        lines.append(Line("KMS keys", f"{n} x {_usd('kms_key')}", n * _price("kms_key")))
    if count["AWS::SecretsManager::Secret"]:
        n = count["AWS::SecretsManager::Secret"]
        lines.append(
            Line("Secrets Manager secrets", f"{n} x {_usd('secret')}", n * _price("secret"))
        )
    standard = high = 0
    for props in _of_type(resources, "AWS::CloudWatch::Alarm"):
        metrics, is_high = _alarm_metrics(props)
        if is_high:
            high += metrics
        else:
            standard += metrics
    if count["AWS::CloudWatch::Alarm"]:
        lines.append(
            Line(
                "CloudWatch alarms",
                f"{count['AWS::CloudWatch::Alarm']} alarms: {standard} standard, "
                f"{high} high-resolution metrics",
                standard * _price("alarm_standard") + high * _price("alarm_high_resolution"),
            )
        )
    if count["AWS::CloudWatch::CompositeAlarm"]:
        n = count["AWS::CloudWatch::CompositeAlarm"]
        lines.append(
            Line(
                "CloudWatch composite alarms",
                f"{n} x {_usd('alarm_composite')}",
                n * _price("alarm_composite"),
            )
        )
    if count["AWS::CloudWatch::Dashboard"]:
        n = count["AWS::CloudWatch::Dashboard"]
        lines.append(
            Line(
                "CloudWatch dashboards",
                f"{n} x {_usd('dashboard')}",
                n * _price("dashboard"),
                "the account's first 3 dashboards are free: $0 if these are among them",
            )
        )
    interface = [
        p
        for p in _of_type(resources, "AWS::EC2::VPCEndpoint")
        if p.get("VpcEndpointType", "Gateway") == "Interface"
    ]
    gateway = count["AWS::EC2::VPCEndpoint"] - len(interface)
    if interface:
        zone_hours = sum(len(p.get("SubnetIds", [])) for p in interface) * HOURS_PER_MONTH
        zones = sorted({len(p.get("SubnetIds", [])) for p in interface})
        lines.append(
            Line(
                "VPC interface endpoints",
                f"{len(interface)} x {'/'.join(map(str, zones))} AZ x 730 h x "
                f"{_usd('interface_endpoint_hour')}",
                zone_hours * _price("interface_endpoint_hour"),
                "plus $0.01 per GB they carry",
            )
        )
    if gateway:
        lines.append(Line("VPC gateway endpoints (S3, DynamoDB)", f"{gateway}", 0.0, "free"))
    if count["AWS::EC2::NatGateway"]:
        n = count["AWS::EC2::NatGateway"]
        lines.append(
            Line(
                "NAT gateways",
                f"{n} x 730 h x {_usd('nat_gateway_hour')}",
                n * HOURS_PER_MONTH * _price("nat_gateway_hour"),
                "plus $0.045 per GB processed",
            )
        )
    if count["AWS::EC2::EIP"]:
        n = count["AWS::EC2::EIP"]
        lines.append(
            Line(
                "Public IPv4 addresses",
                f"{n} x 730 h x {_usd('public_ipv4_hour')}",
                n * HOURS_PER_MONTH * _price("public_ipv4_hour"),
            )
        )
    if count["AWS::WAFv2::WebACLAssociation"]:
        n = count["AWS::WAFv2::WebACLAssociation"]
        lines.append(
            Line(
                "WAF web ACL (associated with the API)",
                f"{n} x {_usd('waf_web_acl')}",
                n * _price("waf_web_acl"),
                "plus $1 per rule a month in the ACL, which lives outside this app",
            )
        )
    if count["AWS::KinesisFirehose::DeliveryStream"]:
        n = count["AWS::KinesisFirehose::DeliveryStream"]
        lines.append(Line("Firehose capture streams", f"{n} (Direct PUT)", 0.0, "per GB only"))
    return lines


def _settings(config: StageConfig, datasets: Sequence[str]) -> dict[str, EndpointSettings]:
    return {dataset: config.endpoint_settings(dataset) for dataset in datasets}


def _needed_prices(config: StageConfig, endpoints: dict[str, EndpointSettings]) -> None:
    needed: list[tuple[InstanceUse, str]] = [
        ("hosting", s.real_time.instance_type) for s in endpoints.values()
    ]
    needed += [
        ("training", config.training_instance_type),
        ("processing", config.evaluation_instance_type),
        ("processing", config.processing_instance_type),
        ("transform", config.transform_instance_type),
    ]
    missing = missing_instance_prices(needed)
    if missing:
        raise UnknownPriceError(
            f"no {REGION} price for {', '.join(missing)}: add them to INSTANCE_HOURLY in "
            "infra/prices.py"
        )


def _rate_per_minute(usage: Usage, serving: int) -> float:
    return usage.predictions / max(serving, 1) / (HOURS_PER_MONTH * 60)


def real_time_instances(settings: EndpointSettings, per_minute: float) -> tuple[int, bool]:
    """Instances a steady ``per_minute`` request rate holds (autoscaling's target tracking),
    between the minimum and the maximum; and whether the rate is beyond the maximum."""
    rt = settings.real_time
    wanted = math.ceil(per_minute / rt.target_invocations_per_instance)
    floor = max(rt.min_instances, rt.initial_instance_count)
    return min(max(wanted, floor), rt.max_instances), wanted > rt.max_instances


def real_time_monthly(settings: EndpointSettings, instances: int) -> float:
    hourly = instance_hourly("hosting", settings.real_time.instance_type)
    return instances * HOURS_PER_MONTH * hourly


def serverless_idle_monthly(settings: EndpointSettings) -> float:
    """A serverless endpoint costs nothing idle, unless it keeps provisioned concurrency."""
    sv = settings.serverless
    if not sv.provisioned_concurrency:
        return 0.0
    gb = sv.memory_mb / 1024
    return (
        sv.provisioned_concurrency
        * gb
        * SECONDS_PER_MONTH
        * _price("serverless_provisioned_gb_second")
    )


def serverless_usage_monthly(settings: EndpointSettings, usage: Usage, requests: float) -> float:
    gb = settings.serverless.memory_mb / 1024
    compute = requests * usage.inference_ms / 1000 * gb * _price("serverless_inference_gb_second")
    data_gb = requests * usage.request_kb * 2 * 1024 / GB  # in and out
    return compute + data_gb * _price("serverless_data_gb")


def _endpoint_lines(
    estimate: Estimate, endpoints: dict[str, EndpointSettings], usage: Usage
) -> None:
    per_minute = _rate_per_minute(usage, len(endpoints))
    for dataset, settings in endpoints.items():
        if settings.kind == "serverless":
            sv = settings.serverless
            idle = serverless_idle_monthly(settings)
            quantity = (
                f"serverless {sv.memory_mb} MB, {sv.provisioned_concurrency} provisioned x 730 h"
                if sv.provisioned_concurrency
                else f"serverless {sv.memory_mb} MB, no provisioned concurrency"
            )
            estimate.endpoints.append(
                Line(f"endpoint {dataset}", quantity, idle, "idle: $0; requests below")
            )
            busy = per_minute / 60 * usage.inference_ms / 1000  # mean requests in flight
            if busy > sv.max_concurrency:
                estimate.notes.append(
                    f"endpoint {dataset}: {busy:,.1f} requests in flight on average, above its "
                    f"max_concurrency {sv.max_concurrency}: requests would be throttled"
                )
            continue
        rt = settings.real_time
        instances, over = real_time_instances(settings, per_minute)
        hourly = instance_hourly("hosting", rt.instance_type)
        ceiling = real_time_monthly(settings, rt.max_instances)
        estimate.endpoints.append(
            Line(
                f"endpoint {dataset}",
                f"{rt.instance_type} x {instances} x 730 h x ${hourly:g}",
                real_time_monthly(settings, instances),
                f"autoscaling ceiling {rt.max_instances} instances: ${ceiling:,.2f}",
            )
        )
        if over:
            estimate.notes.append(
                f"endpoint {dataset}: {per_minute:,.0f} requests a minute need more than its "
                f"{rt.max_instances} instances at {rt.target_invocations_per_instance} each"
            )


def _lambda_gb_second(resources: Resources, handler_module: str) -> tuple[float, float]:
    """(memory in GB, price per GB-second) of the function whose handler is in the module."""
    for props in _of_type(resources, "AWS::Lambda::Function"):
        if str(props.get("Handler", "")).startswith(f"lambdas.{handler_module}."):
            arch = (props.get("Architectures") or ["x86_64"])[0]
            return int(props.get("MemorySize", 128)) / 1024, _price(f"lambda_gb_second_{arch}")
    raise CostError(f"no {handler_module} function in the templates")


def _usage_lines(
    estimate: Estimate,
    config: StageConfig,
    resources: Resources,
    endpoints: dict[str, EndpointSettings],
    usage: Usage,
) -> None:
    lines = estimate.usage
    count = type_counts(resources)
    # ingestion: the function, or a processing job for objects above the threshold
    upload_bytes = usage.upload_mb * MB
    if upload_bytes > config.large_object_threshold_bytes:
        hourly = instance_hourly("processing", config.processing_instance_type)
        minutes = 5 + upload_bytes / GB  # start-up, then about a minute per GB
        lines.append(
            Line(
                "Ingestion: processing jobs",
                f"{usage.uploads} x {minutes:.0f} min x {config.processing_instance_type}",
                usage.uploads * minutes / 60 * hourly,
            )
        )
    else:
        gb, price = _lambda_gb_second(resources, "preprocess")
        seconds = 1 + usage.preprocess_seconds_per_gb * upload_bytes / GB
        lines.append(
            Line(
                "Ingestion: preprocess function",
                f"{usage.uploads} uploads x {seconds:.1f} s x {gb:.2f} GB",
                usage.uploads * seconds * gb * price
                + usage.uploads / 1e6 * _price("lambda_requests_million"),
            )
        )
    stored_gb = usage.uploads * upload_bytes * 2 / GB
    lines.append(
        Line(
            "S3 storage of a month's uploads",
            f"{stored_gb:.2f} GB (raw + curated) x {_usd('s3_standard_gb_month')}",
            stored_gb * _price("s3_standard_gb_month"),
            "adds up month after month until the lifecycle moves it",
        )
    )
    # training pipeline runs
    run = pipeline_run(config, endpoints, usage)
    estimate.per_run = run
    estimate.per_run_totals = [
        Line("run total, spot training", "", run_cost(run, spot=True)),
        Line("run total, on-demand training", "", run_cost(run, spot=False)),
    ]
    spot = config.training_spot
    run_total = run_cost(run, spot=spot)
    lines.append(
        Line(
            "Training pipeline runs",
            f"{usage.training_runs} x ${run_total:.2f} ({'spot' if spot else 'on demand'})",
            usage.training_runs * run_total,
            "one run is itemized below",
        )
    )
    # predictions
    p = usage.predictions
    lines.append(
        Line(
            "API Gateway (REST)",
            f"{p:,} requests x {_usd('api_gateway_rest_million')}/M",
            p / 1e6 * _price("api_gateway_rest_million"),
        )
    )
    gb, price = _lambda_gb_second(resources, "predict")
    lines.append(
        Line(
            "Predict function",
            f"{p:,} x {usage.predict_ms:g} ms x {gb:.2f} GB",
            p * usage.predict_ms / 1000 * gb * price + p / 1e6 * _price("lambda_requests_million"),
        )
    )
    share = config.capture_share if usage.capture_share is None else usage.capture_share
    records = p * usage.instances_per_request * share
    firehose_gb = records * FIREHOSE_RECORD_BYTES / GB
    lines.append(
        Line(
            "Firehose capture",
            f"{records:,.0f} records x 5 KB billed (share {share:g})",
            firehose_gb * _price("firehose_gb"),
        )
    )
    stored = records * usage.request_kb * 1024 / GB * config.capture_expire_days / 30
    lines.append(
        Line(
            "Capture storage (S3)",
            f"{stored:.3f} GB kept {config.capture_expire_days} days",
            stored * _price("s3_standard_gb_month"),
        )
    )
    serverless = {d: s for d, s in endpoints.items() if s.kind == "serverless"}
    if serverless:
        each = p / len(endpoints)
        lines.append(
            Line(
                "Serverless endpoint requests",
                f"{len(serverless)} endpoint(s) x {each:,.0f} x {usage.inference_ms:g} ms",
                sum(serverless_usage_monthly(s, usage, each) for s in serverless.values()),
            )
        )
    if count["AWS::WAFv2::WebACLAssociation"]:
        lines.append(
            Line(
                "WAF requests",
                f"{p:,} x {_usd('waf_requests_million')}/M",
                p / 1e6 * _price("waf_requests_million"),
            )
        )
    if usage.score_jobs:
        hourly = instance_hourly("transform", config.transform_instance_type)
        lines.append(
            Line(
                "Batch scoring (transform jobs)",
                f"{usage.score_jobs} x {usage.score_minutes:g} min x "
                f"{config.transform_instance_type}",
                usage.score_jobs * usage.score_minutes / 60 * hourly,
            )
        )
    months = config.log_retention_days / 30
    lines.append(
        Line(
            "CloudWatch Logs",
            f"{usage.log_gb:g} GB/month in, kept {config.log_retention_days} days",
            usage.log_gb * _price("logs_ingest_gb")
            + usage.log_gb * months * _price("logs_storage_gb_month"),
            "storage once the retention period is full",
        )
    )


def pipeline_run(
    config: StageConfig, endpoints: dict[str, EndpointSettings], usage: Usage
) -> list[Line]:
    """One training pipeline run: training (on demand and spot), evaluation, orchestration,
    and the blue/green overlap when its model is deployed."""
    train_hourly = instance_hourly("training", config.training_instance_type)
    train = usage.training_minutes / 60 * train_hourly * config.training_instance_count
    evaluate = (
        usage.evaluation_minutes
        / 60
        * instance_hourly("processing", config.evaluation_instance_type)
    )
    lines = [
        Line(
            "training, on demand",
            f"{usage.training_minutes:g} min x {config.training_instance_type}",
            train,
        ),
        Line(
            "training, spot",
            f"same, {usage.spot_savings:.0%} spot saving",
            train * (1 - usage.spot_savings),
            "the stage's choice" if config.training_spot else "not the stage's choice",
        ),
        Line(
            "evaluation (processing job)",
            f"{usage.evaluation_minutes:g} min x {config.evaluation_instance_type}",
            evaluate,
        ),
        Line(
            "Step Functions",
            f"{usage.transitions_per_run} transitions",
            usage.transitions_per_run / 1000 * _price("step_functions_transitions_thousand"),
        ),
    ]
    # the pipeline's functions: a handful of short invocations at 512 MB
    lines.append(
        Line(
            "Lambda (pipeline functions)",
            "10 x 2 s x 0.5 GB",
            10 * 2 * 0.5 * _price("lambda_gb_second_arm64"),
        )
    )
    settings = next(iter(endpoints.values()), None)
    if settings is not None and settings.kind == "real_time":
        rt, timing = settings.real_time, settings.rollout
        # the new fleet runs beside the old one from provisioning (~10 min) to the end of baking
        hours = (600 + timing.canary_wait_seconds + timing.baking_seconds) / 3600
        overlap = rt.initial_instance_count * hours * instance_hourly("hosting", rt.instance_type)
        lines.append(
            Line(
                "blue/green overlap on deploy",
                f"{rt.initial_instance_count} x {hours * 60:.0f} min x {rt.instance_type}",
                overlap * usage.deploy_share,
                f"{usage.deploy_share:.0%} of runs deploy; ~10 min provisioning + canary + baking",
            )
        )
    return lines


def run_cost(lines: Sequence[Line], *, spot: bool) -> float:
    """One run's total with training on spot or on demand (the other training line left out)."""
    left_out = "training, on demand" if spot else "training, spot"
    return sum(line.usd for line in lines if line.item != left_out)


def serving_comparison(endpoints: dict[str, EndpointSettings], usage: Usage) -> list[Line]:
    """A month of one dataset's endpoint at the assumed request rate, real-time vs serverless
    (the stage's settings for each kind)."""
    if not endpoints:
        return []
    dataset, settings = next(iter(endpoints.items()))
    each = usage.predictions / len(endpoints)
    instances, _ = real_time_instances(settings, _rate_per_minute(usage, len(endpoints)))
    sv = settings.serverless
    return [
        Line(
            f"{dataset} real-time",
            f"{instances} x {settings.real_time.instance_type}",
            real_time_monthly(settings, instances),
        ),
        Line(
            f"{dataset} serverless",
            f"{sv.memory_mb} MB, {each:,.0f} x {usage.inference_ms:g} ms",
            serverless_idle_monthly(settings) + serverless_usage_monthly(settings, usage, each),
        ),
    ]


def estimate(
    config: StageConfig, templates: dict[str, Template], usage: Usage | None = None
) -> Estimate:
    usage = usage or Usage()
    resources = resources_of(templates.values())
    types = type_counts(resources)
    unknown = unclassified(types)
    if unknown:
        raise UnclassifiedResourceError(
            f"resource types neither priced nor known to be free: {', '.join(unknown)}; "
            "classify them in FIXED_TYPES or NO_STANDING_COST (infra/cost.py)"
        )
    check_no_hidden_standing_costs(resources)
    datasets = usage.datasets if usage.datasets is not None else declared_datasets()
    declared = set(declared_datasets())
    strangers = [d for d in datasets if d not in declared]
    if strangers:
        raise CostError(f"--datasets: {', '.join(strangers)} not declared (datasets/*.yaml)")
    endpoints = _settings(config, datasets)
    _needed_prices(config, endpoints)
    result = Estimate(stage=config.stage, resource_types=types)
    result.fixed = _fixed_lines(resources)
    _endpoint_lines(result, endpoints, usage)
    _usage_lines(result, config, resources, endpoints, usage)
    result.serving = serving_comparison(endpoints, usage)
    share = config.capture_share if usage.capture_share is None else usage.capture_share
    result.assumptions = [
        f"{usage.uploads} uploads a month of {usage.upload_mb:g} MB "
        f"(preprocess {usage.preprocess_seconds_per_gb:g} s per GB)",
        f"{usage.predictions:,} prediction requests a month over {len(endpoints)} "
        f"endpoint(s) ({', '.join(datasets) or 'none'}), {usage.instances_per_request} "
        f"instance(s) each, {usage.request_kb:g} KB, predict function {usage.predict_ms:g} ms, "
        f"model {usage.inference_ms:g} ms; capture share {share:g}",
        f"{usage.training_runs} training runs a month: training {usage.training_minutes:g} min "
        f"on {config.training_instance_type}, evaluation {usage.evaluation_minutes:g} min on "
        f"{config.evaluation_instance_type}, spot saving {usage.spot_savings:.0%}, "
        f"{usage.deploy_share:.0%} deployed",
        f"{usage.score_jobs} batch scoring jobs of {usage.score_minutes:g} min; "
        f"{usage.log_gb:g} GB of logs a month",
        "a month is 730 hours; real-time endpoints run all month at the instances the request "
        "rate holds (at least min_instances)",
    ]
    return result


# ------------------------------------------------------------------ printing


def _table(title: str, lines: Sequence[Line], total: float | None = None) -> list[str]:
    if not lines:
        return []
    width = max(len(line.item) for line in lines)
    qwidth = max(len(line.quantity) for line in lines)
    out = [title]
    for line in lines:
        note = f"  ({line.note})" if line.note else ""
        out.append(f"  {line.item:<{width}}  {line.quantity:<{qwidth}}  ${line.usd:>10,.2f}{note}")
    if total is not None:
        out.append(f"  {'total':<{width}}  {'':<{qwidth}}  ${total:>10,.2f}")
    return [*out, ""]


def render(result: Estimate) -> str:
    out = [
        f"Sluice {result.stage}: monthly cost estimate, {REGION} on-demand prices as of "
        f"{PRICES_AS_OF} (infra/prices.py)",
        "",
    ]
    out += _table("Standing costs, from the templates", result.fixed)
    out += _table("SageMaker endpoints, from the stage config", result.endpoints)
    out += _table("By use", result.usage, result.usage_total)
    out += _table("One training pipeline run", result.per_run + result.per_run_totals)
    out += _table("One dataset's endpoint for a month, real-time vs serverless", result.serving)
    out.append(
        f"Total a month: ${result.total:,.2f}  (standing ${result.fixed_total:,.2f}, "
        f"by use ${result.usage_total:,.2f})"
    )
    out += ["", "Assumptions (change them with the flags; --help):"]
    out += [f"  - {a}" for a in result.assumptions]
    out += [f"  ! {n}" for n in result.notes]
    out += [
        "",
        "Not included: the free tier, taxes, data transfer out, per-request charges of S3, SQS,",
        "EventBridge, DynamoDB, KMS, SNS, Secrets Manager (cents at these volumes), X-Ray",
        "traces, VPC endpoint data ($0.01/GB), SageMaker's own log groups and model storage.",
    ]
    return "\n".join(out)


def render_resources(result: Estimate) -> str:
    out = ["Resource types in the templates:"]
    for type_, n in sorted(result.resource_types.items()):
        reason = FIXED_TYPES.get(type_) or NO_STANDING_COST[type_]
        kind = "priced" if type_ in FIXED_TYPES else "no standing cost"
        out.append(f"  {n:>3} {type_:<44} {kind}: {reason}")
    return "\n".join(out)


# ------------------------------------------------------------------ CLI


def _context(pairs: Sequence[str]) -> dict[str, Any]:
    context: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise CostError(f"-c {pair}: expected key=value")
        context[key] = value
    return context


def _flags(parser: argparse.ArgumentParser) -> None:
    defaults = Usage()
    for name, kind, text in (
        ("uploads", int, "uploads a month"),
        ("upload-mb", float, "size of one upload, MB"),
        ("predictions", int, "prediction requests a month, all datasets"),
        ("instances-per-request", int, "records per prediction request"),
        ("predict-ms", float, "predict function duration per request, ms"),
        ("inference-ms", float, "model time per request on the endpoint, ms"),
        ("training-runs", int, "training pipeline runs a month"),
        ("training-minutes", float, "billed minutes of one training job"),
        ("evaluation-minutes", float, "billed minutes of one evaluation job"),
        ("spot-savings", float, "managed spot saving on the on-demand price, 0..1"),
        ("deploy-share", float, "share of runs whose model is deployed, 0..1"),
        ("score-jobs", int, "batch scoring jobs a month"),
        ("score-minutes", float, "minutes of one batch transform job"),
        ("log-gb", float, "GB of logs ingested a month"),
        ("capture-share", float, "share of requests captured (default: the stage's)"),
        ("request-kb", float, "size of one captured record and of a request, KB"),
        ("preprocess-seconds-per-gb", float, "preprocess function time per GB of upload"),
        ("transitions-per-run", int, "Step Functions state transitions of one run"),
    ):
        attr = name.replace("-", "_")
        parser.add_argument(
            f"--{name}", type=kind, default=getattr(defaults, attr), help=f"{text} (%(default)s)"
        )


def main(argv: Sequence[str] | None = None, out: Callable[[str], None] = print) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.cost", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--stage", default="dev")
    parser.add_argument("--templates", type=Path, default=REPO_ROOT / "cdk.out")
    parser.add_argument(
        "-c",
        dest="context",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="the CDK context the templates were synthesized with",
    )
    parser.add_argument(
        "--datasets",
        help="comma-separated datasets with an endpoint, or none (default: every declared one)",
    )
    parser.add_argument(
        "--resources",
        action="store_true",
        help="also list every resource type and how it is classified",
    )
    _flags(parser)
    args = parser.parse_args(argv)
    try:
        cdk_context = json.loads((REPO_ROOT / "cdk.json").read_text()).get("context", {})
        config = stage_config(args.stage, {**cdk_context, **_context(args.context)})
        fields = {
            name: getattr(args, name)
            for name in Usage.__dataclass_fields__
            if name != "datasets" and hasattr(args, name)
        }
        usage = replace(Usage(), **fields)
        if args.datasets is not None:
            names = [d.strip() for d in args.datasets.split(",") if d.strip()]
            usage = replace(usage, datasets=() if names == ["none"] else tuple(names))
        for name in ("spot_savings", "deploy_share", "capture_share"):
            value = getattr(usage, name)
            if value is not None and not 0 <= value <= 1:
                raise CostError(f"--{name.replace('_', '-')} must be between 0 and 1")
        templates = load_templates(args.templates, config)
        result = estimate(config, templates, usage)
    except (CostError, UnknownPriceError, ConfigError) as exc:
        print(f"make cost: {exc}", file=sys.stderr)
        return 2
    out(render(result))
    if args.resources:
        out("")
        out(render_resources(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
