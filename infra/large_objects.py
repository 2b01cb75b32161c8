"""Objects too large for the preprocess function: a SageMaker Processing job runs the same code.

The function decides (``lambdas/preprocess/service.py``, ``LargeObjectRouter``) and starts the
job; this construct provides what the job needs:

- the code: an S3 asset of ``lambdas/`` + ``datasets/`` built without Docker (the function's
  ``PipLocalBundling``), plus PyYAML for CPython 3.10 / x86_64: SageMaker's XGBoost 3.0-5 image
  has pyarrow, numpy and boto3 but no guaranteed spec parser. It reaches the job as a
  ProcessingInput (the zip itself; ``job.py`` unpacks it).
- the image: SageMaker's prebuilt XGBoost 3.0-5 framework image, whose ECR registry account
  differs per region: ``infra/sagemaker_images.py`` maps every region the SageMaker SDK knows.
- a dedicated execution role: read raw objects, put curated/quarantine objects and the job's
  summary, read the code asset and the PII secret, the lake key only through S3 and Secrets
  Manager (and grants for the encrypted volume), PutEvents on the default bus, its own logs.

Network isolation stays off: the job itself talks to S3, Secrets Manager and EventBridge
(exactly as the function does), which an isolated container cannot reach. With the stage's
private network on, the job runs in its private subnets with a security group of its own and
reaches those services through the VPC endpoints, with inter-container traffic encryption on;
the function may then start jobs only with those subnets and that encryption (IAM conditions).
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from infra import sagemaker_images
from infra.config import StageConfig
from infra.data_lake import DataLake
from infra.lambda_function import REPO_ROOT, PipLocalBundling
from infra.nag import acknowledge_findings
from infra.network import Network, Workload

#: the image's interpreter (the job's PyYAML is bundled for it)
IMAGE_PYTHON = sagemaker_images.PYTHON
JOB_LOG_GROUP = "/aws/sagemaker/ProcessingJobs"
SUMMARY_PREFIX = "ingestion-jobs"


class LargeObjectProcessing(Construct):
    """The processing job's code, image and role; ``environment`` configures the function."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: StageConfig,
        lake: DataLake,
        network: Network | None = None,
    ) -> None:
        super().__init__(scope, id_)
        stack = cdk.Stack.of(self)
        self.job_prefix = config.prefix
        bundling = PipLocalBundling(
            sources=["lambdas/__init__.py", "datasets", "lambdas/preprocess"],
            requirements="lambdas/preprocess/job-requirements.txt",
            architecture="x86_64",
            python_version=IMAGE_PYTHON,
            native=True,
        )
        self.code = s3_assets.Asset(
            self,
            "Code",
            path=str(REPO_ROOT / "lambdas" / "preprocess"),  # used when bundling is skipped
            asset_hash_type=cdk.AssetHashType.CUSTOM,
            asset_hash=bundling.asset_hash,
            bundling=cdk.BundlingOptions(
                image=cdk.DockerImage.from_registry("unused-local-bundling-only"),
                local=bundling,
            ),
        )
        # SageMaker's XGBoost image: region -> URI from the SageMaker SDK (sagemaker_images)
        self.image = sagemaker_images.XgboostImage.of(self)
        self.image_uri = self.image.uri
        self.role = iam.Role(
            self,
            "JobRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"Sluice {config.stage} ingestion of objects too large for the function",
        )
        self.summary_uri = f"s3://{lake.artifacts_bucket.bucket_name}/{SUMMARY_PREFIX}"
        self._grant(lake, stack)
        self.environment = {
            "LARGE_OBJECT_BYTES": str(config.large_object_threshold_bytes),
            "PROCESSING_ROLE_ARN": self.role.role_arn,
            "PROCESSING_IMAGE_URI": self.image_uri,
            "PROCESSING_CODE_URI": self.code.s3_object_url,
            "PROCESSING_KMS_KEY_ARN": lake.key.key_arn,
            "PROCESSING_JOB_PREFIX": self.job_prefix,
            "PROCESSING_SUMMARY_URI": self.summary_uri,
            "PROCESSING_INSTANCE_TYPE": config.processing_instance_type,
            "PROCESSING_VOLUME_GB": str(config.processing_volume_gb),
        }
        self.network: Workload | None = None
        if network is not None:
            self.network = network.workload(
                self, "JobSecurityGroup", description=f"Sluice {config.stage} ingestion jobs"
            )
            network.grant_interfaces(self, self.role, self.network, service="sagemaker")
            self.environment["PROCESSING_SUBNET_IDS"] = cdk.Fn.join(",", self.network.subnet_ids)
            self.environment["PROCESSING_SECURITY_GROUP_IDS"] = (
                self.network.security_group.security_group_id
            )

    @property
    def job_arn_pattern(self) -> str:
        return cdk.Stack.of(self).format_arn(
            service="sagemaker", resource="processing-job", resource_name=f"{self.job_prefix}-*"
        )

    def grant_start(self, role: iam.IRole) -> iam.Policy:
        """Let ``role`` (the function's) start and look up these jobs, passing only this role."""
        policy = iam.Policy(
            self,
            "StartJobs",
            roles=[role],
            statements=[
                iam.PolicyStatement(
                    actions=["sagemaker:CreateProcessingJob"],
                    resources=[self.job_arn_pattern],
                    conditions=self._network_conditions(),
                ),
                iam.PolicyStatement(
                    actions=["sagemaker:DescribeProcessingJob"],
                    resources=[self.job_arn_pattern],
                ),
                iam.PolicyStatement(
                    actions=["iam:PassRole"],
                    resources=[self.role.role_arn],
                    conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
                ),
            ],
        )
        cdk.Validations.of(policy).acknowledge(
            cdk.Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::{nag_resource(self.job_arn_pattern)}]",
                reason="Job names are derived from each object version at run time (one job "
                "per version, so a redelivery finds its job); the pattern is the stage's "
                "prefix, and the actions are exactly create and describe.",
            )
        )
        return policy

    def _network_conditions(self) -> dict[str, object] | None:
        """In a private network, a job may start only in its subnets, with its security group
        and with inter-container traffic encryption."""
        if self.network is None:
            return None
        return self.network.sagemaker_create_conditions()

    def _grant(self, lake: DataLake, stack: cdk.Stack) -> None:
        region = cdk.Aws.REGION
        raw, raw_finding = lake.objects_arn(lake.raw_bucket, consumer=self)
        curated, curated_finding = lake.objects_arn(lake.curated_bucket, consumer=self)
        quarantine, quarantine_finding = lake.objects_arn(lake.quarantine_bucket, consumer=self)
        artifacts, artifacts_finding = lake.objects_arn(lake.artifacts_bucket, consumer=self)
        log_streams = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name=f"{JOB_LOG_GROUP}:*",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        data = iam.Policy(
            self,
            "JobAccess",
            roles=[self.role],
            statements=[
                iam.PolicyStatement(
                    actions=["s3:GetObject", "s3:GetObjectVersion"], resources=[raw]
                ),
                iam.PolicyStatement(
                    actions=["s3:PutObject"], resources=[curated, quarantine, artifacts]
                ),
                # the code asset: exactly its object (SageMaker lists the prefix first)
                iam.PolicyStatement(
                    actions=["s3:GetObject"],
                    resources=[self.code.bucket.arn_for_objects(self.code.s3_object_key)],
                ),
                iam.PolicyStatement(
                    actions=["s3:ListBucket"], resources=[self.code.bucket.bucket_arn]
                ),
                iam.PolicyStatement(
                    actions=["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                    resources=[lake.pii_secret.secret_arn],
                ),
                iam.PolicyStatement(
                    actions=[
                        "kms:Decrypt",
                        "kms:Encrypt",
                        "kms:GenerateDataKey",
                        "kms:DescribeKey",
                    ],
                    resources=[lake.key.key_arn],
                    conditions={
                        "StringEquals": {
                            "kms:ViaService": [
                                f"s3.{region}.amazonaws.com",
                                f"secretsmanager.{region}.amazonaws.com",
                            ]
                        }
                    },
                ),
                # the ML storage volume is encrypted with the lake key: AWS services take a grant
                iam.PolicyStatement(
                    actions=["kms:CreateGrant"],
                    resources=[lake.key.key_arn],
                    conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
                ),
                iam.PolicyStatement(
                    actions=["events:PutEvents"],
                    resources=[
                        stack.format_arn(
                            service="events", resource="event-bus", resource_name="default"
                        )
                    ],
                ),
                iam.PolicyStatement(
                    actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=[log_streams],
                ),
                iam.PolicyStatement(
                    actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                    resources=[self.image.repository_arn],
                ),
            ],
        )
        reason = (
            "Object-level access: the job ingests one object of the raw bucket chosen at run "
            "time and writes curated/quarantine keys derived from it, and its summary to the "
            "artifacts bucket. Actions are exact and hold no delete."
        )
        acknowledge_findings(
            data,
            (raw_finding, curated_finding, quarantine_finding, artifacts_finding),
            reason=reason,
        )
        cdk.Validations.of(data).acknowledge(
            cdk.Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::{nag_resource(log_streams)}]",
                reason="SageMaker writes a job's logs to streams named after the job in the "
                "fixed /aws/sagemaker/ProcessingJobs group; the statement is limited to it.",
            ),
        )
        token = iam.Policy(
            self,
            "PullImage",
            roles=[self.role],
            statements=[
                iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"])
            ],
        )
        cdk.Validations.of(token).acknowledge(
            cdk.Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="ecr:GetAuthorizationToken supports no resource-level permissions; the "
                "image pull itself is limited to the XGBoost repository.",
            )
        )


def nag_resource(arn: str) -> str:
    """How cdk-nag writes a resource in a finding id (pseudo parameters as <AWS::Name>)."""
    return (
        arn.replace(cdk.Aws.PARTITION, "<AWS::Partition>")
        .replace(cdk.Aws.REGION, "<AWS::Region>")
        .replace(cdk.Aws.ACCOUNT_ID, "<AWS::AccountId>")
    )
