"""SageMaker on the local cloud: `.sync` training in Step Functions, endpoints that really serve."""

from __future__ import annotations

import io
import json
import tarfile
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xgboost as xgb

from tests.integration.helpers import wait_for

pytestmark = pytest.mark.integration
JOBS = Path(__file__).parent / "jobs"
INSTANCES = [[0.1, 0.9], [0.8, 0.2], [0.5, 0.5]]
XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:3.0-5"


def _sourcedir() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in ("train.py", "inference.py"):
            tar.add(JOBS / name, arcname=name)
    return buffer.getvalue()


def _training_rows() -> bytes:
    rng = np.random.default_rng(7)
    features = rng.random((40, 2))
    labels = (features[:, 0] > 0.5).astype(float)
    rows = np.column_stack([labels, features])
    return "\n".join(",".join(f"{v:.4f}" for v in row) for row in rows).encode()


@pytest.fixture(scope="module")
def training_inputs(aws, stack_outputs) -> dict[str, str]:
    bucket = stack_outputs["ArtifactsBucketName"]
    s3 = aws("s3")
    s3.put_object(Bucket=bucket, Key="code/sourcedir.tar.gz", Body=_sourcedir())
    s3.put_object(Bucket=bucket, Key="data/train/rows.csv", Body=_training_rows())
    return {
        "submit": f"s3://{bucket}/code/sourcedir.tar.gz",
        "train_uri": f"s3://{bucket}/data/train",
        "output_uri": f"s3://{bucket}/models",
    }


def _run_training(aws, stack_outputs, inputs, **hyperparameters: str) -> dict[str, Any]:
    sfn = aws("stepfunctions")
    job_name = f"it-{uuid.uuid4().hex[:12]}"
    execution = sfn.start_execution(
        stateMachineArn=stack_outputs["TrainStateMachineArn"],
        name=job_name,
        input=json.dumps(
            {
                "job_name": job_name,
                "image": XGBOOST_IMAGE,
                "hyperparameters": {
                    "sagemaker_program": json.dumps("train.py"),
                    "sagemaker_submit_directory": json.dumps(inputs["submit"]),
                    **hyperparameters,
                },
                "train_uri": inputs["train_uri"],
                "output_uri": inputs["output_uri"],
            }
        ),
    )

    def finished() -> dict[str, Any] | None:
        described = sfn.describe_execution(executionArn=execution["executionArn"])
        return None if described["status"] == "RUNNING" else described

    described = wait_for(finished, timeout=120, interval=1, what=f"execution {job_name}")
    return {"job_name": job_name, **described}


@pytest.fixture(scope="module")
def trained(aws, stack_outputs, training_inputs) -> dict[str, Any]:
    return _run_training(aws, stack_outputs, training_inputs, num_round="5")


def test_sync_training_task_runs_the_script_to_succeeded(aws, trained):
    # Given a state machine with a createTrainingJob.sync task, When it runs a real script
    # Then the execution succeeds after the job completed, with its artifact in S3
    assert trained["status"] == "SUCCEEDED", trained.get("cause")
    output = json.loads(trained["output"])
    assert output["training"]["status"] == "Completed"
    job = aws("sagemaker").describe_training_job(TrainingJobName=trained["job_name"])
    assert job["TrainingJobStatus"] == "Completed"
    assert job["ModelArtifacts"]["S3ModelArtifacts"] == output["training"]["model"]
    assert output["training"]["model"].endswith(f"/{trained['job_name']}/output/model.tar.gz")


def test_failing_script_fails_the_execution_with_its_reason(aws, stack_outputs, training_inputs):
    # Given a hyperparameter the script rejects
    failed = _run_training(aws, stack_outputs, training_inputs, min_rows="1000")
    # Then the execution fails like a failed .sync task, carrying the script's own message
    assert failed["status"] == "FAILED"
    assert failed["error"] == "States.TaskFailed"
    cause = json.loads(failed["cause"])
    assert cause["TrainingJobStatus"] == "Failed"
    assert "ValueError: need at least 1000 rows, got 40" in cause["FailureReason"]
    job = aws("sagemaker").describe_training_job(TrainingJobName=failed["job_name"])
    assert job["FailureReason"] == cause["FailureReason"]


def _local_predictions(aws, model_uri: str) -> list[float]:
    bucket, key = model_uri.removeprefix("s3://").split("/", 1)
    archive = aws("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        model_json = tar.extractfile("model.json")
        assert model_json is not None
        raw = model_json.read()
    booster = xgb.Booster()
    booster.load_model(bytearray(raw))
    return booster.predict(xgb.DMatrix(np.array(INSTANCES))).tolist()


def _model_and_config(sagemaker, stack_outputs, training_inputs, model_uri: str) -> str:
    """A model serving ``model_uri`` with the job's inference.py, and an endpoint config."""
    name = f"it-{uuid.uuid4().hex[:8]}"
    sagemaker.create_model(
        ModelName=name,
        ExecutionRoleArn=stack_outputs["TrainingRoleArn"],
        PrimaryContainer={
            "Image": XGBOOST_IMAGE,
            "ModelDataUrl": model_uri,
            "Environment": {
                "SAGEMAKER_PROGRAM": "inference.py",
                "SAGEMAKER_SUBMIT_DIRECTORY": training_inputs["submit"],
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


def _wait_in_service(sagemaker, name: str) -> dict[str, Any]:
    def settled() -> dict[str, Any] | None:
        described: dict[str, Any] = sagemaker.describe_endpoint(EndpointName=name)
        return None if described["EndpointStatus"] in ("Creating", "Updating") else described

    described = wait_for(settled, timeout=90, what=f"endpoint {name}")
    assert described["EndpointStatus"] == "InService", described
    return described


def _predict(aws, name: str) -> list[float]:
    response = aws("sagemaker-runtime").invoke_endpoint(
        EndpointName=name, ContentType="application/json", Body=json.dumps({"instances": INSTANCES})
    )
    predictions: list[float] = json.loads(response["Body"].read())["predictions"]
    return predictions


@pytest.fixture(scope="module")
def endpoint(aws, stack_outputs, training_inputs, trained) -> Any:
    assert trained["status"] == "SUCCEEDED", trained.get("cause")
    sagemaker = aws("sagemaker")
    model_uri = json.loads(trained["output"])["training"]["model"]
    name = _model_and_config(sagemaker, stack_outputs, training_inputs, model_uri)
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=name)
    _wait_in_service(sagemaker, name)
    yield {"name": name, "model_uri": model_uri}
    sagemaker.delete_endpoint(EndpointName=name)


def test_endpoint_answers_with_the_models_real_prediction(aws, endpoint):
    # Given an endpoint serving the trained artifact with its inference.py
    runtime = aws("sagemaker-runtime")
    # When it is invoked
    response = runtime.invoke_endpoint(
        EndpointName=endpoint["name"],
        ContentType="application/json",
        Body=json.dumps({"instances": INSTANCES}),
    )
    # Then the answer is the model's own prediction (what the artifact predicts here, too)
    predictions = json.loads(response["Body"].read())["predictions"]
    assert predictions == pytest.approx(_local_predictions(aws, endpoint["model_uri"]), rel=1e-6)
    assert predictions[0] < 0.5 < predictions[1]
    assert response["ContentType"] == "application/json"


def test_handler_error_surfaces_as_model_error(aws, endpoint):
    runtime = aws("sagemaker-runtime")
    with pytest.raises(runtime.exceptions.ModelError, match="unsupported content type text/csv"):
        runtime.invoke_endpoint(EndpointName=endpoint["name"], ContentType="text/csv", Body="1,2")


def test_processing_job_runs_its_script_and_uploads_outputs(aws, stack_outputs, training_inputs):
    # Given a processing job in the shape SageMaker's script processors send
    bucket = stack_outputs["ArtifactsBucketName"]
    s3, sagemaker = aws("s3"), aws("sagemaker")
    s3.put_object(Bucket=bucket, Key="code/evaluate.py", Body=(JOBS / "evaluate.py").read_bytes())
    name = f"it-proc-{uuid.uuid4().hex[:8]}"

    def s3_input(input_name: str, uri: str, path: str) -> dict[str, Any]:
        return {
            "InputName": input_name,
            "S3Input": {
                "S3Uri": uri,
                "LocalPath": path,
                "S3DataType": "S3Prefix",
                "S3InputMode": "File",
            },
        }

    sagemaker.create_processing_job(
        ProcessingJobName=name,
        RoleArn=stack_outputs["TrainingRoleArn"],
        AppSpecification={
            "ImageUri": XGBOOST_IMAGE,
            "ContainerEntrypoint": ["python3", "/opt/ml/processing/input/code/evaluate.py"],
            "ContainerArguments": [
                "--input",
                "/opt/ml/processing/input/data",
                "--output",
                "/opt/ml/processing/evaluation",
            ],
        },
        ProcessingInputs=[
            s3_input("code", f"s3://{bucket}/code/evaluate.py", "/opt/ml/processing/input/code"),
            s3_input("data", training_inputs["train_uri"], "/opt/ml/processing/input/data"),
        ],
        ProcessingOutputConfig={
            "Outputs": [
                {
                    "OutputName": "evaluation",
                    "S3Output": {
                        "S3Uri": f"s3://{bucket}/evaluation/{name}",
                        "LocalPath": "/opt/ml/processing/evaluation",
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ]
        },
        ProcessingResources={
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "VolumeSizeInGB": 5,
            }
        },
    )

    def finished() -> dict[str, Any] | None:
        job = sagemaker.describe_processing_job(ProcessingJobName=name)
        return None if job["ProcessingJobStatus"] == "InProgress" else job

    job = wait_for(finished, timeout=60, what=f"processing job {name}")
    # Then it completed and its output is in S3
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    body = s3.get_object(Bucket=bucket, Key=f"evaluation/{name}/evaluation.json")["Body"].read()
    assert json.loads(body) == {"rows": 40}


def test_updated_endpoint_serves_the_new_model_and_a_deleted_one_is_gone(
    aws, stack_outputs, training_inputs, trained
):
    # Given an endpoint serving the first model, and a second model trained differently
    sagemaker = aws("sagemaker")
    first = json.loads(trained["output"])["training"]["model"]
    retrained = _run_training(aws, stack_outputs, training_inputs, num_round="40")
    assert retrained["status"] == "SUCCEEDED", retrained.get("cause")
    second = json.loads(retrained["output"])["training"]["model"]
    name = _model_and_config(sagemaker, stack_outputs, training_inputs, first)
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=name)
    _wait_in_service(sagemaker, name)
    assert _predict(aws, name) == pytest.approx(_local_predictions(aws, first), rel=1e-6)
    # When the endpoint is updated to a config of the second model
    new_config = _model_and_config(sagemaker, stack_outputs, training_inputs, second)
    sagemaker.update_endpoint(EndpointName=name, EndpointConfigName=new_config)
    described = _wait_in_service(sagemaker, name)
    # Then it serves the second model's predictions under the new config
    assert described["EndpointConfigName"] == new_config
    assert _predict(aws, name) == pytest.approx(_local_predictions(aws, second), rel=1e-6)
    assert _local_predictions(aws, second) != pytest.approx(_local_predictions(aws, first))
    # and once deleted it is gone
    sagemaker.delete_endpoint(EndpointName=name)
    with pytest.raises(sagemaker.exceptions.ClientError):
        sagemaker.describe_endpoint(EndpointName=name)


def test_model_packages_are_registered_in_a_group_and_approved(aws, trained):
    # Given a trained model and a model package group
    sagemaker = aws("sagemaker")
    group = f"it-group-{uuid.uuid4().hex[:8]}"
    sagemaker.create_model_package_group(
        ModelPackageGroupName=group, ModelPackageGroupDescription="integration test"
    )
    model_uri = json.loads(trained["output"])["training"]["model"]
    # When a version is registered pending approval, then approved
    arn = sagemaker.create_model_package(
        ModelPackageGroupName=group,
        ModelApprovalStatus="PendingManualApproval",
        CustomerMetadataProperties={"roc_auc": "0.91"},
        InferenceSpecification={
            "Containers": [{"Image": XGBOOST_IMAGE, "ModelDataUrl": model_uri}],
            "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
    )["ModelPackageArn"]
    sagemaker.update_model_package(
        ModelPackageArn=arn,
        ModelApprovalStatus="Approved",
        CustomerMetadataProperties={"approved_by": "ci"},
    )
    # Then the group lists it, approved, with its metadata and artifact
    (listed,) = sagemaker.list_model_packages(ModelPackageGroupName=group)[
        "ModelPackageSummaryList"
    ]
    assert listed["ModelPackageArn"] == arn
    described = sagemaker.describe_model_package(ModelPackageName=arn)
    assert described["ModelApprovalStatus"] == "Approved"
    assert described["CustomerMetadataProperties"] == {"roc_auc": "0.91", "approved_by": "ci"}
    container = described["InferenceSpecification"]["Containers"][0]
    assert container["ModelDataUrl"] == model_uri
