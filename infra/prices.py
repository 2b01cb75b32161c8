"""On-demand AWS prices behind ``make cost`` (``infra/cost.py``): one dated table, us-east-1.

Every price names the public page it was read from. They are list prices (no free tier, no
Savings Plans, no volume tiers beyond the first), in US dollars. To refresh them: open each
source page for us-east-1, correct the numbers that moved, set ``PRICES_AS_OF`` to that day, run
``make cost`` for dev and prod and paste the new output into docs/costs.md. An instance type that
is missing here is an error in ``make cost``, never a silent zero: add its line from the page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: the day this table was written. This first version was written without network access to
#: the pages below, from their published rates as known then: check a line against its page
#: before relying on it (docs/costs.md, "Refreshing the prices")
PRICES_AS_OF = "2026-11-27"
REGION = "us-east-1"
#: AWS bills "a month" as 730 hours in its examples and calculator
HOURS_PER_MONTH = 730.0
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600


@dataclass(frozen=True)
class Price:
    usd: float
    unit: str
    source: str


_CW = "https://aws.amazon.com/cloudwatch/pricing/"
_LAMBDA = "https://aws.amazon.com/lambda/pricing/"
_SM = "https://aws.amazon.com/sagemaker/pricing/"
_VPC = "https://aws.amazon.com/privatelink/pricing/"

PRICES: dict[str, Price] = {
    # standing monthly costs
    "kms_key": Price(
        1.00, "per customer-managed key per month", "https://aws.amazon.com/kms/pricing/"
    ),
    "secret": Price(
        0.40, "per secret per month", "https://aws.amazon.com/secrets-manager/pricing/"
    ),
    "alarm_standard": Price(0.10, "per alarm metric per month (period >= 60 s)", _CW),
    "alarm_high_resolution": Price(0.30, "per alarm metric per month (period < 60 s)", _CW),
    "alarm_composite": Price(0.50, "per composite alarm per month", _CW),
    "dashboard": Price(3.00, "per dashboard per month (first 3 per account free)", _CW),
    "interface_endpoint_hour": Price(0.01, "per interface endpoint per AZ per hour", _VPC),
    "nat_gateway_hour": Price(
        0.045, "per NAT gateway per hour", "https://aws.amazon.com/vpc/pricing/"
    ),
    "public_ipv4_hour": Price(
        0.005, "per public IPv4 address per hour", "https://aws.amazon.com/vpc/pricing/"
    ),
    "waf_web_acl": Price(5.00, "per web ACL per month", "https://aws.amazon.com/waf/pricing/"),
    # per use
    "waf_requests_million": Price(
        0.60, "per million requests inspected", "https://aws.amazon.com/waf/pricing/"
    ),
    "lambda_gb_second_arm64": Price(0.0000133334, "per GB-second (arm64)", _LAMBDA),
    "lambda_gb_second_x86_64": Price(0.0000166667, "per GB-second (x86_64)", _LAMBDA),
    "lambda_requests_million": Price(0.20, "per million requests", _LAMBDA),
    "api_gateway_rest_million": Price(
        3.50,
        "per million REST API calls (first 333 million)",
        "https://aws.amazon.com/api-gateway/pricing/",
    ),
    "firehose_gb": Price(
        0.029,
        "per GB ingested, Direct PUT, each record rounded up to 5 KB",
        "https://aws.amazon.com/kinesis/data-firehose/pricing/",
    ),
    "s3_standard_gb_month": Price(
        0.023, "per GB-month, S3 Standard (first 50 TB)", "https://aws.amazon.com/s3/pricing/"
    ),
    "logs_ingest_gb": Price(0.50, "per GB ingested (standard log class)", _CW),
    "logs_storage_gb_month": Price(0.03, "per GB-month archived", _CW),
    "step_functions_transitions_thousand": Price(
        0.025,
        "per 1,000 state transitions (standard workflows)",
        "https://aws.amazon.com/step-functions/pricing/",
    ),
    "serverless_inference_gb_second": Price(
        0.00002, "per GB-second of on-demand serverless inference (memory x duration)", _SM
    ),
    "serverless_provisioned_gb_second": Price(
        0.0000048, "per GB-second of serverless provisioned concurrency, while configured", _SM
    ),
    "serverless_data_gb": Price(0.016, "per GB in or out of a serverless endpoint", _SM),
}

InstanceUse = Literal["hosting", "training", "processing", "transform"]

#: SageMaker on-demand instance prices, USD per instance-hour, by what the instance does
#: (real-time hosting, training jobs, processing jobs, batch transform). Source: _SM.
INSTANCE_HOURLY: dict[InstanceUse, dict[str, float]] = {
    "hosting": {
        "ml.t2.medium": 0.056,
        "ml.t2.large": 0.111,
        "ml.m5.large": 0.115,
        "ml.m5.xlarge": 0.23,
        "ml.m5.2xlarge": 0.461,
        "ml.m5.4xlarge": 0.922,
        "ml.c5.large": 0.102,
        "ml.c5.xlarge": 0.204,
        "ml.c5.2xlarge": 0.408,
        "ml.g4dn.xlarge": 0.736,
        "ml.g5.xlarge": 1.408,
    },
    "training": {
        "ml.m5.large": 0.115,
        "ml.m5.xlarge": 0.23,
        "ml.m5.2xlarge": 0.461,
        "ml.m5.4xlarge": 0.922,
        "ml.c5.xlarge": 0.204,
        "ml.c5.2xlarge": 0.408,
        "ml.c5.4xlarge": 0.816,
        "ml.g4dn.xlarge": 0.736,
        "ml.g5.xlarge": 1.408,
        "ml.g5.2xlarge": 1.515,
        "ml.p3.2xlarge": 3.825,
    },
    "processing": {
        "ml.m5.large": 0.115,
        "ml.m5.xlarge": 0.23,
        "ml.m5.2xlarge": 0.461,
        "ml.m5.4xlarge": 0.922,
        "ml.c5.xlarge": 0.204,
        "ml.c5.2xlarge": 0.408,
    },
    "transform": {
        "ml.m5.large": 0.115,
        "ml.m5.xlarge": 0.23,
        "ml.m5.2xlarge": 0.461,
        "ml.m5.4xlarge": 0.922,
        "ml.c5.xlarge": 0.204,
        "ml.c5.2xlarge": 0.408,
    },
}
INSTANCE_SOURCE = _SM


class UnknownPriceError(LookupError):
    """An instance type the stage uses has no price in this table."""


def instance_hourly(use: InstanceUse, instance_type: str) -> float:
    try:
        return INSTANCE_HOURLY[use][instance_type]
    except KeyError:
        raise UnknownPriceError(
            f"no {REGION} price for {instance_type} ({use}): add it to INSTANCE_HOURLY in "
            f"infra/prices.py from {INSTANCE_SOURCE}"
        ) from None


def missing_instance_prices(needed: list[tuple[InstanceUse, str]]) -> list[str]:
    """``"ml.x (hosting)"`` for every (use, type) without a price, in order, once each."""
    missing: list[str] = []
    for use, instance_type in needed:
        label = f"{instance_type} ({use})"
        if instance_type not in INSTANCE_HOURLY[use] and label not in missing:
            missing.append(label)
    return missing
