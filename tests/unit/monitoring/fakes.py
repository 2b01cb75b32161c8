"""A small AWS world for the monitors: moto S3/CloudWatch/DynamoDB, a fake SageMaker."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError

from datasets.generate import write_csv
from datasets.spec import load_spec, spec_path

ARTIFACTS, RAW = "artifacts", "raw"
PREFIX = "sluice-test"
MODEL_KEY = "runs/churn/r1/model/job/output/model.tar.gz"


class FakeSageMaker:
    """DescribeEndpoint/EndpointConfig/Model of the endpoints the test deployed."""

    def __init__(self) -> None:
        self.endpoints: dict[str, dict[str, str]] = {}

    def deploy(self, endpoint: str, model_data: str, version: str) -> None:
        self.endpoints[endpoint] = {"model_data": model_data, "version": version}

    def describe_endpoint(self, EndpointName: str) -> dict[str, Any]:
        if EndpointName not in self.endpoints:
            raise ClientError(
                {"Error": {"Code": "ValidationException",
                           "Message": f"Could not find endpoint {EndpointName}"}},
                "DescribeEndpoint",
            )  # fmt: skip
        return {"EndpointStatus": "InService", "EndpointConfigName": f"{EndpointName}-config"}

    def describe_endpoint_config(self, EndpointConfigName: str) -> dict[str, Any]:
        endpoint = EndpointConfigName.removesuffix("-config")
        return {"ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": endpoint}]}

    def describe_model(self, ModelName: str) -> dict[str, Any]:
        model = self.endpoints[ModelName]
        return {
            "PrimaryContainer": {
                "ModelDataUrl": model["model_data"],
                "Environment": {"SLUICE_MODEL_VERSION": model["version"]},
            }
        }


@dataclass
class World:
    s3: Any
    cloudwatch: Any
    sagemaker: FakeSageMaker
    tmp: Path
    lines: list[dict[str, Any]] = field(default_factory=list)

    def rows(self, n: int, *, seed: int = 11, drift: float = 0.0) -> list[dict[str, str]]:
        """Generated churn rows as an upload's CSV holds them (ids unique to the seed)."""
        path = self.tmp / f"rows-{seed}-{drift}-{n}.csv"
        write_csv("churn", n, path, seed=seed, drift=drift)
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
        for row in rows:
            row["customer_id"] = f"S{seed}-{row['customer_id']}"
        return rows

    def capture(
        self,
        rows: list[dict[str, str]],
        *,
        at: datetime | None = None,
        request_id: str = "req-1",
        version: str = "1",
        probability: float = 0.3,
    ) -> list[dict[str, Any]]:
        """Capture lines as the predict function writes them (one request), into S3."""
        spec = load_spec(spec_path("churn"))  # type: ignore[arg-type]
        keep = set(spec.column_names) - set(spec.pii_columns) - {spec.target_column}
        at = at or datetime.now(UTC) - timedelta(minutes=5)
        lines = [
            {
                "request_id": request_id,
                "instance": i,
                "time": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "dataset": "churn",
                "model_version": version,
                "record": {k: v for k, v in row.items() if k in keep},
                "prediction": {"id": row["customer_id"], "label": int(probability >= 0.5),
                               "probability": probability},
            }
            for i, row in enumerate(rows)
        ]  # fmt: skip
        body = "".join(json.dumps(line) + "\n" for line in lines)
        key = f"churn/capture/{at:%Y/%m/%d/%H}/stream-1-{request_id}"
        self.s3.put_object(Bucket=ARTIFACTS, Key=key, Body=body.encode())
        self.lines += lines
        return lines

    def metric(self, name: str, **dimensions: str) -> list[float]:
        response = self.cloudwatch.get_metric_statistics(
            Namespace="Sluice",
            MetricName=name,
            Dimensions=[{"Name": k, "Value": v} for k, v in dimensions.items()],
            StartTime=datetime.now(UTC) - timedelta(hours=1),
            EndTime=datetime.now(UTC) + timedelta(minutes=5),
            Period=60,
            Statistics=["Maximum"],
        )
        return [p["Maximum"] for p in response["Datapoints"]]

    def text(self, bucket: str, key: str) -> str:
        return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()

    def keys(self, bucket: str, prefix: str) -> list[str]:
        listed = self.s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
        return sorted(o["Key"] for o in listed)


def make_world(model_tar: bytes) -> World:
    import tempfile

    s3 = boto3.client("s3", region_name="eu-west-1")
    for bucket in (ARTIFACTS, RAW):
        s3.create_bucket(
            Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
    s3.put_object(Bucket=ARTIFACTS, Key=MODEL_KEY, Body=model_tar)
    sagemaker = FakeSageMaker()
    sagemaker.deploy(f"{PREFIX}-churn", f"s3://{ARTIFACTS}/{MODEL_KEY}", "1")
    return World(
        s3=s3,
        cloudwatch=boto3.client("cloudwatch", region_name="eu-west-1"),
        sagemaker=sagemaker,
        tmp=Path(tempfile.mkdtemp(prefix="sluice-monitoring-")),
    )


def csv_body(rows: list[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()
