"""The training pipeline on the local cloud: one test per path, on the real definition.

The paths share the deployed dev app and one dataset (``leads``), so they run in file order as
one story: each run trains on tiny seeded data with few boosting rounds (a ladder of
hyperparameters whose ROC-AUC on that data is known: below < L1 < L2 < L3), so a run takes
seconds and every verdict is decided by the data, not by luck.
"""

from __future__ import annotations

import csv
import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from datasets.generate import write_csv
from tests.integration.helpers import wait_for
from tests.integration.pipeline_helpers import (
    Inbox,
    Pipeline,
    arm_fault,
    clear_faults,
    model_request,
    upload_rows,
)

pytestmark = pytest.mark.integration
DATASET = "leads"
ENDPOINT = f"sluice-dev-{DATASET}"
#: ROC-AUC on the seeded data: below 0.73 (< threshold 0.75), L1 0.90, L2 0.93, L3 0.96
BELOW = {"num_round": 1, "max_depth": 1}
L1 = {"num_round": 3, "max_depth": 2}
L2 = {"num_round": 15, "max_depth": 2}
L3 = {"num_round": 40, "max_depth": 3}
STARTED = time.monotonic()


@pytest.fixture(scope="module")
def pipeline(aws: Callable[[str], Any], app_outputs: dict[str, dict[str, str]]) -> Pipeline:
    return Pipeline(aws, {**app_outputs["sluice-dev-data"], **app_outputs["sluice-dev-app"]})


@pytest.fixture(scope="module")
def seeded(pipeline: Pipeline, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,500 curated rows of leads (written as ingestion writes them; no run starts); the
    upload's CSV."""
    pipeline.seed_curated(DATASET, 1500, 21, tmp_path_factory.mktemp("leads"))
    assert pipeline.last_upload is not None
    return pipeline.last_upload


@pytest.fixture(scope="module")
def notifications(aws: Callable[[str], Any], pipeline: Pipeline) -> Iterator[Inbox]:
    inbox = Inbox(aws, "pipeline-notifications")
    topic = pipeline.outputs["NotificationsTopicArn"]
    subscription = aws("sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=inbox.arn)
    yield inbox
    aws("sns").unsubscribe(SubscriptionArn=subscription["SubscriptionArn"])


@pytest.fixture(scope="module")
def registry_events(aws: Callable[[str], Any]) -> Iterator[Inbox]:
    """Every SageMaker model package state change on the default bus."""
    inbox = Inbox(aws, "registry-events")
    events = aws("events")
    events.put_rule(
        Name="it-registry-events",
        EventPattern=json.dumps(
            {"source": ["aws.sagemaker"], "detail-type": ["SageMaker Model Package State Change"]}
        ),
    )
    events.put_targets(Rule="it-registry-events", Targets=[{"Id": "q", "Arn": inbox.arn}])
    yield inbox
    events.remove_targets(Rule="it-registry-events", Ids=["q"])
    events.delete_rule(Name="it-registry-events")


def message_of(inbox: Inbox, run_id: str) -> dict[str, Any]:
    """The notification of a run (SNS envelope: Subject, Message)."""

    def found() -> dict[str, Any] | None:
        matches = [m for m in inbox.poll() if run_id in m.get("Subject", "")]
        return matches[-1] if matches else None

    return dict(wait_for(found, timeout=30, what=f"the notification of run {run_id}"))


def test_first_run_creates_the_endpoint_and_serves_the_model(
    pipeline: Pipeline, seeded: Path, notifications: Inbox
) -> None:
    # Given curated leads and no endpoint yet, When a run is started by hand
    described, run = pipeline.run(DATASET, hyperparameters=L1)
    # Then it ends deployed: the model package it registered serves on the dataset's endpoint
    assert described["status"] == "SUCCEEDED", run.get("error")
    assert run["outcome"] == "deployed" and run["verdict"] == "promote"
    assert run["champion"]["package_arn"] == ""  # there was none
    package = run["model_package"]
    assert package["status"] == "Approved"  # dev: approved automatically
    serving = pipeline.serving(DATASET)
    assert serving["status"] == "InService" and serving["variant"] == "AllTraffic"
    assert serving["version"] == str(package["version"])
    # and the endpoint answers for rows of the upload, with the model version
    answer = pipeline.predict(DATASET, model_request(DATASET, upload_rows(seeded)))
    assert len(answer["predictions"]) == 5
    assert all(0 <= p["probability"] <= 1 for p in answer["predictions"])
    # and the ledger knows the run: trigger, inputs (URI, hash, counts), metrics, step durations
    assert run["triggers"] == [{"type": "manual", "by": "tests"}]
    assert run["inputs"]["rows"] >= 1500 and len(run["inputs"]["sha256"]) == 64
    assert run["inputs"]["list"].endswith(f"/runs/{DATASET}/{run['run_id']}/inputs/inputs.json")
    assert {"Prepare", "Train", "Evaluate", "Register model", "Deploy"} <= set(run["durations"])
    # and the package carries metrics and lineage
    described_package = pipeline.package(package["package_arn"])
    metadata = described_package["CustomerMetadataProperties"]
    assert metadata["run_id"] == run["run_id"]
    assert metadata["inputs_manifest"] == run["inputs"]["list"]
    assert json.loads(metadata["hyperparameters"]) == L1
    evaluation = described_package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    assert evaluation.endswith("/evaluation/evaluation.json")
    # and one notification says so, with the numbers and where the report is
    message = message_of(notifications, run["run_id"])
    assert "deployed version" in message["Subject"]
    assert re.search(r"roc_auc: challenger 0\.\d{4}, champion n/a", message["Message"])
    assert "report.html" in message["Message"]


def test_a_model_that_cannot_start_leaves_the_previous_one_serving(
    pipeline: Pipeline, seeded: Path, notifications: Inbox
) -> None:
    # Given a serving model, and a better challenger whose model will not start
    before = pipeline.serving(DATASET)
    arm_fault("EndpointStart", match=ENDPOINT, message="ModelError: the model failed to load")
    try:
        described, run = pipeline.run(DATASET, hyperparameters=L3)
    finally:
        clear_faults()
    # Then the run failed with SageMaker's reason, and the previous model still serves
    assert described["status"] == "FAILED"
    assert run["outcome"] == "failed" and run["verdict"] == "promote"
    assert "did not pass the ping health check" in run["error"]["reason"]
    assert "the model failed to load" in run["error"]["reason"]
    after = pipeline.serving(DATASET)
    assert (after["config"], after["version"]) == (before["config"], before["version"])
    assert after["status"] == "InService"
    assert pipeline.predict(DATASET, model_request(DATASET, upload_rows(seeded)))
    assert "ping health check" in message_of(notifications, run["run_id"])["Message"]


def test_a_better_challenger_replaces_the_champion(pipeline: Pipeline) -> None:
    before = pipeline.serving(DATASET)
    described, run = pipeline.run(DATASET, hyperparameters=L2)
    assert described["status"] == "SUCCEEDED", run.get("error")
    assert run["outcome"] == "deployed"
    assert run["metrics"]["challenger"] > run["metrics"]["champion"] + 0.005
    assert run["champion"]["version"] == before["version"]
    after = pipeline.serving(DATASET)
    assert after["version"] == str(run["model_package"]["version"]) != before["version"]


def test_a_worse_challenger_is_registered_rejected_and_nothing_changes(pipeline: Pipeline) -> None:
    before = pipeline.serving(DATASET)
    described, run = pipeline.run(DATASET, hyperparameters=L1)
    assert described["status"] == "SUCCEEDED"
    assert run["outcome"] == "rejected" and "champion is better" in run["reason"]
    package = pipeline.package(run["model_package"]["package_arn"])
    assert package["ModelApprovalStatus"] == "Rejected"
    assert "champion is better" in package["ApprovalDescription"]
    assert pipeline.serving(DATASET) == before


def test_a_challenger_below_the_threshold_is_rejected(pipeline: Pipeline) -> None:
    before = pipeline.serving(DATASET)
    described, run = pipeline.run(DATASET, hyperparameters=BELOW)
    assert described["status"] == "SUCCEEDED"
    assert run["outcome"] == "rejected" and "below the threshold 0.75" in run["reason"]
    assert pipeline.package(run["model_package"]["package_arn"])["ModelApprovalStatus"] == (
        "Rejected"
    )
    assert pipeline.serving(DATASET) == before


def test_a_throttled_sagemaker_call_is_retried_then_succeeds(pipeline: Pipeline) -> None:
    # Given SageMaker throttles the next CreateTrainingJob
    arm_fault("CreateTrainingJob", match=f"-{DATASET}-", message="Rate exceeded")
    try:
        execution = pipeline.start(DATASET, hyperparameters=L1)
        described = pipeline.wait(execution)
    finally:
        clear_faults()
    # Then the run backed off, called again under the next attempt's name, and went on
    assert described["status"] == "SUCCEEDED"
    states = pipeline.states(execution)
    assert states.count("Train") == 2 and "Train: back off" in states
    run = pipeline.run_of(execution)
    assert run["outcome"] == "rejected"  # L1 is worse than the champion: the run completed
    jobs = pipeline.aws("sagemaker").list_training_jobs(NameContains=run["run_id"])
    assert [j["TrainingJobName"][-2:] for j in jobs["TrainingJobSummaries"]] == ["-1"]


def test_a_failing_training_script_fails_the_run_with_its_reason(
    pipeline: Pipeline, notifications: Inbox
) -> None:
    before = pipeline.serving(DATASET)
    described, run = pipeline.run(DATASET, hyperparameters={"no_such_hyperparameter": 1})
    assert described["status"] == "FAILED"
    assert run["outcome"] == "failed" and run["status"] == "FAILED"
    assert "unrecognized arguments: --no_such_hyperparameter 1" in run["error"]["reason"]
    message = message_of(notifications, run["run_id"])
    assert "failed" in message["Subject"]
    assert "unrecognized arguments: --no_such_hyperparameter 1" in message["Message"]
    assert pipeline.serving(DATASET) == before


def _pending_run(pipeline: Pipeline) -> dict[str, Any]:
    described, run = pipeline.run(DATASET, hyperparameters=L3, approval="manual")
    assert described["status"] == "SUCCEEDED"
    assert run["outcome"] == "awaiting_approval"
    return run


def test_manual_approval_registers_pending_releases_the_dataset_and_rejection_deploys_nothing(
    pipeline: Pipeline, notifications: Inbox, registry_events: Inbox
) -> None:
    # Given the prod behaviour (manual approval), When a better model passes the gate
    before = pipeline.serving(DATASET)
    deploys_before = len(pipeline.executions("DeployStateMachineArn"))
    run = _pending_run(pipeline)
    arn = run["model_package"]["package_arn"]
    # Then it is registered pending, nothing is deployed, and the dataset is free again
    assert pipeline.package(arn)["ModelApprovalStatus"] == "PendingManualApproval"
    assert pipeline.serving(DATASET) == before
    lock = pipeline.aws("dynamodb").get_item(
        TableName=pipeline.outputs["RunLockTableName"], Key={"dataset": {"S": DATASET}}
    )
    assert "Item" not in lock
    # and the notification gives the exact command that approves it
    message = message_of(notifications, run["run_id"])["Message"]
    assert (
        f"aws sagemaker update-model-package --model-package-arn {arn} "
        "--model-approval-status Approved"
    ) in message
    # When a reviewer rejects it, Then SageMaker announces it and nothing is deployed
    pipeline.aws("sagemaker").update_model_package(
        ModelPackageArn=arn, ModelApprovalStatus="Rejected"
    )
    wait_for(
        lambda: [
            e
            for e in registry_events.poll()
            if e["detail"]["ModelPackageArn"] == arn
            and e["detail"]["ModelApprovalStatus"] == "Rejected"
        ],
        timeout=20,
        what="the rejection's state change event",
    )
    time.sleep(3)
    assert len(pipeline.executions("DeployStateMachineArn")) == deploys_before
    assert pipeline.serving(DATASET) == before


def test_approval_deploys_the_package_once_even_when_the_event_repeats(
    pipeline: Pipeline, notifications: Inbox, registry_events: Inbox
) -> None:
    run = _pending_run(pipeline)
    arn = run["model_package"]["package_arn"]
    deploys_before = {e["executionArn"] for e in pipeline.executions("DeployStateMachineArn")}
    # When a reviewer approves it (the documented command's API call)
    pipeline.aws("sagemaker").update_model_package(
        ModelPackageArn=arn, ModelApprovalStatus="Approved"
    )
    # Then the approval event starts the deploy steps, which put it on the endpoint
    approved = wait_for(
        lambda: [
            e
            for e in registry_events.poll()
            if e["detail"]["ModelPackageArn"] == arn
            and e["detail"]["ModelApprovalStatus"] == "Approved"
        ],
        timeout=20,
        what="the approval's state change event",
    )[0]

    def new_deploys() -> list[dict[str, Any]]:
        return [
            e
            for e in pipeline.executions("DeployStateMachineArn")
            if e["executionArn"] not in deploys_before
        ]

    (first,) = wait_for(new_deploys, timeout=30, what="the deploy the approval starts")
    assert pipeline.wait(first["executionArn"])["status"] == "SUCCEEDED"
    serving = pipeline.serving(DATASET)
    assert serving["version"] == str(run["model_package"]["version"])
    # and the deploy is recorded against the run, and announced
    recorded = pipeline.ledger.get(DATASET, run["run_id"])
    assert recorded is not None
    assert recorded["outcome"] == "deployed"
    assert recorded["deployment"]["source"] == "approval"
    assert recorded["deployment"]["status"] == "deployed"
    assert "deployed version" in message_of(notifications, run["run_id"])["Subject"]
    # When the same approval arrives again (EventBridge delivers at least once)
    pipeline.aws("events").put_events(
        Entries=[
            {
                "Source": approved["source"],
                "DetailType": approved["detail-type"],
                "Detail": json.dumps(approved["detail"]),
                "Resources": approved.get("resources", []),
            }
        ]
    )
    # Then its deploy ends as a duplicate and the endpoint is left as it was
    second = wait_for(
        lambda: [e for e in new_deploys() if e["executionArn"] != first["executionArn"]],
        timeout=30,
        what="the duplicate event's deploy",
    )[0]
    assert pipeline.wait(second["executionArn"])["status"] == "SUCCEEDED"
    assert "Already deployed" in pipeline.states(second["executionArn"])
    assert "Create model" not in pipeline.states(second["executionArn"])
    assert pipeline.serving(DATASET) == serving


def test_a_segment_gap_above_the_specs_limit_is_rejected(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    # Given uploads where one lead source always converts and another never does
    raw = tmp_path / "skewed.csv"
    write_csv(DATASET, 3000, raw, seed=5)
    with raw.open(newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        row["converted"] = {"web": "1", "ads": "0"}.get(row["source"], row["converted"])
    skewed = tmp_path / "skewed-labels.csv"
    with skewed.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    pipeline.seed_curated_file(DATASET, skewed, tmp_path)
    before = pipeline.serving(DATASET)
    # When a model that learns it is evaluated
    described, run = pipeline.run(DATASET, hyperparameters=L3)
    # Then the gate rejects it on the segment gap (leads.yaml: metric.max_segment_gap 0.5)
    assert described["status"] == "SUCCEEDED"
    assert run["outcome"] == "rejected"
    assert "segment gap" in run["reason"] and "limit 0.5" in run["reason"]
    assert run["metrics"]["segment_gap"] > 0.5
    assert pipeline.serving(DATASET) == before


def test_uploads_during_a_run_coalesce_into_exactly_one_follow_up_run(
    pipeline: Pipeline, seeded: Path, tmp_path: Path
) -> None:
    known = {e["executionArn"] for e in pipeline.executions()}
    # Given a run in progress (kept in progress: its evaluation is throttled four times, so it
    # backs off for 30 s or more, whatever the machine's load)
    arm_fault("CreateProcessingJob", match=f"-{DATASET}-", count=4)
    running = pipeline.start(DATASET, hyperparameters=L1)
    wait_for(
        lambda: "Train" in pipeline.states(running), timeout=60, what="the run to start training"
    )
    # When three uploads are curated meanwhile
    keys = []
    for i in range(3):
        path = tmp_path / f"upload-{i}.csv"
        write_csv(DATASET, 300, path, seed=100 + i)
        key = f"{DATASET}/it-coalesce/{time.time_ns()}-{i}.csv"
        pipeline.aws("s3").put_object(
            Bucket=pipeline.outputs["RawBucket"], Key=key, Body=path.read_bytes()
        )
        keys.append(key)

    # Then each starts an execution that queues its trigger behind the running run
    def queued() -> list[dict[str, Any]]:
        found = [
            e
            for e in pipeline.executions()
            if e["executionArn"] not in known | {running} and e["status"] == "SUCCEEDED"
            and "Queued" in pipeline.states(e["executionArn"])
        ]  # fmt: skip
        return found if len(found) == 3 else []

    try:
        wait_for(queued, timeout=120, interval=2, what="three uploads queued behind the run")
    finally:
        clear_faults()
    assert pipeline.wait(running)["status"] == "SUCCEEDED"

    # and when it ends, exactly one follow-up run starts, carrying all three triggers
    def follow_ups() -> list[dict[str, Any]]:
        return [
            e
            for e in pipeline.executions()
            if e["executionArn"] not in known | {running}
            and "Queued" not in pipeline.states(e["executionArn"])
        ]

    (follow_up,) = wait_for(follow_ups, timeout=60, what="the follow-up run")
    pipeline.wait(follow_up["executionArn"])
    time.sleep(2)
    assert len(follow_ups()) == 1
    run = pipeline.run_of(follow_up["executionArn"])
    assert run["triggers"][0]["type"] == "coalesced"
    assert sorted(t["key"] for t in run["triggers"][1:]) == sorted(keys)
    first = pipeline.run_of(running)
    assert first["ended_at"] <= run["started_at"]  # never two runs of a dataset at once


def test_two_datasets_run_in_parallel(
    pipeline: Pipeline, tmp_path_factory: pytest.TempPathFactory
) -> None:
    pipeline.seed_curated("churn", 1500, 8, tmp_path_factory.mktemp("churn"))
    executions = [pipeline.start(d, hyperparameters=L1) for d in ("churn", DATASET)]
    for execution in executions:
        assert pipeline.wait(execution)["status"] in ("SUCCEEDED", "FAILED")
    runs = [pipeline.run_of(e) for e in executions]
    # both ran, and their times overlap (each dataset has its own lock)
    assert all(r["outcome"] in ("deployed", "rejected") for r in runs), runs
    assert (
        runs[0]["started_at"] < runs[1]["ended_at"] and runs[1]["started_at"] < runs[0]["ended_at"]
    )


def test_zz_report_the_time_these_paths_took() -> None:
    print(f"\npipeline path tests: {time.monotonic() - STARTED:.0f} s")
