"""The real app's dev stage, deployed unchanged with cdklocal, is what the templates say."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

pytestmark = pytest.mark.integration

DATA_STACK = "sluice-dev-data"
BUCKETS = ("RawBucket", "CuratedBucket", "QuarantineBucket", "ArtifactsBucket")


@pytest.mark.parametrize("output", BUCKETS)
def test_deployed_buckets_are_encrypted_with_the_stage_key_and_versioned(
    app_outputs: dict[str, dict[str, str]], aws: Callable[[str], Any], output: str
) -> None:
    s3 = aws("s3")
    data = app_outputs[DATA_STACK]
    bucket = data[output]
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    default = rules[0]["ApplyServerSideEncryptionByDefault"]
    assert default["SSEAlgorithm"] == "aws:kms"
    assert default["KMSMasterKeyID"] == data["DataKeyArn"]
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    policy = s3.get_bucket_policy(Bucket=bucket)["Policy"]
    assert '"aws:SecureTransport":"false"' in policy.replace(" ", "")


def test_raw_bucket_notifications_were_configured_by_cdks_custom_resource(
    app_outputs: dict[str, dict[str, str]], aws: Callable[[str], Any]
) -> None:
    raw = app_outputs[DATA_STACK]["RawBucket"]
    config = aws("s3").get_bucket_notification_configuration(Bucket=raw)
    assert "EventBridgeConfiguration" in config


def test_notifications_topic_is_deployed(
    app_outputs: dict[str, dict[str, str]], aws: Callable[[str], Any]
) -> None:
    arn = app_outputs["sluice-dev-app"]["NotificationsTopicArn"]
    attributes = aws("sns").get_topic_attributes(TopicArn=arn)["Attributes"]
    assert attributes["KmsMasterKeyId"]


def test_deployed_raw_bucket_blocks_public_access_and_tiers_data(
    app_outputs: dict[str, dict[str, str]], aws: Callable[[str], Any]
) -> None:
    s3 = aws("s3")
    raw = app_outputs[DATA_STACK]["RawBucket"]
    block = s3.get_public_access_block(Bucket=raw)["PublicAccessBlockConfiguration"]
    assert block == dict.fromkeys(
        ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), True
    )
    rules = s3.get_bucket_lifecycle_configuration(Bucket=raw)["Rules"]
    # (the others expire monitoring's feedback prefixes)
    (rule,) = [r for r in rules if r.get("Transitions")]
    assert [(t["Days"], t["StorageClass"]) for t in rule["Transitions"]] == [
        (30, "STANDARD_IA"),
        (90, "GLACIER"),
    ]
    logging = s3.get_bucket_logging(Bucket=raw)["LoggingEnabled"]
    assert logging["TargetPrefix"] == "raw/"


def test_an_upload_to_the_deployed_lake_is_encrypted_with_the_stage_key(
    app_outputs: dict[str, dict[str, str]], aws: Callable[[str], Any]
) -> None:
    data = app_outputs[DATA_STACK]
    put = aws("s3").put_object(Bucket=data["QuarantineBucket"], Key="probe.txt", Body=b"probe")
    assert put["ServerSideEncryption"] == "aws:kms"
    assert put["SSEKMSKeyId"] == data["DataKeyArn"]
