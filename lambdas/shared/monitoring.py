"""What the monitors share: the serving model and its files, captured records, metrics.

- ``serving_model``: the model a dataset's endpoint serves (its version, its ``model.tar.gz``),
  read as the deploy steps left it: the endpoint's config, its one variant, the model's
  ``SLUICE_MODEL_VERSION``;
- ``model_files``: files of a ``model.tar.gz`` (``baseline.json``, ``spec.json``), streamed;
- ``captured``: the Capture contract's JSON lines of a time range, from the hour folders
  Firehose writes (``<dataset>/capture/yyyy/MM/dd/HH/``);
- ``put_metrics``: PutMetricData in batches, to the app's namespace.

Clients come in as parameters (tests pass moto's).
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from datasets import names

#: PutMetricData takes at most 1,000 datums a call
_METRIC_BATCH = 1000


@dataclass(frozen=True)
class ServingModel:
    endpoint: str
    status: str
    model: str
    #: the S3 URI of the model's model.tar.gz
    model_data: str
    #: SLUICE_MODEL_VERSION: the model package version it was registered as
    version: str


def serving_model(sagemaker: Any, endpoint: str) -> ServingModel | None:
    """The model the endpoint serves on its variant, or None without an endpoint."""
    try:
        described = sagemaker.describe_endpoint(EndpointName=endpoint)
    except ClientError as exc:
        message = exc.response.get("Error", {}).get("Message", "").lower()
        if "not find" in message or "not found" in message or "does not exist" in message:
            return None
        raise
    config = sagemaker.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
    variants = config.get("ProductionVariants") or []
    variant = next((v for v in variants if v.get("VariantName") == names.VARIANT_NAME), None)
    variant = variant or (variants[0] if variants else None)
    if variant is None:
        return None
    model = sagemaker.describe_model(ModelName=variant["ModelName"])
    container = model.get("PrimaryContainer") or (model.get("Containers") or [{}])[0]
    return ServingModel(
        endpoint=endpoint,
        status=described.get("EndpointStatus", ""),
        model=variant["ModelName"],
        model_data=container.get("ModelDataUrl", ""),
        version=str((container.get("Environment") or {}).get("SLUICE_MODEL_VERSION", "")),
    )


def split_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def model_files(s3: Any, model_data: str, wanted: Iterable[str]) -> dict[str, bytes]:
    """The ``wanted`` files at the root of a ``model.tar.gz`` (read as a stream)."""
    bucket, key = split_uri(model_data)
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    wanted = set(wanted)
    found: dict[str, bytes] = {}
    with tarfile.open(fileobj=body, mode="r|gz") as archive:
        for member in archive:
            name = member.name.removeprefix("./")
            if name in wanted and member.isfile():
                handle = archive.extractfile(member)
                if handle is not None:
                    found[name] = handle.read()
            if len(found) == len(wanted):
                break
    return found


def hour_prefixes(base: str, start: datetime, end: datetime) -> list[str]:
    """``<base>yyyy/MM/dd/HH/`` of every hour from ``start`` to ``end`` (UTC), inclusive."""
    hour = start.replace(minute=0, second=0, microsecond=0)
    out = []
    while hour <= end:
        out.append(f"{base}{hour:%Y/%m/%d/%H}/")
        hour += timedelta(hours=1)
    return out


def day_prefixes(base: str, start: datetime, end: datetime) -> list[str]:
    """``<base>yyyy/MM/dd/`` of every day from ``start`` to ``end`` (UTC), inclusive."""
    day = start.replace(hour=0, minute=0, second=0, microsecond=0)
    out = []
    while day <= end:
        out.append(f"{base}{day:%Y/%m/%d}/")
        day += timedelta(days=1)
    return out


def keys(s3: Any, bucket: str, prefixes: Iterable[str]) -> Iterator[str]:
    paginator = s3.get_paginator("list_objects_v2")
    for prefix in prefixes:
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                yield obj["Key"]


def json_lines(s3: Any, bucket: str, key: str) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSON-lines object (lines that are not objects are skipped)."""
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    for raw in body.iter_lines():
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if isinstance(line, dict):
            yield line


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def captured(
    s3: Any, bucket: str, dataset: str, start: datetime, end: datetime
) -> Iterator[dict[str, Any]]:
    """Captured instances predicted in ``[start, end)``: the Capture contract's lines.

    Firehose files a record under the hour it arrived, a moment after its ``time``: the hour
    before ``start`` is read too, and every line is filtered by its own ``time``.
    """
    prefixes = hour_prefixes(names.capture_prefix(dataset), start - timedelta(hours=1), end)
    for key in keys(s3, bucket, prefixes):
        for line in json_lines(s3, bucket, key):
            at = parse_time(line.get("time"))
            if at is not None and start <= at < end:
                yield line


def put_metrics(cloudwatch: Any, data: list[dict[str, Any]]) -> None:
    """PutMetricData to the app's namespace, in batches."""
    for start in range(0, len(data), _METRIC_BATCH):
        cloudwatch.put_metric_data(
            Namespace=names.METRICS_NAMESPACE, MetricData=data[start : start + _METRIC_BATCH]
        )


def datum(
    name: str, value: float, dimensions: dict[str, str], at: datetime, unit: str = "None"
) -> dict[str, Any]:
    return {
        "MetricName": name,
        "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
        "Timestamp": at,
        "Value": float(value),
        "Unit": unit,
    }
