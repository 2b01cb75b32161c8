"""Prediction capture: one Firehose stream per dataset into the artifacts bucket.

The predict function puts one JSON line per captured instance (the Capture contract) to the
stream of the request's dataset; Firehose buffers them and writes
``s3://<artifacts>/<dataset>/capture/yyyy/MM/dd/HH/<stream>-...`` (KMS, the stage key), and
failed deliveries under ``<dataset>/capture-errors/``. Captured records hold customer ids, so
both prefixes expire after ``capture_expire_days``.

One stream per dataset rather than one stream with dynamic partitioning: the datasets are known
at synth (``datasets/*.yaml``), so a per-dataset prefix is a plain ``!{timestamp:...}`` prefix;
dynamic partitioning would parse every record (JQ) to find its dataset, is billed per GB on top
of ingestion, and needs a 64 MB minimum buffer, which holds small datasets' records back for
minutes. Separate streams also buffer, alarm and scale per dataset; an idle stream costs nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from datasets import names
from infra.config import StageConfig
from infra.data_lake import DataLake
from infra.log_groups import encrypted_log_group
from infra.nag import acknowledge_findings


def stream_name(prefix: str, dataset: str) -> str:
    """``sluice-dev-capture-churn``: named, so monitoring and operators can find it."""
    return f"{prefix}-capture-{dataset}"


class CaptureStreams(Construct):
    """``streams[dataset]``: the delivery stream of each declared dataset."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: StageConfig,
        lake: DataLake,
        datasets: Sequence[str],
    ) -> None:
        super().__init__(scope, id_)
        bucket, key = lake.artifacts_bucket, lake.key
        self.log_group = encrypted_log_group(self, "DeliveryLogs", config=config, key=key)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("firehose.amazonaws.com"),
            description=f"Sluice {config.stage}: deliver prediction capture to the artifacts",
        )
        self.streams: dict[str, firehose.CfnDeliveryStream] = {}
        self.names: dict[str, str] = {}
        objects, finding = lake.objects_arn(bucket, consumer=self)
        prefixes = []
        for dataset in datasets:
            capture = names.capture_prefix(dataset)
            errors = f"{dataset}/capture-errors/"
            prefixes += [capture, errors]
            self._expire(bucket, config, dataset, capture, errors)
            stream = firehose.CfnDeliveryStream(
                self,
                f"Stream-{dataset}",
                delivery_stream_name=stream_name(config.prefix, dataset),
                delivery_stream_type="DirectPut",
                delivery_stream_encryption_configuration_input=firehose.CfnDeliveryStream.DeliveryStreamEncryptionConfigurationInputProperty(
                    key_type="CUSTOMER_MANAGED_CMK", key_arn=key.key_arn
                ),
                extended_s3_destination_configuration=firehose.CfnDeliveryStream.ExtendedS3DestinationConfigurationProperty(
                    bucket_arn=bucket.bucket_arn,
                    role_arn=self.role.role_arn,
                    prefix=f"{capture}!{{timestamp:yyyy/MM/dd/HH}}/",
                    error_output_prefix=(
                        f"{errors}!{{firehose:error-output-type}}/!{{timestamp:yyyy/MM/dd/HH}}/"
                    ),
                    buffering_hints=firehose.CfnDeliveryStream.BufferingHintsProperty(
                        interval_in_seconds=config.capture_buffer_seconds,
                        size_in_m_bs=config.capture_buffer_mb,
                    ),
                    compression_format="UNCOMPRESSED",
                    encryption_configuration=firehose.CfnDeliveryStream.EncryptionConfigurationProperty(
                        kms_encryption_config=firehose.CfnDeliveryStream.KMSEncryptionConfigProperty(
                            awskms_key_arn=key.key_arn
                        )
                    ),
                    cloud_watch_logging_options=firehose.CfnDeliveryStream.CloudWatchLoggingOptionsProperty(
                        enabled=True,
                        log_group_name=self.log_group.log_group_name,
                        log_stream_name="S3Delivery",
                    ),
                ),
            )  # fmt: skip
            stream.node.add_dependency(self.role)
            self.streams[dataset] = stream
            self.names[dataset] = stream_name(config.prefix, dataset)
        logs.LogStream(self, "S3Delivery", log_group=self.log_group, log_stream_name="S3Delivery")
        self._grant(lake, objects, finding, prefixes)

    def _expire(
        self, bucket: s3.IBucket, config: StageConfig, dataset: str, *prefixes: str
    ) -> None:
        """Captured records expire (they hold customer ids): a lifecycle rule per prefix."""
        if not isinstance(bucket, s3.Bucket):
            return
        for prefix in prefixes:
            bucket.add_lifecycle_rule(
                id=f"expire-{prefix.rstrip('/').replace('/', '-')}",
                prefix=prefix,
                expiration=Duration.days(config.capture_expire_days),
                noncurrent_version_expiration=Duration.days(1),
            )

    def _grant(
        self, lake: DataLake, objects: str, finding: str | None, prefixes: list[str]
    ) -> None:
        """What Firehose's S3 destination needs, on the capture prefixes only."""
        base = objects.removesuffix("/*")
        resources = [f"{base}/{prefix}*" for prefix in prefixes]
        findings = (
            [f"{finding.removesuffix('/*]')}/{prefix}*]" for prefix in prefixes] if finding else []
        )
        policy = iam.Policy(
            self,
            "Delivery",
            roles=[self.role],
            statements=[
                iam.PolicyStatement(
                    actions=["s3:PutObject", "s3:AbortMultipartUpload"], resources=resources
                ),
                iam.PolicyStatement(
                    actions=[
                        "s3:GetBucketLocation",
                        "s3:ListBucket",
                        "s3:ListBucketMultipartUploads",
                    ],
                    resources=[lake.artifacts_bucket.bucket_arn],
                ),
                iam.PolicyStatement(
                    actions=["kms:GenerateDataKey", "kms:Decrypt"],
                    resources=[lake.key.key_arn],
                    conditions={
                        "StringEquals": {"kms:ViaService": f"s3.{cdk.Aws.REGION}.amazonaws.com"}
                    },
                ),
                iam.PolicyStatement(
                    actions=["logs:PutLogEvents"],
                    resources=[self.log_group.log_group_arn],
                ),
            ],
        )
        acknowledge_findings(
            policy,
            findings,
            reason="Firehose writes objects under its datasets' capture prefixes; object keys "
            "carry the hour and a unique suffix, so the resource is a prefix",
        )
