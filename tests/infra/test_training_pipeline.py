"""The training pipeline's infrastructure: definitions, permissions, registry, triggers."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from aws_cdk.assertions import Template

from datasets import names
from infra.config import ConfigError, stage_config
from infra.model_registry import declared_datasets
from infra.training_pipeline import DEPLOY_ASL, RELEASE_ASL, TRAINING_ASL
from tests.infra.conftest import make_app

PLACEHOLDER = re.compile(r"\$\{([A-Za-z]+)\}")


@pytest.fixture(scope="module")
def dev(templates: Callable[[str], dict[str, Template]]) -> dict[str, Template]:
    return templates("dev")


@pytest.fixture(scope="module")
def prod(templates: Callable[[str], dict[str, Template]]) -> dict[str, Template]:
    return templates("prod")


def _machine(template: Template, name: str) -> dict[str, Any]:
    (machine,) = [
        m["Properties"]
        for m in template.find_resources("AWS::StepFunctions::StateMachine").values()
        if m["Properties"].get("StateMachineName") == name
    ]
    return dict(machine)


def _token(value: Any) -> str:
    """A substituted value as a readable string (what CloudFormation resolves at deploy)."""
    return value if isinstance(value, str) else "<" + json.dumps(value, sort_keys=True) + ">"


def _rendered(asl: Any, machine: dict[str, Any]) -> dict[str, Any]:
    text = asl.read_text()
    for name, value in machine["DefinitionSubstitutions"].items():
        text = text.replace("${" + name + "}", _token(value).replace('"', "'"))
    return dict(json.loads(text))


@pytest.mark.parametrize(
    ("asl", "name"),
    [
        (TRAINING_ASL, "sluice-dev-training"),
        (DEPLOY_ASL, "sluice-dev-deploy"),
        (RELEASE_ASL, "sluice-dev-release-lock"),
    ],
)
def test_definition_is_the_asl_file_with_every_placeholder_substituted(
    dev: dict[str, Template], asl: Any, name: str
) -> None:
    machine = _machine(dev["sluice-dev-app"], name)
    # the file itself is the definition (an asset), CloudFormation fills in the substitutions
    assert set(machine["DefinitionS3Location"]) == {"Bucket", "Key"}
    assert set(PLACEHOLDER.findall(asl.read_text())) == set(machine["DefinitionSubstitutions"])
    rendered = _rendered(asl, machine)
    assert rendered["States"].keys() == json.loads(asl.read_text())["States"].keys()
    assert "${" not in json.dumps(rendered).replace("${AWS::", "")


def test_substitutions_carry_only_arns_and_names(dev: dict[str, Template]) -> None:
    for name in ("sluice-dev-training", "sluice-dev-deploy", "sluice-dev-release-lock"):
        for key, value in _machine(dev["sluice-dev-app"], name)["DefinitionSubstitutions"].items():
            text = json.dumps(value)
            if key.endswith("Arn"):
                assert '"Arn"' in text or "Ref" in text or "Arn" in text, (key, value)
            elif key.endswith("TableName"):
                assert "Ref" in text
            elif key == "XgboostImageUri":
                assert value["Fn::FindInMap"][1:] == [{"Ref": "AWS::Region"}, "uri"]
            elif key.endswith(("SubnetIds", "SecurityGroupIds")):
                assert value == ""  # ids of the private network; dev has none
            else:
                assert key == "SourcedirUri" and "s3://cdk-" in text, (key, value)
            assert not isinstance(value, int | float | bool)


def _states(asl: Any) -> dict[str, Any]:
    return dict(json.loads(asl.read_text())["States"])


def test_the_first_state_takes_the_datasets_lock() -> None:
    definition = json.loads(TRAINING_ASL.read_text())
    first = definition["States"][definition["StartAt"]]
    assert first["Resource"] == "arn:aws:states:::dynamodb:putItem"
    assert first["Parameters"]["ConditionExpression"] == "attribute_not_exists(dataset)"
    (queued,) = [c for c in first["Catch"] if "ConditionalCheckFailed" in c["ErrorEquals"][0]]
    assert queued["Next"] == "Queue behind the running run"


@pytest.mark.parametrize("asl", [TRAINING_ASL, DEPLOY_ASL])
def test_every_task_has_a_timeout_retry_and_catch(asl: Any) -> None:
    for name, state in _states(asl).items():
        if state["Type"] != "Task":
            continue
        assert "TimeoutSeconds" in state, name
        assert state.get("Retry"), name
        assert state.get("Catch"), name


@pytest.mark.parametrize("asl", [TRAINING_ASL, DEPLOY_ASL])
def test_sagemaker_api_errors_are_retried_only_when_throttled(asl: Any) -> None:
    states = _states(asl)
    calls = [
        (n, s)
        for n, s in states.items()
        if s["Type"] == "Task" and s["Resource"].startswith("arn:aws:states:::sagemaker:")
    ]
    assert calls
    for name, state in calls:
        # no blind Retry on the error name throttling shares with validation errors
        assert all(
            "SageMaker.AmazonSageMakerException" not in r["ErrorEquals"] for r in state["Retry"]
        )
        (caught,) = [
            c for c in state["Catch"] if c["ErrorEquals"] == ["SageMaker.AmazonSageMakerException"]
        ]
        choice = states[caught["Next"]]
        throttled = choice["Choices"][0]
        assert {"Variable": "$.error.Cause", "StringMatches": "*Throttl*"} in throttled["And"]
        assert throttled["And"][1]["NumericLessThan"] == 5  # bounded
        backoff = states[throttled["Next"]]
        assert "States.MathRandom" in backoff["Parameters"]["wait.$"]  # jitter
        assert name in _reachable(states, states[backoff["Next"]]["Next"])  # then call again


def _reachable(states: dict[str, Any], start: str) -> set[str]:
    """``start`` and the states it leads to through Pass and Choice states (no task between)."""
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        state = states[name]
        if state["Type"] == "Pass":
            todo.append(state["Next"])
        elif state["Type"] == "Choice":
            todo += [c["Next"] for c in state["Choices"]] + [state["Default"]]
    return seen


def test_job_names_carry_the_attempt_so_a_retried_create_never_meets_its_own_job() -> None:
    states = _states(TRAINING_ASL)
    assert "$.retry.count" in states["Train"]["Parameters"]["TrainingJobName.$"]
    assert "$.retry.count" in states["Evaluate"]["Parameters"]["ProcessingJobName.$"]


def test_training_runs_the_xgboost_image_isolated_encrypted_with_checkpoints() -> None:
    train = _states(TRAINING_ASL)["Train"]
    assert train["Resource"] == "arn:aws:states:::sagemaker:createTrainingJob.sync"
    p = train["Parameters"]
    assert p["AlgorithmSpecification"]["TrainingImage"] == "${XgboostImageUri}"
    assert {m["Name"] for m in p["AlgorithmSpecification"]["MetricDefinitions"]} >= {
        "validation:roc_auc",
        "test:roc_auc",
        "best_iteration",
    }
    assert p["EnableNetworkIsolation"] is True
    assert p["EnableInterContainerTrafficEncryption"] is True
    assert p["ResourceConfig"]["InstanceCount"] == 1
    assert p["ResourceConfig"]["VolumeKmsKeyId"] == p["OutputDataConfig"]["KmsKeyId"] == "${KeyArn}"
    assert p["EnableManagedSpotTraining.$"] == "$.run.train.spot"
    assert p["CheckpointConfig"]["S3Uri.$"] == "$.run.train.checkpoints"
    assert p["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3DataType"] == "ManifestFile"
    evaluate = _states(TRAINING_ASL)["Evaluate"]
    assert evaluate["Resource"] == "arn:aws:states:::sagemaker:createProcessingJob.sync"
    inputs = {i["InputName"] for i in evaluate["Parameters"]["ProcessingInputs"]}
    assert inputs == {"code", "data", "challenger", "champion", "spec"}


def _function_env(template: Template, step: str) -> dict[str, Any]:
    for resource in template.find_resources("AWS::Lambda::Function").values():
        env = resource["Properties"].get("Environment", {}).get("Variables", {})
        if env.get("PIPELINE_STEP") == step:
            return dict(env)
    raise AssertionError(step)


def test_stage_config_reaches_the_jobs_spot_approval_and_instance_types(
    dev: dict[str, Template], prod: dict[str, Template]
) -> None:
    d = _function_env(dev["sluice-dev-app"], "prepare")
    p = _function_env(prod["sluice-prod-app"], "prepare")
    assert (d["APPROVAL"], p["APPROVAL"]) == ("auto", "manual")
    assert d["TRAINING_SPOT"] == "true" and int(d["TRAINING_MAX_WAIT_SECONDS"]) >= int(
        d["TRAINING_MAX_RUNTIME_SECONDS"]
    )
    assert d["TRAINING_INSTANCE_TYPE"] == "ml.m5.xlarge"
    gpu = make_app("dev", training_instance_type="ml.g5.xlarge")
    template = Template.from_stack(gpu.node.find_child("sluice-dev-app"))  # type: ignore[arg-type]
    assert _function_env(template, "prepare")["TRAINING_INSTANCE_TYPE"] == "ml.g5.xlarge"


def test_more_than_one_training_instance_is_rejected_at_synth() -> None:
    with pytest.raises(ConfigError, match="one training instance only"):
        stage_config("dev", {"training_instance_count": 2})


def _statements(template: Template, role_fragment: str) -> list[dict[str, Any]]:
    out = []
    for policy in template.find_resources("AWS::IAM::Policy").values():
        roles = json.dumps(policy["Properties"]["Roles"])
        if role_fragment in roles:
            out += policy["Properties"]["PolicyDocument"]["Statement"]
    return out


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else list(actions)


def test_state_machine_may_pass_only_the_sagemaker_role_to_sagemaker(
    dev: dict[str, Template],
) -> None:
    app = dev["sluice-dev-app"]
    for role in ("TrainingPipelineTrainingRole", "TrainingPipelineDeployRole"):
        statements = _statements(app, role)
        (passing,) = [s for s in statements if "iam:PassRole" in _actions(s)]
        assert "TrainingPipelineSageMakerRole" in json.dumps(passing["Resource"])
        assert passing["Condition"] == {
            "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
        }
        for statement in statements:
            assert not any(a.endswith(":*") or a == "*" for a in _actions(statement)), statement


def test_training_machine_manages_the_sync_rules_and_only_its_jobs(
    dev: dict[str, Template],
) -> None:
    statements = _statements(dev["sluice-dev-app"], "TrainingPipelineTrainingRole")
    (rules,) = [s for s in statements if "events:PutRule" in _actions(s)]
    text = json.dumps(rules["Resource"])
    assert "StepFunctionsGetEventsForSageMakerTrainingJobsRule" in text
    assert "StepFunctionsGetEventsForSageMakerProcessingJobsRule" in text
    assert "StepFunctionsGetEventsForStepFunctionsExecutionRule" in text
    (jobs,) = [s for s in statements if "sagemaker:CreateTrainingJob" in _actions(s)]
    assert "training-job/sluice-dev-*" in json.dumps(jobs["Resource"])
    assert "processing-job/sluice-dev-*" in json.dumps(jobs["Resource"])


def test_job_role_reads_curated_data_and_code_and_writes_only_under_runs(
    dev: dict[str, Template],
) -> None:
    statements = _statements(dev["sluice-dev-app"], "TrainingPipelineSageMakerRole")
    writes = [s for s in statements if "s3:PutObject" in _actions(s)]
    assert len(writes) == 1 and json.dumps(writes[0]["Resource"]).endswith('"/runs/*"]]}')
    (curated,) = [
        s
        for s in statements
        if _actions(s) == ["s3:GetObject"] and "Curated" in json.dumps(s["Resource"])
    ]
    assert curated
    for statement in statements:
        if statement["Resource"] == "*":
            assert set(_actions(statement)) <= {
                "ecr:GetAuthorizationToken",
                "cloudwatch:PutMetricData",
            }
        assert not any(a.startswith("s3:Delete") for a in _actions(statement))
    (key,) = [s for s in statements if "kms:Decrypt" in _actions(s)]
    assert "kms:ViaService" in json.dumps(key["Condition"])


def test_one_model_package_group_per_declared_dataset(dev: dict[str, Template]) -> None:
    groups = dev["sluice-dev-data"].find_resources("AWS::SageMaker::ModelPackageGroup")
    found = sorted(g["Properties"]["ModelPackageGroupName"] for g in groups.values())
    assert found == [names.model_package_group_name("sluice-dev", d) for d in declared_datasets()]
    assert {"churn", "leads"} <= set(declared_datasets())


def test_ledger_is_encrypted_recoverable_and_retained_in_prod(
    dev: dict[str, Template], prod: dict[str, Template]
) -> None:
    for stage, templates in (("dev", dev), ("prod", prod)):
        tables = templates[f"sluice-{stage}-data"].find_resources("AWS::DynamoDB::Table")
        (ledger,) = [t for k, t in tables.items() if "RunLedger" in k]
        props = ledger["Properties"]
        assert [k["AttributeName"] for k in props["KeySchema"]] == ["dataset", "run_id"]
        assert props["SSESpecification"]["SSEEnabled"] is True
        assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
        assert ledger["DeletionPolicy"] == ("Retain" if stage == "prod" else "Delete")


def test_curated_uploads_and_manual_approvals_start_the_right_machines(
    dev: dict[str, Template],
) -> None:
    rules = {
        k: r  # (scheduled rules have no pattern: test_monitoring.py)
        for k, r in dev["sluice-dev-app"].find_resources("AWS::Events::Rule").items()
        if "EventPattern" in r["Properties"]
    }
    (upload,) = [
        r
        for r in rules.values()
        if r["Properties"]["EventPattern"].get("source") == ["sluice.ingestion"]
    ]
    assert upload["Properties"]["EventPattern"]["detail-type"] == ["DatasetCurated"]
    transform = upload["Properties"]["Targets"][0]["InputTransformer"]
    assert '"type":"upload"' in transform["InputTemplate"]
    (approval,) = [
        r
        for r in rules.values()
        if "ModelApprovalStatus" in r["Properties"]["EventPattern"].get("detail", {})
    ]
    detail = approval["Properties"]["EventPattern"]["detail"]
    assert detail["ModelApprovalStatus"] == ["Approved"]
    assert detail["CustomerMetadataProperties"] == {"approval": ["manual"]}
    assert detail["ModelPackageGroupName"] == [f"sluice-dev-{d}" for d in declared_datasets()]


def test_state_machines_log_encrypted_and_trace(dev: dict[str, Template]) -> None:
    app = dev["sluice-dev-app"]
    for name in ("sluice-dev-training", "sluice-dev-deploy"):
        machine = _machine(app, name)
        assert machine["TracingConfiguration"] == {"Enabled": True}
        assert machine["LoggingConfiguration"]["Level"] == "ALL"
    for key, group in app.find_resources("AWS::Logs::LogGroup").items():
        if key.startswith("TrainingPipeline") and ("TrainingLogs" in key or "DeployLogs" in key):
            assert "KmsKeyId" in group["Properties"]
            assert group["Properties"]["RetentionInDays"] == 30


def test_stack_deletion_removes_what_runs_created(
    dev: dict[str, Template], prod: dict[str, Template]
) -> None:
    (dev_teardown,) = dev["sluice-dev-app"].find_resources("Custom::PipelineTeardown").values()
    (prod_teardown,) = prod["sluice-prod-app"].find_resources("Custom::PipelineTeardown").values()
    assert json.loads(dev_teardown["Properties"]["PackageGroups"]) == [
        f"sluice-dev-{d}" for d in declared_datasets()
    ]
    assert json.loads(prod_teardown["Properties"]["PackageGroups"]) == []  # prod retains them
    statements = _statements(dev["sluice-dev-app"], "TrainingPipelineTeardown")
    deletes = [a for s in statements for a in _actions(s) if ":Delete" in a or ":Dereg" in a]
    assert set(deletes) == {
        "sagemaker:DeleteEndpoint",
        "sagemaker:DeleteEndpointConfig",
        "sagemaker:DeleteModel",
        "sagemaker:DeleteModelPackage",
        # each endpoint's autoscaling first (and the target tracking alarms that go with it)
        "application-autoscaling:DeregisterScalableTarget",
        "cloudwatch:DeleteAlarms",
    }
