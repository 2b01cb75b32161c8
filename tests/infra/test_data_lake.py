"""The data lake's security and lifecycle properties, asserted on the synthesized template."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

DATA_BUCKETS = ("Raw", "Curated", "Quarantine", "Artifacts")


def buckets(template: Template) -> dict[str, dict[str, Any]]:
    return template.find_resources("AWS::S3::Bucket")


def bucket(template: Template, name: str) -> tuple[str, dict[str, Any]]:
    """The logical id and resource of ``DataLake/<name>`` (CDK appends a hash to the id)."""
    matches = {k: v for k, v in buckets(template).items() if k.startswith(f"DataLake{name}")}
    assert len(matches) == 1, f"expected one {name} bucket, found {list(matches)}"
    return next(iter(matches.items()))


def key_id(template: Template) -> str:
    keys = template.find_resources("AWS::KMS::Key")
    assert len(keys) == 1
    return next(iter(keys))


def test_there_are_four_data_buckets_and_an_access_log_bucket(dev_data: Template) -> None:
    names = sorted(k.removeprefix("DataLake").rstrip("0123456789ABCDEF") for k in buckets(dev_data))
    assert names == ["AccessLogs", "Artifacts", "Curated", "Quarantine", "Raw"]


def test_the_key_rotates(dev_data: Template) -> None:
    dev_data.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})


@pytest.mark.parametrize("name", DATA_BUCKETS)
def test_data_buckets_are_encrypted_with_the_lake_key(dev_data: Template, name: str) -> None:
    _, resource = bucket(dev_data, name)
    rule = resource["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert rule["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": {"Fn::GetAtt": [key_id(dev_data), "Arn"]},
    }
    assert rule["BucketKeyEnabled"] is True


def test_the_access_log_bucket_uses_s3_managed_keys_as_log_delivery_requires(
    dev_data: Template,
) -> None:
    _, resource = bucket(dev_data, "AccessLogs")
    rule = resource["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert rule["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}


@pytest.mark.parametrize("name", (*DATA_BUCKETS, "AccessLogs"))
def test_every_bucket_blocks_public_access_and_is_versioned(dev_data: Template, name: str) -> None:
    _, resource = bucket(dev_data, name)
    props = resource["Properties"]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}


@pytest.mark.parametrize("name", (*DATA_BUCKETS, "AccessLogs"))
def test_every_bucket_denies_requests_without_tls_1_2(dev_data: Template, name: str) -> None:
    logical_id, _ = bucket(dev_data, name)
    policies = dev_data.find_resources(
        "AWS::S3::BucketPolicy", {"Properties": {"Bucket": {"Ref": logical_id}}}
    )
    assert len(policies) == 1
    statements = next(iter(policies.values()))["Properties"]["PolicyDocument"]["Statement"]
    denies = [s for s in statements if s["Effect"] == "Deny" and s["Principal"] == {"AWS": "*"}]
    conditions = [s["Condition"] for s in denies]
    assert {"Bool": {"aws:SecureTransport": "false"}} in conditions
    assert {"NumericLessThan": {"s3:TlsVersion": 1.2}} in conditions
    for deny in denies:
        assert deny["Action"] == "s3:*"


@pytest.mark.parametrize("name", DATA_BUCKETS)
def test_data_buckets_log_access_to_the_log_bucket(dev_data: Template, name: str) -> None:
    logs_id, _ = bucket(dev_data, "AccessLogs")
    _, resource = bucket(dev_data, name)
    assert resource["Properties"]["LoggingConfiguration"] == {
        "DestinationBucketName": {"Ref": logs_id},
        "LogFilePrefix": f"{name.lower()}/",
    }


def test_raw_data_moves_to_infrequent_access_then_glacier(dev_data: Template) -> None:
    _, resource = bucket(dev_data, "Raw")
    # (the other rules expire monitoring's feedback prefixes: test_monitoring.py)
    (rule,) = [r for r in resource["Properties"]["LifecycleConfiguration"]["Rules"]
               if "Transitions" in r]  # fmt: skip
    assert rule["Status"] == "Enabled"
    assert rule["Transitions"] == [
        {"StorageClass": "STANDARD_IA", "TransitionInDays": 30},
        {"StorageClass": "GLACIER", "TransitionInDays": 90},
    ]


@pytest.mark.parametrize("name", (*DATA_BUCKETS, "AccessLogs"))
def test_old_versions_expire_and_incomplete_uploads_abort(dev_data: Template, name: str) -> None:
    _, resource = bucket(dev_data, name)
    (rule,) = [
        r for r in resource["Properties"]["LifecycleConfiguration"]["Rules"] if "Prefix" not in r
    ]
    assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": 30}
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}


@pytest.mark.parametrize("name", ("Curated", "Quarantine", "Artifacts"))
def test_current_data_never_expires(dev_data: Template, name: str) -> None:
    # (prediction capture is the exception: it holds customer ids and expires, test_serving.py;
    # so do feedback labels joined with it and monitoring reports, test_monitoring.py)
    _, resource = bucket(dev_data, name)
    expiring = ("/capture", "/feedback/", "/monitoring/")
    for rule in resource["Properties"]["LifecycleConfiguration"]["Rules"]:
        assert "ExpirationInDays" not in rule or any(p in rule["Prefix"] for p in expiring), rule


def test_raw_bucket_sends_events_to_eventbridge(dev_data: Template) -> None:
    raw_id, _ = bucket(dev_data, "Raw")
    dev_data.has_resource_properties(
        "Custom::S3BucketNotifications",
        {
            "BucketName": {"Ref": raw_id},
            "NotificationConfiguration": {"EventBridgeConfiguration": {}},
        },
    )


def test_dev_deletes_its_data_with_the_stack(dev_data: Template) -> None:
    for logical_id, resource in buckets(dev_data).items():
        assert resource["DeletionPolicy"] == "Delete", logical_id
        dev_data.has_resource_properties(
            "Custom::S3AutoDeleteObjects", {"BucketName": {"Ref": logical_id}}
        )
    dev_data.has_resource("AWS::KMS::Key", {"DeletionPolicy": "Delete"})


def test_prod_retains_its_data_and_never_empties_buckets(prod_data: Template) -> None:
    for logical_id, resource in buckets(prod_data).items():
        assert resource["DeletionPolicy"] == "Retain", logical_id
        assert resource["UpdateReplacePolicy"] == "Retain", logical_id
    prod_data.resource_count_is("Custom::S3AutoDeleteObjects", 0)
    prod_data.has_resource("AWS::KMS::Key", {"DeletionPolicy": "Retain"})


def test_prod_noncurrent_versions_are_kept_longer(prod_data: Template) -> None:
    _, resource = bucket(prod_data, "Curated")
    (rule,) = resource["Properties"]["LifecycleConfiguration"]["Rules"]
    assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": 90}


def test_bucket_names_are_exported_for_users_and_tools(dev_data: Template) -> None:
    for output in ("RawBucket", "CuratedBucket", "QuarantineBucket", "ArtifactsBucket"):
        dev_data.has_output(output, {"Value": {"Ref": Match.string_like_regexp("DataLake")}})


def test_cloudwatch_may_encrypt_alarm_notifications_with_the_key(dev_data: Template) -> None:
    (key,) = dev_data.find_resources("AWS::KMS::Key").values()
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    (cloudwatch,) = [
        s for s in statements if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert sorted(cloudwatch["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey*"]


def test_eventbridge_may_use_the_key_only_for_this_account(dev_data: Template) -> None:
    (key,) = dev_data.find_resources("AWS::KMS::Key").values()
    events = [
        s
        for s in key["Properties"]["KeyPolicy"]["Statement"]
        if s["Principal"] == {"Service": "events.amazonaws.com"}
    ]
    assert events, "the ingestion rule delivers to an encrypted queue"
    for statement in events:
        assert statement["Condition"] == {
            "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
        }
