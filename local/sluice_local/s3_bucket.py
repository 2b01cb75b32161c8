"""Apply the security and lifecycle properties of ``AWS::S3::Bucket`` that LocalStack ignores.

LocalStack's CloudFormation provider for S3 buckets applies versioning, CORS, object lock, tags,
website and notifications, but silently drops ``BucketEncryption``,
``PublicAccessBlockConfiguration``, ``OwnershipControls``, ``LoggingConfiguration`` and
``LifecycleConfiguration``: a locally deployed bucket would be unencrypted and unlogged while its
template says otherwise. This wraps the provider's ``create`` to apply them through the S3 API,
translated from the CloudFormation shape, so local buckets behave like deployed ones (objects
encrypted with the stage's KMS key, public access blocked).
"""

from __future__ import annotations

import functools
from typing import Any


def _bool(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).lower() == "true"


def _int(value: Any) -> int:
    return int(value)


def encryption(cfn: dict[str, Any]) -> dict[str, Any]:
    rules = []
    for rule in cfn.get("ServerSideEncryptionConfiguration", []):
        api_rule: dict[str, Any] = {
            "ApplyServerSideEncryptionByDefault": dict(rule["ServerSideEncryptionByDefault"])
        }
        if "BucketKeyEnabled" in rule:
            api_rule["BucketKeyEnabled"] = _bool(rule["BucketKeyEnabled"])
        rules.append(api_rule)
    return {"Rules": rules}


def public_access_block(cfn: dict[str, Any]) -> dict[str, bool]:
    return {key: _bool(value) for key, value in cfn.items()}


def lifecycle(cfn: dict[str, Any]) -> dict[str, Any]:
    rules = []
    for rule in cfn.get("Rules", []):
        api: dict[str, Any] = {
            "ID": rule.get("Id", ""),
            "Status": rule["Status"],
            "Filter": {"Prefix": rule.get("Prefix", "")},
        }
        if "ExpirationInDays" in rule:
            api["Expiration"] = {"Days": _int(rule["ExpirationInDays"])}
        if transitions := rule.get("Transitions"):
            api["Transitions"] = [
                {"Days": _int(t["TransitionInDays"]), "StorageClass": t["StorageClass"]}
                for t in transitions
            ]
        if noncurrent := rule.get("NoncurrentVersionExpiration"):
            api["NoncurrentVersionExpiration"] = {
                "NoncurrentDays": _int(noncurrent["NoncurrentDays"])
            }
        if abort := rule.get("AbortIncompleteMultipartUpload"):
            api["AbortIncompleteMultipartUpload"] = {
                "DaysAfterInitiation": _int(abort["DaysAfterInitiation"])
            }
        rules.append(api)
    return {"Rules": rules}


def apply_properties(s3: Any, bucket: str, model: dict[str, Any]) -> None:
    """Apply what the stock provider skips; ``model`` is the resource's desired state."""
    if cfn := model.get("BucketEncryption"):
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=encryption(cfn))
    if cfn := model.get("PublicAccessBlockConfiguration"):
        s3.put_public_access_block(
            Bucket=bucket, PublicAccessBlockConfiguration=public_access_block(cfn)
        )
    if cfn := model.get("OwnershipControls"):
        s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls=cfn)
    if cfn := model.get("LifecycleConfiguration"):
        s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration=lifecycle(cfn))
    if cfn := model.get("LoggingConfiguration"):
        enabled = {"TargetBucket": cfn["DestinationBucketName"]}
        enabled["TargetPrefix"] = cfn.get("LogFilePrefix", "")
        s3.put_bucket_logging(Bucket=bucket, BucketLoggingStatus={"LoggingEnabled": enabled})


def install() -> None:
    from localstack.services.cloudformation.resource_provider import OperationStatus
    from localstack.services.s3.resource_providers.aws_s3_bucket import S3BucketProvider

    original = S3BucketProvider.create
    if getattr(original, "_sluice", False):
        return

    @functools.wraps(original)
    def create(self: Any, request: Any) -> Any:
        event = original(self, request)
        if event.status == OperationStatus.SUCCESS:
            model = request.desired_state
            apply_properties(request.aws_client_factory.s3, model["BucketName"], model)
        return event

    create._sluice = True  # type: ignore[attr-defined]
    S3BucketProvider.create = create  # type: ignore[method-assign]
