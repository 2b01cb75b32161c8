"""Batch scoring: a file under ``s3://<raw>/<dataset>/_score/`` is scored by Batch Transform.

EventBridge (the raw bucket's Object Created events, keys under a declared dataset's
``_score/``) starts a Step Functions run (``statemachines/batch_scoring.asl.json``):

1. the score function (``lambdas/score``, step ``prepare``) validates the file against the
   spec with ingestion's own checks and writes headerless CSV without PII, or an error report;
2. ``sagemaker:createTransformJob.sync`` with the model serving the dataset (its endpoint's
   AllTraffic variant): line split, MultiRecord, input/output filters and ``JoinSource: Input``
   carrying the line and id beside each prediction, output and volume encrypted with the key;
3. the score function (``finish``) writes ``s3://<artifacts>/<dataset>/predictions/<name>/
   predictions.csv`` and ``manifest.json``, or ``error.json`` (and the run fails).

The transform job runs with the Model's execution role (the pipeline's), which reads
``<dataset>/scoring/*/input/`` and writes ``.../output/`` in the artifacts bucket, and in the
Model's network: CreateTransformJob takes no ``VpcConfig``, the Model's applies (the deploy steps
create models in the stage's private subnets when it has them). With a private network the
prepare step refuses a serving model outside its subnets (``PRIVATE_SUBNET_IDS``), so a job never
runs outside them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from datasets import names
from infra.config import StageConfig
from infra.data_lake import DataLake
from infra.ingestion import PYARROW_UNUSED
from infra.lambda_function import RUNTIME_PROVIDED, PythonFunction
from infra.large_objects import nag_resource
from infra.log_groups import encrypted_log_group
from infra.nag import acknowledge_findings
from infra.network import Network

ASL = Path(__file__).resolve().parent.parent / "statemachines" / "batch_scoring.asl.json"
FUNCTION_TIMEOUT = Duration.minutes(15)
#: what a file to score can be: up to the function's /tmp (10 GB) with its converted copy
FUNCTION_MEMORY_MB = 3008
EPHEMERAL_STORAGE_MB = 10240


class BatchScoring(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: StageConfig,
        lake: DataLake,
        datasets: Sequence[str],
        network: Network | None = None,
    ) -> None:
        super().__init__(scope, id_)
        stack = cdk.Stack.of(self)
        self.job_prefix = names.score_job_prefix(config.prefix)
        self.function = PythonFunction(
            self,
            "Score",
            name="score",
            config=config,
            key=lake.key,
            description="Batch scoring: prepare a _score/ file for Batch Transform, assemble",
            timeout=FUNCTION_TIMEOUT,
            no_dlq_reason=(
                "Invoked synchronously by the scoring state machine only: a failure fails that "
                "step (retried, then the run fails, visible in its execution history)."
            ),
            concurrency_note=(
                "One state machine run per uploaded file to score, two calls each; uploads "
                "under _score/ are deliberate, few and far between."
            ),
            network=network,
            uses=("sagemaker.api",),
            memory_size=FUNCTION_MEMORY_MB,
            ephemeral_storage_mb=EPHEMERAL_STORAGE_MB,
            with_specs=True,
            packages=("preprocess",),  # ingestion's reader and column checks, one implementation
            exclude=(*RUNTIME_PROVIDED, *PYARROW_UNUSED),
            environment={
                "ARTIFACTS_BUCKET": lake.artifacts_bucket.bucket_name,
                "SLUICE_PREFIX": config.prefix,
                "KMS_KEY_ARN": lake.key.key_arn,
                "TRANSFORM_INSTANCE_TYPE": config.transform_instance_type,
                "TRANSFORM_MAX_PAYLOAD_MB": str(config.transform_max_payload_mb),
                "TRANSFORM_MAX_RUNTIME_SECONDS": str(config.transform_max_runtime_seconds),
                "OPENBLAS_NUM_THREADS": "1",
                # a transform job runs where its model does (CreateTransformJob has no network
                # of its own): with a private network, only a model in these subnets is used
                **(
                    {"PRIVATE_SUBNET_IDS": cdk.Fn.join(",", network.subnet_ids)}
                    if network is not None
                    else {}
                ),
            },
        )
        self._grant_function(config, lake, datasets, stack)
        self.log_group = encrypted_log_group(self, "Logs", config=config, key=lake.key)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
            description=f"Sluice {config.stage} batch-scoring state machine",
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            definition_body=sfn.DefinitionBody.from_file(str(ASL)),
            definition_substitutions={"ScoreFunctionArn": self.function.function.function_arn},
            state_machine_name=f"{config.prefix}-batch-scoring",
            role=self.role,
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=False
            ),
        )
        self._grant_state_machine(config, lake, stack)
        starter = iam.Role(
            self,
            "RuleRole",
            assumed_by=iam.ServicePrincipal("events.amazonaws.com"),
            description=f"Sluice {config.stage}: start batch scoring for _score/ uploads",
        )
        self.rule = events.Rule(
            self,
            "FileToScore",
            description="A file uploaded under <dataset>/_score/ of the raw bucket is scored",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={
                    "bucket": {"name": [lake.raw_bucket.bucket_name]},
                    "object": {"key": [{"prefix": f"{d}/{names.SCORE_PREFIX}/"} for d in datasets]},
                },
            ),
            targets=[targets.SfnStateMachine(self.state_machine, role=starter)],
        )

    def _grant_function(
        self, config: StageConfig, lake: DataLake, datasets: Sequence[str], stack: cdk.Stack
    ) -> None:
        role = self.function.role
        raw, raw_finding = lake.objects_arn(lake.raw_bucket, consumer=self)
        artifacts, artifacts_finding = lake.objects_arn(lake.artifacts_bucket, consumer=self)
        raw_base, artifacts_base = raw.removesuffix("/*"), artifacts.removesuffix("/*")
        files = [f"{raw_base}/{d}/{names.SCORE_PREFIX}/*" for d in datasets]
        outputs = [
            f"{artifacts_base}/{d}/{kind}/*"
            for d in datasets
            for kind in ("predictions", "scoring")
        ]

        def finding(base_finding: str | None, resource: str, base: str) -> str | None:
            if base_finding is None:
                return None
            return base_finding.removesuffix("/*]") + resource[len(base) :] + "]"

        def sagemaker(resource: str, name: str) -> str:
            return stack.format_arn(service="sagemaker", resource=resource, resource_name=name)

        transform_jobs = sagemaker("transform-job", f"{self.job_prefix}*")
        described = [
            sagemaker("endpoint", f"{config.prefix}-*"),
            sagemaker("endpoint-config", f"{config.prefix}-*"),
            sagemaker("model", f"{config.prefix}-*"),
        ]
        policy = iam.Policy(
            self,
            "ScoreAccess",
            roles=[role],
            statements=[
                iam.PolicyStatement(actions=["s3:GetObject", "s3:GetObjectVersion"],
                                    resources=files),
                iam.PolicyStatement(actions=["s3:PutObject", "s3:GetObject", "s3:DeleteObject"],
                                    resources=outputs),
                iam.PolicyStatement(actions=["s3:ListBucket"],
                                    resources=[lake.artifacts_bucket.bucket_arn]),
                iam.PolicyStatement(
                    actions=["kms:Decrypt", "kms:GenerateDataKey"],
                    resources=[lake.key.key_arn],
                    conditions={
                        "StringEquals": {"kms:ViaService": f"s3.{cdk.Aws.REGION}.amazonaws.com"}
                    },
                ),
                iam.PolicyStatement(
                    actions=["sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig",
                             "sagemaker:DescribeModel"],
                    resources=described,
                ),
                iam.PolicyStatement(
                    actions=["sagemaker:DescribeTransformJob"],
                    resources=[transform_jobs],
                ),
            ],
        )  # fmt: skip
        found = [finding(raw_finding, r, raw_base) for r in files]
        found += [finding(artifacts_finding, r, artifacts_base) for r in outputs]
        found += [
            f"AwsSolutions-IAM5[Resource::{nag_resource(arn)}]"
            for arn in (*described, transform_jobs)
        ]
        acknowledge_findings(
            policy,
            found,
            reason="Files to score arrive under any name below <dataset>/_score/, results go "
            "below <dataset>/predictions/ and scoring/; endpoints, models and transform jobs "
            "are created at run time, named after the stage prefix (which bounds the wildcard).",
        )

    def _grant_state_machine(self, config: StageConfig, lake: DataLake, stack: cdk.Stack) -> None:
        jobs = stack.format_arn(
            service="sagemaker", resource="transform-job", resource_name=f"{self.job_prefix}*"
        )
        sync_rule = stack.format_arn(
            service="events",
            resource="rule",
            resource_name="StepFunctionsGetEventsForSageMakerTransformJobsRule",
        )
        policy = iam.Policy(
            self,
            "StateMachineAccess",
            roles=[self.role],
            statements=[
                iam.PolicyStatement(
                    actions=["lambda:InvokeFunction"],
                    resources=[self.function.function.function_arn],
                ),
                iam.PolicyStatement(
                    actions=[
                        "sagemaker:CreateTransformJob",
                        "sagemaker:DescribeTransformJob",
                        "sagemaker:StopTransformJob",
                    ],
                    resources=[jobs],
                ),
                # the job's output and volume are encrypted with the key: SageMaker creates
                # grants for them on the caller's behalf
                iam.PolicyStatement(
                    actions=["kms:CreateGrant", "kms:DescribeKey"],
                    resources=[lake.key.key_arn],
                    conditions={
                        "StringEquals": {
                            "kms:ViaService": f"sagemaker.{cdk.Aws.REGION}.amazonaws.com"
                        }
                    },
                ),
                # .sync waits on SageMaker's job events through a rule Step Functions manages
                iam.PolicyStatement(
                    actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                    resources=[sync_rule],
                ),
            ],
        )
        acknowledge_findings(
            policy,
            [f"AwsSolutions-IAM5[Resource::{nag_resource(jobs)}]"],
            reason="Transform jobs are named per scored file at run time, all starting with the "
            "stage's scoring prefix.",
        )
        default = self.role.node.try_find_child("DefaultPolicy")
        if isinstance(default, Construct):
            acknowledge_findings(
                default,
                ["AwsSolutions-IAM5[Resource::*]"],
                reason="CDK's statements for vended log delivery and X-Ray tracing, whose "
                "actions support no resource-level permissions; this policy holds nothing else.",
            )
