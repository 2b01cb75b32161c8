"""Ingestion: raw bucket → EventBridge → SQS (+DLQ) → preprocess Lambda → curated/quarantine.

The rule matches every object created in the raw bucket, not only declared dataset prefixes: an
upload for an undeclared dataset must be quarantined with that reason (DESIGN.md), which only
the function can do. Visibility timeout is six times the function timeout (AWS's advice for SQS
event sources); three failed receives move a message to the dead-letter queue.

Nothing fails silently: a message in the dead-letter queue raises an alarm, and a large-object
processing job that fails or is stopped is announced, both on the ``alerts`` topic (the stage's
notifications topic).
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from datasets import names
from infra.config import StageConfig
from infra.data_lake import DataLake
from infra.lambda_function import RUNTIME_PROVIDED, PythonFunction
from infra.large_objects import LargeObjectProcessing
from infra.nag import acknowledge_findings
from infra.network import Network

FUNCTION_TIMEOUT = Duration.minutes(15)
#: 2 vCPUs from 1,769 MB up; 3,008 MB gives the hashing worker a core of its own
FUNCTION_MEMORY_MB = 3008
EPHEMERAL_STORAGE_MB = 10240
MAX_RECEIVES = 3
#: parts of pyarrow ingestion never loads (Flight, ORC, S3/GCS/HDFS file systems, headers,
#: Cython sources, tests): about a third of its size, which Lambda's 250 MB limit needs
PYARROW_UNUSED = (
    "pyarrow/include", "pyarrow/tests", "pyarrow/src", "pyarrow/**/*.pyx", "pyarrow/**/*.pxd",
    "pyarrow/**/*.pxi", "pyarrow/libarrow_flight*", "pyarrow/_flight*", "pyarrow/flight.py",
    "pyarrow/_orc*", "pyarrow/orc.py", "pyarrow/_s3fs*", "pyarrow/_gcsfs*", "pyarrow/_hdfs*",
    "pyarrow/_azurefs*", "pyarrow/libarrow_s3*", "pyarrow/_pyarrow_cpp_tests*",
    "pyarrow/_dataset_orc*", "pyarrow/*parquet_encryption*", "pyarrow/libarrow_python_flight*",
    # the wheel ships three copies of libarrow_python; the loader needs the .so.<major> one
    "pyarrow/libarrow_python.so", "pyarrow/libarrow_python.so.*.*.*",
    "pyarrow/**/__pycache__",
)  # fmt: skip


class Ingestion(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: StageConfig,
        lake: DataLake,
        alerts: sns.ITopic,
        network: Network | None = None,
    ) -> None:
        super().__init__(scope, id_)
        raw_bucket, curated_bucket = lake.raw_bucket, lake.curated_bucket
        quarantine_bucket, key, pii_secret = lake.quarantine_bucket, lake.key, lake.pii_secret
        self.pii_secret = pii_secret
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
        # the SQS target below adds EventBridge to the key policy (aws:SourceAccount-bound)
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

        self.large_objects = LargeObjectProcessing(
            self, "LargeObjects", config=config, lake=lake, network=network
        )
        self.function = PythonFunction(
            self,
            "Preprocess",
            name="preprocess",
            config=config,
            key=key,
            description="Validate, mask and curate uploads of the raw bucket",
            timeout=FUNCTION_TIMEOUT,
            memory_size=FUNCTION_MEMORY_MB,
            no_dlq_reason=(
                "Invoked synchronously only: by its SQS event source, whose queue moves a "
                f"message to the ingestion dead-letter queue after {MAX_RECEIVES} failed "
                "receives (alarmed), and by the backfill state machine, which sees each "
                "failure in its map run. A function DLQ applies to asynchronous invocations, "
                "which never happen here."
            ),
            reserved_concurrency=config.preprocess_reserved_concurrency,
            concurrency_note=(
                "Capped instead by the SQS event source's MaximumConcurrency "
                f"({config.preprocess_max_concurrency} in this stage) and the backfill's "
                f"MaxConcurrency ({config.backfill_max_concurrency})."
            ),
            network=network,
            # boto3 calls beyond S3 and DynamoDB (gateway endpoints): the PII key, the
            # DatasetCurated events, the processing jobs for large objects
            uses=("secretsmanager", "events", "sagemaker.api"),
            ephemeral_storage_mb=EPHEMERAL_STORAGE_MB,
            with_specs=True,
            exclude=(*RUNTIME_PROVIDED, *PYARROW_UNUSED),
            native=True,  # the HMAC of PII, built for the function's architecture
            environment={
                "CURATED_BUCKET": curated_bucket.bucket_name,
                "QUARANTINE_BUCKET": quarantine_bucket.bucket_name,
                "PII_SECRET_ARN": self.pii_secret.secret_arn,
                "IDEMPOTENCY_TABLE": self.idempotency_table.table_name,
                "EVENT_BUS_NAME": "default",
                # numpy's OpenBLAS threads would spin beside the hashing worker for nothing
                "OPENBLAS_NUM_THREADS": "1",
                "OMP_NUM_THREADS": "1",
                **self.large_objects.environment,
            },
        )
        fn = self.function.function
        fn.add_event_source(
            sources.SqsEventSource(
                self.queue,
                batch_size=1,
                report_batch_item_failures=True,
                # the cap on concurrent ingestion, reserving nothing from the account
                max_concurrency=config.preprocess_max_concurrency,
            )
        )

        role = self.function.role
        self._grant_least_privilege(role, lake)
        self._alert(config, alerts)
        self.large_objects.grant_start(role)
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

    def _alert(self, config: StageConfig, alerts: sns.ITopic) -> None:
        """Dead letters and failed processing jobs reach people, not only logs."""
        self.dead_letters_alarm = cloudwatch.Alarm(
            self,
            "DeadLettersAlarm",
            alarm_name=f"{config.prefix}-ingestion-dead-letters",
            alarm_description=(
                f"Sluice {config.stage}: uploads whose ingestion failed {MAX_RECEIVES} times wait "
                "in the dead-letter queue (stack output IngestionDeadLetterQueueUrl). The "
                "preprocess function's log has the error, keyed by the object key; fix the "
                "cause, then redrive the queue. The uploads themselves are untouched."
            ),
            metric=self.dead_letters.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(1), statistic="Maximum"
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.dead_letters_alarm.add_alarm_action(cw_actions.SnsAction(alerts))
        job = events.EventField.from_path("$.detail.ProcessingJobName")
        status = events.EventField.from_path("$.detail.ProcessingJobStatus")
        reason = events.EventField.from_path("$.detail.FailureReason")
        # published through a role of this rule's own: a target without one would add an
        # unconditioned EventBridge statement to the lake key's policy (any account's rules)
        publisher = iam.Role(
            self,
            "JobFailedPublisher",
            assumed_by=iam.ServicePrincipal("events.amazonaws.com"),
            description=f"Sluice {config.stage}: publish failed ingestion jobs to the topic",
        )
        acknowledge_findings(
            publisher,
            ["AwsSolutions-IAM5[Action::kms:GenerateDataKey*]"],
            reason=(
                "CDK's grant for publishing to an SNS topic encrypted with the lake key: SNS "
                "needs GenerateDataKey on that one key (its ARN is the only resource)"
            ),
        )
        self.job_failed_rule = events.Rule(
            self,
            "JobFailed",
            description="A large-object ingestion job failed or was stopped: tell people",
            event_pattern=events.EventPattern(
                source=["aws.sagemaker"],
                detail_type=["SageMaker Processing Job State Change"],
                detail={
                    "ProcessingJobStatus": ["Failed", "Stopped"],
                    "ProcessingJobName": events.Match.prefix(
                        names.ingest_job_prefix(self.large_objects.job_prefix)
                    ),
                },
            ),
            targets=[
                targets.SnsTopic(
                    alerts,
                    authorize_using_role=True,
                    role=publisher,
                    message=events.RuleTargetInput.from_text(
                        f"Sluice {config.stage}: the ingestion job {job} for a large upload "
                        f"ended {status}: {reason}. Its log is in /aws/sagemaker/ProcessingJobs. "
                        "A backfill over the upload's prefix reruns it "
                        f"({names.MAX_INGEST_JOB_ATTEMPTS} runs in all); the upload itself is "
                        "untouched in the raw bucket."
                    ),
                )
            ],
        )

    def _grant_least_privilege(self, role: iam.IRole, lake: DataLake) -> None:
        """Exact actions on exact resources, written out instead of ``grant_*``.

        The ``grant_read``/``grant_put`` helpers add wildcard actions (``s3:GetObject*``,
        ``s3:List*``, ``kms:ReEncrypt*``) the function never uses, and ``secret.grant_read``
        would write the role into the key policy of the stateful stack (a reference back from
        the data stack: a dependency cycle). The key may only be used through the services
        that hold data for the function.
        """
        region = cdk.Aws.REGION
        key = lake.key
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                resources=[self.pii_secret.secret_arn],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=[
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                    "dynamodb:DeleteItem",
                ],
                resources=[self.idempotency_table.table_arn],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
                resources=[key.key_arn],
                conditions={
                    "StringEquals": {
                        "kms:ViaService": [
                            f"{service}.{region}.amazonaws.com"
                            for service in ("s3", "dynamodb", "secretsmanager", "sqs")
                        ]
                    }
                },
            )
        )
        raw, raw_finding = lake.objects_arn(lake.raw_bucket, consumer=self)
        curated, curated_finding = lake.objects_arn(lake.curated_bucket, consumer=self)
        quarantine, quarantine_finding = lake.objects_arn(lake.quarantine_bucket, consumer=self)
        objects = iam.Policy(
            self,
            "ObjectAccess",
            roles=[role],
            statements=[
                iam.PolicyStatement(
                    actions=["s3:GetObject", "s3:GetObjectVersion"], resources=[raw]
                ),
                iam.PolicyStatement(actions=["s3:PutObject"], resources=[curated, quarantine]),
            ],
        )
        reason = (
            "Object-level access: uploads arrive under any key of the raw bucket (undeclared "
            "datasets are quarantined, so the function must read them), and curated/quarantine "
            "keys are derived from them. Actions are exact; this policy holds nothing else."
        )
        acknowledge_findings(
            objects, (raw_finding, curated_finding, quarantine_finding), reason=reason
        )
