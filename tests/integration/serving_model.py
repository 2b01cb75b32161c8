"""The churn model the serving tests call, and the records they send it.

One place decides where the served model comes from. Until the training pipeline (#11) deploys
endpoints, this trains a small model with ``python -m training.local train`` on a curated
sample (the preprocessing CLI's output), uploads its ``model.tar.gz`` and creates the SageMaker
Model (XGBoost 3.0-5 image, the contract's Environment), EndpointConfig and Endpoint
``sluice-dev-churn`` directly. Once the pipeline lands, ``deploy`` can run it instead.

Which records the model takes is asked of the model itself: a model whose ``inference.py``
computes the features from raw records (#10) gets rows as uploaded (minus the target); an older
one gets the engineered features beside the declared columns it uses. The function under test
withholds the id and PII either way.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from tests.integration.helpers import wait_for

ROOT = Path(__file__).resolve().parents[2]
PYTHON = os.environ.get("SLUICE_TEST_PYTHON", str(ROOT / ".venv" / "bin" / "python"))
XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:3.0-5"
ENDPOINT = "sluice-dev-churn"
TARGET = "churned"
FEATURES = ("signup_dow", "signup_hour", "days_active")
DEV_PII_KEY = "integration-tests-pii-key-0123456789"


def _run(*args: str, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(
        [PYTHON, *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{args}: {result.stdout[-2000:]}\n{result.stderr[-4000:]}")


@dataclass
class ChurnSample:
    """Generated churn rows as uploaded, the same rows curated, and a model trained on them."""

    csv_path: Path
    rows: list[dict[str, str]]
    curated: dict[str, dict[str, Any]]
    model_tar: Path


def make_sample(workdir: Path, rows: int = 3000, seed: int = 11) -> ChurnSample:
    csv_path = workdir / "churn.csv"
    _run("-m", "datasets.generate", "churn", "--rows", str(rows), "--out", str(csv_path),
         "--seed", str(seed))  # fmt: skip
    curated_dir = workdir / "curated"
    _run("-m", "lambdas.preprocess", "--spec", "datasets/churn.yaml", str(csv_path),
         str(curated_dir), env={"SLUICE_PII_KEY": DEV_PII_KEY})  # fmt: skip
    run_dir = workdir / "run"
    _run("-m", "training.local", "train", "--spec", "datasets/churn.yaml", "--data",
         str(curated_dir), "--out", str(run_dir), "--hp", "num_round=20")  # fmt: skip
    with csv_path.open(newline="", encoding="utf-8") as f:
        raw = list(csv.DictReader(f))
    curated: dict[str, dict[str, Any]] = {}
    for part in sorted(curated_dir.glob("part-*.parquet")):
        for row in pq.read_table(part).to_pylist():
            curated[row["customer_id"]] = row
    return ChurnSample(csv_path, raw, curated, run_dir / "model.tar.gz")


def upload_record(row: dict[str, str]) -> dict[str, Any]:
    """A row as uploaded, minus the target, typed as JSON would carry it."""
    out: dict[str, Any] = {}
    for name, value in row.items():
        if name == TARGET:
            continue
        if value == "":
            out[name] = None
        elif name in ("monthly_charges",):
            out[name] = float(value)
        elif name in ("tenure_months", "support_calls"):
            out[name] = int(value)
        else:
            out[name] = value
    return out


@dataclass
class Deployed:
    model_name: str
    config_name: str
    raw_records: bool
    version: str
    #: the model's answer names its version (else the function asks SageMaker, cached 30 s)
    reports_version: bool = False

    def record(self, sample: ChurnSample, row: dict[str, str]) -> dict[str, Any]:
        """What a client sends for ``row``: the upload's record, plus (for a model that does
        not compute its features itself) the engineered features ingestion computed."""
        record = upload_record(row)
        if not self.raw_records:
            curated = sample.curated[row["customer_id"]]
            record.pop("signup_ts")
            record.pop("last_active_ts")
            record.update({name: curated[name] for name in FEATURES})
        return record


def create_model(aws: Any, bucket: str, model_tar: Path, version: str) -> str:
    name = f"sluice-dev-churn-{version}-{uuid.uuid4().hex[:6]}"
    key = f"models/serving-tests/{name}/model.tar.gz"
    aws("s3").upload_file(str(model_tar), bucket, key)
    sagemaker = aws("sagemaker")
    sagemaker.create_model(
        ModelName=name,
        ExecutionRoleArn="arn:aws:iam::000000000000:role/sluice-serving-tests",
        PrimaryContainer={
            "Image": XGBOOST_IMAGE,
            "ModelDataUrl": f"s3://{bucket}/{key}",
            "Environment": {
                "SAGEMAKER_PROGRAM": "inference.py",
                "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
                "SLUICE_MODEL_VERSION": version,
            },
        },
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
    )
    return name


def wait_in_service(aws: Any, endpoint: str = ENDPOINT) -> dict[str, Any]:
    sagemaker = aws("sagemaker")

    def settled() -> dict[str, Any] | None:
        described: dict[str, Any] = sagemaker.describe_endpoint(EndpointName=endpoint)
        return None if described["EndpointStatus"] in ("Creating", "Updating") else described

    described = wait_for(settled, timeout=180, interval=0.5, what=f"endpoint {endpoint}")
    assert described["EndpointStatus"] == "InService", described
    return described


def delete_endpoint(aws: Any, endpoint: str = ENDPOINT) -> None:
    sagemaker = aws("sagemaker")
    try:
        sagemaker.delete_endpoint(EndpointName=endpoint)
    except sagemaker.exceptions.ClientError:
        return
    time.sleep(0.5)


def deploy(aws: Any, bucket: str, sample: ChurnSample, version: str = "1") -> Deployed:
    """The churn endpoint, serving ``sample``'s model as model package version ``version``."""
    name = create_model(aws, bucket, sample.model_tar, version)
    aws("sagemaker").create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=name)
    wait_in_service(aws)
    probe = upload_record(sample.rows[0])
    for withheld in ("customer_id", "email", "phone"):
        probe.pop(withheld, None)
    try:
        answer = aws("sagemaker-runtime").invoke_endpoint(
            EndpointName=ENDPOINT,
            ContentType="application/json",
            Body=json.dumps({"instances": [probe]}),
        )
        raw, reports = True, "model_version" in json.loads(answer["Body"].read())
    except aws("sagemaker-runtime").exceptions.ModelError:
        raw, reports = False, False
    return Deployed(name, name, raw, version, reports)
