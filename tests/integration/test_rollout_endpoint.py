"""Safe rollout on the local cloud, driven through the SageMaker API as the pipeline drives it.

UpdateEndpoint with a ``DeploymentConfig`` (blue/green, canary, baking, auto-rollback on
CloudWatch alarms over the endpoint's own metrics), Application Auto Scaling registrations, and
serverless endpoints. Waits and alarm periods are AWS values (one-minute periods, five-minute
canary); the local cloud runs them ``SLUICE_TIME_SCALE`` times faster.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import tarfile
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.helpers import ENDPOINT, metric_sum, wait_for

pytestmark = pytest.mark.integration
INFERENCE = Path(__file__).parent / "jobs" / "rollout_inference.py"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:3.0-5"
ROLE = "arn:aws:iam::000000000000:role/sluice-rollout-test"
VARIANT = "AllTraffic"
#: AWS durations of the tests' deployments (the local cloud scales them down)
CANARY_WAIT, BAKING, ALARM_PERIOD = 300, 120, 60
REQUEST = json.dumps({"instances": [{"plan": "basic", "tenure_months": 3}]})


@pytest.fixture(scope="module")
def scale(local_cloud) -> float:
    with urllib.request.urlopen(f"{ENDPOINT}/_sluice/settings", timeout=5) as response:
        value = float(json.loads(response.read())["time_scale"])
    if value < 10:
        pytest.skip(
            f"the local cloud runs at SLUICE_TIME_SCALE={value:g}: these tests need 10 or more "
            "(make local-down; SLUICE_TIME_SCALE=60 make local-up)"
        )
    return value


@pytest.fixture(scope="module")
def bucket(aws) -> str:
    name = f"sluice-rollout-{uuid.uuid4().hex[:8]}"
    aws("s3").create_bucket(Bucket=name)
    return name


@dataclass
class Models:
    """Creates models (``model.json`` behaviour + the tests' inference.py) and endpoint configs."""

    aws: Callable[[str], Any]
    bucket: str

    def config(
        self,
        version: str,
        *,
        instances: int = 2,
        instance_type: str = "ml.m5.large",
        serverless: dict[str, int] | None = None,
        variant: str = VARIANT,
        **behaviour: Any,
    ) -> str:
        name = f"it-roll-{version}-{uuid.uuid4().hex[:6]}"
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            for member, data in (
                ("model.json", json.dumps(behaviour).encode()),
                ("code/inference.py", INFERENCE.read_bytes()),
            ):
                info = tarfile.TarInfo(member)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        key = f"models/{name}/model.tar.gz"
        self.aws("s3").put_object(Bucket=self.bucket, Key=key, Body=buffer.getvalue())
        sagemaker = self.aws("sagemaker")
        sagemaker.create_model(
            ModelName=name,
            ExecutionRoleArn=ROLE,
            PrimaryContainer={
                "Image": IMAGE,
                "ModelDataUrl": f"s3://{self.bucket}/{key}",
                "Environment": {
                    "SAGEMAKER_PROGRAM": "inference.py",
                    "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
                    "SLUICE_MODEL_VERSION": version,
                },
            },
        )
        production: dict[str, Any] = {"VariantName": variant, "ModelName": name}
        if serverless:
            production["ServerlessConfig"] = serverless
        else:
            production.update(InitialInstanceCount=instances, InstanceType=instance_type)
        sagemaker.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[production])
        return name


@pytest.fixture(scope="module")
def models(aws, bucket) -> Models:
    return Models(aws, bucket)


def wait_settled(sagemaker, name: str, timeout: float = 60) -> dict[str, Any]:
    def settled() -> dict[str, Any] | None:
        described: dict[str, Any] = sagemaker.describe_endpoint(EndpointName=name)
        busy = ("Creating", "Updating", "RollingBack")
        return None if described["EndpointStatus"] in busy else described

    return dict(wait_for(settled, timeout=timeout, interval=0.2, what=f"endpoint {name}"))


@pytest.fixture
def endpoint(aws, models, scale):
    """A new endpoint serving model version 1 on ``instances`` instances, with the rollback
    alarms a dataset endpoint has (5xx errors, p99 model latency); deleted afterwards."""
    sagemaker, cloudwatch = aws("sagemaker"), aws("cloudwatch")
    created: list[str] = []

    def make(instances: int = 4, **behaviour: Any) -> dict[str, Any]:
        name = f"it-roll-{uuid.uuid4().hex[:8]}"
        sagemaker.create_endpoint(
            EndpointName=name,
            EndpointConfigName=models.config("1", instances=instances, **behaviour),
        )
        created.append(name)
        assert wait_settled(sagemaker, name)["EndpointStatus"] == "InService"
        dimensions = [
            {"Name": "EndpointName", "Value": name},
            {"Name": "VariantName", "Value": VARIANT},
        ]
        common = {
            "Namespace": "AWS/SageMaker",
            "Dimensions": dimensions,
            "Period": ALARM_PERIOD,
            "EvaluationPeriods": 1,
            "TreatMissingData": "notBreaching",
        }
        errors, latency = f"{name}-5xx", f"{name}-p99"
        cloudwatch.put_metric_alarm(
            AlarmName=errors,
            MetricName="Invocation5XXErrors",
            Statistic="Sum",
            Threshold=1,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
            **common,
        )
        cloudwatch.put_metric_alarm(
            AlarmName=latency,
            MetricName="ModelLatency",
            ExtendedStatistic="p99",
            Threshold=500_000,  # microseconds
            ComparisonOperator="GreaterThanThreshold",
            **common,
        )
        return {"name": name, "alarms": [errors, latency]}

    yield make
    for name in created:
        with contextlib.suppress(ClientError):
            sagemaker.delete_endpoint(EndpointName=name)


def canary_config(alarms: list[str], *, canary: int = 1) -> dict[str, Any]:
    return {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "CanarySize": {"Type": "INSTANCE_COUNT", "Value": canary},
                "WaitIntervalInSeconds": CANARY_WAIT,
            },
            "TerminationWaitInSeconds": BAKING,
            "MaximumExecutionTimeoutInSeconds": 1800,
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": alarm} for alarm in alarms]},
    }


@dataclass
class Traffic:
    """Answers seen while an update ran, by the phase DescribeEndpoint showed before each."""

    answers: list[tuple[str, str]] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    final: dict[str, Any] = field(default_factory=dict)

    def during(self, phase: str) -> Counter[str]:
        return Counter(answer for seen, answer in self.answers if seen == phase)


def phase_of(described: dict[str, Any]) -> str:
    """``canary`` / ``all`` (traffic on the new fleet) / ``launching`` / the endpoint status."""
    status = described["EndpointStatus"]
    pending = (described.get("PendingDeploymentSummary") or {}).get("ProductionVariants") or []
    if status != "Updating" or not pending:
        return status
    latest = pending[0]["VariantStatus"][-1]["Status"]
    if latest == "Creating":
        return "launching"
    weight = pending[0]["CurrentWeight"] / pending[0]["DesiredWeight"]
    return "all" if weight >= 1 else "canary"


def drive(aws, name: str, *, bad_every: int = 0, timeout: float = 60) -> Traffic:
    """Invoke ``name`` until an update in progress is over; every ``bad_every``-th request is
    malformed (an unsupported content type: a client error)."""
    sagemaker, runtime = aws("sagemaker"), aws("sagemaker-runtime")
    traffic, deadline, count = Traffic(), time.monotonic() + timeout, 0
    while time.monotonic() < deadline:
        described = sagemaker.describe_endpoint(EndpointName=name)
        phase = phase_of(described)
        if not traffic.statuses or traffic.statuses[-1] != described["EndpointStatus"]:
            traffic.statuses.append(described["EndpointStatus"])
        if phase == "InService" and len(traffic.statuses) > 1:
            traffic.final = described
            return traffic
        count += 1
        if bad_every and count % bad_every == 0:
            try:
                runtime.invoke_endpoint(
                    EndpointName=name, ContentType="text/plain", Body="nonsense"
                )
                answer = "bad request accepted"
            except runtime.exceptions.ModelError as error:
                answer = f"client error {status_of(error)}"
            traffic.answers.append((phase, answer))
            continue
        try:
            response = runtime.invoke_endpoint(
                EndpointName=name, ContentType="application/json", Body=REQUEST
            )
            answer = f"v{json.loads(response['Body'].read())['model_version']}"
        except runtime.exceptions.ModelError as error:
            answer = f"error {status_of(error)}"
        traffic.answers.append((phase, answer))
    pytest.fail(f"update of {name} still running after {timeout}s: {traffic.statuses}")


def status_of(error: ClientError) -> int:
    """The container's status behind a ModelError (``OriginalStatusCode``, or the message)."""
    if "OriginalStatusCode" in error.response:
        return int(error.response["OriginalStatusCode"])
    found = re.search(r"error \((\d{3})\)", str(error))
    assert found, str(error)
    return int(found.group(1))


# ---------------------------------------------------------------- canary and rollback


def test_better_model_rolls_out_through_the_canary(aws, models, endpoint):
    # Given an endpoint of 4 instances serving version 1, watched by its rollback alarms
    live = endpoint(instances=4)
    sagemaker = aws("sagemaker")
    deployment = canary_config(live["alarms"])
    # When it is updated to version 2 with a canary of 1 instance in 4
    sagemaker.update_endpoint(
        EndpointName=live["name"],
        EndpointConfigName=models.config("2", instances=4),
        DeploymentConfig=deployment,
    )
    traffic = drive(aws, live["name"])
    # Then during the canary about a quarter of the requests are answered by version 2
    canary = traffic.during("canary")
    assert canary.total() >= 40, canary
    assert set(canary) == {"v1", "v2"}
    assert canary["v2"] / canary.total() == pytest.approx(0.25, abs=0.12)
    # then all of them, and the update ends InService on the new config, never rolling back
    assert set(traffic.during("all")) == {"v2"}
    assert traffic.statuses == ["Updating", "InService"]
    final = traffic.final
    assert final["EndpointConfigName"].startswith("it-roll-2-")
    assert "FailureReason" not in final
    assert final["LastDeploymentConfig"] == deployment
    assert final["ProductionVariants"][0]["CurrentInstanceCount"] == 4
    assert "PendingDeploymentSummary" not in final
    # and the endpoint's metrics counted every request in CloudWatch
    sent = len(traffic.answers)
    wait_for(
        lambda: metric_sum(aws, live["name"], "Invocations") >= sent,
        timeout=10,
        what="Invocations in CloudWatch",
    )
    assert metric_sum(aws, live["name"], "Invocation5XXErrors") == 0


def test_model_failing_on_live_traffic_is_rolled_back_while_the_old_one_serves(
    aws, models, endpoint
):
    # Given an endpoint serving version 1
    live = endpoint(instances=2)
    sagemaker, cloudwatch = aws("sagemaker"), aws("cloudwatch")
    errors = live["alarms"][0]
    # When it is updated to a version 2 that fails on every request
    sagemaker.update_endpoint(
        EndpointName=live["name"],
        EndpointConfigName=models.config("2", instances=2, fail=True),
        DeploymentConfig=canary_config(live["alarms"]),
    )
    traffic = drive(aws, live["name"])
    # Then the 5xx alarm trips during the canary and SageMaker rolls back
    assert traffic.statuses == ["Updating", "RollingBack", "InService"]
    assert traffic.during("canary")["error 500"] >= 1
    assert "all" not in {phase for phase, _ in traffic.answers}
    final = traffic.final
    assert final["EndpointConfigName"].startswith("it-roll-1-")
    assert errors in final["FailureReason"]
    # and version 1 answered every request that version 2 did not fail, throughout
    assert {answer for _, answer in traffic.answers} == {"v1", "error 500"}
    assert set(traffic.during("RollingBack")) <= {"v1"}
    assert drive_after(aws, live["name"]) == {"v1"}
    # and the alarm's history shows when it went to ALARM
    history = cloudwatch.describe_alarm_history(AlarmName=errors, HistoryItemType="StateUpdate")
    assert any(
        json.loads(item["HistoryData"])["newState"]["stateValue"] == "ALARM"
        for item in history["AlarmHistoryItems"]
    )


def drive_after(aws, name: str, requests: int = 20) -> set[str]:
    runtime = aws("sagemaker-runtime")
    answers = set()
    for _ in range(requests):
        response = runtime.invoke_endpoint(
            EndpointName=name, ContentType="application/json", Body=REQUEST
        )
        answers.add(f"v{json.loads(response['Body'].read())['model_version']}")
    return answers


def test_malformed_requests_during_a_canary_do_not_roll_it_back(aws, models, endpoint):
    # Given an endpoint serving version 1 and a healthy version 2 rolling out
    live = endpoint(instances=2)
    aws("sagemaker").update_endpoint(
        EndpointName=live["name"],
        EndpointConfigName=models.config("2", instances=2),
        DeploymentConfig=canary_config(live["alarms"]),
    )
    # When a third of the requests during the update are malformed
    traffic = drive(aws, live["name"], bad_every=3)
    # Then they are client errors (4xx), and the update completes without a rollback
    assert traffic.during("canary")["client error 415"] >= 5
    assert traffic.statuses == ["Updating", "InService"]
    assert traffic.final["EndpointConfigName"].startswith("it-roll-2-")
    assert "FailureReason" not in traffic.final
    # and they count as 4xx in CloudWatch, never as 5xx
    wait_for(
        lambda: metric_sum(aws, live["name"], "Invocation4XXErrors") >= 5,
        timeout=10,
        what="4xx errors in CloudWatch",
    )
    assert metric_sum(aws, live["name"], "Invocation5XXErrors") == 0


def test_slow_model_trips_the_p99_latency_alarm_and_is_rolled_back(aws, models, endpoint):
    live = endpoint(instances=2)
    latency = live["alarms"][1]
    aws("sagemaker").update_endpoint(
        EndpointName=live["name"],
        EndpointConfigName=models.config("2", instances=2, sleep_ms=700),
        DeploymentConfig=canary_config(live["alarms"]),
    )
    traffic = drive(aws, live["name"])
    assert traffic.statuses == ["Updating", "RollingBack", "InService"]
    assert latency in traffic.final["FailureReason"]
    assert traffic.final["EndpointConfigName"].startswith("it-roll-1-")


def test_all_at_once_with_baking_on_a_single_instance(aws, models, endpoint):
    # one instance cannot hold a canary: the stage config turns it into all at once + baking
    live = endpoint(instances=1)
    config = models.config("2", instances=1)
    sagemaker = aws("sagemaker")
    with pytest.raises(ClientError, match="CanarySize"):
        sagemaker.update_endpoint(
            EndpointName=live["name"],
            EndpointConfigName=config,
            DeploymentConfig=canary_config(live["alarms"]),
        )
    sagemaker.update_endpoint(
        EndpointName=live["name"],
        EndpointConfigName=config,
        DeploymentConfig={
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0},
                "TerminationWaitInSeconds": BAKING,
            },
            "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": a} for a in live["alarms"]]},
        },
    )
    traffic = drive(aws, live["name"])
    assert set(traffic.during("all")) == {"v2"}
    assert traffic.final["EndpointConfigName"] == config


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("unknown alarm", "do not exist"),
        ("variant renamed", "same variant names"),
        ("retain and new config", "cannot be used together"),
    ],
)
def test_update_requests_sagemaker_refuses_leave_the_endpoint_serving(
    aws, models, endpoint, change, message
):
    live = endpoint(instances=2)
    sagemaker = aws("sagemaker")
    deployment = canary_config(live["alarms"])
    kwargs: dict[str, Any] = {"DeploymentConfig": deployment}
    config = models.config("2", instances=2)
    if change == "unknown alarm":
        kwargs["DeploymentConfig"] = canary_config(["no-such-alarm"])
    elif change == "variant renamed":
        config = models.config("2", instances=2, variant="Renamed")
    else:
        kwargs["RetainDeploymentConfig"] = True
    with pytest.raises(ClientError, match=message):
        sagemaker.update_endpoint(EndpointName=live["name"], EndpointConfigName=config, **kwargs)
    assert sagemaker.describe_endpoint(EndpointName=live["name"])["EndpointStatus"] == "InService"


def test_retained_deployment_config_is_used_again(aws, models, endpoint):
    live = endpoint(instances=2)
    sagemaker = aws("sagemaker")
    deployment = canary_config(live["alarms"])
    sagemaker.update_endpoint(
        EndpointName=live["name"],
        EndpointConfigName=models.config("2", instances=2),
        DeploymentConfig=deployment,
    )
    wait_settled(sagemaker, live["name"])
    sagemaker.update_endpoint(
        EndpointName=live["name"],
        EndpointConfigName=models.config("3", instances=2, fail=True),
        RetainDeploymentConfig=True,
    )
    traffic = drive(aws, live["name"])
    assert traffic.statuses == ["Updating", "RollingBack", "InService"]
    assert traffic.final["LastDeploymentConfig"] == deployment
    assert traffic.final["EndpointConfigName"].startswith("it-roll-2-")


# ---------------------------------------------------------------- autoscaling, serverless


def resource(name: str) -> str:
    return f"endpoint/{name}/variant/{VARIANT}"


def test_autoscaling_registration_is_recorded_kept_across_updates_and_removed_with_the_endpoint(
    aws, models, endpoint
):
    live = endpoint(instances=2)
    name = live["name"]
    sagemaker, scaling = aws("sagemaker"), aws("application-autoscaling")
    target = {
        "ServiceNamespace": "sagemaker",
        "ResourceId": resource(name),
        "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
    }
    # Given the variant registered for target tracking on invocations per instance
    scaling.register_scalable_target(**target, MinCapacity=2, MaxCapacity=6)
    scaling.put_scaling_policy(
        PolicyName=f"{name}-invocations",
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 100.0,
            "PredefinedMetricSpecification": {
                "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
            },
            "ScaleInCooldown": 300,
            "ScaleOutCooldown": 60,
        },
        **target,
    )
    (registered,) = scaling.describe_scalable_targets(
        ServiceNamespace="sagemaker", ResourceIds=[resource(name)]
    )["ScalableTargets"]
    assert (registered["MinCapacity"], registered["MaxCapacity"]) == (2, 6)
    (policy,) = scaling.describe_scaling_policies(
        ServiceNamespace="sagemaker", ResourceId=resource(name)
    )["ScalingPolicies"]
    assert policy["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] == 100.0
    # and scaled out to 3 instances
    sagemaker.update_endpoint_weights_and_capacities(
        EndpointName=name,
        DesiredWeightsAndCapacities=[{"VariantName": VARIANT, "DesiredInstanceCount": 3}],
    )
    # When an update would change the instance type, it is refused while registered
    with pytest.raises(ClientError, match="Application Auto Scaling"):
        sagemaker.update_endpoint(
            EndpointName=name,
            EndpointConfigName=models.config("2", instances=2, instance_type="ml.c5.xlarge"),
        )
    # When an update keeps the instance type and retains the variant's properties
    sagemaker.update_endpoint(
        EndpointName=name,
        EndpointConfigName=models.config("2", instances=2),
        RetainAllVariantProperties=True,
        DeploymentConfig=canary_config(live["alarms"]),
    )
    final = wait_settled(sagemaker, name)
    # Then it keeps the scaled-out count, and the registration stays
    assert final["EndpointConfigName"].startswith("it-roll-2-")
    assert final["ProductionVariants"][0]["DesiredInstanceCount"] == 3
    assert scaling.describe_scalable_targets(
        ServiceNamespace="sagemaker", ResourceIds=[resource(name)]
    )["ScalableTargets"]
    # and without retaining, an update goes back to the config's initial count
    sagemaker.update_endpoint(EndpointName=name, EndpointConfigName=models.config("3", instances=2))
    assert wait_settled(sagemaker, name)["ProductionVariants"][0]["DesiredInstanceCount"] == 2
    # When the endpoint is deleted, its registration and policies go with it
    sagemaker.delete_endpoint(EndpointName=name)
    assert not scaling.describe_scalable_targets(
        ServiceNamespace="sagemaker", ResourceIds=[resource(name)]
    )["ScalableTargets"]
    assert not scaling.describe_scaling_policies(
        ServiceNamespace="sagemaker", ResourceId=resource(name)
    )["ScalingPolicies"]


def test_autoscaling_refuses_what_aws_refuses(aws):
    scaling = aws("application-autoscaling")
    target = {
        "ServiceNamespace": "sagemaker",
        "ResourceId": resource("no-such-endpoint"),
        "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
    }
    with pytest.raises(ClientError, match="does not exist"):
        scaling.register_scalable_target(**target, MinCapacity=1, MaxCapacity=2)
    with pytest.raises(ClientError, match="No scalable target registered"):
        scaling.put_scaling_policy(
            PolicyName="p",
            PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration={
                "TargetValue": 1.0,
                "PredefinedMetricSpecification": {
                    "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
                },
            },
            **target,
        )


def test_serverless_endpoint_serves_and_cannot_be_switched_to_from_real_time(aws, models, endpoint):
    sagemaker, runtime = aws("sagemaker"), aws("sagemaker-runtime")
    name = f"it-roll-sl-{uuid.uuid4().hex[:6]}"
    serverless = {"MemorySizeInMB": 2048, "MaxConcurrency": 5}
    sagemaker.create_endpoint(
        EndpointName=name, EndpointConfigName=models.config("1", serverless=serverless)
    )
    try:
        described = wait_settled(sagemaker, name)
        assert described["EndpointStatus"] == "InService"
        variant = described["ProductionVariants"][0]
        assert variant["CurrentServerlessConfig"] == serverless
        assert "CurrentInstanceCount" not in variant
        response = runtime.invoke_endpoint(
            EndpointName=name, ContentType="application/json", Body=REQUEST
        )
        assert json.loads(response["Body"].read())["model_version"] == "1"
        # no instance count to scale
        with pytest.raises(ClientError, match="serverless"):
            aws("application-autoscaling").register_scalable_target(
                ServiceNamespace="sagemaker",
                ResourceId=resource(name),
                ScalableDimension="sagemaker:variant:DesiredInstanceCount",
                MinCapacity=1,
                MaxCapacity=2,
            )
    finally:
        sagemaker.delete_endpoint(EndpointName=name)
    # a real-time endpoint cannot be updated to serverless (SageMaker does not support it)
    live = endpoint(instances=1)
    with pytest.raises(ClientError, match="serverless"):
        sagemaker.update_endpoint(
            EndpointName=live["name"], EndpointConfigName=models.config("2", serverless=serverless)
        )
