"""The data lake: one customer-managed KMS key and the buckets every component shares.

- ``raw``: where users upload CSV files (``s3://<raw>/<dataset>/...``); sends EventBridge events.
- ``curated``: validated, PII-masked Parquet and manifests written by ingestion.
- ``quarantine``: rejected files' reasons and quarantined rows; nothing is ever dropped.
- ``artifacts``: models, evaluation reports, checkpoints, training code.
- ``access_logs``: S3 server access logs of the four above (SSE-S3: log delivery cannot use KMS).
- ``pii_secret``: the HMAC key that masks PII during ingestion. It is state: a new key changes
  every masked value and breaks joins with data curated before, so it lives here, retained in prod.

Every bucket blocks public access, denies non-TLS requests (and TLS below 1.2), is versioned and
has lifecycle rules; the data buckets are encrypted with the key (with S3 Bucket Keys, which cut
KMS request costs).
"""

from __future__ import annotations

from typing import TypedDict

import aws_cdk as cdk
from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.config import StageConfig
from infra.nag import checkov_skip


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
        self._exports: dict[str, str] = {}
        self.key = kms.Key(
            self,
            "Key",
            description=f"Sluice {config.stage}: encrypts the data lake, queues and topics",
            enable_key_rotation=True,
            removal_policy=config.removal_policy,
        )
        # CloudWatch alarm actions publish to encrypted topics. (EventBridge targets get their
        # own statement from CDK when a rule targets an encrypted queue or topic.)
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
            )
        )
        self._allow_log_groups(config)
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
        checkov_skip(
            self.access_logs_bucket,
            "CKV_AWS_18",
            "This is the access-log bucket: S3 server access logs of the four data buckets "
            "land here. Logging it into itself would log every log delivery (a loop AWS advises "
            "against), and a second log bucket would only move the same finding there. Who "
            "reads or changes the logs is recorded by CloudTrail; public access is blocked, TLS "
            "enforced, versions kept.",
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
        self.pii_secret = secretsmanager.Secret(
            self,
            "PiiKey",
            description=f"Sluice {config.stage}: HMAC-SHA-256 key that masks PII in ingestion",
            encryption_key=self.key,
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=64, exclude_punctuation=True
            ),
            removal_policy=config.removal_policy,
        )
        cdk.Validations.of(self.pii_secret).acknowledge(
            cdk.Acknowledgment(
                id="AwsSolutions-SMG4",
                reason="Rotating the masking key changes every masked value and breaks joins "
                "with data curated before; re-keying is a deliberate backfill, not a schedule.",
            )
        )

    def _allow_log_groups(self, config: StageConfig) -> None:
        """CloudWatch Logs may use the key for the stage's own log groups, and nothing else.

        The actions are the ones CloudWatch Logs documents for KMS-encrypted groups (written
        out, no wildcards); the ``aws:logs:arn`` encryption-context condition limits them to
        groups of this account and region named ``<stage prefix>-*``: the names CloudFormation
        gives groups of either stack (``infra/log_groups.py``). Any other log group, in this
        account or another, cannot use the key.
        """
        self.log_groups_arn = cdk.Stack.of(self).format_arn(
            service="logs",
            resource="log-group",
            resource_name=f"{config.prefix}-*",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchLogsForStageLogGroups",
                principals=[iam.ServicePrincipal(f"logs.{cdk.Aws.REGION}.amazonaws.com")],
                actions=[
                    "kms:Encrypt",
                    "kms:Decrypt",
                    "kms:ReEncryptFrom",
                    "kms:ReEncryptTo",
                    "kms:GenerateDataKey",
                    "kms:DescribeKey",
                ],
                resources=["*"],
                conditions={"ArnLike": {"kms:EncryptionContext:aws:logs:arn": self.log_groups_arn}},
            )
        )

    def objects_arn(self, bucket: s3.IBucket, *, consumer: Construct) -> tuple[str, str | None]:
        """``<bucket ARN>/*`` for a policy in ``consumer``'s stack, and its cdk-nag finding id.

        Object-level statements need a wildcard resource, which cdk-nag reports per resource
        (``AwsSolutions-IAM5[Resource::<arn>/*]``) and acknowledges only by that exact id. An
        automatic cross-stack reference renders as an export name CDK makes up while
        synthesizing, so the lake exports the ARN under a name of its own and the consumer can
        acknowledge the finding by name. Within the lake's own stack no export is needed (and
        the id is None).
        """
        lake_stack, consumer_stack = cdk.Stack.of(self), cdk.Stack.of(consumer)
        if lake_stack is consumer_stack:
            return bucket.arn_for_objects("*"), None
        name = f"{lake_stack.stack_name}-{bucket.node.id}-arn"
        if name not in self._exports:
            self._exports[name] = lake_stack.export_value(bucket.bucket_arn, name=name)
        return f"{self._exports[name]}/*", f"AwsSolutions-IAM5[Resource::{name}/*]"

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
