"""Safe rollout through the real pipeline on the local cloud: the deploy steps of the deployed dev
stage, their DeploymentConfig, rollback alarms, autoscaling and ``make deploy-model``.

One story on ``churn`` (real-time: 2 instances, a canary of 1, 5-minute canary and 2-minute
baking on AWS, ``SLUICE_TIME_SCALE`` times faster here), in file order: a first deploy creates
the endpoint and registers autoscaling; a better challenger rolls out through the canary; one
that fails on live traffic is rolled back; ``make deploy-model`` puts earlier versions back,
malformed requests during its canary included. Then ``wine``, served serverless in the test
stack (``-c endpoints=...``, conftest): a real-time endpoint in its place is not updated, and
once gone, a serverless one is created and serves. Seeded curated data and a ladder of
hyperparameters whose ROC-AUC on it is known (C1 ~0.83 < C2 ~0.86 < C3 ~0.89; threshold 0.80,
margin 0.005) decide every verdict.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from datasets import names
from infra.config import STAGES
from tests.integration.helpers import metric_sum, wait_for
from tests.integration.pipeline_helpers import (
    Inbox,
    Pipeline,
    arm_fault,
    clear_faults,
    model_request,
    upload_rows,
)
from tests.integration.test_rollout_endpoint import phase_of, status_of

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
DEV = STAGES["dev"]
DATASET = "churn"
CHURN = names.endpoint_name(DEV.prefix, DATASET)
WINE = names.endpoint_name(DEV.prefix, "wine")
RESOURCE = f"endpoint/{CHURN}/variant/{names.VARIANT_NAME}"
ERRORS_ALARM, LATENCY_ALARM = names.endpoint_rollback_alarm_names(DEV.prefix, DATASET)
C1 = {"num_round": 12, "max_depth": 2}
C2 = {"num_round": 30, "max_depth": 3}
C3 = {"num_round": 150, "max_depth": 4, "eta": 0.1}
PYTHON = os.environ.get("SLUICE_TEST_PYTHON", str(ROOT / ".venv" / "bin" / "python"))
STARTED = time.monotonic()


@pytest.fixture(scope="module")
def pipeline(aws: Callable[[str], Any], app_outputs: dict[str, dict[str, str]]) -> Pipeline:
    return Pipeline(aws, {**app_outputs["sluice-dev-data"], **app_outputs["sluice-dev-app"]})


@pytest.fixture(scope="module")
def request_body(pipeline: Pipeline, tmp_path_factory: pytest.TempPathFactory) -> str:
    """3,500 curated churn rows (ingestion's own code; no run starts) and no churn endpoint:
    the story starts from a dataset that was never deployed. The body of a request for rows
    of the upload."""
    pipeline.seed_curated(DATASET, 3500, 41, tmp_path_factory.mktemp("churn"))
    assert pipeline.last_upload is not None
    sagemaker = pipeline.aws("sagemaker")
    with contextlib.suppress(ClientError):
        sagemaker.delete_endpoint(EndpointName=CHURN)
    wait_for(lambda: not _exists(sagemaker, CHURN), timeout=30, what=f"{CHURN} deleted")
    return json.dumps(model_request(DATASET, upload_rows(pipeline.last_upload, limit=2)))


def _exists(sagemaker: Any, endpoint: str) -> bool:
    try:
        sagemaker.describe_endpoint(EndpointName=endpoint)
        return True
    except ClientError:
        return False


@pytest.fixture(scope="module")
def notifications(aws: Callable[[str], Any], pipeline: Pipeline) -> Iterator[Inbox]:
    inbox = Inbox(aws, "rollout-notifications")
    topic = pipeline.outputs["NotificationsTopicArn"]
    subscription = aws("sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=inbox.arn)
    yield inbox
    aws("sns").unsubscribe(SubscriptionArn=subscription["SubscriptionArn"])


def scalable_target(pipeline: Pipeline, resource: str = RESOURCE) -> dict[str, Any] | None:
    targets = pipeline.aws("application-autoscaling").describe_scalable_targets(
        ServiceNamespace="sagemaker", ResourceIds=[resource]
    )["ScalableTargets"]
    return targets[0] if targets else None


@dataclass
class Traffic:
    """Answers seen while a deploy ran, by the phase DescribeEndpoint showed before each."""

    answers: list[tuple[str, str]] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)

    def during(self, phase: str) -> Counter[str]:
        return Counter(answer for seen, answer in self.answers if seen == phase)

    @property
    def phases(self) -> set[str]:
        return {phase for phase, _ in self.answers}


def drive(
    pipeline: Pipeline, execution: str, body: str, *, bad_every: int = 0, timeout: float = 240
) -> Traffic:
    """Invoke the churn endpoint, as clients would, until ``execution`` ends (from the moment
    the endpoint starts updating); every ``bad_every``-th request is a malformed record."""
    sagemaker, runtime = pipeline.aws("sagemaker"), pipeline.aws("sagemaker-runtime")
    sfn = pipeline.aws("stepfunctions")
    traffic, count, checked = Traffic(), 0, 0.0
    deadline = time.monotonic() + timeout
    bad = json.dumps({"instances": [{**json.loads(body)["instances"][0], "plan": "gold"}]})
    while time.monotonic() < deadline:
        if time.monotonic() - checked > 0.5:
            checked = time.monotonic()
            if sfn.describe_execution(executionArn=execution)["status"] != "RUNNING":
                return traffic
        try:
            described = sagemaker.describe_endpoint(EndpointName=CHURN)
        except ClientError:
            continue  # not created yet
        status = described["EndpointStatus"]
        if not traffic.statuses or traffic.statuses[-1] != status:
            traffic.statuses.append(status)
        if status != "Updating" and len(traffic.statuses) == 1:
            time.sleep(0.1)  # still training and evaluating: nothing to watch yet
            continue
        count += 1
        malformed = bool(bad_every) and count % bad_every == 0
        try:
            response = runtime.invoke_endpoint(
                EndpointName=CHURN, ContentType="application/json", Body=bad if malformed else body
            )
            answer = f"v{json.loads(response['Body'].read())['model_version']}"
        except runtime.exceptions.ModelError as error:
            answer = f"{'client error' if malformed else 'error'} {status_of(error)}"
        traffic.answers.append((phase_of(described), answer))
    pytest.fail(f"{execution} still running after {timeout}s: {traffic.statuses}")


def deploy_model(version: int) -> subprocess.Popen[str]:
    """``make deploy-model DATASET=churn VERSION=<version> LOCAL=1``, started."""
    return subprocess.Popen(
        ["make", "--no-print-directory", "deploy-model", f"DATASET={DATASET}",
         f"VERSION={version}", "LOCAL=1", f"PY={PYTHON}"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def manual_deploy(pipeline: Pipeline, started: set[str]) -> str:
    """The deploy execution ``make deploy-model`` started (not in ``started``)."""

    def found() -> str | None:
        new = [e["executionArn"] for e in pipeline.executions("DeployStateMachineArn")]
        fresh = [arn for arn in new if arn not in started]
        return fresh[0] if fresh else None

    return str(wait_for(found, timeout=30, what="the deploy make deploy-model starts"))


def message_of(inbox: Inbox, fragment: str) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        matches = [m for m in inbox.poll() if fragment in m.get("Subject", "")]
        return matches[-1] if matches else None

    return dict(wait_for(found, timeout=30, what=f"a notification about {fragment}"))


# ---------------------------------------------------------------- churn: real-time


def test_a_first_deploy_creates_the_endpoint_and_registers_autoscaling(
    pipeline: Pipeline, request_body: str
) -> None:
    # Given no churn endpoint, When a model passes the gate
    described, run = pipeline.run(DATASET, hyperparameters=C1)
    # Then it is created real-time as the stage configures it (2 instances, variant AllTraffic)
    assert described["status"] == "SUCCEEDED", run.get("error")
    assert run["outcome"] == "deployed"
    deploy_states = pipeline.states(run["deployment"]["execution"])
    assert "Create endpoint" in deploy_states and "Update endpoint" not in deploy_states
    endpoint = pipeline.aws("sagemaker").describe_endpoint(EndpointName=CHURN)
    (variant,) = endpoint["ProductionVariants"]
    assert variant["VariantName"] == names.VARIANT_NAME and variant["CurrentInstanceCount"] == 2
    # and, once in service, registered for autoscaling with the configured bounds and target
    real_time = DEV.default_endpoint.real_time
    target = scalable_target(pipeline)
    assert target is not None
    assert (target["MinCapacity"], target["MaxCapacity"]) == (
        real_time.min_instances,
        real_time.max_instances,
    )
    (policy,) = pipeline.aws("application-autoscaling").describe_scaling_policies(
        ServiceNamespace="sagemaker", ResourceId=RESOURCE
    )["ScalingPolicies"]
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["TargetValue"] == real_time.target_invocations_per_instance
    assert run["deployment"]["autoscaling"]["applied"]["registered"] is True
    assert pipeline.predict(DATASET, json.loads(request_body))["model_version"] == str(
        run["model_package"]["version"]
    )


def test_a_better_challenger_rolls_out_through_the_canary_keeping_the_scaled_out_fleet(
    pipeline: Pipeline, request_body: str
) -> None:
    before = pipeline.serving(DATASET)
    # Given autoscaling scaled the endpoint out to 3 instances
    pipeline.aws("sagemaker").update_endpoint_weights_and_capacities(
        EndpointName=CHURN,
        DesiredWeightsAndCapacities=[
            {"VariantName": names.VARIANT_NAME, "DesiredInstanceCount": 3}
        ],
    )
    wait_for(lambda: pipeline.serving(DATASET)["status"] == "InService", timeout=30,
             what="the scale-out")  # fmt: skip
    # When a better challenger passes the gate, with clients calling the endpoint meanwhile
    execution = pipeline.start(DATASET, hyperparameters=C2)
    traffic = drive(pipeline, execution, request_body)
    run = pipeline.run_of(execution)
    assert pipeline.wait(execution)["status"] == "SUCCEEDED", run.get("error")
    new = f"v{run['model_package']['version']}"
    # Then during the canary (1 instance of the new fleet of 3) about a third of the requests
    # are answered by the new model, the rest by the old one
    canary = traffic.during("canary")
    print(f"\ncanary: {dict(canary)}, then all: {dict(traffic.during('all'))}")
    assert canary.total() >= 20, traffic.statuses
    assert set(canary) == {f"v{before['version']}", new}
    assert canary[new] / canary.total() == pytest.approx(1 / 3, abs=0.2)
    # then all of them, and the update ends on the new config without a rollback
    assert set(traffic.during("all")) <= {new}
    assert "RollingBack" not in traffic.statuses
    assert run["outcome"] == "deployed" and run["deployment"]["status"] == "deployed"
    described = pipeline.aws("sagemaker").describe_endpoint(EndpointName=CHURN)
    assert described["EndpointConfigName"] == run["deployment"]["config"]
    assert "FailureReason" not in described
    # with the stage's DeploymentConfig: blue/green canary, baking, the dataset's rollback alarms
    config = described["LastDeploymentConfig"]
    policy = config["BlueGreenUpdatePolicy"]
    assert policy["TrafficRoutingConfiguration"]["Type"] == "CANARY"
    assert policy["TrafficRoutingConfiguration"]["CanarySize"] == {
        "Type": "INSTANCE_COUNT", "Value": 1
    }  # fmt: skip
    assert policy["TerminationWaitInSeconds"] == DEV.default_endpoint.rollout.baking_seconds
    assert config["AutoRollbackConfiguration"]["Alarms"] == [
        {"AlarmName": ERRORS_ALARM}, {"AlarmName": LATENCY_ALARM}
    ]  # fmt: skip
    # and the scaled-out fleet and its autoscaling are kept across the update
    assert described["ProductionVariants"][0]["DesiredInstanceCount"] == 3
    target = scalable_target(pipeline)
    assert target is not None and (target["MinCapacity"], target["MaxCapacity"]) == (2, 3)


def test_a_challenger_failing_on_live_traffic_is_rolled_back_while_the_old_model_serves(
    pipeline: Pipeline, request_body: str, notifications: Inbox
) -> None:
    before = pipeline.serving(DATASET)
    # Given a better challenger whose model will fail every live request (it passed evaluation)
    arm_fault("EndpointInvocations", match=CHURN, message="predict_fn: index out of range")
    try:
        execution = pipeline.start(DATASET, hyperparameters=C3)
        traffic = drive(pipeline, execution, request_body)
    finally:
        clear_faults()
    run = pipeline.run_of(execution)
    old = f"v{before['version']}"
    # Then the canary's model errors trip the 5xx alarm and SageMaker rolls back during the
    # canary: the old model answered every request the new one did not fail, throughout
    print(f"\nwhile rolling out: {Counter(traffic.answers)}, statuses {traffic.statuses}")
    assert traffic.during("canary")["error 500"] >= 1, traffic.statuses
    assert "all" not in traffic.phases
    assert {answer for _, answer in traffic.answers} <= {old, "error 500"}
    assert pipeline.serving(DATASET)["config"] == before["config"]
    assert pipeline.predict(DATASET, json.loads(request_body))["model_version"] == before["version"]
    # and the run records the challenger as rolled back: which alarm, and when
    assert run["outcome"] == "rolled_back" and run["status"] == "SUCCEEDED"
    deployment = run["deployment"]
    assert deployment["status"] == "rolled_back"
    assert deployment["alarm"]["name"] == ERRORS_ALARM and not deployment["alarm"]["before_deploy"]
    assert run["started_at"] <= deployment["alarm"]["at"] <= deployment["at"]
    assert deployment["previous_version"] == before["version"]
    # and its model package is Rejected with that reason
    package = pipeline.package(run["model_package"]["package_arn"])
    assert package["ModelApprovalStatus"] == "Rejected"
    assert ERRORS_ALARM in package["ApprovalDescription"]
    assert run["model_package"]["status"] == "Rejected"
    # and the notification says so
    message = message_of(notifications, f"rolled back version {run['model_package']['version']}")
    assert ERRORS_ALARM in message["Message"] and "served throughout" in message["Message"]
    # and autoscaling stays registered; the alarm returns to OK once the errors stop
    assert scalable_target(pipeline) is not None
    cloudwatch = pipeline.aws("cloudwatch")
    wait_for(
        lambda: (
            cloudwatch.describe_alarms(AlarmNames=[ERRORS_ALARM])["MetricAlarms"][0]["StateValue"]
            == "OK"
        ),
        timeout=30,
        what=f"{ERRORS_ALARM} back to OK",
    )


def _approved_versions(pipeline: Pipeline) -> list[int]:
    packages = pipeline.aws("sagemaker").list_model_packages(
        ModelPackageGroupName=names.model_package_group_name(DEV.prefix, DATASET)
    )["ModelPackageSummaryList"]
    return sorted(
        int(p["ModelPackageVersion"]) for p in packages if p["ModelApprovalStatus"] == "Approved"
    )


def test_make_deploy_model_brings_back_an_earlier_version_recorded_as_a_manual_deploy(
    pipeline: Pipeline, request_body: str
) -> None:
    serving = pipeline.serving(DATASET)
    earlier = [v for v in _approved_versions(pipeline) if str(v) != serving["version"]][-1]
    known = {e["executionArn"] for e in pipeline.executions("DeployStateMachineArn")}
    # When a person deploys an earlier approved version (a quality alarm fired days later)
    command = deploy_model(earlier)
    output, _ = command.communicate(timeout=180)
    # Then it goes through the same deploy steps and serves
    assert command.returncode == 0, output
    assert f"deployed: version {earlier} serves on {CHURN}" in output
    execution = manual_deploy(pipeline, known)
    assert "Update endpoint" in pipeline.states(execution)
    assert pipeline.serving(DATASET)["version"] == str(earlier)
    assert pipeline.predict(DATASET, json.loads(request_body))["model_version"] == str(earlier)
    # and the ledger records a manual deploy of that version
    (item,) = [r for r in pipeline.ledger.runs(DATASET, 50) if r.get("execution") == execution]
    assert item["triggers"][0]["type"] == "deploy" and item["triggers"][0]["version"] == earlier
    assert item["outcome"] == "deployed" and item["deployment"]["source"] == "manual"
    # and a version that is not approved is refused, with what to do
    rejected = [
        int(p["ModelPackageVersion"])
        for p in pipeline.aws("sagemaker").list_model_packages(
            ModelPackageGroupName=names.model_package_group_name(DEV.prefix, DATASET)
        )["ModelPackageSummaryList"]
        if p["ModelApprovalStatus"] == "Rejected"
    ]
    refused = deploy_model(rejected[-1])
    output, _ = refused.communicate(timeout=60)
    assert refused.returncode != 0 and "only approved versions are deployed" in output


def test_malformed_requests_during_a_canary_do_not_roll_it_back(
    pipeline: Pipeline, request_body: str
) -> None:
    serving = pipeline.serving(DATASET)
    version = [v for v in _approved_versions(pipeline) if str(v) != serving["version"]][-1]
    known = {e["executionArn"] for e in pipeline.executions("DeployStateMachineArn")}
    command = deploy_model(version)
    execution = manual_deploy(pipeline, known)
    # When a third of the requests during the deploy are malformed (a category the model
    # does not know: a client error)
    traffic = drive(pipeline, execution, request_body, bad_every=3)
    output, _ = command.communicate(timeout=60)
    # Then they are answered 400 and the deploy completes without a rollback
    assert command.returncode == 0, output
    assert traffic.during("canary")["client error 400"] >= 3, traffic.statuses
    assert "RollingBack" not in traffic.statuses
    assert pipeline.serving(DATASET)["version"] == str(version)
    assert metric_sum(pipeline.aws, CHURN, "Invocation4XXErrors") >= 3


# ---------------------------------------------------------------- wine: serverless


def export_wine(path: Path, *, scramble: bool = False) -> None:
    """scikit-learn's wine data as an upload in ``datasets/wine.yaml``'s shape (``scramble``:
    every label moved to the next cultivar, for a model that has learnt nothing right)."""
    from sklearn.datasets import load_wine

    wine = load_wine()
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow([*wine.feature_names, "cultivar"])
        for values, target in zip(wine.data, wine.target, strict=True):
            row = [
                str(int(v)) if name in ("magnesium", "proline") else repr(float(v))
                for name, v in zip(wine.feature_names, values, strict=True)
            ]
            label = (target + 1) % 3 if scramble else target
            writer.writerow([*row, str(wine.target_names[label])])


@pytest.fixture(scope="module")
def wine(pipeline: Pipeline, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Curated wine data (no run starts); the work folder."""
    work = tmp_path_factory.mktemp("wine")
    export_wine(work / "wine.csv")
    pipeline.seed_curated_file("wine", work / "wine.csv", work)
    return work


def _python(*args: str) -> None:
    subprocess.run([PYTHON, *args], cwd=ROOT, check=True, capture_output=True, timeout=300)


def real_time_wine_endpoint(pipeline: Pipeline, work: Path) -> str:
    """A real-time endpoint for wine, made by hand (a stage that served wine real-time before
    its config said serverless), serving a model trained on scrambled labels."""
    export_wine(work / "scrambled.csv", scramble=True)
    _python("-m", "lambdas.preprocess", "--spec", "datasets/wine.yaml", str(work / "scrambled.csv"),
            str(work / "scrambled"), "--pii-key-file", str(work / "pii.key"))  # fmt: skip
    _python("-m", "training.local", "train", "--spec", "datasets/wine.yaml", "--data",
            str(work / "scrambled"), "--out", str(work / "model"),
            "--hp", "num_round=2")  # fmt: skip
    bucket, key = pipeline.outputs["ArtifactsBucket"], "it-rollout/wine-real-time/model.tar.gz"
    pipeline.aws("s3").upload_file(str(work / "model" / "model.tar.gz"), bucket, key)
    sagemaker, name = pipeline.aws("sagemaker"), f"it-wine-real-time-{int(time.time())}"
    sagemaker.create_model(
        ModelName=name,
        ExecutionRoleArn="arn:aws:iam::000000000000:role/sluice-rollout-tests",
        PrimaryContainer={
            "Image": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:3.0-5",
            "ModelDataUrl": f"s3://{bucket}/{key}",
            "Environment": {"SAGEMAKER_PROGRAM": "inference.py",
                            "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
                            "SLUICE_MODEL_VERSION": "0"},
        },
    )  # fmt: skip
    sagemaker.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[{"VariantName": names.VARIANT_NAME, "ModelName": name,
                             "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}],
    )  # fmt: skip
    sagemaker.create_endpoint(EndpointName=WINE, EndpointConfigName=name)
    wait_for(lambda: pipeline.serving("wine")["status"] == "InService", timeout=60,
             what="the real-time wine endpoint")  # fmt: skip
    return name


def test_a_real_time_endpoint_is_not_updated_to_serverless_and_the_run_says_what_to_do(
    pipeline: Pipeline, wine: Path
) -> None:
    # Given wine configured serverless, but served by a real-time endpoint
    (wine / "pii.key").write_text("integration-tests-only-pii-key")
    config = real_time_wine_endpoint(pipeline, wine)
    sagemaker = pipeline.aws("sagemaker")
    models_before = sagemaker.list_models(NameContains=f"{WINE}-", MaxResults=100)["Models"]
    # When a run's model passes the gate
    described, run = pipeline.run("wine")
    # Then the run fails before anything is created, saying why and what to do
    assert described["status"] == "FAILED" and run["verdict"] == "promote"
    reason = run["error"]["reason"]
    assert "cannot update a real-time endpoint to serverless" in reason
    assert f"delete-endpoint --endpoint-name {WINE}" in reason and "make deploy-model" in reason
    assert pipeline.serving("wine")["config"] == config  # untouched, still serving
    assert sagemaker.list_models(NameContains=f"{WINE}-", MaxResults=100)["Models"] == models_before
    # (what the message says to do, for the next test)
    sagemaker.delete_endpoint(EndpointName=WINE)
    wait_for(lambda: not _exists(sagemaker, WINE), timeout=30, what="the wine endpoint deleted")


def test_a_serverless_configuration_deploys_and_serves(pipeline: Pipeline, wine: Path) -> None:
    # When wine's run passes the gate with no endpoint in place
    described, run = pipeline.run("wine")
    assert described["status"] == "SUCCEEDED", run.get("error")
    # Then a serverless endpoint serves it: memory and concurrency from the stage config
    serverless = DEV.default_endpoint.serverless
    endpoint = pipeline.aws("sagemaker").describe_endpoint(EndpointName=WINE)
    (variant,) = endpoint["ProductionVariants"]
    assert variant["CurrentServerlessConfig"] == {
        "MemorySizeInMB": serverless.memory_mb, "MaxConcurrency": serverless.max_concurrency
    }  # fmt: skip
    assert "CurrentInstanceCount" not in variant
    model = pipeline.aws("sagemaker").describe_model(
        ModelName=pipeline.aws("sagemaker").describe_endpoint_config(
            EndpointConfigName=endpoint["EndpointConfigName"]
        )["ProductionVariants"][0]["ModelName"]
    )
    assert not model.get("EnableNetworkIsolation")  # Serverless Inference does not support it
    # and it answers, with no autoscaling registered (nothing to scale)
    instance = {"alcohol": 13.2, "malic_acid": 1.8, "ash": 2.1, "alcalinity_of_ash": 11.2,
                "magnesium": 100, "total_phenols": 2.6, "flavanoids": 2.7,
                "nonflavanoid_phenols": 0.26, "proanthocyanins": 1.3, "color_intensity": 4.4,
                "hue": 1.05, "od280/od315_of_diluted_wines": 3.4, "proline": 1050}  # fmt: skip
    answer = pipeline.predict("wine", {"instances": [instance]})
    assert answer["predictions"][0]["label"] in ("class_0", "class_1", "class_2")
    assert scalable_target(pipeline, f"endpoint/{WINE}/variant/{names.VARIANT_NAME}") is None
    assert run["deployment"]["autoscaling"]["applied"] == {"registered": False, "why": "serverless"}


def test_zz_report_the_time_these_paths_took() -> None:
    print(f"\nrollout pipeline tests: {time.monotonic() - STARTED:.0f} s")
