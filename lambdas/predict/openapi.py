"""The API's OpenAPI 3 document, generated from the handler's own routes and pydantic models.

``make openapi`` writes it to ``docs/openapi.json``; tests check that the file is current, that
the synthesized API Gateway resources are exactly its paths and methods, and that the deployed
API answers what it says.

Powertools documents its 422 request-validation answer on every route; this API answers those
cases itself (400, 413, 415), so that answer and its schemas are removed. API Gateway's API-key
header is declared as the security scheme every operation requires.
"""

from __future__ import annotations

import json
from typing import Any

from lambdas.predict import __version__
from lambdas.predict.handler import build_app
from lambdas.predict.service import Predictor
from lambdas.predict.settings import Settings

TITLE = "Sluice prediction API"
DESCRIPTION = (
    "Predictions from the model serving a dataset. Every request needs an API key in the "
    "x-api-key header (`aws apigateway get-api-key --api-key <ApiKeyId> --include-value`). "
    'Errors are JSON: {"error": {"code", "message", "details"}}.'
)
_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError", "ResponseValidationError")


def document() -> dict[str, Any]:
    app = build_app(Predictor(Settings(prefix="sluice"), runtime=None))
    doc: dict[str, Any] = json.loads(
        app.get_openapi_json_schema(
            title=TITLE,
            version=__version__,
            description=DESCRIPTION,
            openapi_version="3.1.0",
        )
    )
    for operations in doc["paths"].values():
        for operation in operations.values():
            operation["responses"].pop("422", None)
            operation["security"] = [{"apiKey": []}]
            if "503" in operation["responses"]:
                operation["responses"]["503"]["headers"] = {
                    "Retry-After": {
                        "description": "Seconds to wait before retrying",
                        "schema": {"type": "integer"},
                    }
                }
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for name in _VALIDATION_SCHEMAS:
        schemas.pop(name, None)
    doc["components"]["securitySchemes"] = {
        "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}
    }
    return doc


def render() -> str:
    return json.dumps(document(), indent=2, sort_keys=True) + "\n"
