"""Safe rollout in CDK: each dataset endpoint's rollback alarms, its deployment config, and the
stage checks that keep a rollout long enough for an alarm to fire."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import MappingProxyType, SimpleNamespace

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Annotations, Match, Template

from datasets import names
from infra.config import (
    STAGES,
    ConfigError,
    EndpointAlarms,
    EndpointSettings,
    RealTimeEndpoint,
    RolloutTiming,
    ServerlessEndpoint,
    StageConfig,
)
from infra.data_lake import DataLake
from infra.notifications import Notifications
from infra.rollout import (
    Rollout,
    check_endpoint,
    declared_datasets,
    deployment_config,
    private_network,
    production_variant,
)
from tests.infra.conftest import CDK_CONTEXT, stack

DEV = STAGES["dev"]


def synth(config: StageConfig, datasets: tuple[str, ...] = ("churn", "fraud")) -> cdk.Stack:
    app = cdk.App(context={**CDK_CONTEXT, "aws:cdk:bundling-stacks": []})
    test_stack = cdk.Stack(app, "RolloutTest")
    lake = DataLake(test_stack, "Lake", config=config)
    topic = Notifications(test_stack, "Notifications", config=config, key=lake.key).topic
    Rollout(test_stack, "Rollout", config=config, datasets=datasets, alerts=topic)
    return test_stack


@pytest.fixture(scope="module")
def template() -> Template:
    return Template.from_stack(synth(DEV))


def dimensions(dataset: str) -> list[dict[str, str]]:
    return [
        {"Name": "EndpointName", "Value": names.endpoint_name(DEV.prefix, dataset)},
        {"Name": "VariantName", "Value": names.VARIANT_NAME},
    ]


@pytest.mark.parametrize("dataset", ["churn", "fraud"])
def test_each_dataset_has_a_5xx_alarm_on_its_endpoint_that_notifies(template: Template, dataset):
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "AlarmName": names.endpoint_errors_alarm_name(DEV.prefix, dataset),
            "Namespace": "AWS/SageMaker",
            "MetricName": "Invocation5XXErrors",
            "Dimensions": dimensions(dataset),
            "Statistic": "Sum",
            "Period": 60,
            "EvaluationPeriods": DEV.default_endpoint.alarms.evaluation_periods,
            "Threshold": DEV.default_endpoint.alarms.errors_5xx_threshold,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "notBreaching",
            "AlarmActions": [{"Ref": Match.string_like_regexp("NotificationsTopic")}],
        },
    )


@pytest.mark.parametrize("dataset", ["churn", "fraud"])
def test_each_dataset_has_a_p99_model_latency_alarm_in_microseconds(template: Template, dataset):
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "AlarmName": names.endpoint_latency_alarm_name(DEV.prefix, dataset),
            "Namespace": "AWS/SageMaker",
            "MetricName": "ModelLatency",
            "Dimensions": dimensions(dataset),
            "ExtendedStatistic": "p99",
            "Period": 60,
            "Threshold": DEV.default_endpoint.alarms.latency_p99_ms * 1000,
            "ComparisonOperator": "GreaterThanThreshold",
            "AlarmActions": [{"Ref": Match.string_like_regexp("NotificationsTopic")}],
        },
    )


def test_no_alarm_watches_client_errors(template: Template):
    alarms = template.find_resources("AWS::CloudWatch::Alarm")
    assert alarms
    assert all(a["Properties"].get("MetricName") != "Invocation4XXErrors" for a in alarms.values())


def test_the_app_has_the_rollback_alarms_of_every_declared_dataset(dev_app: cdk.App):
    app_template = Template.from_stack(stack(dev_app, "sluice-dev-app"))
    assert "churn" in declared_datasets()
    for dataset in declared_datasets():
        for alarm in names.endpoint_rollback_alarm_names(DEV.prefix, dataset):
            app_template.has_resource_properties("AWS::CloudWatch::Alarm", {"AlarmName": alarm})


def test_prod_alarms_need_two_bad_minutes_out_of_three(prod_app: cdk.App):
    prod = STAGES["prod"]
    Template.from_stack(stack(prod_app, "sluice-prod-app")).has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "AlarmName": names.endpoint_errors_alarm_name(prod.prefix, "churn"),
            "EvaluationPeriods": 3,
            "DatapointsToAlarm": 2,
            "Threshold": prod.default_endpoint.alarms.errors_5xx_threshold,
        },
    )


# ---------------------------------------------------------------- deployment config


def test_canary_deployment_config_names_the_rollback_alarms():
    settings = STAGES["prod"].default_endpoint
    alarms = names.endpoint_rollback_alarm_names("sluice-prod", "churn")
    assert deployment_config(settings, alarms) == {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1},
                "WaitIntervalInSeconds": settings.rollout.canary_wait_seconds,
            },
            "TerminationWaitInSeconds": settings.rollout.baking_seconds,
            "MaximumExecutionTimeoutInSeconds": settings.rollout.max_execution_seconds,
        },
        "AutoRollbackConfiguration": {
            "Alarms": [
                {"AlarmName": "sluice-prod-churn-endpoint-5xx-errors"},
                {"AlarmName": "sluice-prod-churn-endpoint-p99-latency"},
            ]
        },
    }


def single_instance() -> EndpointSettings:
    return dataclasses.replace(
        DEV.default_endpoint,
        real_time=RealTimeEndpoint(initial_instance_count=1, min_instances=1, max_instances=2),
    )


def test_one_instance_rolls_out_all_at_once_then_bakes():
    config = deployment_config(single_instance(), ("a",))["BlueGreenUpdatePolicy"]
    assert config["TrafficRoutingConfiguration"] == {
        "Type": "ALL_AT_ONCE",
        "WaitIntervalInSeconds": 0,
    }
    assert config["TerminationWaitInSeconds"] == DEV.default_endpoint.rollout.baking_seconds


def test_one_instance_is_said_in_the_synth_output():
    config = dataclasses.replace(DEV, endpoints=MappingProxyType({"churn": single_instance()}))
    Annotations.from_stack(synth(config, ("churn",))).has_info(
        "/RolloutTest/Rollout",
        Match.string_like_regexp("cannot hold a canary.*all traffic at once"),
    )


def test_serverless_canary_takes_a_share_of_capacity_and_its_variant_has_no_instances():
    settings = EndpointSettings(
        kind="serverless",
        serverless=ServerlessEndpoint(
            memory_mb=3072, max_concurrency=10, provisioned_concurrency=2
        ),
    )
    routing = deployment_config(settings, ("a",))["BlueGreenUpdatePolicy"][
        "TrafficRoutingConfiguration"
    ]
    assert routing["CanarySize"] == {"Type": "CAPACITY_PERCENT", "Value": 25}
    assert production_variant(settings) == {
        "VariantName": names.VARIANT_NAME,
        "ServerlessConfig": {
            "MemorySizeInMB": 3072,
            "MaxConcurrency": 10,
            "ProvisionedConcurrency": 2,
        },
    }


def test_real_time_variant_keeps_the_variant_name_and_has_no_data_capture():
    variant = production_variant(STAGES["prod"].default_endpoint)
    assert variant == {
        "VariantName": "AllTraffic",
        "InstanceType": "ml.m5.large",
        "InitialInstanceCount": 2,
        "InitialVariantWeight": 1.0,
    }


# ---------------------------------------------------------------- stage checks at synth


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_stage_endpoint_settings_are_valid(stage: str):
    settings = STAGES[stage].default_endpoint
    assert settings.canary
    assert check_endpoint(settings, dataset="churn", in_vpc=False) == []


@pytest.mark.parametrize("which", ["canary_wait_seconds", "baking_seconds"])
def test_a_rollout_shorter_than_an_alarm_can_fire_fails_the_synth(which: str):
    alarms = EndpointAlarms(period_seconds=60, evaluation_periods=3, metric_delay_seconds=60)
    timing = dataclasses.replace(RolloutTiming(), **{which: 200})  # needs 60 x 3 + 60 = 240
    settings = dataclasses.replace(STAGES["prod"].default_endpoint, alarms=alarms, rollout=timing)
    with pytest.raises(ConfigError, match=f"{which}=200 is shorter .* = 240s"):
        check_endpoint(settings, dataset="churn", in_vpc=False)


def test_alarm_periods_are_whole_minutes():
    settings = dataclasses.replace(DEV.default_endpoint, alarms=EndpointAlarms(period_seconds=10))
    with pytest.raises(ConfigError, match="one-minute"):
        check_endpoint(settings, dataset="churn", in_vpc=False)


def test_serverless_in_the_private_network_is_a_synth_error():
    serverless = EndpointSettings(kind="serverless")
    assert check_endpoint(serverless, dataset="churn", in_vpc=False) == []
    with pytest.raises(ConfigError, match="serverless endpoints cannot run in the stage's VPC"):
        check_endpoint(serverless, dataset="churn", in_vpc=True)
    # the stage's private-network option (`vpc`)
    assert private_network(SimpleNamespace(vpc=True))  # type: ignore[arg-type]
    assert not private_network(DEV)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"real_time": RealTimeEndpoint(initial_instance_count=5, max_instances=4)},
            "min_instances",
        ),
        ({"serverless": ServerlessEndpoint(memory_mb=1500), "kind": "serverless"}, "memory_mb"),
        (
            {"serverless": ServerlessEndpoint(provisioned_concurrency=9), "kind": "serverless"},
            "provisioned",
        ),
        ({"rollout": RolloutTiming(max_execution_seconds=900)}, "must exceed the waits"),
    ],
)
def test_invalid_endpoint_settings_fail_the_synth(change, message):
    settings = dataclasses.replace(STAGES["prod"].default_endpoint, **change)
    with pytest.raises(ConfigError, match=message):
        check_endpoint(settings, dataset="churn", in_vpc=False)


def test_invalid_settings_of_one_dataset_stop_the_synth():
    bad = dataclasses.replace(DEV.default_endpoint, rollout=RolloutTiming(canary_wait_seconds=30))
    config = dataclasses.replace(DEV, endpoints=MappingProxyType({"fraud": bad}))
    with pytest.raises(ConfigError, match="dataset 'fraud'"):
        synth(config)


def test_declared_datasets_are_the_spec_files(tmp_path: Path):
    (tmp_path / "b.yaml").write_text("{}")
    (tmp_path / "a.yaml").write_text("{}")
    (tmp_path / "notes.txt").write_text("")
    assert declared_datasets(tmp_path) == ("a", "b")
