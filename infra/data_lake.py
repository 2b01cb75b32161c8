"""The data lake: one customer-managed KMS key and the buckets every component shares.

- ``raw``: where users upload CSV files (``s3://<raw>/<dataset>/...``); sends EventBridge events.
- ``curated``: validated, PII-masked Parquet and manifests written by ingestion.
- ``quarantine``: rejected files' reasons and quarantined rows; nothing is ever dropped.
- ``artifacts``: models, evaluation reports, checkpoints, training code.
- ``access_logs``: S3 server access logs of the four above (SSE-S3: log delivery cannot use KMS).

Every bucket blocks public access, denies non-TLS requests (and TLS below 1.2), is versioned and
has lifecycle rules; the data buckets are encrypted with the key (with S3 Bucket Keys, which cut
KMS request costs).
"""

from __future__ import annotations

from typing import TypedDict

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.config import StageConfig


class _BucketDefaults(TypedDict):
    block_public_access: s3.BlockPublicAccess
    enforce_ssl: bool
    minimum_tls_version: float
    versioned: bool
    removal_policy: RemovalPolicy
    auto_delete_objects: bool


class DataLake(Construct):
    def __init__(self, scope: Construct, id_: str, *, config: StageConfig) -> None:
        super().__init__(scope, id_)
        self._config = config
        self.key = kms.Key(
            self,
            "Key",
            description=f"Sluice {config.stage}: encrypts the data lake, queues and topics",
            enable_key_rotation=True,
            removal_policy=config.removal_policy,
        )
        self.access_logs_bucket = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,  # server access logging requires SSE-S3
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-logs",
                    expiration=Duration.days(config.access_logs_expire_after_days),
                    noncurrent_version_expiration=Duration.days(
                        config.noncurrent_versions_expire_after_days
                    ),
                    abort_incomplete_multipart_upload_after=Duration.days(
                        config.abort_multipart_after_days
                    ),
                )
            ],
            **self._common(),
        )
        self.raw_bucket = self._data_bucket(
            "Raw",
            event_bridge=True,
            transitions=[
                s3.Transition(
                    storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                    transition_after=Duration.days(config.raw_infrequent_access_after_days),
                ),
                s3.Transition(
                    storage_class=s3.StorageClass.GLACIER,
                    transition_after=Duration.days(config.raw_glacier_after_days),
                ),
            ],
        )
        self.curated_bucket = self._data_bucket("Curated")
        self.quarantine_bucket = self._data_bucket("Quarantine")
        self.artifacts_bucket = self._data_bucket("Artifacts")

    def _common(self) -> _BucketDefaults:
        """What every bucket of the lake has in common."""
        return {
            "block_public_access": s3.BlockPublicAccess.BLOCK_ALL,
            "enforce_ssl": True,
            "minimum_tls_version": 1.2,
            "versioned": True,
            "removal_policy": self._config.removal_policy,
            "auto_delete_objects": not self._config.retain_data,
        }

    def _data_bucket(
        self,
        id_: str,
        *,
        event_bridge: bool = False,
        transitions: list[s3.Transition] | None = None,
    ) -> s3.Bucket:
        return s3.Bucket(
            self,
            id_,
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,
            event_bridge_enabled=event_bridge,
            server_access_logs_bucket=self.access_logs_bucket,
            server_access_logs_prefix=f"{id_.lower()}/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="tiering-and-cleanup",
                    transitions=transitions,
                    noncurrent_version_expiration=Duration.days(
                        self._config.noncurrent_versions_expire_after_days
                    ),
                    abort_incomplete_multipart_upload_after=Duration.days(
                        self._config.abort_multipart_after_days
                    ),
                )
            ],
            **self._common(),
        )
