"""S3 uploads reach a Lambda through deployed wiring, and its output lands in S3."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.helpers import wait_for

pytestmark = pytest.mark.integration


def _read(s3: Any, bucket: str, key: str) -> str | None:
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    except s3.exceptions.NoSuchKey:
        return None


def test_upload_reaches_lambda_through_eventbridge_and_sqs(aws, stack_outputs):
    # Given the bucket -> EventBridge rule -> SQS -> Lambda wiring of the fixture stack
    s3 = aws("s3")
    # When a file is uploaded
    s3.put_object(Bucket=stack_outputs["IngestBucketName"], Key="in/a.csv", Body=b"id,x\n1,2\n")
    # Then the function's output lands in the output bucket
    body = wait_for(
        lambda: _read(s3, stack_outputs["OutBucketName"], "eventbridge/in/a.csv"),
        timeout=60,
        what="the Lambda's output for the EventBridge route",
    )
    assert body == "ID,X\n1,2\n"


def test_upload_reaches_lambda_through_cdk_s3_notification(aws, stack_outputs):
    # Given a bucket whose notification CDK configured with its custom resource
    s3 = aws("s3")
    config = s3.get_bucket_notification_configuration(Bucket=stack_outputs["NotifyBucketName"])
    assert config["LambdaFunctionConfigurations"], "the custom resource did not configure it"
    # When a file is uploaded
    s3.put_object(Bucket=stack_outputs["NotifyBucketName"], Key="b/c.txt", Body=b"hello")
    # Then the function ran and wrote its output
    body = wait_for(
        lambda: _read(s3, stack_outputs["OutBucketName"], "notified/b/c.txt"),
        timeout=60,
        what="the Lambda's output for the S3 notification route",
    )
    assert body == "HELLO"


def test_function_output_goes_to_cloudwatch_logs(aws, stack_outputs):
    # Given a function that ran for an upload
    s3 = aws("s3")
    s3.put_object(Bucket=stack_outputs["NotifyBucketName"], Key="logs/d.txt", Body=b"x")
    wait_for(
        lambda: _read(s3, stack_outputs["OutBucketName"], "notified/logs/d.txt"),
        timeout=60,
        what="the function to run",
    )
    logs = aws("logs")

    # Then its print() and Lambda's START/REPORT lines are in its log group
    def logged() -> list[str]:
        groups = logs.describe_log_groups(logGroupNamePrefix="/aws/lambda/SluiceLocalFixture-Copy")
        messages = []
        for group in groups["logGroups"]:
            events = logs.filter_log_events(logGroupName=group["logGroupName"])["events"]
            messages += [event["message"] for event in events]
        found = [m for m in messages if "copied s3://" in m and "logs/d.txt" in m]
        return found and messages

    messages = wait_for(logged, timeout=30, what="the function's logs in CloudWatch Logs")
    assert any(message.startswith("REPORT RequestId:") for message in messages)
