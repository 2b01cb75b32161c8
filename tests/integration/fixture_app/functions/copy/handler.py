"""Test-only Lambda: copies each uploaded object named in an SQS-wrapped S3 event, upper-cased.

Handles both shapes: EventBridge "Object Created" events (via a rule -> SQS) and classic S3
notifications invoked directly.
"""

import json
import os
import urllib.parse

import boto3

s3 = boto3.client("s3")


def _objects(event: dict) -> list[tuple[str, str]]:
    found = []
    for record in event.get("Records", []):
        if "body" in record:  # SQS message carrying an EventBridge event
            detail = json.loads(record["body"])["detail"]
            found.append((detail["bucket"]["name"], detail["object"]["key"]))
        elif "s3" in record:  # classic S3 notification
            key = urllib.parse.unquote_plus(record["s3"]["object"]["key"])
            found.append((record["s3"]["bucket"]["name"], key))
    return found


def handler(event: dict, context: object) -> dict:
    out_bucket = os.environ["OUT_BUCKET"]
    prefix = os.environ["OUT_PREFIX"]
    copied = []
    for bucket, key in _objects(event):
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        s3.put_object(Bucket=out_bucket, Key=f"{prefix}/{key}", Body=body.upper().encode())
        copied.append(key)
        print(f"copied s3://{bucket}/{key} to s3://{out_bucket}/{prefix}/{key}")
    return {"copied": copied}
