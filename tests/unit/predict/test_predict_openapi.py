"""docs/openapi.json is generated from the handler's models and is current."""

from __future__ import annotations

from pathlib import Path

import jsonschema
from openapi_spec_validator import validate

from lambdas.predict import errors
from lambdas.predict.openapi import document, render

DOC = Path(__file__).resolve().parents[3] / "docs" / "openapi.json"


def test_the_checked_in_document_is_what_make_openapi_writes() -> None:
    assert DOC.read_text(encoding="utf-8") == render(), "run `make openapi`"


def test_the_document_is_valid_openapi_3_with_both_routes_behind_the_api_key() -> None:
    doc = document()
    validate(doc)
    assert {(p, m) for p, ops in doc["paths"].items() for m in ops} == {
        ("/v1/{dataset}/predictions", "post"),
        ("/v1/{dataset}", "get"),
    }
    for operations in doc["paths"].values():
        for operation in operations.values():
            assert operation["security"] == [{"apiKey": []}]
            assert "422" not in operation["responses"]
    assert doc["components"]["securitySchemes"]["apiKey"]["name"] == "x-api-key"
    post = doc["paths"]["/v1/{dataset}/predictions"]["post"]
    assert set(post["responses"]) == {
        "200",
        "400",
        "403",
        "404",
        "413",
        "415",
        "429",
        "502",
        "503",
        "504",
    }
    assert "Retry-After" in post["responses"]["503"]["headers"]


def _validator(name: str) -> jsonschema.Draft202012Validator:
    doc = document()
    return jsonschema.Draft202012Validator(
        {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}
    )


def test_every_error_the_function_builds_matches_the_documented_schema() -> None:
    validator = _validator("ErrorResponse")
    built = [
        errors.invalid_json("x"),
        errors.invalid_request([{"field": "instances", "message": "m"}]),
        errors.invalid_input("m", [{"instance": 0, "field": "plan", "message": "m"}]),
        errors.not_found("x"),
        errors.body_too_large(2, 1),
        errors.too_many_instances(2, 1),
        errors.unsupported_media_type("text/csv"),
        errors.not_deployed("churn", 60),
        errors.endpoint_timeout("churn"),
        errors.endpoint_throttled(),
        errors.model_failed("churn"),
        errors.internal_error(),
    ]
    for error in built:
        validator.validate(error.body())


def test_an_answer_matches_the_documented_prediction_schema() -> None:
    _validator("PredictionResponse").validate(
        {
            "predictions": [{"id": "C-1", "label": 1, "probability": 0.8}],
            "model_version": "3",
            "request_id": "r",
        }
    )
