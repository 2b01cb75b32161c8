"""The pipeline functions' logic, with moto for AWS (no local cloud needed)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from datasets import names
from datasets.spec import load_spec, spec_path
from lambdas.pipeline import inputs, prepare, record
from lambdas.pipeline.ledger import Ledger, table
from lambdas.pipeline.settings import Settings

SETTINGS = Settings(
    stage="dev",
    prefix="sluice-dev",
    region="us-east-1",
    curated_bucket="curated",
    artifacts_bucket="artifacts",
    ledger_table="ledger",
    topic_arn="arn:aws:sns:us-east-1:123456789012:topic",
)


@pytest.fixture
def aws() -> Any:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        for bucket in ("curated", "artifacts"):
            s3.create_bucket(Bucket=bucket)
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        dynamodb.create_table(
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
        yield {"s3": s3, "dynamodb": dynamodb}


def _upload(s3: Any, upload: str, rows: int) -> None:
    folder = f"churn/{upload}/v1"
    s3.put_object(Bucket="curated", Key=f"{folder}/part-00000.parquet", Body=b"PAR1")
    manifest = {
        "source": {"key": f"churn/{upload}", "version_id": "v1"},
        "rows": {"in": rows, "curated": rows, "quarantined": 0},
        "schema": {"hash": "abc"},
        "spec": {"version": 1},
        "files": [{"path": "part-00000.parquet", "rows": rows}],
    }
    s3.put_object(Bucket="curated", Key=f"{folder}/manifest.json", Body=json.dumps(manifest))


def test_run_inputs_are_written_to_s3_as_a_list_and_a_sagemaker_manifest(aws: Any) -> None:
    # Given two curated uploads
    _upload(aws["s3"], "a.csv", 10)
    _upload(aws["s3"], "b.csv", 5)
    # When a run lists its inputs
    written = inputs.write_run_inputs(
        aws["s3"], curated_bucket="curated", dataset="churn", window_days=None,
        artifacts_bucket="artifacts", run_prefix="runs/churn/r1/",
    )  # fmt: skip
    # Then the run keeps only URIs, the hash and counts; the lists are in S3
    assert (written.uploads, written.rows, written.files) == (2, 15, 2)
    manifest = json.loads(
        aws["s3"]
        .get_object(Bucket="artifacts", Key="runs/churn/r1/inputs/manifest.json")["Body"]
        .read()
    )
    assert manifest[0] == {"prefix": "s3://curated/churn/"}
    assert "a.csv/v1/part-00000.parquet" in manifest and "b.csv/v1/manifest.json" in manifest
    listing = json.loads(
        aws["s3"]
        .get_object(Bucket="artifacts", Key="runs/churn/r1/inputs/inputs.json")["Body"]
        .read()
    )
    assert [u["source_version"] for u in listing["uploads"]] == ["v1", "v1"]
    assert {u["schema_hash"] for u in listing["uploads"]} == {"abc"}


def test_a_training_window_keeps_only_recent_uploads(aws: Any) -> None:
    _upload(aws["s3"], "old.csv", 10)
    later = datetime.now(UTC) + timedelta(days=40)
    found = inputs.curated_manifests(aws["s3"], "curated", "churn", window_days=30, now=later)
    assert found == []
    assert (
        len(inputs.curated_manifests(aws["s3"], "curated", "churn", window_days=60, now=later)) == 1
    )


def test_hyperparameters_come_from_stage_then_spec_then_run() -> None:
    spec = load_spec(spec_path("churn"))  # type: ignore[arg-type]
    merged = prepare.hyperparameters(SETTINGS, spec, {"num_round": 5})
    assert merged == {"num_round": 5}
    encoded = prepare.sagemaker_hyperparameters(merged, "s3://code/sourcedir.tar.gz")
    assert encoded["num_round"] == "5"
    assert json.loads(encoded["sagemaker_program"]) == "train.py"


def test_a_run_may_ask_for_manual_approval_but_never_skip_it() -> None:
    manual = Settings(**{**SETTINGS.__dict__, "approval": "manual"})
    assert prepare.approval(SETTINGS, None) == "auto"
    assert prepare.approval(SETTINGS, "manual") == "manual"
    assert prepare.approval(manual, "auto") == "manual"
    with pytest.raises(prepare.BadInput):
        prepare.approval(SETTINGS, "yes")


def test_coalesced_triggers_are_all_recorded() -> None:
    trigger = {
        "type": "coalesced",
        "after": "arn:...:execution:x",
        "triggers": [json.dumps({"type": "upload", "key": "churn/a.csv"}), "not json"],
    }
    assert prepare.triggers(trigger) == [
        {"type": "coalesced", "after": "arn:...:execution:x"},
        {"type": "upload", "key": "churn/a.csv"},
        {"type": "unknown", "raw": "not json"},
    ]
    # one queued trigger may arrive unwrapped (not a list): still one trigger, not its letters
    one = {"type": "coalesced", "triggers": json.dumps({"type": "upload", "key": "k"})}
    assert prepare.triggers(one) == [{"type": "coalesced"}, {"type": "upload", "key": "k"}]


def test_the_reason_is_dug_out_of_nested_causes() -> None:
    job = {"TrainingJobStatus": "Failed", "FailureReason": "AlgorithmError: bad spec"}
    child = {"Status": "FAILED", "Cause": json.dumps(job)}
    assert record.reason_of({"Error": "States.TaskFailed", "Cause": json.dumps(child)}) == (
        "AlgorithmError: bad spec"
    )
    assert record.reason_of({"Error": "X", "Cause": "plain words"}) == "plain words"


def test_an_awaiting_approval_message_has_the_exact_command() -> None:
    run = {
        "dataset": "churn",
        "run_id": "20261127T180102-a1b2c3",
        "outcome": "awaiting_approval",
        "verdict": "promote",
        "reason": "beats the champion",
        "metrics": {"name": "roc_auc", "challenger": 0.91, "champion": 0.9},
        "model_package": {
            "package_arn": "arn:pkg/1",
            "version": 3,
            "status": "PendingManualApproval",
        },
        "report": "s3://artifacts/runs/churn/r/evaluation/report.html",
    }
    subject, body = record.message(SETTINGS, run)
    assert subject.startswith("Sluice dev churn: awaiting approval (run 20261127T180102-a1b2c3)")
    assert len(subject) <= 100
    assert "roc_auc: challenger 0.9100, champion 0.9000" in body
    assert (
        "aws sagemaker update-model-package --model-package-arn arn:pkg/1 "
        "--model-approval-status Approved"
    ) in body
    assert "report.html" in body


def test_ledger_round_trip_and_table(aws: Any) -> None:
    ledger = Ledger("ledger", aws["dynamodb"])
    ledger.start({"dataset": "churn", "run_id": "r1", "execution": "e1", "started_at": "t1",
                  "triggers": [{"type": "manual"}]})  # fmt: skip
    ledger.update("churn", "r1", {"outcome": "rejected", "metrics": {"name": "roc_auc",
                                  "challenger": 0.8123, "champion": None}})  # fmt: skip
    run = ledger.get("churn", "r1")
    assert (
        run is not None and run["outcome"] == "rejected" and run["metrics"]["challenger"] == 0.8123
    )
    assert ledger.claim("churn", "r1", "approval_deploy", "x") is True
    assert ledger.claim("churn", "r1", "approval_deploy", "x") is True  # the same claimant
    assert ledger.claim("churn", "r1", "approval_deploy", "y") is False  # a duplicate
    printed = table(ledger.runs("churn"))
    assert "r1" in printed and "roc_auc 0.8123" in printed


def test_run_ids_and_names_fit_sagemaker() -> None:
    run = names.run_id("2026-11-27T18:01:02.123Z", "exec")
    assert run.startswith("20261127T180102-")
    name = names.run_resource_name("sluice-prod", "x" * 40, run, "train-4")
    assert len(name) <= 63 and name.endswith(f"{run}-train-4")


class _StoppedExecution:
    """Step Functions as ``run_stopped`` sees it: one execution, stopped by hand."""

    def __init__(self, arn: str, started: datetime) -> None:
        self.arn, self.started = arn, started

    def describe_execution(self, executionArn: str) -> dict[str, Any]:
        assert executionArn == self.arn
        return {
            "executionArn": self.arn,
            "name": "manual-1",
            "status": "ABORTED",
            "startDate": self.started,
            "input": json.dumps(
                {
                    "dataset": "churn",
                    "trigger": {"type": "manual", "by": "me"},
                    "hyperparameters": {"num_round": 3},
                }
            ),
        }

    def get_execution_history(self, **_: Any) -> dict[str, Any]:
        entered = {"timestamp": self.started, "stateEnteredEventDetails": {"name": "Train"}}
        return {"events": [entered]}  # stopped while training: never exited


class _Topic:
    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []

    def publish(self, **message: Any) -> None:
        self.published.append(message)


def test_a_stopped_run_is_recorded_as_stopped_under_its_own_run_id(aws: Any) -> None:
    # Given a run that prepare recorded, whose execution was then stopped by hand
    started = datetime(2026, 11, 27, 18, 1, 2, 345000, tzinfo=UTC)
    execution = "arn:aws:states:us-east-1:123456789012:execution:sluice-dev-training:manual-1"
    run_id = names.run_id("2026-11-27T18:01:02.345Z", "manual-1")  # as prepare names it
    ledger = Ledger("ledger", aws["dynamodb"])
    ledger.start(
        {
            "dataset": "churn",
            "run_id": run_id,
            "execution": execution,
            "started_at": "2026-11-27T18:01:02.345Z",
            "triggers": [{"type": "manual"}],
        }
    )
    topic = _Topic()
    # When the release of its lock records it
    result = record.run_stopped(
        {"action": "run_stopped", "execution": execution},
        SETTINGS,
        dynamodb=aws["dynamodb"],
        sns=topic,
        sfn=_StoppedExecution(execution, started),
    )
    # Then the same ledger item ends stopped, with why, and one message says so
    assert result == {"run_id": run_id, "outcome": "stopped"}
    run = ledger.get("churn", run_id)
    assert run is not None
    assert (run["status"], run["outcome"]) == ("ABORTED", "stopped")
    assert "stopped (StopExecution)" in run["error"]["reason"]
    (message,) = topic.published
    assert "churn: stopped" in message["Subject"]
    assert message["MessageAttributes"]["outcome"]["StringValue"] == "stopped"
