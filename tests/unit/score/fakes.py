"""The AWS side of batch scoring in moto: raw and artifacts buckets, the churn endpoint."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from lambdas.score.service import Scoring, Source
from lambdas.score.settings import Settings

REGION = "eu-west-1"
KEY_ARN = "arn:aws:kms:eu-west-1:123456789012:key/stage"
HEADER = [
    "customer_id", "email", "phone", "signup_ts", "last_active_ts", "plan", "region",
    "monthly_charges", "tenure_months", "support_calls", "churned",
]  # fmt: skip


def row(i: int, **changes: Any) -> dict[str, Any]:
    values = {
        "customer_id": f"C{i}",
        "email": f"user{i}@example.com",
        "phone": f"+1-555-{i:07d}",
        "signup_ts": "2024-03-05T10:15:00Z",
        "last_active_ts": "2025-01-20T08:00:00Z",
        "plan": ["basic", "standard", "premium"][i % 3],
        "region": "eu",
        "monthly_charges": f"{10 + i}.5",
        "tenure_months": str(i % 200),
        "support_calls": "1",
        "churned": str(i % 2),
    }
    values.update(changes)
    return values


def csv_file(rows: list[dict[str, Any]], header: list[str] | None = None) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header or HEADER, lineterminator="\n",
                            extrasaction="ignore")  # fmt: skip
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


@dataclass
class World:
    s3: Any
    sagemaker: Any
    scoring: Scoring

    def upload(self, key: str, body: bytes) -> Source:
        version = self.s3.put_object(Bucket="raw", Key=key, Body=body)["VersionId"]
        return Source("raw", key, version)

    def keys(self, prefix: str = "") -> list[str]:
        contents = self.s3.list_objects_v2(Bucket="artifacts", Prefix=prefix).get("Contents", [])
        return sorted(item["Key"] for item in contents)

    def text(self, key: str) -> str:
        return str(self.s3.get_object(Bucket="artifacts", Key=key)["Body"].read().decode())

    def json(self, key: str) -> Any:
        return json.loads(self.text(key))


def make_world(tmp: Path) -> World:
    s3 = boto3.client("s3", region_name=REGION)
    for bucket in ("raw", "artifacts"):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_versioning(Bucket="raw", VersioningConfiguration={"Status": "Enabled"})
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    settings = Settings(
        artifacts_bucket="artifacts", prefix="sluice-test", kms_key_arn=KEY_ARN, work_dir=str(tmp)
    )
    return World(s3, sagemaker, Scoring(settings, s3=s3, sagemaker=sagemaker))


def deploy(world: World, version: str = "4", vpc: dict[str, list[str]] | None = None) -> str:
    name = f"sluice-test-churn-{version}"
    world.sagemaker.create_model(
        **({"VpcConfig": vpc} if vpc else {}),
        ModelName=name,
        ExecutionRoleArn="arn:aws:iam::123456789012:role/sm",
        PrimaryContainer={
            "Image": "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-xgboost:3.0-5",
            "ModelDataUrl": "s3://artifacts/m/model.tar.gz",
            "Environment": {"SAGEMAKER_PROGRAM": "inference.py", "SLUICE_MODEL_VERSION": version},
        },
    )
    world.sagemaker.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": name,
                             "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}],
    )  # fmt: skip
    world.sagemaker.create_endpoint(EndpointName="sluice-test-churn", EndpointConfigName=name)
    return name
