"""The API's request and response documents: what the handler parses and answers, and what
``docs/openapi.json`` is generated from (``python -m lambdas.predict openapi``), so the two
cannot drift apart."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

RECORD_DESCRIPTION = (
    "A record in the dataset's own shape: its declared columns (minus the target) with the "
    "values as an upload holds them (timestamps as ISO-8601 text, categories as text, numbers, "
    "null for missing). The id column is optional and echoed in the prediction; PII columns are "
    "accepted and ignored. GET /v1/{dataset} lists the fields."
)


class PredictionRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "instances": [
                        {
                            "customer_id": "C-000042",
                            "signup_ts": "2024-03-05T10:15:00Z",
                            "last_active_ts": "2025-01-20T08:00:00Z",
                            "plan": "standard",
                            "region": "eu",
                            "monthly_charges": 49.9,
                            "tenure_months": 10,
                            "support_calls": 2,
                        }
                    ]
                }
            ]
        },
    )

    instances: list[dict[str, Any]] = Field(
        min_length=1,
        description="The records to score, at most MAX_INSTANCES (see GET /v1/{dataset}). "
        + RECORD_DESCRIPTION,
    )


class Prediction(BaseModel):
    """One prediction, in the order of the instances. Binary: label + probability;
    multiclass: label + probabilities; regression: value."""

    id: str | int | None = Field(
        default=None, description="The record's id column, when the record had it"
    )
    label: Any = Field(default=None, description="The predicted class (classification)")
    probability: float | None = Field(
        default=None, description="P(positive class) (binary classification)"
    )
    probabilities: dict[str, float] | None = Field(
        default=None, description="P(class) for every class (multiclass)"
    )
    value: float | None = Field(default=None, description="The predicted value (regression)")


class PredictionResponse(BaseModel):
    predictions: list[Prediction]
    model_version: str = Field(description="The model package version that answered")
    request_id: str = Field(
        description="This request's id (also in the x-amzn-RequestId header, the logs and the "
        "capture, so feedback labels can be joined on it)"
    )


class FieldDescription(BaseModel):
    name: str
    type: Literal["string", "int", "float", "bool", "timestamp", "category"]
    required: bool = Field(description="The value may not be missing (null or empty)")
    role: Literal["id", "pii", "input"] = Field(
        description="id: optional, echoed in the prediction; pii: accepted and ignored; "
        "input: what the model's features come from"
    )
    categories: list[Any] | None = None
    min: float | None = None
    max: float | None = None


class ModelDescription(BaseModel):
    endpoint: str
    status: str = Field(description="The endpoint's status: InService, Updating, Creating, ...")
    model_version: str | None = None


class DatasetDescription(BaseModel):
    dataset: str
    spec_version: int
    problem_type: Literal["binary", "multiclass", "regression"]
    fields: list[FieldDescription] = Field(description="The record shape, in the spec's order")
    prediction_fields: list[str] = Field(description="What each prediction holds")
    max_instances: int
    max_body_bytes: int
    model: ModelDescription | None = Field(
        description="The model serving the dataset; null while none is deployed"
    )


class ErrorDetail(BaseModel):
    instance: int | None = Field(default=None, description="Index of the instance at fault")
    field: str | None = Field(default=None, description="The field at fault")
    message: str


class ErrorBody(BaseModel):
    code: str = Field(
        description="invalid_json, invalid_request, invalid_input, forbidden, not_found, "
        "payload_too_large, unsupported_media_type, throttled, quota_exceeded, model_error, "
        "model_not_deployed, endpoint_timeout, internal_error, ..."
    )
    message: str
    details: list[ErrorDetail] = Field(default_factory=list)


class ErrorResponse(BaseModel):
    error: ErrorBody
