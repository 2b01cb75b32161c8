"""The AWS side of the predict function: a stubbed SageMaker Runtime (exact answers and
errors, as botocore parses them), moto for SageMaker, Firehose and S3, API Gateway events."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from lambdas.predict.handler import build_app
from lambdas.predict.service import Predictor
from lambdas.predict.settings import Settings

REGION = "eu-west-1"
PREFIX = "sluice-test"
ENDPOINT = f"{PREFIX}-churn"
ARTIFACTS = "artifacts"
STREAM = "sluice-test-capture-churn"
PII_VALUES = ("ada@example.com", "+44 20 7946 0000")


def record(i: int = 0, **changes: Any) -> dict[str, Any]:
    """A churn record as an upload holds it (id and PII included), minus the target."""
    row = {
        "customer_id": f"C-{i:06d}",
        "email": PII_VALUES[0],
        "phone": PII_VALUES[1],
        "signup_ts": "2024-03-05T10:15:00Z",
        "last_active_ts": "2025-01-20T08:00:00Z",
        "plan": "standard",
        "region": "eu",
        "monthly_charges": 49.9,
        "tenure_months": 10 + i,
        "support_calls": 2,
    }
    row.update(changes)
    return row


@dataclass
class Context:
    function_name: str = "predict"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:predict"
    aws_request_id: str = "lambda-req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 20_000


def api_event(
    method: str,
    path: str,
    body: str | bytes | None = None,
    *,
    content_type: str | None = "application/json",
    request_id: str = "req-1",
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An API Gateway REST (Lambda proxy) event for ``/v1/{dataset}[/predictions]``."""
    parts = path.strip("/").split("/")
    resource = "/v1/{dataset}" + ("/predictions" if len(parts) > 2 else "")
    all_headers = {"x-api-key": "k" * 30, **(headers or {})}
    if content_type is not None:
        all_headers["Content-Type"] = content_type
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": all_headers,
        "multiValueHeaders": {k: [v] for k, v in all_headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"dataset": parts[1]} if len(parts) > 1 else None,
        "stageVariables": None,
        "requestContext": {
            "requestId": request_id,
            "resourcePath": resource,
            "httpMethod": method,
            "path": f"/v1{path}",
            "stage": "v1",
            "identity": {"sourceIp": "127.0.0.1", "apiKeyId": "key-id"},
        },
        "body": body.decode() if isinstance(body, bytes) else body,
        "isBase64Encoded": False,
    }


def predictions_body(n: int, *, version: str | None = "7") -> bytes:
    doc: dict[str, Any] = {
        "predictions": [{"label": i % 2, "probability": round(0.1 + i / 100, 6)} for i in range(n)]
    }
    if version is not None:
        doc["model_version"] = version
    return json.dumps(doc).encode()


@dataclass
class World:
    runtime: Any
    stub: Stubber
    sagemaker: Any
    firehose: Any
    s3: Any
    settings: Settings
    sent: list[dict[str, Any]] = field(default_factory=list)

    def predictor(self, **changes: Any) -> Predictor:
        settings = self.settings.model_copy(update=changes) if changes else self.settings
        return Predictor(
            settings, runtime=self.runtime, sagemaker=self.sagemaker, firehose=self.firehose
        )

    def call(self, event: dict[str, Any], **changes: Any) -> tuple[int, dict[str, str], Any]:
        """Resolve ``event``; returns status, headers and the parsed JSON body."""
        app = build_app(self.predictor(**changes))
        with self.stub:
            answer = app.resolve(event, Context())
        headers = {k: v[-1] for k, v in (answer.get("multiValueHeaders") or {}).items()}
        headers.update(answer.get("headers") or {})
        body = json.loads(answer["body"]) if answer.get("body") else None
        return answer["statusCode"], headers, body

    def answers(self, body: bytes, *, content_type: str = "application/json") -> None:
        """The endpoint's next answer (and record what the function sent it)."""
        self.stub.add_response(
            "invoke_endpoint",
            {
                "Body": StreamingBody(io.BytesIO(body), len(body)),
                "ContentType": content_type,
                "InvokedProductionVariant": "AllTraffic",
            },
            {
                "EndpointName": ENDPOINT,
                "ContentType": "application/json",
                "Accept": "application/json",
                "Body": ANY,
            },
        )

    def fails(
        self,
        code: str,
        message: str,
        status: int = 400,
        **modeled: Any,
    ) -> None:
        self.stub.add_client_error(
            "invoke_endpoint",
            service_error_code=code,
            service_message=message,
            http_status_code=status,
            modeled_fields=modeled or None,
        )

    def captured(self) -> list[dict[str, Any]]:
        lines: list[dict[str, Any]] = []
        for item in self.s3.list_objects_v2(Bucket=ARTIFACTS).get("Contents", []):
            text = self.s3.get_object(Bucket=ARTIFACTS, Key=item["Key"])["Body"].read().decode()
            lines.extend(json.loads(line) for line in text.splitlines() if line)
        return lines

    def captured_text(self) -> str:
        return "".join(
            self.s3.get_object(Bucket=ARTIFACTS, Key=i["Key"])["Body"].read().decode()
            for i in self.s3.list_objects_v2(Bucket=ARTIFACTS).get("Contents", [])
        )


def make_world() -> World:
    """Inside ``mock_aws``: an artifacts bucket, the churn capture stream, SageMaker records."""
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=ARTIFACTS, CreateBucketConfiguration={"LocationConstraint": REGION})
    firehose = boto3.client("firehose", region_name=REGION)
    firehose.create_delivery_stream(
        DeliveryStreamName=STREAM,
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
            "BucketARN": f"arn:aws:s3:::{ARTIFACTS}",
            "Prefix": "churn/capture/",
        },
    )
    runtime = boto3.client("sagemaker-runtime", region_name=REGION)
    settings = Settings(prefix=PREFIX, capture_streams={"churn": STREAM}, max_instances=5)
    return World(
        runtime=runtime,
        stub=Stubber(runtime),
        sagemaker=boto3.client("sagemaker", region_name=REGION),
        firehose=firehose,
        s3=s3,
        settings=settings,
    )


def deploy_model(world: World, version: str = "7") -> None:
    """A model, config and endpoint for churn in moto's SageMaker."""
    sm = world.sagemaker
    sm.create_model(
        ModelName="churn-model-7",
        ExecutionRoleArn="arn:aws:iam::123456789012:role/sagemaker",
        PrimaryContainer={
            "Image": "683313688378.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-xgboost:3.0-5",
            "ModelDataUrl": f"s3://{ARTIFACTS}/models/model.tar.gz",
            "Environment": {
                "SAGEMAKER_PROGRAM": "inference.py",
                "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
                "SLUICE_MODEL_VERSION": version,
            },
        },
    )
    sm.create_endpoint_config(
        EndpointConfigName="churn-config-7",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "churn-model-7",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
    )
    sm.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName="churn-config-7")
