"""``make demo``: the main job of what is deployed today, end to end on the local cloud.

1. generate a churn export with a few malformed rows and upload it to the raw bucket;
2. wait for ingestion (S3 → EventBridge → SQS → preprocess Lambda) to curate it, and show the
   manifest and where the quarantined rows went;
3. train a model on the curated data and evaluate it, with the SageMaker scripts run the way
   SageMaker runs them (``training.local``), then answer a prediction request;
4. serve the model behind the prediction API (until the training pipeline deploys it, the demo
   creates the endpoint from the model it trained) and call the API with curl;
5. score a file in bulk: upload it under ``churn/_score/`` and show the predictions (or the error
   report) that batch scoring writes to the artifacts bucket.

Needs ``make local-up`` and ``make local-deploy`` first. Dummy credentials, local endpoint only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from csv import DictReader
from pathlib import Path
from typing import Any

import boto3
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from datasets.generate import write_csv  # noqa: E402
from training import local as training_local  # noqa: E402

ENDPOINT = f"http://127.0.0.1:{os.environ.get('SLUICE_LOCAL_PORT') or 4566}"
LOCAL = {"aws_access_key_id": "test", "aws_secret_access_key": "test", "region_name": "us-east-1"}
SPEC = ROOT / "datasets" / "churn.yaml"


def client(service: str) -> Any:
    return boto3.client(service, endpoint_url=ENDPOINT, **LOCAL)


def outputs(stack: str) -> dict[str, str]:
    described = client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}


def wait_for_manifest(s3: Any, bucket: str, key: str, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        except s3.exceptions.NoSuchKey:
            time.sleep(1)
    raise SystemExit(
        f"no manifest at s3://{bucket}/{key} after {timeout:.0f}s: see the logs of the "
        "preprocess function and .local/localstack.log"
    )


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def main() -> int:
    try:
        data = outputs("sluice-dev-data")
    except Exception as exc:  # any failure here means "not up" or "not deployed"
        print(
            f"the local cloud is not up or the app is not deployed ({exc}); run "
            "`make local-up && make local-deploy` first",
            file=sys.stderr,
        )
        return 2
    s3 = client("s3")
    (ROOT / ".demo").mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="run-", dir=ROOT / ".demo"))  # kept after local-down

    step("generating 20,000 churn rows (1% malformed) and uploading them to the raw bucket")
    csv = work / "churn.csv"
    write_csv("churn", 20_000, csv, seed=int(time.time()) % 10_000, dirty=0.01)
    key = f"churn/demo/{time.strftime('%Y%m%dT%H%M%S')}.csv"
    version = s3.put_object(Bucket=data["RawBucket"], Key=key, Body=csv.read_bytes())["VersionId"]
    print(f"s3://{data['RawBucket']}/{key} (version {version})")

    step("waiting for ingestion to curate it")
    prefix = f"{key}/{version}/"
    manifest = wait_for_manifest(s3, data["CuratedBucket"], f"{prefix}manifest.json")
    summary = {"rows": manifest["rows"], "quarantine": manifest.get("quarantine")}
    print(json.dumps(summary, indent=2))

    step("downloading the curated Parquet")
    curated = work / "curated"
    curated.mkdir()
    for obj in s3.list_objects_v2(Bucket=data["CuratedBucket"], Prefix=prefix)["Contents"]:
        s3.download_file(data["CuratedBucket"], obj["Key"], str(curated / Path(obj["Key"]).name))
    print(curated)

    step("training with train.py under the SageMaker script-mode contract")
    run = work / "run"
    if training_local.train(SPEC, [curated], run, ["num_round=200"]) != 0:
        return 1

    step("evaluating the challenger on the holdout (no champion yet)")
    evaluation = work / "evaluation"
    if training_local.evaluate(SPEC, [curated], run / "model.tar.gz", None, evaluation) != 0:
        return 1
    verdict = json.loads((evaluation / "evaluation.json").read_text())
    print(f"verdict: {verdict['verdict']} — {verdict['reason']}")
    print(f"report: {evaluation / 'report.html'}")

    step("predicting for two customers: rows of the upload as they are, minus the target")
    parts = [str(path) for path in sorted(curated.glob("*.parquet"))]
    kept = set(pq.read_table(parts, columns=["customer_id"]).column(0).to_pylist())
    with csv.open(newline="") as fh:  # two rows ingestion curated (1% were made malformed)
        rows = [r for r in DictReader(fh) if r["customer_id"] in kept][:2]
    request = work / "request.json"
    request.write_text(json.dumps({"instances": [{k: v for k, v in r.items() if k != "churned"}
                                                 for r in rows]}, indent=2))  # fmt: skip
    print(request.read_text())
    if training_local.predict(run / "model.tar.gz", request) != 0:
        return 1
    serve(data, run / "model.tar.gz")
    if call_api(request) != 0:
        return 1
    return score_file(data, work)


ENDPOINT_NAME = "sluice-dev-churn"
XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:3.0-5"


def serve(data: dict[str, str], model_tar: Path) -> None:
    """The churn endpoint: the pipeline's when it deployed one, else the model trained here."""
    sagemaker = client("sagemaker")
    try:
        sagemaker.describe_endpoint(EndpointName=ENDPOINT_NAME)
        step(f"the endpoint {ENDPOINT_NAME} already serves churn")
    except sagemaker.exceptions.ClientError:
        step(f"deploying the model to the endpoint {ENDPOINT_NAME} (SageMaker APIs)")
        name = f"{ENDPOINT_NAME}-demo-{time.strftime('%Y%m%d%H%M%S')}"
        key = f"models/demo/{name}/model.tar.gz"
        client("s3").upload_file(str(model_tar), data["ArtifactsBucket"], key)
        sagemaker.create_model(
            ModelName=name,
            ExecutionRoleArn="arn:aws:iam::000000000000:role/sluice-demo",
            PrimaryContainer={
                "Image": XGBOOST_IMAGE,
                "ModelDataUrl": f"s3://{data['ArtifactsBucket']}/{key}",
                "Environment": {
                    "SAGEMAKER_PROGRAM": "inference.py",
                    "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
                    "SLUICE_MODEL_VERSION": "1",
                },
            },
        )
        sagemaker.create_endpoint_config(
            EndpointConfigName=name,
            ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": name,
                                 "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}],
        )  # fmt: skip
        sagemaker.create_endpoint(EndpointName=ENDPOINT_NAME, EndpointConfigName=name)
    for _ in range(240):
        status = sagemaker.describe_endpoint(EndpointName=ENDPOINT_NAME)["EndpointStatus"]
        if status not in ("Creating", "Updating"):
            break
        time.sleep(0.5)
    print(f"{ENDPOINT_NAME}: {status}")


def call_api(request: Path) -> int:
    """The prediction API through API Gateway, as a client calls it: curl and the API key."""
    app = outputs("sluice-dev-app")
    key = client("apigateway").get_api_key(apiKey=app["ApiKeyId"], includeValue=True)["value"]
    url = f"{ENDPOINT}/_aws/execute-api/{app['ApiId']}/dev/v1/churn/predictions"
    step("calling the prediction API with curl")
    print(f"curl -s -X POST {url} -H 'x-api-key: <ApiKeyId's value>' "
          f"-H 'Content-Type: application/json' -d @{request.name}")  # fmt: skip
    answer = subprocess.run(
        ["curl", "-s", "-w", "\nHTTP %{http_code}\n", "-X", "POST", url, "-H",
         f"x-api-key: {key}", "-H", "Content-Type: application/json", "-d", f"@{request}"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    print(answer.stdout.strip())
    return 0 if answer.stdout.strip().endswith("HTTP 200") else 1


def score_file(data: dict[str, str], work: Path) -> int:
    """Batch scoring: a file under churn/_score/ → churn/predictions/<name>/ (or error.json)."""
    step("scoring 1,000 rows in bulk: s3://<raw>/churn/_score/demo.csv")
    rows = work / "to-score.csv"
    write_csv("churn", 1_000, rows, seed=7)
    s3 = client("s3")
    s3.upload_file(str(rows), data["RawBucket"], "churn/_score/demo.csv")
    prefix = "churn/predictions/demo.csv/"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        listed = s3.list_objects_v2(Bucket=data["ArtifactsBucket"], Prefix=prefix)
        names = {o["Key"].removeprefix(prefix) for o in listed.get("Contents", [])}
        for name in ("predictions.csv", "error.json"):
            if name in names and (name == "error.json" or "manifest.json" in names):
                body = s3.get_object(Bucket=data["ArtifactsBucket"], Key=prefix + name)
                text = body["Body"].read().decode()
                print(f"s3://{data['ArtifactsBucket']}/{prefix}{name}:")
                print("\n".join(text.splitlines()[:6]))
                # an error report is an outcome too (the file, or the model, could not score)
                return 0
        time.sleep(2)
    print("no predictions after 10 minutes: see the batch-scoring state machine's executions")
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
