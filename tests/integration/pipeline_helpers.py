"""Helpers for the training pipeline's integration tests (the deployed dev app, local cloud)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from datasets.generate import write_csv
from datasets.spec import load_spec, spec_path
from lambdas.pipeline.ledger import Ledger
from tests.integration.helpers import ENDPOINT, wait_for

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT = 240
#: a key only these tests use: masked PII in seeded data (never a real secret)
TEST_PII_KEY = "integration-tests-only-pii-key"


def model_request(dataset: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The request body for rows of an upload: the rows as the upload has them, minus the
    target (the record shape, datasets/record.py). The one place to change if it changes."""
    target = load_spec(spec_path(dataset)).target_column  # type: ignore[arg-type]
    return {"instances": [{k: v for k, v in row.items() if k != target} for row in rows]}


def upload_rows(csv_path: Path, limit: int = 5) -> list[dict[str, str]]:
    """The first rows of an upload, as its CSV holds them."""
    with csv_path.open(newline="") as f:
        return [row for row, _ in zip(csv.DictReader(f), range(limit), strict=False)]


@dataclass
class Pipeline:
    aws: Callable[[str], Any]
    outputs: dict[str, str]
    #: the CSV of the last upload seed_curated wrote
    last_upload: Path | None = None

    @property
    def ledger(self) -> Ledger:
        return Ledger(self.outputs["RunLedgerTableName"], self.aws("dynamodb"))

    # ------------------------------------------------------------------ runs
    def start(self, dataset: str, **request: Any) -> str:
        body = {"dataset": dataset, "trigger": {"type": "manual", "by": "tests"}, **request}
        return str(
            self.aws("stepfunctions").start_execution(
                stateMachineArn=self.outputs["TrainingStateMachineArn"], input=json.dumps(body)
            )["executionArn"]
        )

    def wait(self, execution: str, timeout: float = RUN_TIMEOUT) -> dict[str, Any]:
        sfn = self.aws("stepfunctions")

        def done() -> dict[str, Any] | None:
            described = sfn.describe_execution(executionArn=execution)
            return None if described["status"] == "RUNNING" else described

        return dict(wait_for(done, timeout=timeout, interval=1, what=f"execution {execution}"))

    def run_of(self, execution: str) -> dict[str, Any]:
        """The ledger item of the run that an execution was."""
        for run in self.ledger.runs(None, limit=1000):
            if run.get("execution") == execution:
                return run
        raise AssertionError(f"no ledger item for {execution}")

    def run(self, dataset: str, **request: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """Start a run by hand and wait for it: (execution description, ledger item)."""
        execution = self.start(dataset, **request)
        described = self.wait(execution)
        return described, self.run_of(execution)

    def executions(self, machine: str = "TrainingStateMachineArn") -> list[dict[str, Any]]:
        sfn = self.aws("stepfunctions")
        pages = sfn.get_paginator("list_executions").paginate(stateMachineArn=self.outputs[machine])
        return [e for page in pages for e in page["executions"]]

    def states(self, execution: str) -> list[str]:
        """The states an execution entered, in order."""
        events = self.aws("stepfunctions").get_execution_history(
            executionArn=execution, maxResults=1000
        )["events"]
        return [
            e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e
        ]

    # ------------------------------------------------------------------ data
    def seed_curated(self, dataset: str, rows: int, seed: int, tmp: Path, **kw: Any) -> str:
        """Curate a generated upload with ingestion's own code and put it in the curated bucket
        (no event: no run starts). Returns its curated prefix."""
        path = tmp / f"{uuid.uuid4().hex[:8]}.csv"
        write_csv(dataset, rows, path, seed=seed, **kw)
        self.last_upload = path
        return self.seed_curated_file(dataset, path, tmp)

    def seed_curated_file(self, dataset: str, csv: Path, tmp: Path) -> str:
        out = tmp / f"curated-{csv.stem}"
        subprocess.run(
            [sys.executable, "-m", "lambdas.preprocess", "--spec", str(spec_path(dataset)),
             str(csv), str(out), "--pii-key-file", str(self._pii_key(tmp))],
            check=True, cwd=ROOT, capture_output=True,
        )  # fmt: skip
        prefix = f"{dataset}/it-seed/{csv.stem}/v1/"
        s3 = self.aws("s3")
        for part in sorted(out.glob("part-*.parquet")):
            s3.upload_file(str(part), self.outputs["CuratedBucket"], prefix + part.name)
        s3.upload_file(
            str(out / "manifest.json"), self.outputs["CuratedBucket"], prefix + "manifest.json"
        )
        return prefix

    def _pii_key(self, tmp: Path) -> Path:
        key = tmp / "pii.key"
        key.write_text(TEST_PII_KEY)
        return key

    def curated_rows(self, prefix: str, limit: int = 5) -> list[dict[str, Any]]:
        s3, bucket = self.aws("s3"), self.outputs["CuratedBucket"]
        keys = [
            o["Key"]
            for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
            if o["Key"].endswith(".parquet")
        ]
        local = Path("/tmp") / f"sluice-it-{uuid.uuid4().hex}.parquet"
        s3.download_file(bucket, keys[0], str(local))
        rows = pq.read_table(local).slice(0, limit).to_pylist()
        local.unlink()
        return rows

    # ------------------------------------------------------------------ serving
    def serving(self, dataset: str) -> dict[str, Any]:
        """What the dataset's endpoint serves: status, config, model version."""
        sm = self.aws("sagemaker")
        endpoint = sm.describe_endpoint(EndpointName=f"sluice-dev-{dataset}")
        config = sm.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
        variant = config["ProductionVariants"][0]
        model = sm.describe_model(ModelName=variant["ModelName"])
        return {
            "status": endpoint["EndpointStatus"],
            "config": endpoint["EndpointConfigName"],
            "variant": variant["VariantName"],
            "version": model["PrimaryContainer"]["Environment"]["SLUICE_MODEL_VERSION"],
            "failure": endpoint.get("FailureReason"),
        }

    def predict(self, dataset: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = self.aws("sagemaker-runtime").invoke_endpoint(
            EndpointName=f"sluice-dev-{dataset}",
            ContentType="application/json",
            Body=json.dumps(body, default=str),
        )
        return dict(json.loads(answer["Body"].read()))

    def package(self, arn: str) -> dict[str, Any]:
        return dict(self.aws("sagemaker").describe_model_package(ModelPackageName=arn))


def arm_fault(operation: str, *, match: str, code: str = "ThrottlingException",
              message: str = "Rate exceeded", count: int = 1) -> None:  # fmt: skip
    """Make the local cloud's next ``count`` SageMaker ``operation`` calls about ``match`` (a
    dataset's resources: other tests' runs may be calling too) fail like AWS."""
    body = {"service": "sagemaker", "operation": operation, "code": code, "message": message,
            "count": count, "match": match}  # fmt: skip
    request = urllib.request.Request(
        f"{ENDPOINT}/_sluice/faults", data=json.dumps(body).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201


def clear_faults() -> None:
    request = urllib.request.Request(f"{ENDPOINT}/_sluice/faults", method="DELETE")
    with urllib.request.urlopen(request, timeout=10):
        pass


class Inbox:
    """An SQS queue subscribed to an SNS topic or an EventBridge pattern; keeps what it saw."""

    def __init__(self, aws: Callable[[str], Any], name: str) -> None:
        self.sqs = aws("sqs")
        self.url = self.sqs.create_queue(QueueName=f"{name}-{uuid.uuid4().hex[:8]}")["QueueUrl"]
        self.arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        self.seen: list[dict[str, Any]] = []

    def poll(self) -> list[dict[str, Any]]:
        for message in self.sqs.receive_message(
            QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", []):
            self.seen.append(json.loads(message["Body"]))
            self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
        return self.seen

    def drain(self, seconds: float = 2) -> list[dict[str, Any]]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.poll()
        return self.seen
