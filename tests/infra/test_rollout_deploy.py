"""The pipeline's deploy step rolls out safely: the deploy state machine's update carries each
dataset's DeploymentConfig with its rollback alarms, the endpoint settings reach the deploy as
the stage (or ``-c endpoints``) says, autoscaling and the rollback record have exactly the
permissions they need, and models run in the private subnets when the stage has them."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from aws_cdk.assertions import Template

from datasets import names
from infra.config import STAGES, ConfigError
from infra.rollout import declared_datasets
from infra.training_pipeline import DEPLOY_ASL
from tests.infra.conftest import make_app, stack

DEV = STAGES["dev"]


@pytest.fixture(scope="module")
def dev(templates: Callable[[str], dict[str, Template]]) -> Template:
    return templates("dev")["sluice-dev-app"]


@pytest.fixture(scope="module")
def in_vpc() -> Template:
    return Template.from_stack(stack(make_app("dev", vpc="create"), "sluice-dev-app"))


def _states() -> dict[str, Any]:
    return dict(json.loads(DEPLOY_ASL.read_text())["States"])


def _env(template: Template, step: str) -> dict[str, str]:
    for function in template.find_resources("AWS::Lambda::Function").values():
        env = function["Properties"].get("Environment", {}).get("Variables", {})
        if env.get("PIPELINE_STEP") == step:
            return dict(env)
    raise AssertionError(step)


def _statements(template: Template, role_fragment: str) -> list[dict[str, Any]]:
    found = []
    for policy in template.find_resources("AWS::IAM::Policy").values():
        if role_fragment in json.dumps(policy["Properties"]["Roles"]):
            found += policy["Properties"]["PolicyDocument"]["Statement"]
    return found


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else list(actions)


def _granting(statements: list[dict[str, Any]], action: str) -> list[dict[str, Any]]:
    return [s for s in statements if action in _actions(s)]


# ---------------------------------------------------------------- the deploy step


def test_the_update_carries_the_datasets_deployment_config_with_its_rollback_alarms(
    dev: Template,
) -> None:
    update = _states()["Update endpoint"]
    assert update["Resource"] == "arn:aws:states:::sagemaker:updateEndpoint"
    assert update["Parameters"]["DeploymentConfig.$"] == "$.deploy.deployment_config"
    # the resolve function hands every declared dataset's config to the deploy
    endpoints = json.loads(_env(dev, "resolve")["ENDPOINTS"])
    assert set(endpoints) == set(declared_datasets())
    alarms_in_template = {
        a["Properties"]["AlarmName"] for a in dev.find_resources("AWS::CloudWatch::Alarm").values()
    }
    rollout = DEV.default_endpoint.rollout
    for dataset, settings in endpoints.items():
        config = settings["deployment"]
        policy = config["BlueGreenUpdatePolicy"]
        assert policy["TrafficRoutingConfiguration"] == {
            "Type": "CANARY",
            "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1},
            "WaitIntervalInSeconds": rollout.canary_wait_seconds,
        }
        assert policy["TerminationWaitInSeconds"] == rollout.baking_seconds
        alarms = [a["AlarmName"] for a in config["AutoRollbackConfiguration"]["Alarms"]]
        assert alarms == list(names.endpoint_rollback_alarm_names(DEV.prefix, dataset))
        assert set(alarms) <= alarms_in_template  # the alarms this stack creates


def test_the_new_config_keeps_the_variant_name_and_the_deploy_waits_on_describe_endpoint(
    dev: Template,
) -> None:
    endpoints = json.loads(_env(dev, "resolve")["ENDPOINTS"])
    assert {s["variant"]["VariantName"] for s in endpoints.values()} == {names.VARIANT_NAME}
    states = _states()
    for name in ("Create endpoint config", "Create serverless endpoint config"):
        params = states[name]["Parameters"]
        assert params["ProductionVariants.$"] == "States.Array($.deploy.variant)"
    assert "KmsKeyId" in states["Create endpoint config"]["Parameters"]
    describe = states["Describe endpoint"]
    assert describe["Resource"] == "arn:aws:states:::aws-sdk:sagemaker:describeEndpoint"
    ready = states["Endpoint ready?"]
    assert ready["Default"] == "Wait for endpoint"
    assert states[ready["Choices"][0]["Next"]]["Parameters"]["Payload"]["action"] == "apply"


def test_a_rollback_fails_the_deploy_as_rolled_back_and_the_run_records_it() -> None:
    states = _states()
    recorded = states["Record failed deployment"]
    assert recorded["ResultSelector"]["status.$"] == "$.Payload.status"
    choice = states[recorded["Next"]]
    (rolled_back,) = choice["Choices"]
    assert states[rolled_back["Next"]] == {**states[rolled_back["Next"]], "Type": "Fail",
                                          "Error": "RolledBack"}  # fmt: skip
    training = json.loads((DEPLOY_ASL.parent / "training_pipeline.asl.json").read_text())
    deploy = training["States"]["Deploy"]
    told = training["States"][deploy["Catch"][0]["Next"]]
    assert told["Choices"][0]["StringMatches"] == '*"RolledBack"*'
    assert training["States"][told["Choices"][0]["Next"]]["Result"] == {"status": "rolled_back"}


def test_autoscaling_is_applied_after_every_deploy_and_released_around_a_type_change() -> None:
    states = _states()
    assert states["Release autoscaling?"]["Choices"][0]["Variable"] == "$.deploy.release_scaling"
    assert states["Release autoscaling"]["Next"] == "Update endpoint"
    for name in ("Apply autoscaling", "Restore autoscaling"):
        assert states[name]["Parameters"]["FunctionName"] == "${ScalingFunctionArn}"
        assert states[name]["Parameters"]["Payload"]["action"] == "apply"
    assert states["Endpoint failed"]["Next"] == "Restore autoscaling"
    assert states["Deploy error"]["Next"] == "Restore autoscaling"


# ---------------------------------------------------------------- endpoint settings


def test_endpoint_settings_are_per_dataset_and_the_pipeline_has_no_setting_of_its_own() -> None:
    app = make_app("dev", endpoints=json.dumps({"wine": {"kind": "serverless", "memory_mb": 3072}}))
    template = Template.from_stack(stack(app, "sluice-dev-app"))
    endpoints = json.loads(_env(template, "resolve")["ENDPOINTS"])
    assert endpoints["wine"]["kind"] == "serverless" and endpoints["wine"]["scaling"] is None
    assert endpoints["wine"]["variant"]["ServerlessConfig"]["MemorySizeInMB"] == 3072
    assert endpoints["wine"]["deployment"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"][
        "CanarySize"
    ] == {"Type": "CAPACITY_PERCENT", "Value": 25}
    real_time = DEV.default_endpoint.real_time
    assert endpoints["churn"]["variant"]["InstanceType"] == real_time.instance_type
    assert endpoints["churn"]["scaling"] == {
        "min": real_time.min_instances,
        "max": real_time.max_instances,
        "target": real_time.target_invocations_per_instance,
        "scale_in_cooldown": real_time.scale_in_cooldown_seconds,
        "scale_out_cooldown": real_time.scale_out_cooldown_seconds,
    }
    for step in ("prepare", "register", "resolve", "record", "scaling"):
        assert not any(k.startswith("ENDPOINT_INSTANCE") for k in _env(template, step))


@pytest.mark.parametrize(
    ("endpoints", "message"),
    [
        ({"nosuch": {"kind": "serverless"}}, "undeclared dataset"),
        ({"wine": {"memory": 3072}}, "unknown key"),
        ({"wine": {"kind": "gpu"}}, "real_time or serverless"),
        ({"churn": {"max_instances": "six"}}, "expected int"),
    ],
)
def test_bad_endpoint_settings_from_context_fail_the_synth(endpoints: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_app("dev", endpoints=json.dumps(endpoints))


def test_a_serverless_dataset_with_the_private_network_fails_the_synth() -> None:
    with pytest.raises(ConfigError, match="cannot run in the stage's VPC"):
        make_app("dev", vpc="create", endpoints=json.dumps({"wine": {"kind": "serverless"}}))


# ---------------------------------------------------------------- permissions


def test_the_scaling_function_may_scale_the_stages_endpoints_only(dev: Template) -> None:
    statements = _statements(dev, "TrainingPipelineScaling")
    (register,) = _granting(statements, "application-autoscaling:RegisterScalableTarget")
    assert "application-autoscaling:PutScalingPolicy" in _actions(register)
    (variant,) = _granting(statements, "sagemaker:UpdateEndpointWeightsAndCapacities")
    assert "endpoint/sluice-dev-*" in json.dumps(variant["Resource"])
    (alarms,) = _granting(statements, "cloudwatch:PutMetricAlarm")
    assert "alarm:TargetTracking-endpoint/sluice-dev-*" in json.dumps(alarms["Resource"])
    (linked,) = _granting(statements, "iam:CreateServiceLinkedRole")
    assert linked["Condition"] == {
        "StringLike": {"iam:AWSServiceName": "sagemaker.application-autoscaling.amazonaws.com"}
    }
    # the deploy machine invokes it
    deploy = _statements(dev, "TrainingPipelineDeployRole")
    (invoke,) = _granting(deploy, "lambda:InvokeFunction")
    assert "TrainingPipelineScaling" in json.dumps(invoke["Resource"])


def test_the_record_function_reads_only_the_rollback_alarms_history_and_rejects_packages(
    dev: Template,
) -> None:
    statements = _statements(dev, "TrainingPipelineRecord")
    (history,) = _granting(statements, "cloudwatch:DescribeAlarmHistory")
    alarms = dev.find_resources("AWS::CloudWatch::Alarm")
    rollback = {
        key
        for key, alarm in alarms.items()
        if alarm["Properties"]["AlarmName"].endswith(
            ("-endpoint-5xx-errors", "-endpoint-p99-latency")
        )
    }
    assert {r["Fn::GetAtt"][0] for r in history["Resource"]} == rollback
    (reject,) = _granting(statements, "sagemaker:UpdateModelPackage")
    assert "model-package/sluice-dev-*/*" in json.dumps(reject["Resource"])


# ---------------------------------------------------------------- private network


def test_models_run_in_the_private_subnets_isolated(in_vpc: Template) -> None:
    (machine,) = [
        m["Properties"]
        for m in in_vpc.find_resources("AWS::StepFunctions::StateMachine").values()
        if m["Properties"].get("StateMachineName") == "sluice-dev-deploy"
    ]
    substitutions = machine["DefinitionSubstitutions"]
    subnets = substitutions["ModelSubnetIds"]["Fn::Join"]
    assert subnets[0] == "," and len(subnets[1]) == 2  # one subnet per zone, comma-joined
    assert all("Subnet" in json.dumps(ref) for ref in subnets[1])
    group = substitutions["ModelSecurityGroupIds"]["Fn::GetAtt"]
    assert group[0].startswith("TrainingPipelineModelsSecurityGroup") and group[1] == "GroupId"
    states = _states()
    assert states["In the private network?"]["Choices"][0] == {
        "Variable": "$.network.subnets", "StringEquals": "", "Next": "Create model"
    }  # fmt: skip
    params = states["Create model in the VPC"]["Parameters"]
    assert params["EnableNetworkIsolation"] is True
    assert params["VpcConfig"] == {
        "Subnets.$": "States.StringSplit($.network.subnets, ',')",
        "SecurityGroupIds.$": "States.StringSplit($.network.security_groups, ',')",
    }
    # the models' role may put their interfaces only in those subnets, with that group
    interfaces = _granting(
        [
            s
            for key, policy in in_vpc.find_resources("AWS::IAM::Policy").items()
            if key.startswith("TrainingPipelineModels")
            for s in policy["Properties"]["PolicyDocument"]["Statement"]
        ],
        "ec2:CreateNetworkInterface",
    )
    assert len(interfaces) == 1
    assert "TrainingPipelineModelsSecurityGroup" in json.dumps(interfaces[0]["Resource"])
