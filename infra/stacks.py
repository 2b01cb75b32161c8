"""The two stacks of a stage. A stack only composes constructs, tags and checks.

- ``<prefix>-data`` (stateful): the KMS key and the buckets. Termination protection and RETAIN in
  prod, so deleting the application never deletes data.
- ``<prefix>-app`` (stateless): every component that can be recreated from code.
"""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

from infra.backfill import Backfill
from infra.batch_scoring import BatchScoring
from infra.config import StageConfig
from infra.data_lake import DataLake
from infra.ingestion import Ingestion
from infra.model_registry import ModelRegistry
from infra.monitoring import Monitoring
from infra.nag import acknowledge_framework_singletons
from infra.network import Network
from infra.notifications import Notifications
from infra.rollout import Rollout, declared_datasets
from infra.serving import Serving
from infra.training_pipeline import TrainingPipeline


class StatefulStack(cdk.Stack):
    def __init__(self, scope: Construct, id_: str, *, config: StageConfig, **kwargs: Any) -> None:
        super().__init__(
            scope,
            id_,
            description=f"Sluice {config.stage}: data lake (KMS key, buckets)",
            termination_protection=config.termination_protection,
            env=config.env,
            **kwargs,
        )
        self.data_lake = DataLake(self, "DataLake", config=config)
        lake = self.data_lake
        for name, bucket in {
            "RawBucket": lake.raw_bucket,
            "CuratedBucket": lake.curated_bucket,
            "QuarantineBucket": lake.quarantine_bucket,
            "ArtifactsBucket": lake.artifacts_bucket,
        }.items():
            cdk.CfnOutput(self, name, value=bucket.bucket_name)
        cdk.CfnOutput(self, "DataKeyArn", value=lake.key.key_arn)
        self.model_registry = ModelRegistry(self, "ModelRegistry", config=config, key=lake.key)
        cdk.CfnOutput(self, "RunLedgerTableName", value=self.model_registry.ledger.table_name)


class StatelessStack(cdk.Stack):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: StageConfig,
        data_lake: DataLake,
        model_registry: ModelRegistry,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            scope,
            id_,
            description=f"Sluice {config.stage}: ingestion, training pipeline, serving, monitoring",
            env=config.env,
            **kwargs,
        )
        self.config = config
        self.data_lake = lake = data_lake
        self.notifications = Notifications(self, "Notifications", config=config, key=lake.key)
        #: the stage's private network, or None (then functions use AWS's public endpoints)
        self.network = (
            Network(self, "Network", config=config, vpc_config=config.vpc, key=lake.key)
            if config.vpc is not None
            else None
        )
        self.ingestion = Ingestion(
            self,
            "Ingestion",
            config=config,
            lake=lake,
            alerts=self.notifications.topic,
            network=self.network,
        )
        self.backfill = Backfill(
            self, "Backfill", config=config, lake=lake, function=self.ingestion.function.function
        )
        datasets = declared_datasets()
        self.rollout = Rollout(
            self,
            "Rollout",
            config=config,
            datasets=datasets,
            alerts=self.notifications.topic,
        )
        self.training = TrainingPipeline(
            self,
            "TrainingPipeline",
            config=config,
            lake=lake,
            registry=model_registry,
            topic=self.notifications.topic,
            rollout=self.rollout,
            network=self.network,
        )
        self.serving = Serving(
            self, "Serving", config=config, lake=lake, datasets=datasets, network=self.network
        )
        self.batch_scoring = BatchScoring(
            self,
            "BatchScoring",
            config=config,
            lake=lake,
            datasets=datasets,
            network=self.network,
        )
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            config=config,
            lake=lake,
            datasets=datasets,
            alerts=self.notifications.topic,
            training=self.training.state_machine,
            network=self.network,
        )
        ingestion, serving, monitoring = self.ingestion, self.serving, self.monitoring
        api_name = serving.api.rest_api_name
        # last: every component of the stack is alarmed on its failures, then shown
        monitoring.watch(self, api_name=api_name, api_stage=config.stage)
        monitoring.add_dashboard(
            ingestion_function=ingestion.function.function.function_name,
            ingestion_queue=ingestion.queue.queue_name,
            ingestion_dead_letters=ingestion.dead_letters.queue_name,
            training_machine=self.training.state_machine.state_machine_arn,
            deploy_machine=self.training.deploy_machine.state_machine_arn,
            api_name=api_name,
            api_stage=config.stage,
            alarms=[c for c in self.node.find_all() if isinstance(c, cloudwatch.Alarm)],
        )
        for name, value in {
            "NotificationsTopicArn": self.notifications.topic.topic_arn,
            "PreprocessFunctionName": ingestion.function.function.function_name,
            "IngestionQueueUrl": ingestion.queue.queue_url,
            "IngestionDeadLetterQueueUrl": ingestion.dead_letters.queue_url,
            "IdempotencyTableName": ingestion.idempotency_table.table_name,
            "BackfillStateMachineArn": self.backfill.state_machine.state_machine_arn,
            "TrainingStateMachineArn": self.training.state_machine.state_machine_arn,
            "DeployStateMachineArn": self.training.deploy_machine.state_machine_arn,
            "RunLockTableName": self.training.locks.table_name,
            "ReleaseLockStateMachineArn": self.training.release_machine.state_machine_arn,
            "ApiUrl": serving.api.url,
            "ApiId": serving.api.rest_api_id,
            "ApiKeyId": serving.api_key.key_id,
            "PredictFunctionName": serving.function.function.function_name,
            "CaptureStreams": cdk.Stack.of(self).to_json_string(serving.capture.names),
            "BatchScoringStateMachineArn": self.batch_scoring.state_machine.state_machine_arn,
            "ScoreFunctionName": self.batch_scoring.function.function.function_name,
            "DashboardName": f"{config.prefix}-overview",
            "DriftFunctionName": monitoring.drift.function.function_name,
            "FeedbackFunctionName": monitoring.feedback.function.function_name,
            "RetrainFunctionName": monitoring.retrain.function.function_name,
            "RetrainTopicArn": monitoring.retrain_topic.topic_arn,
            "RetrainCooldownTableName": monitoring.cooldowns.table_name,
            "MonitoringDeadLetterQueueUrl": monitoring.dead_letters.queue_url,
        }.items():
            cdk.CfnOutput(self, name, value=value)
        if self.network is not None:
            cdk.CfnOutput(self, "VpcId", value=self.network.vpc.vpc_id)


def build_stage(app: cdk.App, config: StageConfig) -> tuple[StatefulStack, StatelessStack]:
    """Both stacks of a stage, tagged."""
    stateful = StatefulStack(app, f"{config.prefix}-data", config=config)
    stateless = StatelessStack(
        app,
        f"{config.prefix}-app",
        config=config,
        data_lake=stateful.data_lake,
        model_registry=stateful.model_registry,
    )
    for stack in (stateful, stateless):
        acknowledge_framework_singletons(stack)
        cdk.Tags.of(stack).add("project", "sluice")
        cdk.Tags.of(stack).add("stage", config.stage)
    return stateful, stateless
