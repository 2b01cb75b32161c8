"""Batch Transform on the local cloud runs the model's inference code as AWS would: line split,
mini-batches, input/output filters, JoinSource, AssembleWith Line, ``.out`` files, KMS."""

from __future__ import annotations

import io
import tarfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.helpers import wait_for

pytestmark = pytest.mark.integration
JOBS = Path(__file__).parent / "jobs"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:3.0-5"


@pytest.fixture(scope="module")
def csv_model(aws: Callable[[str], Any], stack_outputs: dict[str, str]) -> dict[str, str]:
    """A Model whose code (in model.tar.gz's code/) scores CSV lines."""
    bucket = stack_outputs["ArtifactsBucketName"]
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        tar.add(JOBS / "csv_model.py", arcname="code/csv_model.py")
    name = f"csv-model-{uuid.uuid4().hex[:8]}"
    key = f"transform-tests/{name}/model.tar.gz"
    aws("s3").put_object(Bucket=bucket, Key=key, Body=archive.getvalue())
    aws("sagemaker").create_model(
        ModelName=name,
        ExecutionRoleArn="arn:aws:iam::000000000000:role/transform-tests",
        PrimaryContainer={
            "Image": IMAGE,
            "ModelDataUrl": f"s3://{bucket}/{key}",
            "Environment": {
                "SAGEMAKER_PROGRAM": "csv_model.py",
                "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
            },
        },
    )
    return {"name": name, "bucket": bucket}


def _run(aws: Callable[[str], Any], model: dict[str, str], lines: list[str], **options: Any
         ) -> tuple[dict[str, Any], str]:  # fmt: skip
    s3, sagemaker = aws("s3"), aws("sagemaker")
    bucket, job = model["bucket"], f"tt-{uuid.uuid4().hex[:10]}"
    s3.put_object(Bucket=bucket, Key=f"{job}/in/part.csv", Body="\n".join(lines) + "\n")
    output = options.pop("TransformOutput", {})
    sagemaker.create_transform_job(
        TransformJobName=job,
        ModelName=model["name"],
        TransformInput={
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                            "S3Uri": f"s3://{bucket}/{job}/in/"}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        TransformOutput={"S3OutputPath": f"s3://{bucket}/{job}/out/", "Accept": "text/csv",
                         "AssembleWith": "Line", **output},
        TransformResources={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1},
        **options,
    )  # fmt: skip

    def ended() -> dict[str, Any] | None:
        described: dict[str, Any] = sagemaker.describe_transform_job(TransformJobName=job)
        return None if described["TransformJobStatus"] == "InProgress" else described

    described = wait_for(ended, timeout=120, interval=0.5, what=f"transform job {job}")
    try:
        text = s3.get_object(Bucket=bucket, Key=f"{job}/out/part.csv.out")["Body"].read().decode()
    except s3.exceptions.NoSuchKey:
        text = ""
    return described, text


def test_a_job_starts_in_progress_and_completes_with_the_models_answers(aws, csv_model):
    described, text = _run(aws, csv_model, ["1,2", "5,6", "9,9"], BatchStrategy="SingleRecord")
    assert described["TransformJobStatus"] == "Completed"
    # one request per record: each answer says its mini-batch held one line
    assert text == "0,3.0,1\n1,11.0,1\n1,18.0,1\n"


def test_multi_record_batches_filters_and_join_source_carry_an_id(aws, csv_model):
    # Given rows "key,id,a,b": the model must see only a,b; the output keeps key, id, answer
    lines = [f"{i},C{i},{i},{i + 1}" for i in range(1, 8)]
    described, text = _run(
        aws,
        csv_model,
        lines,
        BatchStrategy="MultiRecord",
        MaxPayloadInMB=1,
        DataProcessing={"InputFilter": "$[2:]", "JoinSource": "Input",
                        "OutputFilter": "$[0,1,-3,-2]"},
    )  # fmt: skip
    assert described["TransformJobStatus"] == "Completed", described.get("FailureReason")
    assert described["DataProcessing"]["JoinSource"] == "Input"
    assert text.splitlines() == [
        f"{i},C{i},{int(2 * i + 1 > 10)},{float(2 * i + 1)}" for i in range(1, 8)
    ]


def test_output_is_encrypted_with_the_jobs_key(aws, csv_model, stack_outputs):
    key = aws("kms").create_key()["KeyMetadata"]["Arn"]
    described, _ = _run(aws, csv_model, ["1,2"], TransformOutput={"KmsKeyId": key})
    assert described["TransformJobStatus"] == "Completed"
    out = f"{described['TransformJobName']}/out/part.csv.out"
    head = aws("s3").head_object(Bucket=csv_model["bucket"], Key=out)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == key


def test_a_model_error_fails_the_job_with_a_reason(aws, csv_model):
    described, text = _run(aws, csv_model, ["1,2", "boom,3"], BatchStrategy="MultiRecord")
    assert described["TransformJobStatus"] == "Failed"
    assert "the model answered 500" in described["FailureReason"]
    assert text == ""


def test_a_missing_input_fails_the_job(aws, csv_model):
    sagemaker, job = aws("sagemaker"), f"tt-{uuid.uuid4().hex[:10]}"
    sagemaker.create_transform_job(
        TransformJobName=job,
        ModelName=csv_model["name"],
        TransformInput={"DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": f"s3://{csv_model['bucket']}/nothing-here/"}}},
        TransformOutput={"S3OutputPath": f"s3://{csv_model['bucket']}/{job}/out/"},
        TransformResources={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1},
    )  # fmt: skip
    described = wait_for(
        lambda: (
            (d := sagemaker.describe_transform_job(TransformJobName=job))["TransformJobStatus"]
            != "InProgress"
            and d
        ),
        timeout=60,
        what="failed job",
    )
    assert described["TransformJobStatus"] == "Failed"
    assert "No S3 objects found" in described["FailureReason"]
