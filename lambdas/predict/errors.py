"""Every error a caller can get from the function: one typed exception, one JSON shape.

``{"error": {"code": "...", "message": "...", "details": [...]}}`` (DESIGN.md). The messages are
ours: no stack trace, no AWS error text ever reaches a caller (the log has them, with the
request id). API Gateway's own answers (403, 429, ...) use the same shape through its Gateway
Responses (``infra/serving.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: instance/field/message items of a 400, at most this many (the model caps its own list too)
MAX_DETAILS = 50


@dataclass
class ApiError(Exception):
    status: int
    code: str
    message: str
    details: list[dict[str, Any]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


def invalid_json(reason: str) -> ApiError:
    return ApiError(400, "invalid_json", f"the body is not valid JSON: {reason}")


def invalid_request(details: list[dict[str, Any]]) -> ApiError:
    return ApiError(
        400,
        "invalid_request",
        'the body must be {"instances": [record, ...]} with at least one record (an object)',
        details[:MAX_DETAILS],
    )


def invalid_input(message: str, details: list[dict[str, Any]]) -> ApiError:
    """The model refused the records (its own validation; details name instance and field)."""
    return ApiError(400, "invalid_input", message, details[:MAX_DETAILS])


def not_found(dataset: str) -> ApiError:
    return ApiError(404, "not_found", f"dataset {dataset!r} is not declared")


def body_too_large(size: int, limit: int) -> ApiError:
    return ApiError(
        413,
        "payload_too_large",
        f"the body has {size} bytes, above the limit of {limit} bytes: split the instances "
        "over several requests, or use batch scoring for files",
    )


def too_many_instances(count: int, limit: int) -> ApiError:
    return ApiError(
        413,
        "payload_too_large",
        f"the request has {count} instances, above the limit of {limit}: split them over "
        "several requests, or use batch scoring for files",
    )


def unsupported_media_type(content_type: str | None) -> ApiError:
    got = content_type or "none"
    return ApiError(
        415,
        "unsupported_media_type",
        f"Content-Type {got!r} is not supported; send application/json",
    )


def not_deployed(dataset: str, retry_after: int) -> ApiError:
    return ApiError(
        503,
        "model_not_deployed",
        f"no model serves dataset {dataset!r} yet; retry later",
        headers={"Retry-After": str(retry_after)},
    )


def endpoint_timeout(dataset: str) -> ApiError:
    return ApiError(
        504, "endpoint_timeout", f"the model of dataset {dataset!r} did not answer in time"
    )


def endpoint_throttled() -> ApiError:
    return ApiError(
        429, "throttled", "the model is receiving too many requests; retry shortly",
        headers={"Retry-After": "1"},
    )  # fmt: skip


def model_failed(dataset: str) -> ApiError:
    return ApiError(502, "model_error", f"the model of dataset {dataset!r} failed to answer")


def internal_error() -> ApiError:
    return ApiError(500, "internal_error", "the request could not be processed")
