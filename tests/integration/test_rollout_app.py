"""The deployed dev stage's rollback alarms on the local cloud: evaluated, and they notify."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from datasets import names
from infra.config import STAGES
from tests.integration.helpers import wait_for

pytestmark = pytest.mark.integration
PREFIX = STAGES["dev"].prefix


def state(cloudwatch, name: str) -> str:
    (alarm,) = cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"]
    return str(alarm["StateValue"])


def test_churn_rollback_alarms_are_deployed_and_evaluated(
    app_outputs: dict[str, dict[str, str]], aws: Callable[[str], Any]
) -> None:
    cloudwatch = aws("cloudwatch")
    topic = app_outputs[f"{PREFIX}-app"]["NotificationsTopicArn"]
    errors, latency = names.endpoint_rollback_alarm_names(PREFIX, "churn")
    found = {
        a["AlarmName"]: a
        for a in cloudwatch.describe_alarms(AlarmNames=[errors, latency])["MetricAlarms"]
    }
    assert set(found) == {errors, latency}
    assert found[latency]["ExtendedStatistic"] == "p99"
    assert all(alarm["AlarmActions"] == [topic] for alarm in found.values())
    # no traffic is not breaching: the extension evaluates them (percentile included) to OK
    for name in (errors, latency):
        wait_for(lambda name=name: state(cloudwatch, name) == "OK", timeout=30, what=f"{name} OK")


def test_model_errors_on_the_churn_endpoint_trip_its_alarm_and_notify(
    app_outputs: dict[str, dict[str, str]], aws: Callable[[str], Any]
) -> None:
    cloudwatch, sns, sqs = aws("cloudwatch"), aws("sns"), aws("sqs")
    topic = app_outputs[f"{PREFIX}-app"]["NotificationsTopicArn"]
    queue = sqs.create_queue(QueueName=f"rollout-alarms-{int(time.time())}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    errors = names.endpoint_errors_alarm_name(PREFIX, "churn")
    # When the endpoint's metrics show model errors (what SageMaker publishes per request)
    endpoint = names.endpoint_name(PREFIX, "churn")
    dimensions = [
        {"Name": "EndpointName", "Value": endpoint},
        {"Name": "VariantName", "Value": names.VARIANT_NAME},
    ]
    deadline = time.monotonic() + 30
    while state(cloudwatch, errors) != "ALARM" and time.monotonic() < deadline:
        cloudwatch.put_metric_data(
            Namespace="AWS/SageMaker",
            MetricData=[
                {"MetricName": "Invocation5XXErrors", "Dimensions": dimensions, "Value": 1.0}
            ],
        )
        time.sleep(0.3)
    # Then the alarm goes to ALARM and says so on the notifications topic
    assert state(cloudwatch, errors) == "ALARM"

    def notified() -> bool:
        for message in sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1).get("Messages", []):
            body = json.loads(message["Body"])
            if errors in body.get("Message", ""):
                return True
        return False

    wait_for(notified, timeout=30, what=f"{errors} on the notifications topic")
    # and once the errors stop, it returns to OK (missing data is not breaching)
    wait_for(lambda: state(cloudwatch, errors) == "OK", timeout=30, what=f"{errors} OK again")
