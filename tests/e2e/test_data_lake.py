"""The deployed data lake enforces what the templates say."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

pytestmark = pytest.mark.e2e
BUCKETS = ("RawBucket", "CuratedBucket", "QuarantineBucket", "ArtifactsBucket")


@pytest.mark.parametrize("output", BUCKETS)
def test_bucket_is_kms_encrypted_and_private(
    session: boto3.Session, data_outputs: dict[str, Any], output: str
) -> None:
    s3 = session.client("s3")
    bucket = data_outputs[output]
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert (
        rule["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"] == data_outputs["DataKeyArn"]
    )
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values())


def test_plain_http_is_refused(session: boto3.Session, data_outputs: dict[str, Any]) -> None:
    region = session.region_name or "us-east-1"
    s3 = session.client(
        "s3", use_ssl=False, endpoint_url=f"http://s3.{region}.amazonaws.com",
        config=Config(s3={"addressing_style": "virtual"}),
    )  # fmt: skip
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(Bucket=data_outputs["RawBucket"], Key="e2e/plain-http.txt", Body=b"x")
    assert excinfo.value.response["Error"]["Code"] == "AccessDenied"


def test_an_upload_is_encrypted_with_the_stage_key(
    session: boto3.Session, data_outputs: dict[str, Any]
) -> None:
    s3 = session.client("s3")
    bucket = data_outputs["QuarantineBucket"]
    put = s3.put_object(Bucket=bucket, Key="e2e/probe.txt", Body=b"probe")
    try:
        assert put["ServerSideEncryption"] == "aws:kms"
        assert put["SSEKMSKeyId"] == data_outputs["DataKeyArn"]
    finally:
        s3.delete_object(Bucket=bucket, Key="e2e/probe.txt", VersionId=put["VersionId"])
