"""Predict Lambda: the prediction API behind API Gateway (REST, Lambda proxy integration).

``POST /v1/{dataset}/predictions`` and ``GET /v1/{dataset}``, routed by Powertools'
``APIGatewayRestResolver``. The request and response documents are the pydantic models of
``models.py``, which ``docs/openapi.json`` is generated from. The function checks the envelope
(media type, size, JSON, ``instances`` a non-empty list of objects, their count); the records
themselves are validated once, by the model (``service.py`` maps its answer). Every failure is
one ``ApiError``, answered in the JSON error shape; anything unexpected is logged with the
request id and answered as a plain 500.
"""

from __future__ import annotations

import functools
import json
import time
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import (
    APIGatewayRestResolver,
    CORSConfig,
    Response,
    content_types,
)
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.predict import errors
from lambdas.predict.models import (
    DatasetDescription,
    ErrorResponse,
    PredictionRequest,
    PredictionResponse,
)
from lambdas.predict.service import Predictor
from lambdas.predict.settings import Settings
from lambdas.shared.observability import logger, metrics, tracer

JSON = content_types.APPLICATION_JSON
DATASET = Annotated[str, Path(description="The dataset's name (datasets/<name>.yaml)")]


def _error_responses(*statuses: int) -> dict[int, Any]:
    what = {
        400: "Malformed body, or records the model refuses (details name instance and field)",
        403: "No API key, a wrong key, or (with IAM authorization) an unsigned request",
        404: "The dataset is not declared",
        413: "The body or the instance count is above the limit",
        415: "Content-Type is not application/json",
        429: "Throttled or over the daily quota of the key's usage plan",
        502: "The model failed to answer",
        503: "No model serves the dataset yet (see Retry-After)",
        504: "The model did not answer in time",
    }
    return {
        status: {
            "description": what[status],
            "content": {JSON: {"model": ErrorResponse}},
        }
        for status in statuses
    }


def _answer(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(
        status_code=status,
        content_type=JSON,
        body=json.dumps(body, separators=(",", ":")),
        headers=headers,
    )


def _request_id(app: APIGatewayRestResolver) -> str:
    return str(app.current_event.request_context.request_id)


def _check_envelope(app: APIGatewayRestResolver, predictor: Predictor) -> None:
    """What is checked before the body is parsed: media type, then size."""
    headers = {k.lower(): v for k, v in (app.current_event.headers or {}).items()}
    media = (headers.get("content-type") or "").split(";")[0].strip().lower()
    if media != JSON:
        raise errors.unsupported_media_type(headers.get("content-type"))
    predictor.check_size(app.current_event.body)


def _validation_error(exc: RequestValidationError, body: str | None) -> errors.ApiError:
    if not body:
        return errors.invalid_json("the body is empty")
    try:
        json.loads(body)
    except ValueError as bad:
        return errors.invalid_json(str(bad))
    details: list[dict[str, Any]] = []
    for item in exc.errors():
        location = [str(p) for p in item.get("loc", ()) if p != "body"]
        detail: dict[str, Any] = {"message": str(item.get("msg", "invalid"))}
        if len(location) >= 2 and location[0] == "instances" and location[1].isdigit():
            detail["instance"] = int(location[1])
        elif location:
            detail["field"] = ".".join(location)
        details.append(detail)
    return errors.invalid_request(details)


def build_app(predictor: Predictor) -> APIGatewayRestResolver:
    """The resolver and its routes; one per cold start (tests build their own)."""
    origins = predictor.settings.cors_origins
    cors = (
        CORSConfig(
            allow_origin=origins[0],
            extra_origins=list(origins[1:]),
            allow_headers=["Content-Type", "X-Api-Key", "Authorization", "X-Amz-Date"],
            max_age=600,
        )
        if origins
        else None
    )
    app = APIGatewayRestResolver(enable_validation=True, cors=cors)

    @app.post(
        "/v1/<dataset>/predictions",
        cors=bool(origins),
        summary="Predict for records of a dataset",
        description="One prediction per instance, in order, with the id echoed when the "
        "record has one.",
        responses={
            200: {"description": "Predictions", "content": {JSON: {"model": PredictionResponse}}},
            **_error_responses(400, 403, 404, 413, 415, 429, 502, 503, 504),
        },
        tags=["predictions"],
    )
    def predictions(dataset: DATASET, request: Annotated[PredictionRequest, Body()]):
        _check_envelope(app, predictor)
        request_id = _request_id(app)
        started = time.perf_counter()
        served = predictor.predict(dataset, request.instances, request_id)
        metrics.add_metric("Predictions", MetricUnit.Count, len(request.instances))
        metrics.add_metric("EndpointLatency", MetricUnit.Milliseconds, served.endpoint_ms)
        if served.capture_failed:
            metrics.add_metric("CaptureFailures", MetricUnit.Count, served.capture_failed)
        logger.info(
            "prediction served",
            extra={
                "dataset": dataset,
                "instances": len(request.instances),
                "model_version": served.body["model_version"],
                "endpoint_ms": round(served.endpoint_ms, 3),
                "capture_ms": round(served.capture_ms, 3),
                "handler_ms": round((time.perf_counter() - started) * 1000, 3),
                "captured": served.captured,
            },
        )
        return _answer(200, served.body)

    @app.get(
        "/v1/<dataset>",
        cors=bool(origins),
        summary="Describe a dataset: the record shape and the model serving it",
        responses={
            200: {"description": "The dataset", "content": {JSON: {"model": DatasetDescription}}},
            **_error_responses(403, 404, 429),
        },
        tags=["datasets"],
    )
    def describe(dataset: DATASET):
        return _answer(200, predictor.describe(dataset))

    @app.exception_handler(errors.ApiError)
    def api_error(exc: errors.ApiError) -> Response:
        metrics.add_metric(f"Errors{exc.status}", MetricUnit.Count, 1)
        if exc.status >= 500:
            logger.warning("request failed", extra={"status": exc.status, "code": exc.code})
        return _answer(exc.status, exc.body(), exc.headers or None)

    @app.exception_handler([RequestValidationError, RequestUnsupportedContentType])
    def bad_request(exc: Exception) -> Response:
        """Powertools parses and validates the body before the route runs: its complaints
        become ours, after the envelope checks that come first (media type, size)."""
        try:
            _check_envelope(app, predictor)
            if not isinstance(exc, RequestValidationError):
                raise errors.internal_error() from exc
            error = _validation_error(exc, app.current_event.body)
        except errors.ApiError as envelope:
            error = envelope
        return api_error(error)

    @app.not_found
    def not_found(_: Exception) -> Response:
        return _answer(404, errors.ApiError(404, "not_found", "no such route").body())

    @app.exception_handler(Exception)
    def unexpected(exc: Exception) -> Response:
        logger.exception("unexpected error")
        return api_error(errors.internal_error())

    return app


@functools.cache
def _app() -> APIGatewayRestResolver:
    import boto3
    from botocore.config import Config

    settings = Settings.from_env()
    runtime_config = Config(
        connect_timeout=2,
        read_timeout=settings.endpoint_timeout_seconds,
        retries={"mode": "standard", "total_max_attempts": 1},
        tcp_keepalive=True,
    )
    predictor = Predictor(
        settings,
        runtime=boto3.client("sagemaker-runtime", config=runtime_config),
        sagemaker=boto3.client("sagemaker"),
        firehose=boto3.client("firehose"),
    )
    return build_app(predictor)


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return _app().resolve(event, context)
