"""A model trained by train.py, served on the local cloud, asked with uploaded rows as they are.

The endpoint runs the model's own ``code/inference.py`` (``SAGEMAKER_SUBMIT_DIRECTORY=
/opt/ml/model/code``); a bad request is the client's fault: the container answers 400, and
``InvokeEndpoint`` raises ``ModelError`` with the container's status and body, as AWS does (a 4xx
from the model counts in ``Invocation4XXErrors``, never in ``Invocation5XXErrors``).
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from datasets.generate import write_csv
from datasets.spec import load_spec
from tests.integration.helpers import metric_sum, wait_for
from training import local as training_local
from training.sample import write_curated

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "datasets" / "churn.yaml"
XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:3.0-5"


@pytest.fixture(scope="module")
def upload_rows(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[dict[str, str]]]:
    """Generated churn rows as an upload holds them (text), the target column left out."""
    path = tmp_path_factory.mktemp("upload") / "churn.csv"
    write_csv("churn", 5, path, seed=3)
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    for row in rows:
        del row["churned"]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue(), rows


@pytest.fixture(scope="module")
def endpoint(aws, stack_outputs, tmp_path_factory) -> Any:
    work = tmp_path_factory.mktemp("model")
    data = write_curated(load_spec(SPEC), work / "curated", 3000)
    hps = ["num_round=30", "early_stopping_rounds=0"]
    assert training_local.train(SPEC, [data], work / "run", hps) == 0
    bucket, name = stack_outputs["ArtifactsBucketName"], f"it-rec-{uuid.uuid4().hex[:8]}"
    aws("s3").upload_file(str(work / "run" / "model.tar.gz"), bucket, f"{name}/model.tar.gz")
    sagemaker = aws("sagemaker")
    sagemaker.create_model(
        ModelName=name,
        ExecutionRoleArn=stack_outputs["TrainingRoleArn"],
        PrimaryContainer={
            "Image": XGBOOST_IMAGE,
            "ModelDataUrl": f"s3://{bucket}/{name}/model.tar.gz",
            "Environment": {
                "SAGEMAKER_PROGRAM": "inference.py",
                "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
                "SLUICE_MODEL_VERSION": "3",
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
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=name)

    def settled() -> dict[str, Any] | None:
        described: dict[str, Any] = sagemaker.describe_endpoint(EndpointName=name)
        return None if described["EndpointStatus"] == "Creating" else described

    described = wait_for(settled, timeout=120, what=f"endpoint {name}")
    assert described["EndpointStatus"] == "InService", described.get("FailureReason")
    yield name
    sagemaker.delete_endpoint(EndpointName=name)


def _invoke(aws, name: str, body: str, content_type: str = "application/json") -> dict:
    response = aws("sagemaker-runtime").invoke_endpoint(
        EndpointName=name, ContentType=content_type, Body=body
    )
    assert response["ContentType"] == "application/json"
    answer: dict = json.loads(response["Body"].read())
    return answer


def test_uploaded_rows_as_they_are_get_predictions_with_their_ids(aws, endpoint, upload_rows):
    text, rows = upload_rows
    # When the rows of an upload (text values, PII included, target left out) are sent as JSON
    answer = _invoke(aws, endpoint, json.dumps({"instances": rows}))
    # Then each gets a prediction with its id, from the model version the endpoint names
    assert [p["id"] for p in answer["predictions"]] == [r["customer_id"] for r in rows]
    assert answer["model_version"] == "3"
    assert all(0 <= p["probability"] <= 1 for p in answer["predictions"])
    # And the upload's CSV itself gets the same answer
    assert _invoke(aws, endpoint, text, "text/csv") == answer


def test_a_bad_request_is_a_client_error_of_the_model_not_a_server_error(
    aws, endpoint, upload_rows
):
    _, rows = upload_rows
    bad = [rows[0], {**rows[1], "plan": "gold", "signup_ts": "yesterday"}]
    # When a request ingestion would quarantine is sent
    with pytest.raises(ClientError) as info:
        _invoke(aws, endpoint, json.dumps({"instances": bad}))
    # Then InvokeEndpoint raises ModelError carrying the container's 400 and its JSON body
    error = info.value.response
    assert error["Error"]["Code"] == "ModelError"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert error["OriginalStatusCode"] == 400
    assert "Received client error (400) from primary" in error["Error"]["Message"]
    assert error["LogStreamArn"].endswith(f"/aws/sagemaker/Endpoints/{endpoint}:log-stream:"
                                          "AllTraffic/i-0000000000local")  # fmt: skip
    body = json.loads(error["OriginalMessage"])
    assert body["error"]["code"] == "invalid_input"
    assert [(d["instance"], d["field"]) for d in body["error"]["details"]] == [
        (1, "signup_ts"),
        (1, "plan"),
    ]
    # And it counts as the model's 4xx in CloudWatch, never as a 5xx (the rollback alarm's metric)
    wait_for(
        lambda: metric_sum(aws, endpoint, "Invocation4XXErrors") >= 1,
        timeout=15,
        what="the 4xx in CloudWatch",
    )
    assert metric_sum(aws, endpoint, "Invocation5XXErrors") == 0
    # And the endpoint goes on serving
    assert _invoke(aws, endpoint, json.dumps({"instances": rows[:1]}))["predictions"]
