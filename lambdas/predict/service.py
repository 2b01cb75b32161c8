"""Predictions for one dataset: resolve the spec, call its endpoint, map every failure.

Knows SageMaker Runtime, SageMaker and Firehose (clients passed in), not Lambda or HTTP. The
records are validated once, by the model's inference code (it answers 4xx with the instance and
field at fault, which arrives here as a ``ModelError`` carrying the container's status and body);
this module only checks the envelope's size and maps what comes back:

- the endpoint does not exist (yet): 503 with Retry-After. An endpoint that is ``Updating``
  still serves its current model (a blue/green update keeps traffic), so it never gets a 503;
- the model's 4xx: 400 (415) with its details; its 5xx: 502;
- the endpoint does not answer in time: 504; SageMaker throttles: 429.

The id column and PII columns are removed before the records leave the function: the model does
not need them (DESIGN.md: "the id and PII columns may be absent"), PII never reaches the
endpoint, and the id is echoed here, in the instance's prediction.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError, ConnectTimeoutError, ReadTimeoutError

from datasets import names
from datasets.spec import SPECS_DIR, DatasetSpec, load_spec, spec_path
from lambdas.predict import capture, errors
from lambdas.predict.settings import Settings
from lambdas.shared.observability import logger

#: "Received client error (400) from primary with message "{...}". See https://..."
_MODEL_ERROR_MESSAGE = re.compile(
    r"Received (?:client|server) error \((\d{3})\) from \S+ with message \"(.*)\"\. See ",
    re.DOTALL,
)
_PREDICTION_FIELDS = {
    "binary": ["label", "probability"],
    "multiclass": ["label", "probabilities"],
    "regression": ["value"],
}


@cache
def _spec(dataset: str, specs_dir: Path) -> DatasetSpec | None:
    path = spec_path(dataset, specs_dir)
    return load_spec(path) if path else None


@dataclass(frozen=True)
class Dataset:
    """What the function needs of a spec, computed once."""

    spec: DatasetSpec
    pii: frozenset[str]
    declared: frozenset[str]
    #: removed from a record before it is sent to the endpoint: PII and the id
    withheld: frozenset[str]

    @classmethod
    def of(cls, spec: DatasetSpec) -> Dataset:
        pii = frozenset(spec.pii_columns)
        withheld = pii | ({spec.id_column} if spec.id_column else set())
        return cls(spec, pii, frozenset(spec.column_names) - {spec.target_column}, withheld)


@dataclass
class Served:
    """A prediction answer and what it cost (for logs and metrics)."""

    body: dict[str, Any]
    endpoint_ms: float
    captured: int = 0
    capture_failed: int = 0
    capture_ms: float = 0.0


@dataclass
class _ModelInfo:
    at: float
    value: dict[str, Any] | None


@dataclass
class Predictor:
    settings: Settings
    runtime: Any
    sagemaker: Any = None
    firehose: Any = None
    specs_dir: Path = SPECS_DIR
    clock: Callable[[], float] = time.monotonic
    _models: dict[str, _ModelInfo] = field(default_factory=dict)

    # ------------------------------------------------------------------------ datasets
    def dataset(self, name: str) -> Dataset:
        if not names.DATASET_NAME.match(name):
            raise errors.not_found(name)
        spec = _spec(name, self.specs_dir)
        if spec is None:
            raise errors.not_found(name)
        return Dataset.of(spec)

    def endpoint(self, dataset: str) -> str:
        return names.endpoint_name(self.settings.prefix, dataset)

    # ------------------------------------------------------------------------- predict
    def check_size(self, body: str | bytes | None) -> None:
        size = len(body.encode() if isinstance(body, str) else (body or b""))
        if size > self.settings.max_body_bytes:
            raise errors.body_too_large(size, self.settings.max_body_bytes)

    def predict(
        self, dataset_name: str, instances: Sequence[dict[str, Any]], request_id: str
    ) -> Served:
        dataset = self.dataset(dataset_name)
        if len(instances) > self.settings.max_instances:
            raise errors.too_many_instances(len(instances), self.settings.max_instances)
        withheld = dataset.withheld
        payload = {
            "instances": [{k: v for k, v in row.items() if k not in withheld} for row in instances]
        }
        started = time.perf_counter()
        answer = self._invoke(dataset_name, json.dumps(payload, separators=(",", ":")))
        endpoint_ms = (time.perf_counter() - started) * 1000
        predictions = answer.get("predictions")
        if not isinstance(predictions, list) or len(predictions) != len(instances):
            logger.error(
                "the model answered a malformed document",
                extra={"dataset": dataset_name, "answer": str(answer)[:500]},
            )
            raise errors.model_failed(dataset_name)
        id_column = dataset.spec.id_column
        if id_column:
            predictions = [
                {"id": row[id_column], **p} if id_column in row and "id" not in p else p
                for row, p in zip(instances, predictions, strict=True)
            ]
        version = answer.get("model_version")
        if version is None:  # a model whose inference code does not say: ask SageMaker
            info = self.model(dataset_name)
            version = (info or {}).get("model_version") or "unknown"
        body = {"predictions": predictions, "model_version": str(version), "request_id": request_id}
        served = Served(body, endpoint_ms)
        self._capture(dataset, request_id, instances, predictions, str(version), served)
        return served

    def _invoke(self, dataset: str, body: str) -> dict[str, Any]:
        endpoint = self.endpoint(dataset)
        try:
            response = self.runtime.invoke_endpoint(
                EndpointName=endpoint,
                ContentType="application/json",
                Accept="application/json",
                Body=body,
            )
            raw = response["Body"].read()
        except (ReadTimeoutError, ConnectTimeoutError) as exc:
            logger.warning("endpoint timed out", extra={"endpoint": endpoint, "error": str(exc)})
            raise errors.endpoint_timeout(dataset) from exc
        except ClientError as exc:
            raise self._map_client_error(dataset, endpoint, exc) from exc
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            logger.error("the model answered something other than a JSON object")
            raise errors.model_failed(dataset)
        return answer

    def _map_client_error(self, dataset: str, endpoint: str, exc: ClientError) -> errors.ApiError:
        error = exc.response.get("Error", {})
        code, message = error.get("Code", ""), error.get("Message", "")
        context = {"endpoint": endpoint, "aws_error": code, "aws_message": message[:2000]}
        if code == "ModelError":
            return self._map_model_error(dataset, exc, context)
        if code in ("ValidationError", "ValidationException") and "not found" in message:
            logger.info("dataset has no endpoint yet", extra=context)
            return errors.not_deployed(dataset, self.settings.retry_after_seconds)
        if code in ("ThrottlingException", "TooManyRequestsException"):
            logger.warning("endpoint throttled the request", extra=context)
            return errors.endpoint_throttled()
        if code == "ModelNotReadyException":
            logger.warning("the model is not ready", extra=context)
            return errors.model_failed(dataset)
        logger.error("endpoint call failed", extra=context)
        return errors.model_failed(dataset) if code else errors.internal_error()

    def _map_model_error(
        self, dataset: str, exc: ClientError, context: dict[str, Any]
    ) -> errors.ApiError:
        """A ``ModelError`` is the container's own answer: its status and body come with it
        (``OriginalStatusCode``, ``OriginalMessage``); older clients only see them inside the
        message text, which says the same."""
        response: dict[str, Any] = exc.response
        error = response.get("Error", {})
        status = response.get("OriginalStatusCode", error.get("OriginalStatusCode"))
        original = response.get("OriginalMessage", error.get("OriginalMessage"))
        if status is None:
            found = _MODEL_ERROR_MESSAGE.search(error.get("Message", ""))
            if found:
                status, original = found.group(1), found.group(2)
        try:
            status = int(status) if status is not None else None
        except (TypeError, ValueError):
            status = None
        if "timed out" in error.get("Message", "").lower():
            logger.warning("the model timed out", extra=context)
            return errors.endpoint_timeout(dataset)
        if status is None or status >= 500:
            logger.error("the model failed", extra={**context, "status": status})
            return errors.model_failed(dataset)
        logger.info("the model refused the request", extra={**context, "status": status})
        return _client_error(status, original)

    def _capture(
        self,
        dataset: Dataset,
        request_id: str,
        instances: Sequence[dict[str, Any]],
        predictions: Sequence[dict[str, Any]],
        version: str,
        served: Served,
    ) -> None:
        name = dataset.spec.name
        stream = self.settings.capture_streams.get(name)
        if stream is None or self.firehose is None:
            return
        if not capture.sampled(request_id, self.settings.capture_share):
            return
        lines = capture.records(
            request_id=request_id,
            dataset=name,
            model_version=version,
            instances=instances,
            predictions=predictions,
            declared=dataset.declared,
            pii=dataset.pii,
        )
        started = time.perf_counter()
        try:
            served.capture_failed = capture.send(self.firehose, stream, lines)
        except Exception:  # capture must never fail a prediction
            logger.exception("capture failed", extra={"stream": stream})
            served.capture_failed = len(lines)
        served.capture_ms = (time.perf_counter() - started) * 1000
        served.captured = len(lines) - served.capture_failed

    # ------------------------------------------------------------------------ describe
    def describe(self, dataset_name: str) -> dict[str, Any]:
        dataset = self.dataset(dataset_name)
        spec = dataset.spec
        fields = []
        for col in spec.columns:
            if col.name == spec.target_column:
                continue
            role = "id" if col.name == spec.id_column else "pii" if col.pii else "input"
            described: dict[str, Any] = {
                "name": col.name,
                "type": col.type,
                "required": bool(col.required),
                "role": role,
            }
            if col.categories:
                described["categories"] = list(col.categories)
            if col.min is not None:
                described["min"] = col.min
            if col.max is not None:
                described["max"] = col.max
            fields.append(described)
        return {
            "dataset": spec.name,
            "spec_version": spec.version,
            "problem_type": spec.problem_type,
            "fields": fields,
            "prediction_fields": (["id"] if spec.id_column else [])
            + _PREDICTION_FIELDS[spec.problem_type],
            "max_instances": self.settings.max_instances,
            "max_body_bytes": self.settings.max_body_bytes,
            "model": self.model(dataset_name),
        }

    def model(self, dataset: str) -> dict[str, Any] | None:
        """The endpoint's status and model version (SLUICE_MODEL_VERSION of its model),
        remembered for ``model_info_ttl_seconds``; None when the dataset has no endpoint (not
        remembered: the first deployment shows at once)."""
        cached = self._models.get(dataset)
        now = self.clock()
        if cached is not None and now - cached.at < self.settings.model_info_ttl_seconds:
            return cached.value
        value = self._describe_model(dataset)
        if value is None:
            self._models.pop(dataset, None)
        else:
            self._models[dataset] = _ModelInfo(now, value)
        return value

    def _describe_model(self, dataset: str) -> dict[str, Any] | None:
        if self.sagemaker is None:
            return None
        endpoint = self.endpoint(dataset)
        try:
            described = self.sagemaker.describe_endpoint(EndpointName=endpoint)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in (
                "ValidationException",
                "ValidationError",
            ):
                return None
            logger.exception("describe_endpoint failed", extra={"endpoint": endpoint})
            raise errors.internal_error() from exc
        info: dict[str, Any] = {
            "endpoint": endpoint,
            "status": described.get("EndpointStatus", "Unknown"),
            "model_version": None,
        }
        try:
            config = self.sagemaker.describe_endpoint_config(
                EndpointConfigName=described["EndpointConfigName"]
            )
            variants = config.get("ProductionVariants") or []
            variant = next(
                (v for v in variants if v.get("VariantName") == names.VARIANT_NAME),
                variants[0] if variants else None,
            )
            if variant is not None:
                model = self.sagemaker.describe_model(ModelName=variant["ModelName"])
                container = model.get("PrimaryContainer") or (model.get("Containers") or [{}])[0]
                info["model_version"] = (container.get("Environment") or {}).get(
                    "SLUICE_MODEL_VERSION"
                )
        except (ClientError, KeyError):
            logger.warning("the serving model could not be described", exc_info=True)
        return info


def _client_error(status: int, original: Any) -> errors.ApiError:
    """The model's 4xx body (``{"error": {...}}``) as the API's own error, sanitized."""
    try:
        document = json.loads(original) if isinstance(original, str | bytes) else None
    except ValueError:
        document = None
    error = document.get("error") if isinstance(document, dict) else None
    if not isinstance(error, dict):
        error = {}
    message = error.get("message") if isinstance(error.get("message"), str) else None
    details = []
    for item in error.get("details") or []:
        if not isinstance(item, dict):
            continue
        detail: dict[str, Any] = {}
        if isinstance(item.get("instance"), int):
            detail["instance"] = item["instance"]
        if isinstance(item.get("field"), str):
            detail["field"] = item["field"]
        detail["message"] = str(item.get("message", ""))
        details.append(detail)
    if status == 415:
        return errors.ApiError(415, "unsupported_media_type", message or "unsupported media type")
    if status == 413:
        return errors.ApiError(413, "payload_too_large", message or "the request is too large")
    return errors.invalid_input(message or "the records do not match the dataset", details)
