"""Monitoring and the feedback loop: alarms on every component, one dashboard, drift, model
quality, and retraining when they call for it.

- **Drift** (``lambdas/drift``) and **model quality** (``lambdas/feedback``, quality step) run
  on one EventBridge rule every ``schedule_minutes`` (rules fire on AWS and locally; EventBridge
  Scheduler never fires on the local cloud). They publish ``DriftMax`` and ``ModelQuality`` per
  dataset in the app's namespace.
- **Feedback**: a label file under ``<dataset>/_feedback/`` of the raw bucket (EventBridge) is
  joined with the captured predictions by the feedback function; the labelled records go back
  to the raw bucket under ``<dataset>/_labelled/`` and are curated like any upload.
- **Retraining**: each dataset's drift and quality alarms notify people (the notifications
  topic) and a retrain topic, whose function starts a run of the training pipeline with the
  trigger, at most one per the spec's cool-down (a table of cool-downs); a spec's
  ``retrain.schedule`` is an EventBridge rule that starts a run directly. Every run goes
  through the pipeline's one input and lock, and a run with the serving model's inputs is
  skipped there.
- **Alarms on every component**: ``watch(stack)``, called once the stack is composed, finds
  every function, queue, state machine, API stage and delivery stream in it and alarms on
  their failures (errors, throttles, dead letters or stuck messages, failed and timed-out
  executions, 5xx rate and latency, failed deliveries), to the notifications topic, unless an
  alarm on the same metric exists already (a component's own, such as ingestion's dead
  letters). Thresholds and periods: ``StageConfig.monitoring``.
- **Dashboard**: one per stage, ``<prefix>-overview``: ingestion, training pipeline, serving,
  and per dataset its endpoint, drift per feature and model quality; the alarms' states.
- Feedback files, joined labels, labelled uploads and monitoring reports expire after
  ``feedback_expire_days`` (captures after ``capture_expire_days``, in ``capture.py``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aws_cdk as cdk
from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct, IConstruct

from datasets import names
from datasets.spec import DatasetSpec, load_spec, spec_path
from infra.config import MonitoringSettings, StageConfig
from infra.dashboard import overview
from infra.data_lake import DataLake
from infra.ingestion import PYARROW_UNUSED
from infra.lambda_function import RUNTIME_PROVIDED, PythonFunction
from infra.large_objects import nag_resource
from infra.nag import acknowledge_findings
from infra.network import Network

NAMESPACE = names.METRICS_NAMESPACE
#: the functions of monitoring, and the AWS services they call besides S3 and DynamoDB
#: (interface endpoints in a VPC)
FUNCTIONS = ("drift", "feedback", "retrain")
SERVICES = ("sagemaker.api", "monitoring", "sns", "states")
GREATER_OR_EQUAL = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
#: CloudWatch alarm names may hold these characters; the component label is made of them
_LABEL = re.compile(r"[^a-z0-9-]+")


def _kebab(text: str) -> str:
    return _LABEL.sub("-", re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", text).lower()).strip("-")


def component_label(resource: IConstruct, stack: cdk.Stack) -> str:
    """A resource's place in the app, for alarm names: ``ingestion-preprocess``."""
    parts = [p for p in resource.node.path.split("/")[1:] if p not in ("Resource", "Function")]
    return "-".join(_kebab(p) for p in parts)[:120] or _kebab(resource.node.id)


@dataclass(frozen=True)
class ModelAlarms:
    """The drift and quality alarms of one dataset."""

    drift: cloudwatch.Alarm
    quality: cloudwatch.Alarm


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: StageConfig,
        lake: DataLake,
        datasets: Sequence[str],
        alerts: sns.ITopic,
        training: sfn.IStateMachine,
        network: Network | None = None,
    ) -> None:
        super().__init__(scope, id_)
        self.config, self.settings, self.lake = config, config.monitoring, lake
        self.datasets = tuple(datasets)
        self.specs = {d: _spec(d) for d in datasets}
        self.alerts, self.training = alerts, training
        self.alarms: list[cloudwatch.Alarm] = []
        self.dead_letters = sqs.Queue(
            self,
            "DeadLetters",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=lake.key,
            retention_period=Duration.days(14),
            enforce_ssl=True,
        )
        self.cooldowns = dynamodb.Table(
            self,
            "Cooldowns",
            partition_key=dynamodb.Attribute(name="dataset", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=lake.key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            removal_policy=cdk.RemovalPolicy.DESTROY,  # when automatic runs last started
        )
        self.retrain_topic = sns.Topic(
            self,
            "RetrainTopic",
            display_name=f"Sluice {config.stage}: drift and quality alarms that retrain",
            master_key=lake.key,
            enforce_ssl=True,
        )
        self.drift = self._drift(network)
        self.feedback = self._feedback(network)
        self.retrain = self._retrain(network)
        self._schedule()
        self._expire()
        self.model_alarms = {d: self._model_alarms(d) for d in self.datasets}
        self.dashboard: cloudwatch.Dashboard | None = None

    # ------------------------------------------------------------------ functions
    def _environment(self) -> dict[str, str]:
        return {
            "SLUICE_PREFIX": self.config.prefix,
            "ARTIFACTS_BUCKET": self.lake.artifacts_bucket.bucket_name,
            "DATASETS": ",".join(self.datasets),
        }

    def _drift(self, network: Network | None) -> PythonFunction:
        s = self.settings
        function = PythonFunction(
            self,
            "Drift",
            name="drift",
            config=self.config,
            key=self.lake.key,
            description="Drift (PSI) of each dataset's captured traffic against its baseline",
            timeout=Duration.minutes(10),
            memory_size=2048,
            dead_letter_queue=self.dead_letters,
            concurrency_note=(
                f"Run by one schedule every {s.schedule_minutes} minutes (and by hand); it "
                "checks every dataset in one invocation."
            ),
            network=network,
            uses=("sagemaker.api", "monitoring"),  # (of SERVICES)
            with_specs=True,
            exclude=(*RUNTIME_PROVIDED, *PYARROW_UNUSED),
            environment={
                **self._environment(),
                "DRIFT_WINDOW_MINUTES": str(s.drift_window_minutes),
                "DRIFT_MIN_SAMPLES": str(s.drift_min_samples),
                "DRIFT_MAX_SAMPLES": str(s.drift_max_samples),
            },
        )
        self._grant(
            "DriftAccess",
            function,
            reads={self.lake.artifacts_bucket: ["{d}/capture/*", "runs/{d}/*"]},
            writes={self.lake.artifacts_bucket: ["{d}/monitoring/*"]},
        )
        return function

    def _feedback(self, network: Network | None) -> PythonFunction:
        s = self.settings
        function = PythonFunction(
            self,
            "Feedback",
            name="feedback",
            config=self.config,
            key=self.lake.key,
            description="Join feedback labels with captured predictions; model quality",
            timeout=Duration.minutes(10),
            memory_size=1024,
            dead_letter_queue=self.dead_letters,
            concurrency_note=(
                "Run once per label file uploaded under <dataset>/_feedback/ and by the "
                "monitoring schedule; label files arrive in batches, not floods."
            ),
            network=network,
            uses=("sagemaker.api", "monitoring", "sns"),
            with_specs=True,
            exclude=RUNTIME_PROVIDED,
            environment={
                **self._environment(),
                "RAW_BUCKET": self.lake.raw_bucket.bucket_name,
                "TOPIC_ARN": self.alerts.topic_arn,
                "FEEDBACK_JOIN_DAYS": str(s.feedback_join_days),
                "QUALITY_WINDOW_DAYS": str(s.quality_window_days),
                "QUALITY_MIN_SAMPLES": str(s.quality_min_samples),
            },
        )
        self._grant(
            "FeedbackAccess",
            function,
            reads={
                self.lake.raw_bucket: [f"{{d}}/{names.FEEDBACK_PREFIX}/*"],
                self.lake.artifacts_bucket: ["{d}/capture/*"],
            },
            writes={
                # read too: the labelled upload is written once (a HEAD first)
                self.lake.raw_bucket: [f"{{d}}/{names.LABELLED_PREFIX}/*"],
                self.lake.artifacts_bucket: ["{d}/feedback/*", "{d}/monitoring/*"],
            },
            list_buckets=(self.lake.raw_bucket, self.lake.artifacts_bucket),
            extra=[iam.PolicyStatement(actions=["sns:Publish"], resources=[self.alerts.topic_arn])],
            kms_services=("s3", "sns"),
        )
        events.Rule(
            self,
            "OnLabelFile",
            description="A label file under <dataset>/_feedback/ of the raw bucket is joined "
            "with the captured predictions",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={
                    "bucket": {"name": [self.lake.raw_bucket.bucket_name]},
                    "object": {
                        "key": [{"prefix": names.feedback_prefix(d)} for d in self.datasets]
                    },
                },
            ),
            targets=[targets.LambdaFunction(function.function)],
        )
        return function

    def _retrain(self, network: Network | None) -> PythonFunction:
        function = PythonFunction(
            self,
            "Retrain",
            name="retrain",
            config=self.config,
            key=self.lake.key,
            description="Drift and quality alarms start a training run, one per cool-down",
            timeout=Duration.seconds(60),
            memory_size=256,
            dead_letter_queue=self.dead_letters,
            concurrency_note=(
                "Run once per drift or quality alarm state change (SNS): at most two alarms "
                "per dataset and alarm period."
            ),
            network=network,
            uses=("states",),
            with_specs=True,
            exclude=RUNTIME_PROVIDED,
            environment={
                "SLUICE_PREFIX": self.config.prefix,
                "TRAINING_STATE_MACHINE_ARN": self.training.state_machine_arn,
                "COOLDOWN_TABLE": self.cooldowns.table_name,
                "RETRAIN_COOLDOWN_MINUTES": ""
                if self.settings.retrain_cooldown_minutes is None
                else str(self.settings.retrain_cooldown_minutes),
            },
        )
        iam.Policy(
            self,
            "RetrainAccess",
            roles=[function.role],
            statements=[
                iam.PolicyStatement(
                    actions=["dynamodb:UpdateItem", "dynamodb:GetItem"],
                    resources=[self.cooldowns.table_arn],
                ),
                self._kms_via("dynamodb"),
                iam.PolicyStatement(
                    actions=["states:StartExecution"],
                    resources=[self.training.state_machine_arn],
                ),
            ],
        )
        self.retrain_topic.add_subscription(subscriptions.LambdaSubscription(function.function))
        return function

    def _kms_via(self, *services: str) -> iam.PolicyStatement:
        return iam.PolicyStatement(
            actions=["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
            resources=[self.lake.key.key_arn],
            conditions={
                "StringEquals": {
                    "kms:ViaService": [f"{s}.{cdk.Aws.REGION}.amazonaws.com" for s in services]
                }
            },
        )

    def _grant(
        self,
        id_: str,
        function: PythonFunction,
        *,
        reads: dict[s3.IBucket, list[str]],
        writes: dict[s3.IBucket, list[str]],
        list_buckets: Sequence[s3.IBucket] = (),
        extra: Sequence[iam.PolicyStatement] = (),
        kms_services: Sequence[str] = ("s3",),
    ) -> None:
        """Exact object prefixes per dataset (``{d}``), SageMaker descriptions of the stage's
        endpoints, metrics in the app's namespace only."""
        stack = cdk.Stack.of(self)
        statements: list[iam.PolicyStatement] = []
        findings: list[str] = []

        def objects(bucket: s3.IBucket, patterns: list[str]) -> list[str]:
            arn, finding = self.lake.objects_arn(bucket, consumer=self)
            base = arn.removesuffix("/*")
            out = [f"{base}/{p.format(d=d)}" for p in patterns for d in self.datasets]
            if finding:
                findings.extend(finding.removesuffix("/*]") + r[len(base) :] + "]" for r in out)
            return out

        for bucket, patterns in reads.items():
            statements.append(
                iam.PolicyStatement(
                    actions=["s3:GetObject", "s3:GetObjectVersion"],
                    resources=objects(bucket, patterns),
                )
            )
        for bucket, patterns in writes.items():
            statements.append(
                iam.PolicyStatement(
                    actions=["s3:PutObject", "s3:GetObject"], resources=objects(bucket, patterns)
                )
            )
        buckets = list(list_buckets) or [self.lake.artifacts_bucket]
        statements.append(
            iam.PolicyStatement(
                actions=["s3:ListBucket"], resources=[b.bucket_arn for b in buckets]
            )
        )
        described = [
            stack.format_arn(
                service="sagemaker", resource=kind, resource_name=f"{self.config.prefix}-*"
            )
            for kind in ("endpoint", "endpoint-config", "model")
        ]
        statements += [
            iam.PolicyStatement(
                actions=[
                    "sagemaker:DescribeEndpoint",
                    "sagemaker:DescribeEndpointConfig",
                    "sagemaker:DescribeModel",
                ],
                resources=described,
            ),
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": NAMESPACE}},
            ),
            self._kms_via(*kms_services),
            *extra,
        ]
        policy = iam.Policy(self, id_, roles=[function.role], statements=statements)
        findings += [f"AwsSolutions-IAM5[Resource::{nag_resource(arn)}]" for arn in described]
        acknowledge_findings(
            policy,
            findings,
            reason="Objects under each declared dataset's own prefixes (captures, models, "
            "feedback, reports: keys made at run time); the stage's endpoints, configs and "
            "models, named per dataset and deploy at run time.",
        )
        acknowledge_findings(
            policy,
            ["AwsSolutions-IAM5[Resource::*]"],
            reason="cloudwatch:PutMetricData supports no resource-level permissions; the "
            "condition limits it to the app's namespace.",
        )

    # ------------------------------------------------------------------ schedules, expiry
    def _schedule(self) -> None:
        s = self.settings
        events.Rule(
            self,
            "Schedule",
            description=f"Drift and model quality every {s.schedule_minutes} minutes",
            schedule=events.Schedule.rate(Duration.minutes(s.schedule_minutes)),
            targets=[
                targets.LambdaFunction(
                    self.drift.function,
                    event=events.RuleTargetInput.from_object({"source": "schedule"}),
                ),
                targets.LambdaFunction(
                    self.feedback.function,
                    event=events.RuleTargetInput.from_object(
                        {"source": "schedule", "action": "quality"}
                    ),
                ),
            ],
        )
        self.retrain_rules: dict[str, events.Rule] = {}
        for dataset, spec in self.specs.items():
            if spec.retrain.schedule is None:
                continue
            self.retrain_rules[dataset] = events.Rule(
                self,
                f"Retrain-{dataset}",
                description=f"Scheduled retraining of {dataset} (its spec's retrain.schedule)",
                schedule=events.Schedule.expression(spec.retrain.schedule),
                targets=[
                    targets.SfnStateMachine(
                        self.training,
                        input=events.RuleTargetInput.from_object(
                            {
                                "dataset": dataset,
                                "trigger": {
                                    "type": "schedule",
                                    "schedule": spec.retrain.schedule,
                                },
                            }
                        ),
                    )
                ],
            )

    def _expire(self) -> None:
        """Label files, joined labels, labelled uploads and reports expire."""
        days = Duration.days(self.settings.feedback_expire_days)
        prefixes = {
            self.lake.raw_bucket: [names.FEEDBACK_PREFIX, names.LABELLED_PREFIX],
            self.lake.artifacts_bucket: ["feedback", "monitoring"],
        }
        for bucket, folders in prefixes.items():
            if not isinstance(bucket, s3.Bucket):
                continue
            for dataset in self.datasets:
                for folder in folders:
                    bucket.add_lifecycle_rule(
                        id=f"expire-{dataset}-{folder.strip('_')}",
                        prefix=f"{dataset}/{folder}/",
                        expiration=days,
                        noncurrent_version_expiration=Duration.days(1),
                    )

    # ------------------------------------------------------------------ model alarms
    def _model_alarms(self, dataset: str) -> ModelAlarms:
        s, spec = self.settings, self.specs[dataset]
        dims = {"Stage": self.config.stage, "Dataset": dataset}
        period = Duration.seconds(s.model_alarm_period_seconds)
        common: dict[str, Any] = {
            "evaluation_periods": 1,
            # a window that was skipped (too few records) publishes nothing: not a breach
            "treat_missing_data": cloudwatch.TreatMissingData.NOT_BREACHING,
        }
        title = _kebab(dataset).replace("-", " ").title().replace(" ", "")
        drift = cloudwatch.Alarm(
            self,
            f"{title}Drift",
            alarm_name=names.drift_alarm_name(self.config.prefix, dataset),
            alarm_description=(
                f"Sluice {self.config.stage}: the {dataset} traffic of the last "
                f"{s.drift_window_minutes} minutes drifted from the serving model's training data "
                f"(largest feature PSI >= {s.drift_threshold}). A retraining run starts (at most "
                f"one per {_cooldown(s, spec)}); it is skipped when no labelled data arrived "
                "since the serving model. See the dashboard's drift per feature and "
                f"s3://<artifacts>/{names.monitoring_reports_prefix(dataset)}drift/."
            ),
            metric=cloudwatch.Metric(
                namespace=NAMESPACE,
                metric_name=names.DRIFT_MAX_METRIC,
                dimensions_map=dims,
                statistic="Maximum",
                period=period,
            ),
            threshold=s.drift_threshold,
            comparison_operator=GREATER_OR_EQUAL,
            **common,
        )
        higher_is_better = spec.metric.higher_is_better
        quality = cloudwatch.Alarm(
            self,
            f"{title}Quality",
            alarm_name=names.quality_alarm_name(self.config.prefix, dataset),
            alarm_description=(
                f"Sluice {self.config.stage}: the serving {dataset} model's {spec.metric.name} on "
                f"labelled traffic of the last {s.quality_window_days} days is "
                f"{'below' if higher_is_better else 'above'} the spec's threshold "
                f"{spec.metric.threshold}. A retraining run starts (at most one per "
                f"{_cooldown(s, spec)}), on the labelled feedback too. See "
                f"s3://<artifacts>/{names.monitoring_reports_prefix(dataset)}quality/."
            ),
            metric=cloudwatch.Metric(
                namespace=NAMESPACE,
                metric_name=names.MODEL_QUALITY_METRIC,
                dimensions_map={**dims, "Metric": spec.metric.name},
                statistic="Minimum" if higher_is_better else "Maximum",
                period=period,
            ),
            threshold=spec.metric.threshold,
            comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD
            if higher_is_better
            else cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            **common,
        )
        for alarm in (drift, quality):
            alarm.add_alarm_action(cw_actions.SnsAction(self.alerts))
            alarm.add_alarm_action(cw_actions.SnsAction(self.retrain_topic))
            self.alarms.append(alarm)
        return ModelAlarms(drift=drift, quality=quality)

    # ------------------------------------------------------------------ every component
    def watch(self, stack: cdk.Stack, *, api_name: str, api_stage: str) -> list[cloudwatch.Alarm]:
        """Alarm on the failures of every function, queue, state machine, API stage and
        capture stream in ``stack`` (call it once the stack is composed)."""
        watcher = _Watcher(self, stack)
        watcher.functions()
        watcher.queues()
        watcher.state_machines()
        watcher.api(api_name, api_stage)
        watcher.delivery_streams()
        self.alarms += watcher.created
        return watcher.created

    def add_dashboard(
        self,
        *,
        ingestion_function: str,
        ingestion_queue: str,
        ingestion_dead_letters: str,
        training_machine: str,
        deploy_machine: str,
        api_name: str,
        api_stage: str,
        alarms: Sequence[cloudwatch.IAlarm],
    ) -> cloudwatch.Dashboard:
        self.dashboard = overview(
            self,
            config=self.config,
            specs=self.specs,
            ingestion_function=ingestion_function,
            ingestion_queue=ingestion_queue,
            ingestion_dead_letters=ingestion_dead_letters,
            training_machine=training_machine,
            deploy_machine=deploy_machine,
            api_name=api_name,
            api_stage=api_stage,
            alarms=alarms,
        )
        return self.dashboard


def _spec(dataset: str) -> DatasetSpec:
    path = spec_path(dataset)
    if path is None:
        raise ValueError(f"no spec for dataset {dataset!r}")
    return load_spec(path)


def _cooldown(settings: MonitoringSettings, spec: DatasetSpec) -> str:
    if settings.retrain_cooldown_minutes is not None:
        return f"{settings.retrain_cooldown_minutes} minute(s) (stage setting)"
    return f"{spec.retrain.cooldown_hours:g} hour(s)"


class _Watcher:
    """Finds the components of a stack and alarms on their failures."""

    def __init__(self, monitoring: Monitoring, stack: cdk.Stack) -> None:
        self.monitoring, self.stack = monitoring, stack
        self.settings = monitoring.settings
        self.prefix = monitoring.config.prefix
        self.created: list[cloudwatch.Alarm] = []
        self.watched = self._already_watched()
        self.dead_letter_arns = self._dead_letter_arns()

    # ------------------------------------------------------------------ discovery
    def _resources(self, kind: str) -> list[cdk.CfnResource]:
        return [
            c
            for c in self.stack.node.find_all()
            if isinstance(c, cdk.CfnResource)
            and c.cfn_resource_type == kind
            and cdk.Stack.of(c) is self.stack
        ]

    def _key(self, namespace: str, metric: str, dimensions: Mapping[str, Any]) -> str:
        return json.dumps(
            [namespace, metric, self.stack.resolve(dimensions)], sort_keys=True, default=str
        )

    def _already_watched(self) -> set[str]:
        """(namespace, metric, dimensions) of the alarms the stack has already."""
        found = set()
        for alarm in self._resources("AWS::CloudWatch::Alarm"):
            assert isinstance(alarm, cloudwatch.CfnAlarm)
            dims = self.stack.resolve(alarm.dimensions) or []
            found.add(
                self._key(
                    str(alarm.namespace),
                    str(alarm.metric_name),
                    {d["name"]: d["value"] for d in dims},
                )
            )
        return found

    def _dead_letter_arns(self) -> set[str]:
        """Queues that hold what failed elsewhere: redrive targets, function DLQs."""
        arns = set()
        for queue in self._resources("AWS::SQS::Queue"):
            assert isinstance(queue, sqs.CfnQueue)
            policy = self.stack.resolve(queue.redrive_policy)
            if isinstance(policy, dict) and "deadLetterTargetArn" in policy:
                arns.add(json.dumps(policy["deadLetterTargetArn"], sort_keys=True))
        for function in self._resources("AWS::Lambda::Function"):
            config = self.stack.resolve(getattr(function, "dead_letter_config", None))
            if isinstance(config, dict) and config.get("targetArn"):
                arns.add(json.dumps(config["targetArn"], sort_keys=True))
        return arns

    # ------------------------------------------------------------------ alarms
    def _alarm(
        self,
        resource: IConstruct,
        suffix: str,
        metric: cloudwatch.Metric,
        *,
        threshold: float,
        description: str,
        comparison: cloudwatch.ComparisonOperator = GREATER_OR_EQUAL,
        label: str | None = None,
    ) -> None:
        key = self._key(metric.namespace, metric.metric_name, metric.dimensions or {})
        if key in self.watched:
            return
        self.watched.add(key)
        label = label or component_label(resource, self.stack)
        name = label if label.endswith(suffix) else f"{label}-{suffix}"
        scope = resource.node.scope or self.stack
        alarm = cloudwatch.Alarm(
            scope,  # type: ignore[arg-type]
            f"{resource.node.id}{suffix.title().replace('-', '')}Alarm",
            alarm_name=f"{self.prefix}-{name}",
            alarm_description=f"Sluice {self.monitoring.config.stage}: {description}",
            metric=metric,
            threshold=threshold,
            evaluation_periods=self.settings.alarm_evaluation_periods,
            comparison_operator=comparison,
            # no traffic is not a failure
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(cw_actions.SnsAction(self.monitoring.alerts))
        self.created.append(alarm)

    @property
    def _period(self) -> Duration:
        return Duration.seconds(self.settings.alarm_period_seconds)

    def _minutes(self) -> str:
        return f"{self.settings.alarm_period_seconds // 60 or 1} minute(s)"

    def functions(self) -> None:
        s = self.settings
        for function in self._resources("AWS::Lambda::Function"):
            dims = {"FunctionName": function.ref}
            label = component_label(function, self.stack)
            for metric, threshold, what in (
                (
                    "Errors",
                    s.function_errors_threshold,
                    f"the {label} function failed at least {s.function_errors_threshold} "
                    f"time(s) in {self._minutes()}. Its log group has each error (JSON lines, "
                    "with the request id and, for uploads, the object key); what it was "
                    "processing is retried or waits in its dead-letter queue (see that alarm).",
                ),
                (
                    "Throttles",
                    s.function_throttles_threshold,
                    f"Lambda refused to run the {label} function at least "
                    f"{s.function_throttles_threshold} time(s) in {self._minutes()} (its "
                    "reserved concurrency or the account's limit). Raise the limit (Service "
                    "Quotas) or the function's reservation; callers retry or get a 5xx.",
                ),
            ):
                self._alarm(
                    function,
                    metric.lower(),
                    cloudwatch.Metric(
                        namespace="AWS/Lambda",
                        metric_name=metric,
                        dimensions_map=dims,
                        statistic="Sum",
                        period=self._period,
                    ),
                    threshold=threshold,
                    description=what,
                )

    def queues(self) -> None:
        s = self.settings
        for queue in self._resources("AWS::SQS::Queue"):
            dims = {"QueueName": cdk.Token.as_string(queue.get_att("QueueName"))}
            label = component_label(queue, self.stack)
            arn = json.dumps(self.stack.resolve(queue.get_att("Arn")), sort_keys=True)
            if arn in self.dead_letter_arns:
                self._alarm(
                    queue,
                    "dead-letters",
                    cloudwatch.Metric(
                        namespace="AWS/SQS",
                        metric_name="ApproximateNumberOfMessagesVisible",
                        dimensions_map=dims,
                        statistic="Maximum",
                        period=self._period,
                    ),
                    threshold=s.dead_letters_threshold,
                    description=(
                        f"work that failed all its retries waits in the dead-letter queue "
                        f"{label}: the failing function's log has the error. Fix the cause, "
                        "then redrive the queue (SQS console: Start DLQ redrive) or process "
                        "the messages by hand; they are kept 14 days."
                    ),
                )
            else:
                hours = s.queue_age_seconds / 3600
                self._alarm(
                    queue,
                    "stuck",
                    cloudwatch.Metric(
                        namespace="AWS/SQS",
                        metric_name="ApproximateAgeOfOldestMessage",
                        dimensions_map=dims,
                        statistic="Maximum",
                        period=self._period,
                    ),
                    threshold=s.queue_age_seconds,
                    description=(
                        f"the oldest message of the queue {label} waited {hours:g} hours or "
                        "more: its "
                        "consumer is not keeping up or keeps failing (its errors alarm, its "
                        "log). Messages move to the dead-letter queue after their retries."
                    ),
                )

    def state_machines(self) -> None:
        s = self.settings
        for machine in self._resources("AWS::StepFunctions::StateMachine"):
            dims = {"StateMachineArn": machine.ref}
            label = component_label(machine, self.stack)
            for metric, suffix, what in (
                (
                    "ExecutionsFailed",
                    "failed",
                    f"executions of the {label} state machine failed. The execution's history "
                    "(Step Functions console) shows the state and error; the training pipeline "
                    "records each failed run with its reason (make runs) and announces it.",
                ),
                (
                    "ExecutionsTimedOut",
                    "timed-out",
                    f"executions of the {label} state machine ran past their time limit. A "
                    "training run that times out keeps its dataset's lock: delete the "
                    "dataset's item from the lock table (RunLockTableName) to free it.",
                ),
            ):
                self._alarm(
                    machine,
                    suffix,
                    cloudwatch.Metric(
                        namespace="AWS/States",
                        metric_name=metric,
                        dimensions_map=dims,
                        statistic="Sum",
                        period=self._period,
                    ),
                    threshold=s.executions_failed_threshold,
                    description=what,
                )

    def api(self, api_name: str, api_stage: str) -> None:
        s = self.settings
        stages = self._resources("AWS::ApiGateway::Stage")
        if not stages:
            return
        stage = stages[0]
        dims = {"ApiName": api_name, "Stage": api_stage}
        self._alarm(
            stage,
            "5xx-rate",
            cloudwatch.Metric(
                namespace="AWS/ApiGateway",
                metric_name="5XXError",
                dimensions_map=dims,
                statistic="Average",  # each request counts 0 or 1: the average is the rate
                period=self._period,
            ),
            threshold=s.api_5xx_rate,
            label="api",
            description=(
                f"more than {s.api_5xx_rate:.0%} of the prediction API's requests were "
                f"answered 5xx in {self._minutes()}. The access log has each one's status and "
                "error type; 502 is the model failing (the endpoint's 5xx alarm and its "
                "worker log), 503 no model deployed, 504 the endpoint timing out."
            ),
        )
        self._alarm(
            stage,
            "p99-latency",
            cloudwatch.Metric(
                namespace="AWS/ApiGateway",
                metric_name="Latency",
                dimensions_map=dims,
                statistic="p99",
                period=self._period,
            ),
            threshold=s.api_latency_p99_ms,
            label="api",
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            description=(
                f"the prediction API's p99 latency passed {s.api_latency_p99_ms} ms over "
                f"{self._minutes()}. Compare the endpoint's ModelLatency (dashboard): the "
                "model, or the function and API around it; scale the endpoint out or up."
            ),
        )

    def delivery_streams(self) -> None:
        s = self.settings
        for stream in self._resources("AWS::KinesisFirehose::DeliveryStream"):
            name = stream.ref
            label = component_label(stream, self.stack)
            self._alarm(
                stream,
                "delivery",
                cloudwatch.Metric(
                    namespace="AWS/Firehose",
                    metric_name="DeliveryToS3.Success",
                    dimensions_map={"DeliveryStreamName": name},
                    statistic="Minimum",
                    period=self._period,
                ),
                threshold=s.capture_delivery_min,
                comparison=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
                description=(
                    f"the capture stream {label} failed to deliver records to S3: they go "
                    "to <dataset>/capture-errors/ in the artifacts bucket, and its delivery "
                    "log says why (the key, the bucket policy). Drift and quality miss them."
                ),
            )


__all__ = ["FUNCTIONS", "SERVICES", "ModelAlarms", "Monitoring", "component_label"]
