"""The training pipeline: curated uploads in, a served model out (Step Functions + SageMaker).

Two state machines, both loaded from ``statemachines/`` with ARN/name substitutions only:

- ``<prefix>-training`` (``training_pipeline.asl.json``): one run of one dataset — take the
  dataset's lock, prepare, train (``createTrainingJob.sync``), evaluate
  (``createProcessingJob.sync``), gate, register, deploy, record and notify, release the lock
  (and start the one follow-up run that uploads curated meanwhile asked for). Started by every
  ``DatasetCurated`` event of ingestion, by hand (``make train``), and later by drift, quality
  and schedules — all through the same input.
- ``<prefix>-deploy`` (``deploy_model.asl.json``): the deploy steps, run by the pipeline, by
  an approval in the model registry (an EventBridge rule on SageMaker's "Model Package State
  Change" event, for manually approved packages) and by ``make deploy-model``. They deploy as the
  dataset's endpoint settings say (``infra/rollout.py``: real-time or serverless variant,
  blue/green ``DeploymentConfig`` with the rollback alarms, autoscaling bounds, handed to the
  resolve function), register autoscaling around each deploy (the scaling function), and put
  models in the stage's private subnets when it has them (``_model_network``).
- ``<prefix>-release-lock`` (``release_lock.asl.json``): frees the lock of a run whose execution
  ended without its own release (stopped, timed out), records it and starts the queued follow-up;
  started by an EventBridge rule on Step Functions' execution status changes, and by a run that
  finds the lock held by an execution no longer running.

Also here: the SageMaker execution role (jobs and models), the functions of ``lambdas/pipeline``
(one role each), the lock table, the job code (``sourcedir.tar.gz``, built without Docker) and a
teardown custom resource that removes the endpoints, configs and models runs created when the
stack is deleted. With the stage's private network on, the train and evaluate jobs run in its
subnets with a security group of their own (``_job_network``; the ASL picks the requests with
``VpcConfig`` through ``infra.network.asl_network``), isolated and with inter-container
encryption, and the state machine may start them nowhere else.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import jsii
from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from datasets import names
from infra.config import StageConfig
from infra.data_lake import DataLake
from infra.lambda_function import REPO_ROOT, RUNTIME_PROVIDED, PythonFunction
from infra.large_objects import nag_resource
from infra.log_groups import encrypted_log_group
from infra.model_registry import ModelRegistry
from infra.network import Network, Workload, asl_network
from infra.rollout import Rollout
from infra.sagemaker_images import XgboostImage

STATEMACHINES = REPO_ROOT / "statemachines"
TRAINING_ASL = STATEMACHINES / "training_pipeline.asl.json"
DEPLOY_ASL = STATEMACHINES / "deploy_model.asl.json"
RELEASE_ASL = STATEMACHINES / "release_lock.asl.json"
#: how a run's execution can end without reaching its own release of the dataset's lock
UNRELEASED_ENDS = ("ABORTED", "TIMED_OUT", "FAILED")
#: what goes into sourcedir.tar.gz (training/package.py lays it out)
SOURCEDIR_INPUTS = ("training", "datasets")
#: the functions of lambdas/pipeline, one per step
STEPS = ("prepare", "register", "resolve", "record", "scaling", "teardown")
#: AWS services the functions call besides S3 and DynamoDB (interface endpoints in a VPC):
#: SageMaker, Step Functions, SNS, CloudWatch (the rollback alarms' history; target tracking)
#: and Application Auto Scaling
PIPELINE_SERVICES = ("sagemaker.api", "states", "sns", "monitoring", "application-autoscaling")
#: the functions that read the datasets' endpoint settings (``ENDPOINTS``)
ENDPOINT_SETTINGS_STEPS = ("resolve", "register")
#: Lambda's limit on a function's environment (keys and values); the endpoint settings must
#: leave room for the rest of it
ENDPOINTS_ENV_LIMIT = 2500
#: Application Auto Scaling's service-linked role for SageMaker endpoints (created on first use)
SCALING_SERVICE = "sagemaker.application-autoscaling.amazonaws.com"
SCALING_ROLE = "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
#: the EventBridge rules Step Functions manages for .sync tasks (AWS's fixed names)
SYNC_RULES = (
    "StepFunctionsGetEventsForSageMakerTrainingJobsRule",
    "StepFunctionsGetEventsForSageMakerProcessingJobsRule",
    "StepFunctionsGetEventsForStepFunctionsExecutionRule",
)
JOB_LOG_GROUPS = (
    "/aws/sagemaker/TrainingJobs",
    "/aws/sagemaker/ProcessingJobs",
    "/aws/sagemaker/Endpoints",
)


@jsii.implements(cdk.ILocalBundling)
class SourcedirBundling:
    """``sourcedir.tar.gz`` (train.py, evaluate.py, inference.py, their packages), built by
    ``python -m training.package`` — a subprocess, since infra never imports training/."""

    def __init__(self) -> None:
        digest = hashlib.sha256()
        for item in SOURCEDIR_INPUTS:
            path = REPO_ROOT / item
            files = [path] if path.is_file() else sorted(path.rglob("*"))
            for file in files:
                if file.is_file() and "__pycache__" not in file.parts:
                    digest.update(str(file.relative_to(REPO_ROOT)).encode())
                    digest.update(file.read_bytes())
        self.asset_hash = digest.hexdigest()

    def try_bundle(self, output_dir: str, *, image: Any = None, **_: Any) -> bool:
        subprocess.run(
            [sys.executable, "-m", "training.package", str(Path(output_dir) / "sourcedir.tar.gz")],
            cwd=REPO_ROOT,
            check=True,
            capture_output=True,
        )
        return True


class TrainingPipeline(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: StageConfig,
        lake: DataLake,
        registry: ModelRegistry,
        topic: sns.ITopic,
        rollout: Rollout,
        network: Network | None = None,
    ) -> None:
        super().__init__(scope, id_)
        self.network, self.rollout = network, rollout
        self.endpoint_settings = json.dumps(rollout.deploy_settings(), separators=(",", ":"))
        if len(self.endpoint_settings) > ENDPOINTS_ENV_LIMIT:
            raise ValueError(
                f"the datasets' endpoint settings take {len(self.endpoint_settings)} characters "
                f"of the resolve function's environment (at most {ENDPOINTS_ENV_LIMIT}: Lambda "
                "allows 4 KB in all): give fewer datasets settings of their own"
            )
        if config.training_instance_count != 1:
            raise ValueError(
                f"training_instance_count={config.training_instance_count}: one training "
                "instance only until distributed training lands; use a larger instance type"
            )
        self.config, self.lake, self.registry = config, lake, registry
        stack = cdk.Stack.of(self)
        self.image = XgboostImage.of(self)
        bundling = SourcedirBundling()
        self.code_version = bundling.asset_hash[:16]
        self.sourcedir = s3_assets.Asset(
            self,
            "Sourcedir",
            path=str(REPO_ROOT / "training"),  # used when bundling is skipped (tests)
            asset_hash_type=cdk.AssetHashType.CUSTOM,
            asset_hash=bundling.asset_hash,
            bundling=cdk.BundlingOptions(
                image=cdk.DockerImage.from_registry("unused-local-bundling-only"),
                local=bundling,
                output_type=cdk.BundlingOutput.SINGLE_FILE,
            ),
        )
        self.locks = dynamodb.Table(
            self,
            "Locks",
            partition_key=dynamodb.Attribute(name="dataset", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=lake.key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            removal_policy=cdk.RemovalPolicy.DESTROY,  # only held while a run runs
        )
        self.job_role = iam.Role(
            self,
            "SageMakerRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"Sluice {config.stage}: training/evaluation jobs and served models",
        )
        self._grant_job_role(stack)
        #: where train and evaluate run: the stage's private subnets, or None
        self.job_network = self._job_network()
        self.functions = {step: self._function(step, topic) for step in STEPS}
        self.deploy_machine = self._state_machine(
            "Deploy",
            DEPLOY_ASL,
            names.deploy_state_machine_name(config.prefix),
            {
                "ResolveFunctionArn": self.functions["resolve"].function.function_arn,
                "RecordFunctionArn": self.functions["record"].function.function_arn,
                "ScalingFunctionArn": self.functions["scaling"].function.function_arn,
                "ModelRoleArn": self.job_role.role_arn,
                "KeyArn": lake.key.key_arn,
                **asl_network(self._model_network(), "Model"),
            },
        )
        training_arn = self._arn(
            "states", "stateMachine", names.training_state_machine_name(config.prefix), colon=True
        )
        self.release_machine = self._state_machine(
            "ReleaseLock",
            RELEASE_ASL,
            f"{config.prefix}-release-lock",
            {
                "LockTableName": self.locks.table_name,
                "RecordFunctionArn": self.functions["record"].function.function_arn,
                # by name: the training machine starts this one (no reference cycle)
                "TrainingStateMachineArn": training_arn,
            },
        )
        self.state_machine = self._state_machine(
            "Training",
            TRAINING_ASL,
            names.training_state_machine_name(config.prefix),
            {
                "LockTableName": self.locks.table_name,
                "PrepareFunctionArn": self.functions["prepare"].function.function_arn,
                "RegisterFunctionArn": self.functions["register"].function.function_arn,
                "RecordFunctionArn": self.functions["record"].function.function_arn,
                "SageMakerRoleArn": self.job_role.role_arn,
                "XgboostImageUri": self.image.uri,
                "SourcedirUri": self.sourcedir.s3_object_url,
                "KeyArn": lake.key.key_arn,
                "DeployStateMachineArn": self.deploy_machine.state_machine_arn,
                "ReleaseLockStateMachineArn": self.release_machine.state_machine_arn,
                **asl_network(self.job_network, "Job"),
            },
        )
        self._grant_functions(stack, topic)
        self._grant_training_machine(stack)
        self._grant_deploy_machine(stack)
        self._grant_release_machine(training_arn)
        self._triggers()
        self._release_unreleased_locks()
        self._teardown()

    # ------------------------------------------------------------------ pieces
    def _job_network(self) -> Workload | None:
        """Train and evaluate in the stage's private subnets, with a security group of their
        own: HTTPS out only, reaching S3 (channels, code, model, output) through the gateway
        endpoint. Both jobs run isolated (their code calls no AWS API), on one instance (so no
        traffic between instances; inter-container encryption is on for when there is). The
        execution role may put the jobs' network interfaces there only."""
        if self.network is None:
            return None
        return self.network.sagemaker_workload(
            Construct(self, "Jobs"),
            role=self.job_role,
            description=f"Sluice {self.config.stage}: training pipeline jobs (train, evaluate)",
        )

    def _job_conditions(self) -> dict[str, object]:
        """What the state machine's CreateTrainingJob/CreateProcessingJob must ask for: network
        isolation and inter-container encryption always, and with a private network its
        subnets and the jobs' security group (as the ASL's requests do)."""
        if self.job_network is not None:
            return self.job_network.sagemaker_create_conditions(isolated=True)
        return {
            "Bool": {
                "sagemaker:NetworkIsolation": "true",
                "sagemaker:InterContainerTrafficEncryption": "true",
            }
        }

    def _function(self, step: str, topic: sns.ITopic) -> PythonFunction:
        c = self.config
        env = {
            "PIPELINE_STEP": step,
            "POWERTOOLS_SERVICE_NAME": f"pipeline-{step}",
            "SLUICE_PREFIX": c.prefix,
            "CURATED_BUCKET": self.lake.curated_bucket.bucket_name,
            "ARTIFACTS_BUCKET": self.lake.artifacts_bucket.bucket_name,
            "LEDGER_TABLE": self.registry.ledger.table_name,
            "TOPIC_ARN": topic.topic_arn,
            "SOURCEDIR_URI": self.sourcedir.s3_object_url,
            "IMAGE_URI": self.image.uri,
            "APPROVAL": c.model_approval,
            "TRAINING_INSTANCE_TYPE": c.training_instance_type,
            "TRAINING_VOLUME_GB": str(c.training_volume_gb),
            "TRAINING_MAX_RUNTIME_SECONDS": str(c.training_max_runtime_seconds),
            "TRAINING_SPOT": "true" if c.training_spot else "false",
            "TRAINING_MAX_WAIT_SECONDS": str(c.training_max_wait_seconds),
            "PROCESSING_INSTANCE_TYPE": c.evaluation_instance_type,
            "PROCESSING_MAX_RUNTIME_SECONDS": str(c.evaluation_max_runtime_seconds),
            "POLL_SECONDS": str(c.pipeline_poll_seconds),
            "BACKOFF_SECONDS": ",".join(map(str, c.pipeline_backoff_seconds)),
            # the job code's content hash: recorded as each model's code version
            "SLUICE_CODE_VERSION": self.code_version,
        }
        if step in ENDPOINT_SETTINGS_STEPS:
            env["ENDPOINTS"] = self.endpoint_settings
        return PythonFunction(
            self,
            step.capitalize(),
            name="pipeline",
            config=c,
            description=f"Sluice training pipeline: {step}",
            timeout=Duration.minutes(5),
            memory_size=512,
            key=self.lake.key,
            network=self.network,
            uses=PIPELINE_SERVICES,
            no_dlq_reason=(
                "Invoked synchronously by the pipeline's state machines (which retry and catch "
                "its errors into the run's failure path) or, for teardown, by CloudFormation, "
                "which sees its error."
            ),
            concurrency_note=(
                "At most one run per dataset calls it at a time (the dataset lock), and a run "
                "calls it a few times; nothing fans out."
            ),
            with_specs=True,
            exclude=RUNTIME_PROVIDED,
            environment=env,
        )

    def _model_network(self) -> Workload | None:
        """Where the deploy steps' models run when the stage has a private network: its
        subnets and a security group of their own (``asl_network`` hands them to the deploy
        state machine). The models' execution role may create their network interfaces there
        only."""
        if self.network is None:
            return None
        return self.network.sagemaker_workload(
            Construct(self, "Models"),
            role=self.job_role,
            description=f"Sluice {self.config.stage}: SageMaker models",
        )

    def _state_machine(
        self, id_: str, asl: Path, name: str, substitutions: dict[str, str]
    ) -> sfn.StateMachine:
        log_group = encrypted_log_group(self, f"{id_}Logs", config=self.config, key=self.lake.key)
        role = iam.Role(
            self,
            f"{id_}Role",
            assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
            description=f"Sluice {self.config.stage} {name} state machine",
        )
        machine = sfn.StateMachine(
            self,
            id_,
            definition_body=sfn.DefinitionBody.from_file(str(asl)),
            definition_substitutions=substitutions,
            # named after the stage: started by hand and by rules, and the policies name its
            # executions without referring to the machine itself
            state_machine_name=name,
            role=role,
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True
            ),
        )
        default = role.node.try_find_child("DefaultPolicy")
        if default is not None:
            cdk.Validations.of(default).acknowledge(
                cdk.Acknowledgment(
                    id="AwsSolutions-IAM5[Resource::*]",
                    reason="CDK's statements for vended log delivery and X-Ray tracing, whose "
                    "actions support no resource-level permissions; this policy holds nothing "
                    "else.",
                )
            )
        return machine

    def _arn(self, service: str, resource: str, name: str, colon: bool = False) -> str:
        return cdk.Stack.of(self).format_arn(
            service=service,
            resource=resource,
            resource_name=name,
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME if colon else None,
        )

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

    def _runs_objects(self) -> tuple[str, str | None]:
        """``<artifacts ARN>/runs/*``: what runs write (and the cdk-nag finding id of it)."""
        arn, finding = self.lake.objects_arn(self.lake.artifacts_bucket, consumer=self)
        runs = f"{arn[:-1]}{names.RUNS_PREFIX}/*"
        return runs, (finding.replace("/*]", f"/{names.RUNS_PREFIX}/*]") if finding else None)

    def _policy(
        self, id_: str, role: iam.IRole, statements: list[iam.PolicyStatement], **reasons: str
    ) -> iam.Policy:
        """A policy of exact statements; ``reasons`` acknowledge cdk-nag findings by id."""
        policy = iam.Policy(self, id_, roles=[role], statements=statements)
        cdk.Validations.of(policy).acknowledge(
            *(cdk.Acknowledgment(id=finding, reason=reason) for finding, reason in reasons.items())
        )
        return policy

    # ------------------------------------------------------------------ permissions
    def _grant_job_role(self, stack: cdk.Stack) -> None:
        """Jobs read curated data and the code, read and write their run's prefix; models read
        their artifact. Nothing else in the lake."""
        lake = self.lake
        curated, curated_finding = lake.objects_arn(lake.curated_bucket, consumer=self)
        runs, runs_finding = self._runs_objects()
        log_streams = [self._arn("logs", "log-group", f"{g}:*", colon=True) for g in JOB_LOG_GROUPS]
        findings = {
            f"AwsSolutions-IAM5[Resource::{nag_resource(arn)}]": (
                "SageMaker writes each job's and endpoint's logs to streams named after it in "
                "its fixed /aws/sagemaker/* group; the statement is limited to those groups."
            )
            for arn in log_streams
        }
        if curated_finding:
            findings[curated_finding] = (
                "Jobs read the curated uploads a run lists in its input manifest (keys chosen "
                "at run time); read-only."
            )
        if runs_finding:
            findings[runs_finding] = (
                "Jobs write under the run's own prefix runs/<dataset>/<run>/ (known at run "
                "time) and read the model and champion copies there; nothing else of the bucket."
            )
        self._policy(
            "JobAccess",
            self.job_role,
            [
                iam.PolicyStatement(actions=["s3:GetObject"], resources=[curated]),
                iam.PolicyStatement(
                    actions=["s3:ListBucket"],
                    resources=[lake.curated_bucket.bucket_arn],
                ),
                iam.PolicyStatement(actions=["s3:GetObject", "s3:PutObject"], resources=[runs]),
                iam.PolicyStatement(
                    actions=["s3:ListBucket"],
                    resources=[lake.artifacts_bucket.bucket_arn],
                    conditions={"StringLike": {"s3:prefix": [f"{names.RUNS_PREFIX}/*"]}},
                ),
                iam.PolicyStatement(
                    actions=["s3:GetObject"],
                    resources=[self.sourcedir.bucket.arn_for_objects(self.sourcedir.s3_object_key)],
                ),
                iam.PolicyStatement(
                    actions=["s3:ListBucket"], resources=[self.sourcedir.bucket.bucket_arn]
                ),
                self._kms_via("s3"),
                iam.PolicyStatement(
                    actions=["kms:CreateGrant"],
                    resources=[lake.key.key_arn],
                    conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
                ),
                iam.PolicyStatement(
                    actions=[
                        "logs:CreateLogGroup",
                        "logs:CreateLogStream",
                        "logs:PutLogEvents",
                        "logs:DescribeLogStreams",
                    ],
                    resources=log_streams,
                ),
                iam.PolicyStatement(
                    actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                    resources=[self.image.repository_arn],
                ),
            ],
            **findings,
        )
        self._policy(
            "JobUnscoped",
            self.job_role,
            [
                iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"]),
                iam.PolicyStatement(
                    actions=["cloudwatch:PutMetricData"],
                    resources=["*"],
                    conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
                ),
            ],
            **{
                "AwsSolutions-IAM5[Resource::*]": "ecr:GetAuthorizationToken and "
                "cloudwatch:PutMetricData support no resource-level permissions; metrics are "
                "limited to SageMaker's namespaces by condition, the image pull to one repository."
            },
        )

    def _grant_functions(self, stack: cdk.Stack, topic: sns.ITopic) -> None:
        lake, prefix = self.lake, self.config.prefix
        curated, curated_finding = lake.objects_arn(lake.curated_bucket, consumer=self)
        runs, runs_finding = self._runs_objects()
        ledger = self.registry.ledger.table_arn
        endpoint = self._arn("sagemaker", "endpoint", f"{prefix}-*")
        config = self._arn("sagemaker", "endpoint-config", f"{prefix}-*")
        model = self._arn("sagemaker", "model", f"{prefix}-*")
        group = self._arn("sagemaker", "model-package-group", f"{prefix}-*")
        package = self._arn("sagemaker", "model-package", f"{prefix}-*/*")
        sagemaker_reason = (
            "Endpoints, configs, models and packages are named per stage, dataset and run at "
            "run time; the statement is limited to the stage's prefix and exact actions."
        )

        def sagemaker_findings(*arns: str) -> dict[str, str]:
            return {
                f"AwsSolutions-IAM5[Resource::{nag_resource(a)}]": sagemaker_reason for a in arns
            }

        runs_reason = (
            {runs_finding: "Run artifacts live under runs/<dataset>/<run>/, known at run time."}
            if runs_finding
            else {}
        )
        fns = self.functions
        self._policy(
            "PrepareAccess",
            fns["prepare"].role,
            [
                iam.PolicyStatement(
                    actions=["s3:ListBucket"], resources=[lake.curated_bucket.bucket_arn]
                ),
                iam.PolicyStatement(actions=["s3:GetObject"], resources=[curated]),
                iam.PolicyStatement(actions=["s3:GetObject", "s3:PutObject"], resources=[runs]),
                self._kms_via("s3", "dynamodb"),
                iam.PolicyStatement(
                    actions=[
                        "sagemaker:DescribeEndpoint",
                        "sagemaker:DescribeEndpointConfig",
                        "sagemaker:DescribeModel",
                        "sagemaker:ListTags",
                    ],
                    resources=[endpoint, config, model],
                ),
                # the serving model's training key: a run with the same inputs is skipped
                iam.PolicyStatement(
                    actions=["sagemaker:DescribeModelPackage"], resources=[package]
                ),
                iam.PolicyStatement(actions=["dynamodb:PutItem"], resources=[ledger]),
            ],
            **sagemaker_findings(endpoint, config, model, package),
            **runs_reason,
            **({curated_finding: "Prepare reads the manifests of the dataset's uploads."}
               if curated_finding else {}),
        )  # fmt: skip
        self._policy(
            "RegisterAccess",
            fns["register"].role,
            [
                iam.PolicyStatement(actions=["s3:GetObject", "s3:PutObject"], resources=[runs]),
                self._kms_via("s3", "dynamodb"),
                iam.PolicyStatement(
                    actions=[
                        "sagemaker:CreateModelPackage",
                        "sagemaker:DescribeModelPackage",
                        "sagemaker:UpdateModelPackage",
                        "sagemaker:AddTags",
                    ],
                    resources=[group, package],
                ),
                iam.PolicyStatement(actions=["dynamodb:UpdateItem"], resources=[ledger]),
            ],
            **sagemaker_findings(group, package),
            **runs_reason,
        )
        self._policy(
            "ResolveAccess",
            fns["resolve"].role,
            [
                self._kms_via("dynamodb"),
                iam.PolicyStatement(
                    actions=["sagemaker:DescribeModelPackage"], resources=[package]
                ),
                iam.PolicyStatement(
                    actions=["sagemaker:DescribeEndpoint", "sagemaker:DeleteEndpoint"],
                    resources=[endpoint],
                ),
                # what the endpoint serves now: its config's variant and the model's version
                iam.PolicyStatement(
                    actions=["sagemaker:DescribeEndpointConfig", "sagemaker:DescribeModel"],
                    resources=[config, model],
                ),
                iam.PolicyStatement(
                    actions=["dynamodb:UpdateItem", "dynamodb:GetItem"], resources=[ledger]
                ),
            ],
            **sagemaker_findings(package, endpoint, config, model),
        )
        executions = [
            self._arn("states", "execution", f"{name}:*", colon=True)
            for name in (
                names.training_state_machine_name(prefix),
                names.deploy_state_machine_name(prefix),
            )
        ]
        self._policy(
            "RecordAccess",
            fns["record"].role,
            [
                self._kms_via("dynamodb", "sns"),
                iam.PolicyStatement(
                    actions=["dynamodb:UpdateItem", "dynamodb:GetItem"], resources=[ledger]
                ),
                iam.PolicyStatement(actions=["sns:Publish"], resources=[topic.topic_arn]),
                iam.PolicyStatement(actions=["states:GetExecutionHistory"], resources=executions),
                # which rollback alarm stopped an update, and when; then reject the challenger
                iam.PolicyStatement(
                    actions=["cloudwatch:DescribeAlarmHistory"],
                    resources=self._rollback_alarm_arns(),
                ),
                iam.PolicyStatement(actions=["sagemaker:UpdateModelPackage"], resources=[package]),
                # how a run that never reached its own end ended (run_stopped)
                iam.PolicyStatement(actions=["states:DescribeExecution"], resources=executions[:1]),
            ],
            **sagemaker_findings(package),
            **{
                f"AwsSolutions-IAM5[Resource::{nag_resource(e)}]": "The executions of this "
                "stage's two pipeline state machines, read for the step durations of a run "
                "(and how a stopped run ended)."
                for e in executions
            },
        )
        teardown = self._policy(
            "TeardownAccess",
            fns["teardown"].role,
            [
                iam.PolicyStatement(
                    actions=[
                        "sagemaker:ListEndpoints",
                        "sagemaker:ListEndpointConfigs",
                        "sagemaker:ListModels",
                        "sagemaker:ListModelPackages",
                    ],
                    resources=["*"],
                ),
                iam.PolicyStatement(
                    actions=[
                        "sagemaker:ListTags",
                        "sagemaker:DeleteEndpoint",
                        "sagemaker:DeleteEndpointConfig",
                        "sagemaker:DeleteModel",
                    ],
                    resources=[endpoint, config, model],
                ),
                iam.PolicyStatement(actions=["sagemaker:DeleteModelPackage"], resources=[package]),
            ],
            **sagemaker_findings(endpoint, config, model, package),
            **{
                "AwsSolutions-IAM5[Resource::*]": "SageMaker's List* actions support no "
                "resource-level permissions; deletions are limited to the stage's prefix and "
                "to resources tagged as made by the pipeline (checked in code)."
            },
        )
        self._grant_scaling(fns["teardown"].role, "TeardownScaling", teardown_only=True)
        self._grant_scaling(fns["scaling"].role, "ScalingAccess", teardown_only=False)
        self.teardown_policy = teardown

    def _rollback_alarm_arns(self) -> list[str]:
        return [
            alarm.alarm_arn
            for dataset in self.rollout.datasets.values()
            for alarm in (dataset.errors_alarm, dataset.latency_alarm)
        ]

    def _grant_scaling(self, role: iam.IRole, id_: str, *, teardown_only: bool) -> None:
        """Application Auto Scaling of the stage's endpoints: the scaling function registers
        and releases variants; the teardown only releases them (before their endpoint goes).
        Registering and deregistering also need what Application Auto Scaling reads and changes
        of the variant (DescribeEndpoint, ...) and of its target tracking alarms."""
        prefix = self.config.prefix
        endpoint = self._arn("sagemaker", "endpoint", f"{prefix}-*")
        config = self._arn("sagemaker", "endpoint-config", f"{prefix}-*")
        tracking = self._arn(
            "cloudwatch", "alarm", f"TargetTracking-endpoint/{prefix}-*", colon=True
        )
        targets = self._arn("application-autoscaling", "scalable-target", "*")
        writes = ["application-autoscaling:DeregisterScalableTarget"]
        reads = ["application-autoscaling:DescribeScalableTargets", "cloudwatch:DescribeAlarms"]
        if not teardown_only:
            writes += [
                "application-autoscaling:RegisterScalableTarget",
                "application-autoscaling:PutScalingPolicy",
            ]
            reads += ["application-autoscaling:DescribeScalingPolicies"]
        statements = [
            # scalable-target ARNs end in an id Application Auto Scaling generates
            iam.PolicyStatement(actions=writes, resources=[targets]),
            iam.PolicyStatement(actions=reads, resources=["*"]),
            iam.PolicyStatement(
                actions=[
                    "sagemaker:DescribeEndpoint",
                    "sagemaker:DescribeEndpointConfig",
                    "sagemaker:UpdateEndpointWeightsAndCapacities",
                ],
                resources=[endpoint, config],
            ),
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms"],
                resources=[tracking],
            ),
        ]
        if not teardown_only:
            statements.append(
                iam.PolicyStatement(
                    actions=["iam:CreateServiceLinkedRole"],
                    resources=[
                        cdk.Stack.of(self).format_arn(
                            service="iam",
                            region="",
                            resource="role",
                            resource_name=f"aws-service-role/{SCALING_SERVICE}/{SCALING_ROLE}",
                        )
                    ],
                    conditions={"StringLike": {"iam:AWSServiceName": SCALING_SERVICE}},
                )
            )
        self._policy(
            id_,
            role,
            statements,
            **{
                "AwsSolutions-IAM5[Resource::*]": "The Describe actions (scalable targets, "
                "scaling policies, alarms) support no resource-level permissions and are "
                "read-only.",
                f"AwsSolutions-IAM5[Resource::{nag_resource(targets)}]": "Scalable targets are "
                "named by an id Application Auto Scaling generates at registration; the "
                "function only ever names the stage's endpoint variants "
                "(endpoint/<prefix>-<dataset>/variant/AllTraffic).",
                f"AwsSolutions-IAM5[Resource::{nag_resource(endpoint)}]": "The stage's dataset "
                "endpoints, named per stage and dataset.",
                f"AwsSolutions-IAM5[Resource::{nag_resource(config)}]": "Their endpoint configs, "
                "named per deploy at run time.",
                f"AwsSolutions-IAM5[Resource::{nag_resource(tracking)}]": "The target tracking "
                "alarms Application Auto Scaling names after each endpoint's variant.",
            },
        )

    def _grant_training_machine(self, stack: cdk.Stack) -> None:
        prefix = self.config.prefix
        role = self.state_machine.role
        training_jobs = self._arn("sagemaker", "training-job", f"{prefix}-*")
        processing_jobs = self._arn("sagemaker", "processing-job", f"{prefix}-*")
        deploys = self._arn(
            "states", "execution", f"{names.deploy_state_machine_name(prefix)}:*", colon=True
        )
        runs = self._arn(
            "states", "execution", f"{names.training_state_machine_name(prefix)}:*", colon=True
        )
        rules = [self._arn("events", "rule", r) for r in SYNC_RULES]
        fns = self.functions
        self._policy(
            "TrainingMachineAccess",
            role,
            [
                iam.PolicyStatement(
                    actions=["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"],
                    resources=[self.locks.table_arn],
                ),
                self._kms_via("dynamodb"),
                iam.PolicyStatement(
                    actions=["lambda:InvokeFunction"],
                    resources=[
                        fns[s].function.function_arn for s in ("prepare", "register", "record")
                    ],
                ),
                iam.PolicyStatement(
                    actions=["sagemaker:CreateTrainingJob", "sagemaker:CreateProcessingJob"],
                    resources=[training_jobs, processing_jobs],
                    conditions=self._job_conditions(),
                ),
                iam.PolicyStatement(
                    actions=[
                        "sagemaker:DescribeTrainingJob",
                        "sagemaker:StopTrainingJob",
                        "sagemaker:DescribeProcessingJob",
                        "sagemaker:StopProcessingJob",
                        "sagemaker:AddTags",
                    ],
                    resources=[training_jobs, processing_jobs],
                ),
                self._pass_job_role(),
                iam.PolicyStatement(
                    actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                    resources=rules,
                ),
                iam.PolicyStatement(
                    actions=["states:StartExecution"],
                    resources=[
                        self.deploy_machine.state_machine_arn,
                        self._arn(
                            "states",
                            "stateMachine",
                            names.training_state_machine_name(prefix),
                            colon=True,
                        ),
                    ],
                ),
                iam.PolicyStatement(
                    actions=["states:DescribeExecution", "states:StopExecution"],
                    resources=[deploys],
                ),
                # a lock held by a run that no longer runs: is it? then release it for it
                iam.PolicyStatement(actions=["states:DescribeExecution"], resources=[runs]),
                iam.PolicyStatement(
                    actions=["states:StartExecution"],
                    resources=[self.release_machine.state_machine_arn],
                ),
            ],
            **{
                f"AwsSolutions-IAM5[Resource::{nag_resource(a)}]": "Jobs are named per dataset "
                "and run at run time; limited to the stage's prefix and exact actions."
                for a in (training_jobs, processing_jobs)
            },
            **{
                f"AwsSolutions-IAM5[Resource::{nag_resource(deploys)}]": "The deploy steps' "
                "executions, named per run at run time (a .sync:2 task polls and stops them).",
                f"AwsSolutions-IAM5[Resource::{nag_resource(runs)}]": "Runs of this machine, "
                "named at start: a run that finds its dataset's lock held reads whether the "
                "holder still runs (DescribeExecution only).",
            },
        )

    def _grant_deploy_machine(self, stack: cdk.Stack) -> None:
        prefix = self.config.prefix
        endpoint = self._arn("sagemaker", "endpoint", f"{prefix}-*")
        config = self._arn("sagemaker", "endpoint-config", f"{prefix}-*")
        model = self._arn("sagemaker", "model", f"{prefix}-*")
        fns = self.functions
        self._policy(
            "DeployMachineAccess",
            self.deploy_machine.role,
            [
                iam.PolicyStatement(
                    actions=["lambda:InvokeFunction"],
                    resources=[
                        fns[s].function.function_arn for s in ("resolve", "record", "scaling")
                    ],
                ),
                iam.PolicyStatement(
                    actions=["sagemaker:CreateModel", "sagemaker:AddTags"], resources=[model]
                ),
                iam.PolicyStatement(
                    actions=["sagemaker:CreateEndpointConfig", "sagemaker:AddTags"],
                    resources=[config],
                ),
                iam.PolicyStatement(
                    actions=[
                        "sagemaker:CreateEndpoint",
                        "sagemaker:UpdateEndpoint",
                        "sagemaker:DescribeEndpoint",
                        "sagemaker:AddTags",
                    ],
                    resources=[endpoint, config],
                ),
                self._pass_job_role(),
                # the endpoint's storage volume is encrypted with the lake key
                iam.PolicyStatement(
                    actions=["kms:CreateGrant", "kms:DescribeKey"],
                    resources=[self.lake.key.key_arn],
                    conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
                ),
            ],
            **{
                f"AwsSolutions-IAM5[Resource::{nag_resource(a)}]": "Models, endpoint configs "
                "and the endpoint are named per stage and dataset (models and configs per "
                "deploy) at run time; limited to the stage's prefix and exact actions."
                for a in (endpoint, config, model)
            },
        )

    def _grant_release_machine(self, training_arn: str) -> None:
        self._policy(
            "ReleaseMachineAccess",
            self.release_machine.role,
            [
                iam.PolicyStatement(
                    actions=["dynamodb:DeleteItem"], resources=[self.locks.table_arn]
                ),
                self._kms_via("dynamodb"),
                iam.PolicyStatement(
                    actions=["lambda:InvokeFunction"],
                    resources=[self.functions["record"].function.function_arn],
                ),
                iam.PolicyStatement(actions=["states:StartExecution"], resources=[training_arn]),
            ],
        )

    def _pass_job_role(self) -> iam.PolicyStatement:
        return iam.PolicyStatement(
            actions=["iam:PassRole"],
            resources=[self.job_role.role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
        )

    # ------------------------------------------------------------------ wiring
    def _triggers(self) -> None:
        """Uploads start runs; a manual approval in the model registry starts a deploy."""
        detail = events.EventField.from_path
        self.upload_rule = events.Rule(
            self,
            "OnDatasetCurated",
            description="Every curated upload starts a training run of its dataset",
            # uploads only: labelled feedback (origin "feedback") is trained on by the next run
            event_pattern=events.EventPattern(
                source=[names.INGESTION_EVENT_SOURCE],
                detail_type=[names.DATASET_CURATED],
                detail={"origin": [names.ORIGIN_UPLOAD]},
            ),
            targets=[
                targets.SfnStateMachine(
                    self.state_machine,
                    input=events.RuleTargetInput.from_object(
                        {
                            "dataset": detail("$.detail.dataset"),
                            "trigger": {
                                "type": "upload",
                                "key": detail("$.detail.source.key"),
                                "version": detail("$.detail.source.version_id"),
                                "manifest": detail("$.detail.manifest"),
                                "event": detail("$.id"),
                            },
                        }
                    ),
                )
            ],
        )
        self.approval_rule = events.Rule(
            self,
            "OnModelApproved",
            description="A model package approved by a person is deployed (the deploy steps)",
            event_pattern=events.EventPattern(
                source=["aws.sagemaker"],
                detail_type=["SageMaker Model Package State Change"],
                detail={
                    "ModelPackageGroupName": self.registry.group_names,
                    "ModelApprovalStatus": ["Approved"],
                    "CustomerMetadataProperties": {"approval": ["manual"]},
                },
            ),
            targets=[targets.SfnStateMachine(self.deploy_machine)],
        )

    def _release_unreleased_locks(self) -> None:
        """A run whose execution ends without reaching its own release of the dataset's lock
        (stopped by hand, past the machine's timeout, failed where nothing catches) would hold
        it for good: Step Functions announces every such end on EventBridge, and the release
        machine frees the lock if that execution still holds it, records the run, and starts
        the follow-up run queued triggers asked for. (A run that finds the lock held by an
        execution that no longer runs starts the same release: a missed event heals too.)"""
        self.release_rule = events.Rule(
            self,
            "OnRunEndedUnreleased",
            description="A training run that ended without releasing its dataset's lock has "
            "it released (and the queued follow-up started)",
            event_pattern=events.EventPattern(
                source=["aws.states"],
                detail_type=["Step Functions Execution Status Change"],
                detail={
                    "status": list(UNRELEASED_ENDS),
                    "stateMachineArn": [self.state_machine.state_machine_arn],
                },
            ),
            targets=[targets.SfnStateMachine(self.release_machine)],
        )

    def _teardown(self) -> None:
        retain = self.config.retain_data
        self.teardown = cdk.CustomResource(
            self,
            "RemoveCreatedOnDelete",
            service_token=self.functions["teardown"].function.function_arn,
            resource_type="Custom::PipelineTeardown",
            properties={
                "Stage": self.config.stage,
                "Prefix": self.config.prefix,
                # where the stage does not retain data, packages go too (groups can then go)
                "PackageGroups": json.dumps([] if retain else self.registry.group_names),
            },
        )
        # deleted first: the function must still be allowed to delete when it runs
        self.teardown.node.add_dependency(self.teardown_policy)
        self.teardown.node.add_dependency(self.state_machine)
