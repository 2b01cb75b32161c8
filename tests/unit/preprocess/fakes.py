"""Fakes of the AWS side of ingestion, shared by the handler, routing and job tests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import boto3

from lambdas.preprocess.handler import App

REGION = "eu-west-1"
SECRET = "pii-key-from-secrets-manager-0123456789"


@dataclass
class Context:
    function_name: str = "preprocess"
    memory_limit_in_mb: int = 3008
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:preprocess"
    aws_request_id: str = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


class RecordedEvents:
    """EventBridge stand-in that keeps what was put (moto's rule targets need jsonpath_ng)."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.entries.extend(Entries)
        return {"FailedEntryCount": 0, "Entries": [{"EventId": "1"} for _ in Entries]}


@dataclass
class World:
    app: App
    s3: Any
    recorded: RecordedEvents

    def upload(self, key: str, body: bytes | str) -> str:
        data = body.encode() if isinstance(body, str) else body
        return str(self.s3.put_object(Bucket="raw", Key=key, Body=data)["VersionId"])

    def events(self) -> list[dict[str, Any]]:
        return [
            {
                "source": e["Source"],
                "detail-type": e["DetailType"],
                "detail": json.loads(e["Detail"]),
            }
            for e in self.recorded.entries
        ]


def sqs_event(*objects: tuple[str, str | None], message_id: str = "m") -> dict[str, Any]:
    records = []
    for i, (key, version) in enumerate(objects):
        detail = {"bucket": {"name": "raw"}, "object": {"key": key, "version-id": version}}
        body = {"detail-type": "Object Created", "source": "aws.s3", "detail": detail}
        records.append(
            {
                "messageId": f"{message_id}{i}",
                "receiptHandle": "r",
                "body": json.dumps(body),
                "attributes": {},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:q",
                "awsRegion": REGION,
            }
        )
    return {"Records": records}


def make_lake() -> tuple[Any, Any, str]:
    """Inside ``mock_aws``: the raw (versioned), curated and quarantine buckets and the PII
    secret; returns the S3 and Secrets Manager clients and the secret's ARN."""
    s3 = boto3.client("s3", region_name=REGION)
    for name in ("raw", "curated", "quarantine"):
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_versioning(Bucket="raw", VersioningConfiguration={"Status": "Enabled"})
    secrets = boto3.client("secretsmanager", region_name=REGION)
    arn = secrets.create_secret(Name="pii", SecretString=SECRET)["ARN"]
    return s3, secrets, arn
