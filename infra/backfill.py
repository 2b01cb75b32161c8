"""Backfill: a Step Functions Distributed Map that reprocesses every object under a prefix.

``aws stepfunctions start-execution --state-machine-arn <BackfillStateMachineArn> --input
'{"prefix": "churn/2026/"}'`` lists the raw bucket under the prefix (S3 ``listObjectsV2``
ItemReader) and invokes the preprocess function once per object with an ``Object Created``
event, the same idempotent path as live uploads (objects too large for the function are routed
to its processing job). Concurrency comes from the stage config, no failure is tolerated, and
each run's per-object results land under ``s3://<artifacts>/backfill/`` (ResultWriter).

The definition is ``statemachines/backfill.asl.json``; the substitutions carry ARNs and names,
and the concurrency as a string the first state parses (a Map's MaxConcurrency must be a
number, which a JSON file with a ``${...}`` placeholder cannot hold).
"""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.config import StageConfig
from infra.data_lake import DataLake
from infra.large_objects import nag_resource
from infra.log_groups import encrypted_log_group

ASL = Path(__file__).resolve().parent.parent / "statemachines" / "backfill.asl.json"
RESULTS_PREFIX = "backfill"


class Backfill(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: StageConfig,
        lake: DataLake,
        function: lambda_.IFunction,
    ) -> None:
        super().__init__(scope, id_)
        stack = cdk.Stack.of(self)
        # encrypted with the stage key (whose policy lets CloudWatch Logs use it for the
        # stage's log groups), kept for the stage's retention
        self.log_group = encrypted_log_group(self, "Logs", config=config, key=lake.key)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
            description=f"Sluice {config.stage} backfill state machine",
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            definition_body=sfn.DefinitionBody.from_file(str(ASL)),
            definition_substitutions={
                "RawBucketName": lake.raw_bucket.bucket_name,
                "ResultsBucketName": lake.artifacts_bucket.bucket_name,
                "PreprocessFunctionArn": function.function_arn,
                "MaxConcurrency": str(config.backfill_max_concurrency),
            },
            # named after the stage: users start it from the CLI, and its child executions'
            # ARNs must be known to the policy below without referring to itself
            state_machine_name=f"{config.prefix}-backfill",
            role=self.role,
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=True
            ),
        )
        self._grant(lake, function, stack, f"{config.prefix}-backfill")

    def _grant(
        self, lake: DataLake, function: lambda_.IFunction, stack: cdk.Stack, name: str
    ) -> None:
        """Exact statements in a policy of their own; CDK's logging/X-Ray statements (which
        support no resource-level permissions) stay alone in the role's default policy."""
        executions = stack.format_arn(
            service="states",
            resource="execution",
            resource_name=f"{name}/*",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        results, results_finding = lake.objects_arn(lake.artifacts_bucket, consumer=self)
        policy = iam.Policy(
            self,
            "Access",
            roles=[self.role],
            statements=[
                iam.PolicyStatement(
                    actions=["lambda:InvokeFunction"], resources=[function.function_arn]
                ),
                iam.PolicyStatement(
                    actions=["s3:ListBucket"], resources=[lake.raw_bucket.bucket_arn]
                ),
                iam.PolicyStatement(actions=["s3:PutObject"], resources=[results]),
                iam.PolicyStatement(
                    actions=["kms:GenerateDataKey", "kms:Decrypt"],
                    resources=[lake.key.key_arn],
                    conditions={
                        "StringEquals": {"kms:ViaService": f"s3.{cdk.Aws.REGION}.amazonaws.com"}
                    },
                ),
                # a Distributed Map runs each batch of items as a child execution
                iam.PolicyStatement(
                    actions=["states:StartExecution"],
                    resources=[
                        stack.format_arn(
                            service="states",
                            resource="stateMachine",
                            resource_name=name,
                            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
                        )
                    ],
                ),
                iam.PolicyStatement(
                    actions=["states:DescribeExecution", "states:StopExecution"],
                    resources=[executions],
                ),
            ],
        )
        acknowledgments = [
            cdk.Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::{nag_resource(executions)}]",
                reason="The Distributed Map's child executions are named by Step Functions at "
                "run time; the statement is limited to this state machine's executions.",
            )
        ]
        if results_finding:
            acknowledgments.append(
                cdk.Acknowledgment(
                    id=results_finding,
                    reason="The ResultWriter writes each run's results under a key Step "
                    "Functions chooses (map run id); only PutObject is allowed.",
                )
            )
        cdk.Validations.of(policy).acknowledge(*acknowledgments)
        default = self.role.node.try_find_child("DefaultPolicy")
        if default is not None:
            cdk.Validations.of(default).acknowledge(
                cdk.Acknowledgment(
                    id="AwsSolutions-IAM5[Resource::*]",
                    reason="CDK's statements for vended log delivery and X-Ray tracing, whose "
                    "actions support no resource-level permissions; this policy holds nothing "
                    "else.",
                )
            )
