"""The deploy steps' logic for a safe rollout, with moto for AWS (no local cloud needed): what a
deploy deploys against the endpoint as it is (resolve), autoscaling around it (scaling), how a
rollback is read from the alarms' history and recorded (record), teardown of autoscaling."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from datasets import names
from infra.config import STAGES, EndpointSettings
from infra.rollout import deployment_config, production_variant, scaling
from lambdas.pipeline import record, resolve, teardown
from lambdas.pipeline import scaling as autoscaling
from lambdas.pipeline.ledger import Ledger
from lambdas.pipeline.settings import Settings

DEV = STAGES["dev"]
ENDPOINT = "sluice-dev-churn"
RESOURCE = f"endpoint/{ENDPOINT}/variant/AllTraffic"
ALARMS = names.endpoint_rollback_alarm_names(DEV.prefix, "churn")
ROLE = "arn:aws:iam::123456789012:role/model"


def deploy_settings(settings: EndpointSettings) -> dict[str, Any]:
    """What infra hands the resolve function for a dataset (``ENDPOINTS``)."""
    return {
        "kind": settings.kind,
        "variant": production_variant(settings),
        "deployment": deployment_config(settings, ALARMS),
        "scaling": scaling(settings),
    }


REAL_TIME = deploy_settings(DEV.default_endpoint)
SERVERLESS = deploy_settings(dataclasses.replace(DEV.default_endpoint, kind="serverless"))


def settings_with(endpoint: dict[str, Any]) -> Settings:
    return Settings(
        stage="dev",
        prefix="sluice-dev",
        region="us-east-1",
        ledger_table="ledger",
        topic_arn="arn:aws:sns:us-east-1:123456789012:topic",
        endpoints={"churn": endpoint},
    )


@pytest.fixture
def aws() -> Any:
    with mock_aws():
        clients = {
            name: boto3.client(service, region_name="us-east-1")
            for name, service in (
                ("sagemaker", "sagemaker"),
                ("dynamodb", "dynamodb"),
                ("sns", "sns"),
                ("autoscaling", "application-autoscaling"),
            )
        }
        clients["dynamodb"].create_table(
            TableName="ledger",
            KeySchema=[
                {"AttributeName": "dataset", "KeyType": "HASH"},
                {"AttributeName": "run_id", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "dataset", "AttributeType": "S"},
                {"AttributeName": "run_id", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        clients["sns"].create_topic(Name="topic")
        clients["sagemaker"].create_model_package_group(ModelPackageGroupName=ENDPOINT)
        yield clients


def package(sagemaker: Any, run_id: str = "r1", status: str = "Approved") -> str:
    return str(
        sagemaker.create_model_package(
            ModelPackageGroupName=ENDPOINT,
            InferenceSpecification={
                "Containers": [{"Image": "xgboost", "ModelDataUrl": "s3://a/model.tar.gz"}],
                "SupportedContentTypes": ["application/json"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
            ModelApprovalStatus=status,
            CustomerMetadataProperties={"run_id": run_id},
        )["ModelPackageArn"]
    )


def serving(
    sagemaker: Any, *, version: str = "1", serverless: bool = False, **variant: Any
) -> None:
    """An endpoint serving model version ``version`` (as the deploy steps create it)."""
    sagemaker.create_model(
        ModelName=f"m{version}",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": "xgboost", "Environment": {"SLUICE_MODEL_VERSION": version}},
    )
    production: dict[str, Any] = {"VariantName": "AllTraffic", "ModelName": f"m{version}"}
    if serverless:
        production["ServerlessConfig"] = {"MemorySizeInMB": 2048, "MaxConcurrency": 5}
    else:
        production.update(InstanceType="ml.t2.medium", InitialInstanceCount=2, **variant)
    sagemaker.create_endpoint_config(
        EndpointConfigName=f"c{version}", ProductionVariants=[production]
    )
    sagemaker.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=f"c{version}")


def resolved(aws: Any, endpoint: dict[str, Any], source: str = "pipeline") -> dict[str, Any]:
    arn = package(aws["sagemaker"])
    event = {
        "input": {"package_arn": arn, "source": source, "by": "ann"},
        "execution": "arn:aws:states:us-east-1:123456789012:execution:sluice-dev-deploy:x",
        "execution_name": "x",
    }
    return resolve.resolve(
        event, settings_with(endpoint), sagemaker=aws["sagemaker"], dynamodb=aws["dynamodb"]
    )["deploy"]


# ---------------------------------------------------------------- resolve


def test_a_first_deploy_creates_the_configured_variant_with_the_deployment_config(aws: Any):
    deploy = resolved(aws, REAL_TIME)
    assert deploy["exists"] is False and deploy["previous"] is None
    assert deploy["variant"] == {**REAL_TIME["variant"], "ModelName": deploy["model"]}
    assert deploy["variant"]["VariantName"] == names.VARIANT_NAME
    assert deploy["deployment_config"]["AutoRollbackConfiguration"]["Alarms"] == [
        {"AlarmName": alarm} for alarm in ALARMS
    ]
    assert deploy["network_isolation"] is True and deploy["release_scaling"] is False


def test_an_update_keeps_the_count_autoscaling_scaled_out_to(aws: Any):
    # Given the endpoint scaled out from 2 to 3 instances (dev: min 2, max 3)
    serving(aws["sagemaker"], version="1")
    aws["sagemaker"].update_endpoint_weights_and_capacities(
        EndpointName=ENDPOINT,
        DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredInstanceCount": 3}],
    )
    deploy = resolved(aws, REAL_TIME)
    # Then the new config starts where the endpoint is, not at the initial count
    assert deploy["variant"]["InitialInstanceCount"] == 3
    assert deploy["variant"]["InstanceType"] == "ml.t2.medium"
    assert deploy["release_scaling"] is False
    assert deploy["previous"]["version"] == "1" and deploy["previous"]["config"] == "c1"


def test_an_update_that_changes_the_instance_type_releases_autoscaling_around_it(aws: Any):
    serving(aws["sagemaker"], version="1")
    bigger = deploy_settings(
        dataclasses.replace(
            DEV.default_endpoint,
            real_time=dataclasses.replace(
                DEV.default_endpoint.real_time, instance_type="ml.c5.large"
            ),
        )
    )
    deploy = resolved(aws, bigger)
    assert deploy["release_scaling"] is True
    assert deploy["variant"]["InstanceType"] == "ml.c5.large"
    assert deploy["variant"]["InitialInstanceCount"] == 2  # the configured one: a new fleet


def test_a_real_time_endpoint_is_not_updated_to_serverless(aws: Any):
    serving(aws["sagemaker"], version="1")
    with pytest.raises(resolve.EndpointTypeChange) as refused:
        resolved(aws, SERVERLESS)
    message = str(refused.value)
    assert "cannot update a real-time endpoint to serverless" in message
    assert f"delete-endpoint --endpoint-name {ENDPOINT}" in message
    assert "make deploy-model DATASET=churn" in message
    # nothing was created: the current model keeps serving
    assert [m["ModelName"] for m in aws["sagemaker"].list_models()["Models"]] == ["m1"]


def test_serverless_models_run_without_network_isolation(aws: Any):
    deploy = resolved(aws, SERVERLESS)
    assert deploy["kind"] == "serverless" and deploy["network_isolation"] is False
    assert "ServerlessConfig" in deploy["variant"] and deploy["scaling"] is None


def test_a_serverless_endpoint_may_become_real_time(aws: Any):
    serving(aws["sagemaker"], version="1", serverless=True)
    deploy = resolved(aws, REAL_TIME)
    assert deploy["exists"] and deploy["previous"]["kind"] == "serverless"
    assert deploy["variant"]["InitialInstanceCount"] == 2 and not deploy["release_scaling"]


# ---------------------------------------------------------------- autoscaling


def test_apply_registers_a_real_time_endpoint_with_its_bounds_and_target(aws: Any):
    serving(aws["sagemaker"], version="1")
    applied = autoscaling.apply(
        {"deploy": {"endpoint": ENDPOINT, "scaling": REAL_TIME["scaling"]}},
        sagemaker=aws["sagemaker"],
        autoscaling=aws["autoscaling"],
    )
    assert applied["registered"] is True
    (target,) = aws["autoscaling"].describe_scalable_targets(
        ServiceNamespace="sagemaker", ResourceIds=[RESOURCE]
    )["ScalableTargets"]
    real_time = DEV.default_endpoint.real_time
    assert (target["MinCapacity"], target["MaxCapacity"]) == (
        real_time.min_instances,
        real_time.max_instances,
    )
    (policy,) = aws["autoscaling"].describe_scaling_policies(
        ServiceNamespace="sagemaker", ResourceId=RESOURCE
    )["ScalingPolicies"]
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["TargetValue"] == real_time.target_invocations_per_instance
    assert tracking["PredefinedMetricSpecification"]["PredefinedMetricType"] == (
        "SageMakerVariantInvocationsPerInstance"
    )


def test_apply_leaves_a_serverless_endpoint_alone(aws: Any):
    serving(aws["sagemaker"], version="1", serverless=True)
    applied = autoscaling.apply(
        {"deploy": {"endpoint": ENDPOINT, "scaling": None}},
        sagemaker=aws["sagemaker"],
        autoscaling=aws["autoscaling"],
    )
    assert applied == {"registered": False, "why": "serverless"}
    assert not aws["autoscaling"].describe_scalable_targets(ServiceNamespace="sagemaker")[
        "ScalableTargets"
    ]


def test_release_deregisters_and_says_whether_it_did(aws: Any):
    serving(aws["sagemaker"], version="1")
    event = {"deploy": {"endpoint": ENDPOINT, "scaling": REAL_TIME["scaling"],
                        "variant": REAL_TIME["variant"]}}  # fmt: skip
    autoscaling.apply(event, sagemaker=aws["sagemaker"], autoscaling=aws["autoscaling"])
    assert autoscaling.release(event, autoscaling=aws["autoscaling"])["released"] is True
    assert autoscaling.registered(aws["autoscaling"], RESOURCE) is None
    assert autoscaling.release(event, autoscaling=aws["autoscaling"])["released"] is False


def test_teardown_deregisters_an_endpoint_before_deleting_it(aws: Any):
    sagemaker = aws["sagemaker"]
    serving(sagemaker, version="1")
    for arn in (
        sagemaker.describe_endpoint(EndpointName=ENDPOINT)["EndpointArn"],
        sagemaker.describe_endpoint_config(EndpointConfigName="c1")["EndpointConfigArn"],
        sagemaker.describe_model(ModelName="m1")["ModelArn"],
    ):
        sagemaker.add_tags(
            ResourceArn=arn,
            Tags=[
                {"Key": names.TAG_STAGE, "Value": "dev"},
                {"Key": names.TAG_MANAGED_BY, "Value": names.MANAGED_BY_PIPELINE},
            ],
        )
    autoscaling.apply(
        {"deploy": {"endpoint": ENDPOINT, "scaling": REAL_TIME["scaling"]}},
        sagemaker=sagemaker,
        autoscaling=aws["autoscaling"],
    )
    removed = teardown.remove_created(
        sagemaker, aws["autoscaling"], stage="dev", prefix="sluice-dev", groups=[]
    )
    assert removed["scalable_targets"] == 1 and removed["endpoints"] == 1
    assert autoscaling.registered(aws["autoscaling"], RESOURCE) is None


# ---------------------------------------------------------------- rollback, recorded


class AlarmHistory:
    """CloudWatch's DescribeAlarmHistory (moto has none), as LocalStack fills it: the real time
    of a transition in HistoryData's queryDate, the item's Timestamp one transition late."""

    def __init__(self, changes: dict[str, list[tuple[datetime, str]]]) -> None:
        self.changes = changes

    def describe_alarm_history(self, AlarmName: str, **_: Any) -> dict[str, Any]:
        items, previous = [], datetime(2020, 1, 1, tzinfo=UTC)
        for at, value in self.changes.get(AlarmName, []):
            data = {
                "newState": {
                    "stateValue": value,
                    "stateReason": f"Threshold Crossed: 1 datapoint [3.0] ({value})",
                    "stateReasonData": {"queryDate": at.strftime("%Y-%m-%dT%H:%M:%S.000+0000")},
                }
            }
            items.append({"Timestamp": previous, "HistoryData": json.dumps(data)})
            previous = at
        return {"AlarmHistoryItems": list(reversed(items))}


STARTED = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)


def test_the_alarm_that_tripped_during_the_deploy_and_when_come_from_its_history():
    history = AlarmHistory(
        {
            ALARMS[0]: [
                (STARTED - timedelta(hours=1), "OK"),
                (STARTED + timedelta(seconds=7), "ALARM"),
                (STARTED + timedelta(seconds=20), "OK"),
            ],
            ALARMS[1]: [(STARTED - timedelta(hours=1), "OK")],
        }
    )
    found = record.rollback_alarm(history, list(ALARMS), since=STARTED)
    assert found is not None
    assert found["name"] == ALARMS[0] and not found["before_deploy"]
    assert found["at"] == "2026-11-27T12:00:07+00:00"  # HistoryData's time, not Timestamp
    assert "Threshold Crossed" in found["reason"]


def test_an_alarm_already_in_alarm_when_the_deploy_began_also_explains_a_rollback():
    history = AlarmHistory({ALARMS[1]: [(STARTED - timedelta(seconds=30), "ALARM")]})
    found = record.rollback_alarm(history, list(ALARMS), since=STARTED)
    assert found is not None and found["name"] == ALARMS[1] and found["before_deploy"]
    assert "already in ALARM" in record.rollback_reason(found, "3")


def test_no_alarm_during_the_deploy_is_no_rollback():
    history = AlarmHistory({ALARMS[0]: [(STARTED - timedelta(hours=2), "ALARM"),
                                        (STARTED - timedelta(hours=1), "OK")]})  # fmt: skip
    assert record.rollback_alarm(history, list(ALARMS), since=STARTED) is None


def _deploy_state(aws: Any, source: str) -> dict[str, Any]:
    serving(aws["sagemaker"], version="1")
    deploy = resolved(aws, REAL_TIME, source=source)
    return {
        "deploy": deploy,
        "endpoint": {
            "EndpointStatus": "InService",
            "EndpointConfigName": "c1",  # back on the old config
            "FailureReason": f"Automatic rollback: alarm {ALARMS[0]} in ALARM",
        },
        "endpoint_failed": True,
    }


def test_a_rolled_back_challenger_is_rejected_and_its_run_records_the_alarm(aws: Any):
    state = _deploy_state(aws, "pipeline")
    deploy = state["deploy"]
    ledger = Ledger("ledger", aws["dynamodb"])
    registered = {"package_arn": deploy["package_arn"], "version": 1, "status": "Approved"}
    ledger.update("churn", "r1", {"model_package": registered})
    history = AlarmHistory({ALARMS[0]: [(STARTED + timedelta(seconds=5), "ALARM")]})
    result = record.deploy_end(
        {"state": state, "execution": "exec", "execution_name": "x",
         "started_at": STARTED.isoformat()},
        settings_with(REAL_TIME), dynamodb=aws["dynamodb"], sns=aws["sns"],
        sagemaker=aws["sagemaker"], cloudwatch=history,
    )  # fmt: skip
    assert result["status"] == "rolled_back"
    described = aws["sagemaker"].describe_model_package(ModelPackageName=deploy["package_arn"])
    assert described["ModelApprovalStatus"] == "Rejected"
    assert ALARMS[0] in described["ApprovalDescription"]
    assert "version 1 kept serving" in described["ApprovalDescription"]
    run = ledger.get("churn", "r1") or {}
    assert run["deployment"]["status"] == "rolled_back"
    assert run["deployment"]["alarm"]["name"] == ALARMS[0]
    assert run["deployment"]["alarm"]["at"] == "2026-11-27T12:00:05+00:00"
    assert run["model_package"]["status"] == "Rejected"
    # the run announces it when it ends (the pipeline's own run_end), with these words
    subject, body = record.message(settings_with(REAL_TIME), {**run, "outcome": "rolled_back",
                                                               "run_id": "r1"})  # fmt: skip
    assert "rolled back version 1" in subject
    assert f"Rolled back by SageMaker: rollback alarm {ALARMS[0]} went to ALARM at" in body


def test_a_manual_deploy_is_a_ledger_item_of_its_own(aws: Any):
    state = _deploy_state(aws, "manual")
    state["endpoint"] = {
        "EndpointStatus": "InService",
        "EndpointConfigName": state["deploy"]["config"],
    }
    state["endpoint_failed"] = False
    record.deploy_end(
        {"state": state, "execution": "exec", "execution_name": "deploy-1",
         "started_at": STARTED.isoformat()},
        settings_with(REAL_TIME), dynamodb=aws["dynamodb"], sns=aws["sns"],
        sagemaker=aws["sagemaker"], cloudwatch=AlarmHistory({}),
    )  # fmt: skip
    (item,) = Ledger("ledger", aws["dynamodb"]).runs("churn")
    assert item["run_id"] == names.run_id(STARTED.isoformat(), "deploy-1")
    assert item["triggers"] == [{"type": "deploy", "by": "ann", "version": 1,
                                 "package_arn": state["deploy"]["package_arn"]}]  # fmt: skip
    assert item["outcome"] == "deployed" and item["deployment"]["source"] == "manual"
    assert item["model_package"]["run_id"] == "r1"  # the run that trained it
