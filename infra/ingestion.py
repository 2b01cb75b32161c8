"""Ingestion: raw bucket → EventBridge → SQS (+DLQ) → preprocess Lambda → curated/quarantine.

The rule matches every object created in the raw bucket, not only declared dataset prefixes: an
upload for an undeclared dataset must be quarantined with that reason (DESIGN.md), which only
the function can do. Visibility timeout is six times the function timeout (AWS's advice for SQS
event sources); three failed receives move a message to the dead-letter queue.
"""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.config import StageConfig
from infra.lambda_function import PythonFunction

FUNCTION_TIMEOUT = Duration.minutes(15)
#: 2 vCPUs from 1,769 MB up; 3,008 MB gives the hashing worker a core of its own
FUNCTION_MEMORY_MB = 3008
EPHEMERAL_STORAGE_MB = 10240
MAX_RECEIVES = 3


class Ingestion(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: StageConfig,
        raw_bucket: s3.IBucket,
        curated_bucket: s3.IBucket,
        quarantine_bucket: s3.IBucket,
        key: kms.IKey,
        datasets: Sequence[str],
    ) -> None:
        super().__init__(scope, id_)
        self.datasets = tuple(datasets)
        self.pii_secret = secretsmanager.Secret(
            self,
            "PiiKey",
            description="HMAC-SHA-256 key that masks PII columns during ingestion",
            encryption_key=key,
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
        self.idempotency_table = dynamodb.Table(
            self,
            "Idempotency",
            partition_key=dynamodb.Attribute(name="id", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute="expiration",
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            removal_policy=cdk.RemovalPolicy.DESTROY,  # transient records (one hour)
        )
        self.dead_letters = sqs.Queue(
            self,
            "DeadLetters",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=key,
            retention_period=Duration.days(14),
            enforce_ssl=True,
        )
        self.queue = sqs.Queue(
            self,
            "Uploads",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=key,
            visibility_timeout=Duration.seconds(FUNCTION_TIMEOUT.to_seconds() * 6),
            dead_letter_queue=sqs.DeadLetterQueue(
                max_receive_count=MAX_RECEIVES, queue=self.dead_letters
            ),
            enforce_ssl=True,
        )
        # EventBridge encrypts what it sends to the queue with the queue's key
        key.grant(
            iam.ServicePrincipal("events.amazonaws.com"), "kms:GenerateDataKey", "kms:Decrypt"
        )
        self.rule = events.Rule(
            self,
            "ObjectCreated",
            description="Every object created in the raw bucket goes to ingestion",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={"bucket": {"name": [raw_bucket.bucket_name]}},
            ),
            targets=[targets.SqsQueue(self.queue)],
        )

        self.function = PythonFunction(
            self,
            "Preprocess",
            name="preprocess",
            config=config,
            description="Validate, mask and curate uploads of the raw bucket",
            timeout=FUNCTION_TIMEOUT,
            memory_size=FUNCTION_MEMORY_MB,
            reserved_concurrency=config.preprocess_reserved_concurrency,
            with_specs=True,
            environment={
                "CURATED_BUCKET": curated_bucket.bucket_name,
                "QUARANTINE_BUCKET": quarantine_bucket.bucket_name,
                "PII_SECRET_ARN": self.pii_secret.secret_arn,
                "IDEMPOTENCY_TABLE": self.idempotency_table.table_name,
                "EVENT_BUS_NAME": "default",
            },
        )
        fn = self.function.function
        cfn = fn.node.default_child
        assert isinstance(cfn, cdk.aws_lambda.CfnFunction)
        cfn.ephemeral_storage = cdk.aws_lambda.CfnFunction.EphemeralStorageProperty(
            size=EPHEMERAL_STORAGE_MB
        )
        fn.add_event_source(
            sources.SqsEventSource(self.queue, batch_size=1, report_batch_item_failures=True)
        )

        role = self.function.role
        raw_bucket.grant_read(role)
        curated_bucket.grant_put(role)
        quarantine_bucket.grant_put(role)
        self.pii_secret.grant_read(role)
        self.idempotency_table.grant_read_write_data(role)
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["events:PutEvents"],
                resources=[
                    cdk.Stack.of(self).format_arn(
                        service="events", resource="event-bus", resource_name="default"
                    )
                ],
            )
        )
