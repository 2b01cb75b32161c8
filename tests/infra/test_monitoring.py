"""Monitoring as synthesized: an alarm on the failures of every component (found by walking
the templates, so a component added without one fails here), drift and quality alarms per
dataset that notify people and retrain, thresholds from stage config, the dashboard."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from datasets import names
from datasets.spec import load_spec, spec_path
from infra.config import STAGES, ConfigError, MonitoringSettings, stage_config
from infra.rollout import declared_datasets
from tests.infra.conftest import make_app, stack

DEV = STAGES["dev"]
DATASETS = declared_datasets()
#: CDK's own deploy-time handlers in the data stack (S3 auto-delete and bucket notifications):
#: they run only inside a CloudFormation deploy, whose failure is the deploy failing
FRAMEWORK_HANDLERS = ("CustomS3AutoDeleteObjectsCustomResourceProviderHandler",
                      "BucketNotificationsHandler")  # fmt: skip


def _templates(stage: str = "dev", **context: Any) -> dict[str, Template]:
    app = make_app(stage, **context)
    return {
        name: Template.from_stack(stack(app, name))
        for name in (f"sluice-{stage}-data", f"sluice-{stage}-app")
    }


@pytest.fixture(scope="module")
def dev() -> dict[str, Template]:
    return _templates("dev")


@pytest.fixture(scope="module")
def app(dev: dict[str, Template]) -> Template:
    return dev["sluice-dev-app"]


def _alarms(template: Template) -> list[dict[str, Any]]:
    return [r["Properties"] for r in template.find_resources("AWS::CloudWatch::Alarm").values()]


def _alarm_on(
    template: Template, namespace: str, metric: str, dimensions: dict[str, Any]
) -> dict[str, Any]:
    """The one alarm on a metric with exactly these dimensions."""
    wanted = sorted(
        json.dumps({"Name": k, "Value": v}, sort_keys=True) for k, v in dimensions.items()
    )
    found = [
        a
        for a in _alarms(template)
        if a.get("Namespace") == namespace
        and a.get("MetricName") == metric
        and sorted(json.dumps(d, sort_keys=True) for d in a.get("Dimensions", [])) == wanted
    ]
    assert len(found) == 1, f"{len(found)} alarms on {namespace} {metric} {dimensions}"
    return found[0]


def _notifies(alarm: dict[str, Any], topic: str = "NotificationsTopic") -> bool:
    return any(topic in json.dumps(action) for action in alarm.get("AlarmActions", []))


def _of_type(template: Template, kind: str) -> Iterator[tuple[str, Any]]:
    yield from template.find_resources(kind).items()


# ---------------------------------------------------------------- every component


def test_every_function_of_the_app_has_an_errors_and_a_throttles_alarm_that_notifies(
    dev: dict[str, Template],
) -> None:
    seen = 0
    for name, template in dev.items():
        for logical, _ in _of_type(template, "AWS::Lambda::Function"):
            if name.endswith("-data") and logical.startswith(FRAMEWORK_HANDLERS):
                continue
            for metric in ("Errors", "Throttles"):
                alarm = _alarm_on(
                    template, "AWS/Lambda", metric, {"FunctionName": {"Ref": logical}}
                )
                assert alarm["Statistic"] == "Sum"
                assert alarm["Threshold"] == 1
                assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
                assert alarm["TreatMissingData"] == "notBreaching"
                assert _notifies(alarm), alarm
            seen += 1
    # preprocess, the pipeline's five, predict, score, drift, feedback, retrain
    assert seen >= 11


def test_the_data_stack_holds_no_function_but_cdks_deploy_time_handlers(
    dev: dict[str, Template],
) -> None:
    for logical, _ in _of_type(dev["sluice-dev-data"], "AWS::Lambda::Function"):
        assert logical.startswith(FRAMEWORK_HANDLERS), (
            f"{logical}: a function of the data stack needs alarms (Monitoring.watch)"
        )


def _dead_letter_targets(template: Template) -> set[str]:
    targets = set()
    for _, queue in _of_type(template, "AWS::SQS::Queue"):
        policy = queue["Properties"].get("RedrivePolicy")
        if policy:
            targets.add(policy["deadLetterTargetArn"]["Fn::GetAtt"][0])
    for _, function in _of_type(template, "AWS::Lambda::Function"):
        config = function["Properties"].get("DeadLetterConfig")
        if config:
            targets.add(config["TargetArn"]["Fn::GetAtt"][0])
    return targets


def test_every_queue_has_an_alarm_dead_letter_queues_on_any_message_visible(
    dev: dict[str, Template],
) -> None:
    for template in dev.values():
        dead_letters = _dead_letter_targets(template)
        for logical, _ in _of_type(template, "AWS::SQS::Queue"):
            dims = {"QueueName": {"Fn::GetAtt": [logical, "QueueName"]}}
            if logical in dead_letters:
                alarm = _alarm_on(template, "AWS/SQS", "ApproximateNumberOfMessagesVisible", dims)
                assert alarm["Statistic"] == "Maximum"
                assert alarm["Threshold"] == DEV.monitoring.dead_letters_threshold == 1
            else:
                alarm = _alarm_on(template, "AWS/SQS", "ApproximateAgeOfOldestMessage", dims)
                assert alarm["Threshold"] == DEV.monitoring.queue_age_seconds
            assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
            assert _notifies(alarm), alarm
    # ingestion's dead letters and the monitoring functions' (asynchronous invocations)
    assert len(_dead_letter_targets(dev["sluice-dev-app"])) == 2


def test_every_state_machine_has_failed_and_timed_out_alarms(dev: dict[str, Template]) -> None:
    machines = 0
    for template in dev.values():
        for logical, _ in _of_type(template, "AWS::StepFunctions::StateMachine"):
            for metric in ("ExecutionsFailed", "ExecutionsTimedOut"):
                alarm = _alarm_on(
                    template, "AWS/States", metric, {"StateMachineArn": {"Ref": logical}}
                )
                assert alarm["Statistic"] == "Sum"
                assert alarm["Threshold"] == DEV.monitoring.executions_failed_threshold
                assert _notifies(alarm), alarm
            machines += 1
    assert machines >= 5  # training, deploy, lock release, backfill, batch scoring


def _api_dims(template: Template) -> dict[str, Any]:
    ((_, api),) = _of_type(template, "AWS::ApiGateway::RestApi")
    ((_, stage),) = _of_type(template, "AWS::ApiGateway::Stage")
    return {"ApiName": api["Properties"]["Name"], "Stage": stage["Properties"]["StageName"]}


def test_every_api_stage_has_a_5xx_rate_and_a_p99_latency_alarm(app: Template) -> None:
    dims = _api_dims(app)
    errors = _alarm_on(app, "AWS/ApiGateway", "5XXError", dims)
    assert errors["AlarmName"] == f"{DEV.prefix}-api-5xx-rate"
    assert errors["Statistic"] == "Average"  # each request 0 or 1: the rate
    assert errors["Threshold"] == DEV.monitoring.api_5xx_rate == 0.05
    latency = _alarm_on(app, "AWS/ApiGateway", "Latency", dims)
    assert latency["ExtendedStatistic"] == "p99"
    assert latency["Threshold"] == DEV.monitoring.api_latency_p99_ms
    assert latency["ComparisonOperator"] == "GreaterThanThreshold"
    assert _notifies(errors) and _notifies(latency)


def test_every_capture_stream_alarms_on_failed_deliveries(app: Template) -> None:
    streams = dict(_of_type(app, "AWS::KinesisFirehose::DeliveryStream"))
    assert len(streams) == len(DATASETS)
    for logical in streams:
        alarm = _alarm_on(
            app, "AWS/Firehose", "DeliveryToS3.Success", {"DeliveryStreamName": {"Ref": logical}}
        )
        assert alarm["Statistic"] == "Minimum"
        assert alarm["Threshold"] == DEV.monitoring.capture_delivery_min
        assert alarm["ComparisonOperator"] == "LessThanThreshold"
        assert _notifies(alarm)


@pytest.mark.parametrize("dataset", DATASETS)
def test_every_endpoint_keeps_its_rollback_alarms(app: Template, dataset: str) -> None:
    endpoint = {"EndpointName": names.endpoint_name(DEV.prefix, dataset),
                "VariantName": names.VARIANT_NAME}  # fmt: skip
    for metric in ("Invocation5XXErrors", "ModelLatency"):
        assert _notifies(_alarm_on(app, "AWS/SageMaker", metric, endpoint))


def test_every_alarm_has_a_unique_name_and_a_description_that_says_what_to_do(
    app: Template,
) -> None:
    alarms = _alarms(app)
    alarm_names = [a["AlarmName"] for a in alarms]
    assert len(alarm_names) == len(set(alarm_names))
    for alarm in alarms:
        assert str(alarm["AlarmName"]).startswith(f"{DEV.prefix}-")
        assert len(alarm.get("AlarmDescription", "")) > 60, alarm["AlarmName"]


# ---------------------------------------------------------------- drift and model quality


@pytest.mark.parametrize("dataset", DATASETS)
def test_each_dataset_has_a_drift_alarm_that_notifies_and_retrains(
    app: Template, dataset: str
) -> None:
    alarm = _alarm_on(
        app, names.METRICS_NAMESPACE, names.DRIFT_MAX_METRIC, {"Stage": "dev", "Dataset": dataset}
    )
    assert alarm["AlarmName"] == names.drift_alarm_name(DEV.prefix, dataset)
    assert alarm["Statistic"] == "Maximum"
    assert alarm["Threshold"] == DEV.monitoring.drift_threshold == 0.25
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["Period"] == DEV.monitoring.model_alarm_period_seconds
    assert alarm["TreatMissingData"] == "notBreaching"  # a skipped window is no breach
    assert _notifies(alarm) and _notifies(alarm, "MonitoringRetrainTopic")


@pytest.mark.parametrize("dataset", DATASETS)
def test_each_dataset_has_a_quality_alarm_on_its_specs_metric_and_threshold(
    app: Template, dataset: str
) -> None:
    spec = load_spec(spec_path(dataset))  # type: ignore[arg-type]
    alarm = _alarm_on(
        app,
        names.METRICS_NAMESPACE,
        names.MODEL_QUALITY_METRIC,
        {"Stage": "dev", "Dataset": dataset, "Metric": spec.metric.name},
    )
    assert alarm["AlarmName"] == names.quality_alarm_name(DEV.prefix, dataset)
    assert alarm["Threshold"] == spec.metric.threshold
    assert alarm["ComparisonOperator"] == (
        "LessThanThreshold" if spec.metric.higher_is_better else "GreaterThanThreshold"
    )
    assert _notifies(alarm) and _notifies(alarm, "MonitoringRetrainTopic")


def test_the_retrain_topic_runs_the_retrain_function_which_may_start_only_training(
    app: Template,
) -> None:
    app.has_resource_properties(
        "AWS::SNS::Subscription",
        {
            "Protocol": "lambda",
            "TopicArn": {"Ref": Match.string_like_regexp("MonitoringRetrainTopic")},
            "Endpoint": {"Fn::GetAtt": [Match.string_like_regexp("MonitoringRetrain"), "Arn"]},
        },
    )
    app.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyName": Match.string_like_regexp("RetrainAccess"),
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        {
                            "Effect": "Allow",
                            "Action": "states:StartExecution",
                            "Resource": {"Ref": Match.string_like_regexp("TrainingPipeline")},
                        }
                    ]
                )
            },
        },
    )


def test_the_monitoring_schedule_runs_drift_and_quality(app: Template) -> None:
    (rule,) = [
        r["Properties"]
        for r in app.find_resources("AWS::Events::Rule").values()
        if str(r["Properties"].get("ScheduleExpression", "")).startswith("rate(")
    ]
    assert rule["ScheduleExpression"] == "rate(1 hour)"  # schedule_minutes 60
    targets = {t["Arn"]["Fn::GetAtt"][0]: json.loads(t["Input"]) for t in rule["Targets"]}
    assert {k.split("Function")[0] for k in targets} == {"MonitoringDrift", "MonitoringFeedback"}
    assert {"source": "schedule", "action": "quality"} in targets.values()


@pytest.mark.parametrize("dataset", DATASETS)
def test_a_specs_retrain_schedule_starts_a_run_with_trigger_schedule(
    app: Template, dataset: str
) -> None:
    spec = load_spec(spec_path(dataset))  # type: ignore[arg-type]
    rules = [
        r["Properties"]
        for r in app.find_resources("AWS::Events::Rule").values()
        if r["Properties"].get("ScheduleExpression") == spec.retrain.schedule
    ]
    if spec.retrain.schedule is None:
        return
    (rule,) = rules
    (target,) = rule["Targets"]
    assert "TrainingPipeline" in json.dumps(target["Arn"])
    assert json.loads(target["Input"]) == {
        "dataset": dataset,
        "trigger": {"type": "schedule", "schedule": spec.retrain.schedule},
    }


def test_label_files_under_feedback_start_the_feedback_function(app: Template) -> None:
    app.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": {
                "source": ["aws.s3"],
                "detail-type": ["Object Created"],
                "detail": {
                    "object": {"key": [{"prefix": names.feedback_prefix(d)} for d in DATASETS]}
                },
            },
        },
    )


@pytest.mark.parametrize(
    ("bucket", "folders"),
    [("Raw", ("_feedback", "_labelled")), ("Artifacts", ("feedback", "monitoring"))],
)
def test_feedback_labelled_records_and_reports_expire(
    dev: dict[str, Template], bucket: str, folders: tuple[str, ...]
) -> None:
    ((_, resource),) = [
        (k, r)
        for k, r in _of_type(dev["sluice-dev-data"], "AWS::S3::Bucket")
        if k.startswith(f"DataLake{bucket}")
    ]
    rules = {r.get("Prefix"): r for r in resource["Properties"]["LifecycleConfiguration"]["Rules"]}
    for dataset in DATASETS:
        for folder in folders:
            rule = rules[f"{dataset}/{folder}/"]
            assert rule["ExpirationInDays"] == DEV.monitoring.feedback_expire_days
            assert rule["Status"] == "Enabled"


# ---------------------------------------------------------------- stage config


def test_thresholds_and_periods_come_from_stage_config() -> None:
    settings = {"drift_threshold": 0.4, "alarm_period_seconds": 60, "api_latency_p99_ms": 900,
                "model_alarm_period_seconds": 60, "function_errors_threshold": 3}  # fmt: skip
    app = _templates("dev", monitoring=json.dumps(settings))["sluice-dev-app"]
    drift = _alarm_on(app, names.METRICS_NAMESPACE, names.DRIFT_MAX_METRIC,
                      {"Stage": "dev", "Dataset": DATASETS[0]})  # fmt: skip
    assert (drift["Threshold"], drift["Period"]) == (0.4, 60)
    assert _alarm_on(app, "AWS/ApiGateway", "Latency", _api_dims(app))["Threshold"] == 900
    errors = [a for a in _alarms(app) if a["MetricName"] == "Errors"]
    assert errors and all((a["Threshold"], a["Period"]) == (3, 60) for a in errors)


def test_prod_alarms_need_two_periods_and_a_larger_drift_sample() -> None:
    config = stage_config("prod", {})
    assert config.monitoring.alarm_evaluation_periods == 2
    assert config.monitoring.drift_min_samples == 500
    app = _templates("prod")["sluice-prod-app"]
    errors = [a for a in _alarms(app) if a["MetricName"] == "Errors"]
    assert errors and all(a["EvaluationPeriods"] == 2 for a in errors)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('{"drift_threshold": 0}', "drift_threshold"),
        ('{"schedule_minutes": 0}', "schedule_minutes"),
        ('{"nonsense": 1}', "unknown key"),
        ("not json", "JSON object"),
        ('{"drift_min_samples": 50, "drift_max_samples": 10}', "drift_max_samples"),
    ],
)
def test_monitoring_settings_are_checked_at_synth(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        MonitoringSettings.parse(value, DEV.monitoring)


# ---------------------------------------------------------------- dashboard


def _dashboard(app: Template) -> tuple[str, dict[str, Any]]:
    ((_, resource),) = _of_type(app, "AWS::CloudWatch::Dashboard")
    body = resource["Properties"]["DashboardBody"]
    parts = body["Fn::Join"][1] if isinstance(body, dict) else [body]
    text = "".join(p if isinstance(p, str) else "TOKEN" for p in parts)
    return resource["Properties"]["DashboardName"], json.loads(text)


def _widgets(app: Template) -> dict[str, list[list[Any]]]:
    """Each widget's title → its metrics (as the dashboard's JSON lists them)."""
    _, body = _dashboard(app)
    return {
        w["properties"]["title"]: w["properties"].get("metrics", [])
        for w in body["widgets"]
        if w["type"] == "metric"
    }


def test_one_dashboard_per_stage_shows_the_alarms(app: Template) -> None:
    name, body = _dashboard(app)
    assert name == f"{DEV.prefix}-overview"
    (alarms,) = [w for w in body["widgets"] if w["type"] == "alarm"]
    assert len(alarms["properties"]["alarms"]) >= 40


@pytest.mark.parametrize(
    ("title", "metrics"),
    [
        ("Ingestion: uploads processed", {"Invocations", "FilesRejected"}),
        ("Ingestion: rows", {"RowsIn", "RowsCurated", "RowsQuarantined"}),
        ("Training pipeline: runs and outcomes",
         {"ExecutionsStarted", "ExecutionsSucceeded", "ExecutionsFailed", "ExecutionsTimedOut"}),
        ("Training pipeline: run duration (ms)", {"ExecutionTime"}),
        ("Prediction API: requests and errors", {"Count", "4XXError", "5XXError"}),
        ("Prediction API: latency (ms)", {"Latency", "IntegrationLatency"}),
    ],
)  # fmt: skip
def test_the_dashboard_names_the_metrics_of_each_widget(
    app: Template, title: str, metrics: set[str]
) -> None:
    widget = _widgets(app)[title]
    # every metric is named (namespace, name, dimensions), no search expression
    assert all(isinstance(m[0], str) and "SEARCH" not in json.dumps(m) for m in widget)
    assert metrics <= {m[1] for m in widget}


@pytest.mark.parametrize("dataset", DATASETS)
def test_the_dashboard_shows_each_datasets_endpoint_drift_per_feature_and_quality(
    app: Template, dataset: str
) -> None:
    spec = load_spec(spec_path(dataset))  # type: ignore[arg-type]
    widgets = _widgets(app)
    endpoint = widgets[f"{dataset}: endpoint invocations and errors"]
    assert {m[1] for m in endpoint} == {"Invocations", "Invocation4XXErrors", "Invocation5XXErrors"}
    assert names.endpoint_name(DEV.prefix, dataset) in json.dumps(endpoint)
    assert f"{dataset}: model latency (µs)" in widgets
    drift = widgets[f"{dataset}: drift per feature (PSI)"]
    features = {m[m.index("Feature") + 1] for m in drift if "Feature" in m}
    assert features == {f.name for f in spec.model_features()}
    assert names.DRIFT_MAX_METRIC in {m[1] for m in drift}
    quality = widgets[f"{dataset}: model quality ({spec.metric.name}) on labelled traffic"]
    assert names.MODEL_QUALITY_METRIC in {m[1] for m in quality}
    assert set(names.FEEDBACK_METRICS) <= {m[1] for m in quality if len(m) > 1}


def test_the_app_stack_outputs_what_operators_and_tests_need(app: Template) -> None:
    outputs = app.find_outputs("*")
    for name in ("DashboardName", "DriftFunctionName", "FeedbackFunctionName",
                 "RetrainFunctionName", "RetrainTopicArn", "RetrainCooldownTableName"):  # fmt: skip
        assert name in outputs
