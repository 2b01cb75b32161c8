#!/usr/bin/env python3
"""Test-only CDK app for the local cloud's integration tests (independent of the real app).

- IngestBucket --EventBridge--> rule --> SQS --> CopyFunction --> OutBucket/eventbridge/<key>
- NotifyBucket --classic S3 notification (CDK's custom resource)--> CopyFunction2
  --> OutBucket/notified/<key>
- TrainStateMachine: one sagemaker:createTrainingJob.sync task, parameters from the input
- every bucket auto-deletes its objects (CDK's Node.js custom resource)
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

FUNCTIONS = Path(__file__).parent / "functions"
ARCH = (
    lambda_.Architecture.ARM_64
    if platform.machine() in ("arm64", "aarch64")
    else (lambda_.Architecture.X86_64)
)

TRAIN_TASK = {
    "Type": "Task",
    "Resource": "arn:aws:states:::sagemaker:createTrainingJob.sync",
    "Parameters": {
        "TrainingJobName.$": "$.job_name",
        "RoleArn": "${RoleArn}",
        "AlgorithmSpecification": {"TrainingImage.$": "$.image", "TrainingInputMode": "File"},
        "HyperParameters.$": "$.hyperparameters",
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri.$": "$.train_uri"}
                },
            }
        ],
        "OutputDataConfig": {"S3OutputPath.$": "$.output_uri"},
        "ResourceConfig": {
            "InstanceCount": 1,
            "InstanceType": "ml.m5.large",
            "VolumeSizeInGB": 5,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 120},
    },
    "ResultSelector": {
        "status.$": "$.TrainingJobStatus",
        "model.$": "$.ModelArtifacts.S3ModelArtifacts",
    },
    "ResultPath": "$.training",
    "End": True,
}


class FixtureStack(cdk.Stack):
    def __init__(self, scope: Construct, id_: str) -> None:
        super().__init__(scope, id_)
        destroy = {"removal_policy": cdk.RemovalPolicy.DESTROY, "auto_delete_objects": True}
        out_bucket = s3.Bucket(self, "OutBucket", **destroy)
        artifacts = s3.Bucket(self, "ArtifactsBucket", **destroy)

        ingest = s3.Bucket(self, "IngestBucket", event_bridge_enabled=True, **destroy)
        queue = sqs.Queue(self, "IngestQueue", visibility_timeout=cdk.Duration.seconds(60))
        events.Rule(
            self,
            "ObjectCreated",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={"bucket": {"name": [ingest.bucket_name]}},
            ),
            targets=[targets.SqsQueue(queue)],
        )
        copy = self._copy_function("CopyFunction", out_bucket, "eventbridge")
        ingest.grant_read(copy)
        copy.add_event_source(sources.SqsEventSource(queue, batch_size=1))

        notify = s3.Bucket(self, "NotifyBucket", **destroy)
        copy2 = self._copy_function("CopyFunction2", out_bucket, "notified")
        notify.grant_read(copy2)
        notify.add_event_notification(s3.EventType.OBJECT_CREATED, s3n.LambdaDestination(copy2))

        role = iam.Role(
            self, "TrainingRole", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com")
        )
        artifacts.grant_read_write(role)
        definition = {"StartAt": "Train", "States": {"Train": TRAIN_TASK}}
        machine = sfn.StateMachine(
            self,
            "TrainStateMachine",
            definition_body=sfn.DefinitionBody.from_string(json.dumps(definition)),
            definition_substitutions={"RoleArn": role.role_arn},
        )
        machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=["sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob"],
                resources=["*"],
            )
        )
        machine.add_to_role_policy(
            iam.PolicyStatement(actions=["iam:PassRole"], resources=[role.role_arn])
        )

        for name, value in {
            "IngestBucketName": ingest.bucket_name,
            "NotifyBucketName": notify.bucket_name,
            "OutBucketName": out_bucket.bucket_name,
            "ArtifactsBucketName": artifacts.bucket_name,
            "TrainStateMachineArn": machine.state_machine_arn,
            "TrainingRoleArn": role.role_arn,
        }.items():
            cdk.CfnOutput(self, name, value=value)

    def _copy_function(self, id_: str, out_bucket: s3.IBucket, prefix: str) -> lambda_.Function:
        function = lambda_.Function(
            self,
            id_,
            runtime=lambda_.Runtime.PYTHON_3_13,
            architecture=ARCH,
            handler="handler.handler",
            code=lambda_.Code.from_asset(str(FUNCTIONS / "copy")),
            timeout=cdk.Duration.seconds(30),
            environment={"OUT_BUCKET": out_bucket.bucket_name, "OUT_PREFIX": prefix},
        )
        out_bucket.grant_write(function)
        return function


app = cdk.App()
FixtureStack(app, "SluiceLocalFixture")
app.synth()
