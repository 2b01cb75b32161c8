"""Batch scoring on the local cloud: a file under ``_score/`` → predictions (or an error report).

Uploads go to the real app's raw bucket; EventBridge starts the scoring state machine, which
prepares the file, runs a Batch Transform job with the model serving churn, and writes
``s3://<artifacts>/churn/predictions/<name>/``. The churn endpoint serves, in turn: nothing; a
stand-in model whose answer is a known function of each record (so every row of the output can
be checked, whatever the real model's code accepts); a model that fails; the trained churn
model, compared with the API.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import tarfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.integration import serving_model
from tests.integration.helpers import ENDPOINT, wait_for

pytestmark = pytest.mark.integration
APP, DATA = "sluice-dev-app", "sluice-dev-data"
JOBS = Path(__file__).parent / "jobs"


@pytest.fixture(scope="module")
def buckets(app_outputs: dict[str, dict[str, str]]) -> dict[str, str]:
    data = app_outputs[DATA]
    return {"raw": data["RawBucket"], "artifacts": data["ArtifactsBucket"]}


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> serving_model.ChurnSample:
    return serving_model.make_sample(tmp_path_factory.mktemp("churn-batch"))


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, str]]]:
    """10,000 churn rows as uploads hold them (ids, PII, target)."""
    path = tmp_path_factory.mktemp("big") / "big.csv"
    subprocess.run(
        [serving_model.PYTHON, "-m", "datasets.generate", "churn", "--rows", "10000",
         "--out", str(path), "--seed", "99"],
        cwd=serving_model.ROOT, check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    with path.open(newline="") as f:
        return path, list(csv.DictReader(f))


def _code_model(aws: Callable[[str], Any], bucket: str, program: str) -> str:
    """A SageMaker Model whose code/ is ``tests/integration/jobs/<program>``."""
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        tar.add(JOBS / program, arcname=f"code/{program}")
    name = (
        f"sluice-dev-churn-{program.removesuffix('.py').replace('_', '-')}-{uuid.uuid4().hex[:6]}"
    )
    key = f"models/serving-tests/{name}/model.tar.gz"
    aws("s3").put_object(Bucket=bucket, Key=key, Body=archive.getvalue())
    sagemaker = aws("sagemaker")
    sagemaker.create_model(
        ModelName=name,
        ExecutionRoleArn="arn:aws:iam::000000000000:role/sluice-serving-tests",
        PrimaryContainer={
            "Image": serving_model.XGBOOST_IMAGE,
            "ModelDataUrl": f"s3://{bucket}/{key}",
            "Environment": {
                "SAGEMAKER_PROGRAM": program,
                "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
                "SLUICE_MODEL_VERSION": "0",
                # an endpoint's worker never gets a transform job's Environment: give it here
                "SLUICE_SCORING_COLUMNS": "x",
            },
        },
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": name,
                             "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}],
    )  # fmt: skip
    return name


def _serve(aws: Callable[[str], Any], config: str) -> None:
    """The churn endpoint, on ``config`` (created or updated)."""
    sagemaker = aws("sagemaker")
    try:
        sagemaker.describe_endpoint(EndpointName=serving_model.ENDPOINT)
        sagemaker.update_endpoint(EndpointName=serving_model.ENDPOINT, EndpointConfigName=config)
    except sagemaker.exceptions.ClientError:
        sagemaker.create_endpoint(EndpointName=serving_model.ENDPOINT, EndpointConfigName=config)
    serving_model.wait_in_service(aws)


def _result(aws: Callable[[str], Any], bucket: str, name: str, timeout: float = 300) -> dict:
    """What lands under churn/predictions/<name>/: the file names and their text."""
    s3 = aws("s3")
    prefix = f"churn/predictions/{name}/"

    def landed() -> dict[str, str] | None:
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
        files = {item["Key"][len(prefix) :] for item in listed}
        if not ({"predictions.csv", "manifest.json"} <= files or "error.json" in files):
            return None
        return {f: s3.get_object(Bucket=bucket, Key=prefix + f)["Body"].read().decode()
                for f in files}  # fmt: skip

    found: dict[str, str] = wait_for(landed, timeout=timeout, interval=2, what=f"results of {name}")
    return found


def _upload(aws: Callable[[str], Any], buckets: dict[str, str], name: str, body: bytes) -> None:
    aws("s3").put_object(Bucket=buckets["raw"], Key=f"churn/_score/{name}", Body=body)


# -------------------------------------------------------------------------- no model yet
def test_a_file_before_any_model_gets_an_error_report(
    aws: Callable[[str], Any], buckets: dict[str, str], sample: Any
) -> None:
    serving_model.delete_endpoint(aws)
    _upload(aws, buckets, "too-early.csv", sample.csv_path.read_bytes())
    result = _result(aws, buckets["artifacts"], "too-early.csv", timeout=120)
    assert set(result) == {"error.json"}
    error = json.loads(result["error.json"])["error"]
    assert error["code"] == "no_model"


# ------------------------------------------------------------- a stand-in model serving
@pytest.fixture(scope="module")
def stand_in(aws: Callable[[str], Any], buckets: dict[str, str]) -> None:
    _serve(aws, _code_model(aws, buckets["artifacts"], "record_model.py"))


def test_10000_rows_become_10000_predictions_in_order_with_ids(
    aws: Callable[[str], Any], buckets: dict[str, str], stand_in: None,
    big_file: tuple[Path, list[dict[str, str]]],
) -> None:  # fmt: skip
    path, rows = big_file
    _upload(aws, buckets, "big.csv", path.read_bytes())
    result = _result(aws, buckets["artifacts"], "big.csv", timeout=600)
    assert "error.json" not in result, result.get("error.json")
    scored = list(csv.reader(io.StringIO(result["predictions.csv"])))
    assert scored[0] == ["customer_id", "label", "probability"]
    assert len(scored) == 10_001
    expected = []
    for row in rows:
        probability = round(int(row["tenure_months"]) / 240, 6)
        expected.append([row["customer_id"], str(int(probability >= 0.5)), str(probability)])
    assert scored[1:] == expected
    manifest = json.loads(result["manifest.json"])
    assert manifest["rows"] == {"in": 10_000, "scored": 10_000, "rejected": 0}
    assert manifest["columns"] == ["customer_id", "label", "probability"]
    assert "example.com" not in result["predictions.csv"]


def test_bad_rows_are_reported_and_the_rest_scored(
    aws: Callable[[str], Any], buckets: dict[str, str], stand_in: None,
    big_file: tuple[Path, list[dict[str, str]]],
) -> None:  # fmt: skip
    path, rows = big_file
    lines = path.read_text().splitlines()[:41]
    lines[3] = (
        lines[3]
        .replace('"basic"', '"gold"')
        .replace('"standard"', '"gold"')
        .replace('"premium"', '"gold"')
    )
    _upload(aws, buckets, "with-bad-row.csv", ("\n".join(lines) + "\n").encode())
    result = _result(aws, buckets["artifacts"], "with-bad-row.csv", timeout=300)
    assert "error.json" not in result, result.get("error.json")
    assert json.loads(result["manifest.json"])["rows"] == {"in": 40, "scored": 39, "rejected": 1}
    (bad,) = [json.loads(x) for x in result["rejected_rows.jsonl"].splitlines()]
    assert bad["line"] == 4
    assert bad["reasons"][0].startswith("plan: expected one of basic, standard, premium")
    ids = [r[0] for r in csv.reader(io.StringIO(result["predictions.csv"]))][1:]
    assert ids == [r["customer_id"] for i, r in enumerate(rows[:40]) if i != 2]


def test_parquet_files_are_scored(
    aws: Callable[[str], Any], buckets: dict[str, str], stand_in: None,
    big_file: tuple[Path, list[dict[str, str]]], tmp_path: Path,
) -> None:  # fmt: skip
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    path, rows = big_file
    parquet = tmp_path / "some.parquet"
    pq.write_table(pacsv.read_csv(path).slice(0, 25), parquet)
    _upload(aws, buckets, "some.parquet", parquet.read_bytes())
    result = _result(aws, buckets["artifacts"], "some.parquet", timeout=300)
    assert "error.json" not in result, result.get("error.json")
    ids = [r[0] for r in csv.reader(io.StringIO(result["predictions.csv"]))][1:]
    assert ids == [r["customer_id"] for r in rows[:25]]


def test_a_malformed_file_gets_an_error_report(
    aws: Callable[[str], Any], buckets: dict[str, str], stand_in: None
) -> None:
    _upload(aws, buckets, "broken.csv", b"customer_id;plan\nC1;basic\n")  # not its columns
    result = _result(aws, buckets["artifacts"], "broken.csv", timeout=120)
    assert set(result) == {"error.json"}
    report = json.loads(result["error.json"])
    assert report["error"]["code"] == "missing_columns"
    assert report["source"]["key"] == "churn/_score/broken.csv"


def test_a_file_the_model_fails_on_gets_an_error_report_and_a_failed_run(
    aws: Callable[[str], Any], buckets: dict[str, str], stand_in: None,
    big_file: tuple[Path, list[dict[str, str]]], app_outputs: dict[str, dict[str, str]],
) -> None:  # fmt: skip
    # Given a model that fails on these valid records (it cannot read timestamps)
    _serve(aws, _code_model(aws, buckets["artifacts"], "csv_model.py"))
    path, _ = big_file
    lines = path.read_text().splitlines()[:6]
    _upload(aws, buckets, "model-fails.csv", ("\n".join(lines) + "\n").encode())
    result = _result(aws, buckets["artifacts"], "model-fails.csv", timeout=300)
    assert set(result) == {"error.json"}
    error = json.loads(result["error.json"])["error"]
    assert error["code"] == "transform_failed"
    assert "the model answered 500" in error["message"]
    sfn = aws("stepfunctions")
    runs = sfn.list_executions(
        stateMachineArn=app_outputs[APP]["BatchScoringStateMachineArn"], statusFilter="FAILED"
    )["executions"]
    assert runs


# ------------------------------------------------------------- the trained model serving
@pytest.fixture(scope="module")
def trained(aws: Callable[[str], Any], buckets: dict[str, str], sample: Any) -> Any:
    serving_model.delete_endpoint(aws)
    deployed = serving_model.deploy(aws, buckets["artifacts"], sample)
    if not deployed.raw_records:
        pytest.skip(
            "the deployed inference.py takes engineered features, not records as uploaded; "
            "batch scoring sends records (headerless, datasets.scoring order), which the "
            "record-shape work (#10) makes inference take"
        )
    return deployed


def test_batch_predictions_equal_the_apis_for_the_same_rows(
    aws: Callable[[str], Any], buckets: dict[str, str], trained: Any,
    big_file: tuple[Path, list[dict[str, str]]], app_outputs: dict[str, dict[str, str]],
) -> None:  # fmt: skip
    path, rows = big_file
    _upload(aws, buckets, "big-real.csv", path.read_bytes())
    result = _result(aws, buckets["artifacts"], "big-real.csv", timeout=900)
    assert "error.json" not in result, result.get("error.json")
    scored = list(csv.DictReader(io.StringIO(result["predictions.csv"])))
    assert [r["customer_id"] for r in scored] == [r["customer_id"] for r in rows]
    outputs = app_outputs[APP]
    key = aws("apigateway").get_api_key(apiKey=outputs["ApiKeyId"], includeValue=True)["value"]
    url = f"{ENDPOINT}/_aws/execute-api/{outputs['ApiId']}/dev/v1/churn/predictions"
    api: list[dict[str, Any]] = []
    for start in range(0, len(rows), 1000):
        records = [serving_model.upload_record(r) for r in rows[start : start + 1000]]
        response = requests.post(url, json={"instances": records}, headers={"x-api-key": key},
                                 timeout=120)  # fmt: skip
        assert response.status_code == 200, response.text
        api += response.json()["predictions"]
    assert [(str(p["id"]), str(p["label"]), float(p["probability"])) for p in api] == [
        (r["customer_id"], r["label"], float(r["probability"])) for r in scored
    ]
    serving_model.delete_endpoint(aws)
