"""The serving construct as synthesized: API, stage, keys, Gateway Responses, function, capture."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Match, Template

from infra.config import STAGES, stage_config
from infra.rollout import declared_datasets
from infra.serving import GATEWAY_RESPONSES, INTEGRATION_TIMEOUT
from tests.infra.conftest import make_app, stack

REPO_ROOT = Path(__file__).resolve().parents[2]
LAMBDA_SYNC_PAYLOAD = 6 * 1024 * 1024


def _app_template(stage: str = "dev", **context: Any) -> Template:
    return Template.from_stack(stack(make_app(stage, **context), f"sluice-{stage}-app"))


@pytest.fixture(scope="module")
def dev() -> Template:
    return _app_template("dev")


@pytest.fixture(scope="module")
def dev_data() -> Template:
    return Template.from_stack(stack(make_app("dev"), "sluice-dev-data"))


@pytest.fixture(scope="module")
def secured() -> Template:
    return _app_template(
        "dev",
        api_iam_auth="true",
        cors_origins="https://app.example",
        waf_web_acl_arn="arn:aws:wafv2:eu-west-1:123456789012:regional/webacl/sluice/abc",
    )


def _resources(template: Template, kind: str) -> dict[str, dict[str, Any]]:
    return template.find_resources(kind)


def _paths(template: Template) -> dict[str, str]:
    """Logical id of every ApiGateway::Resource → its full path."""
    resources = _resources(template, "AWS::ApiGateway::Resource")
    paths: dict[str, str] = {}

    def path_of(logical: str) -> str:
        if logical in paths:
            return paths[logical]
        props = resources[logical]["Properties"]
        parent = props["ParentId"]
        base = "" if "Fn::GetAtt" in parent else path_of(parent["Ref"])
        paths[logical] = f"{base}/{props['PathPart']}"
        return paths[logical]

    for logical in resources:
        path_of(logical)
    return paths


def _methods(template: Template) -> dict[tuple[str, str], dict[str, Any]]:
    paths = _paths(template)
    out = {}
    for method in _resources(template, "AWS::ApiGateway::Method").values():
        props = method["Properties"]
        resource = props["ResourceId"]
        path = "/" if "Fn::GetAtt" in resource else paths[resource["Ref"]]
        out[(path, props["HttpMethod"].lower())] = props
    return out


# ------------------------------------------------------------------------------ the API
def test_routes_are_exactly_those_of_the_openapi_document(dev: Template) -> None:
    # Given the document generated from the handler's models
    doc = json.loads((REPO_ROOT / "docs" / "openapi.json").read_text())
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    # Then the synthesized API has exactly those routes (CORS preflights aside)
    deployed = {key for key in _methods(dev) if key[1] != "options"}
    assert deployed == documented


def test_routes_need_an_api_key_and_proxy_to_the_predict_function(dev: Template) -> None:
    for key, props in _methods(dev).items():
        assert props["ApiKeyRequired"] is True, key
        assert props["AuthorizationType"] == "NONE"
        integration = props["Integration"]
        assert integration["Type"] == "AWS_PROXY"
        assert integration["TimeoutInMillis"] == INTEGRATION_TIMEOUT.to_milliseconds()
        assert "PredictFunction" in json.dumps(integration["Uri"])
        assert props["RequestParameters"] == {"method.request.path.dataset": True}


def test_iam_authorization_is_a_stage_option(secured: Template) -> None:
    methods = _methods(secured)
    for (path, verb), props in methods.items():
        if verb == "options":  # CORS preflights carry no credentials
            assert props["AuthorizationType"] == "NONE"
            continue
        assert props["AuthorizationType"] == "AWS_IAM", path
        assert props["ApiKeyRequired"] is True


def test_the_api_is_regional_and_reads_keys_from_the_header(dev: Template) -> None:
    dev.has_resource_properties(
        "AWS::ApiGateway::RestApi",
        {"EndpointConfiguration": {"Types": ["REGIONAL"]}, "ApiKeySourceType": "HEADER"},
    )


def test_stage_has_json_access_logs_in_an_encrypted_group_xray_and_metrics(dev: Template) -> None:
    stages = list(_resources(dev, "AWS::ApiGateway::Stage").values())
    assert len(stages) == 1
    props = stages[0]["Properties"]
    assert props["StageName"] == "dev"
    assert props["TracingEnabled"] is True
    assert props["MethodSettings"] == [
        {
            "DataTraceEnabled": False,
            "HttpMethod": "*",
            "LoggingLevel": "OFF",
            "MetricsEnabled": True,
            "ResourcePath": "/*",
        }
    ]
    access = props["AccessLogSetting"]
    fields = json.loads(access["Format"])
    assert fields["requestId"] == "$context.requestId"
    assert fields["apiKeyId"] == "$context.identity.apiKeyId"
    assert fields["status"] == "$context.status"
    group = access["DestinationArn"]["Fn::GetAtt"][0]
    assert "KmsKeyId" in _resources(dev, "AWS::Logs::LogGroup")[group]["Properties"]


def test_every_log_group_of_serving_is_encrypted_with_retention(dev: Template) -> None:
    groups = {
        k: v for k, v in _resources(dev, "AWS::Logs::LogGroup").items() if k.startswith("Serving")
    }
    assert len(groups) >= 3  # access logs, capture delivery, the function's
    for logical, group in groups.items():
        assert "KmsKeyId" in group["Properties"], logical
        assert group["Properties"]["RetentionInDays"] == STAGES["dev"].log_retention_days
        assert "LogGroupName" not in group["Properties"]  # named after the stack: the key covers it


def test_usage_plan_throttle_and_daily_quota_come_from_the_stage(dev: Template) -> None:
    config = STAGES["dev"]
    dev.has_resource_properties(
        "AWS::ApiGateway::UsagePlan",
        {
            "Throttle": {"RateLimit": config.api_rate_limit, "BurstLimit": config.api_burst_limit},
            "Quota": {"Limit": config.api_daily_quota, "Period": "DAY"},
            "ApiStages": [Match.object_like({"ApiId": Match.any_value()})],
        },
    )
    dev.resource_count_is("AWS::ApiGateway::UsagePlanKey", 1)


def test_plan_overrides_from_context() -> None:
    template = _app_template("dev", api_rate_limit="5", api_burst_limit="2", api_daily_quota="99")
    template.has_resource_properties(
        "AWS::ApiGateway::UsagePlan",
        {"Throttle": {"RateLimit": 5, "BurstLimit": 2}, "Quota": {"Limit": 99, "Period": "DAY"}},
    )


def test_reserved_concurrency_is_opt_in_and_the_plan_caps_the_function(dev: Template) -> None:
    assert "ReservedConcurrentExecutions" not in _predict(dev)
    reserved = _predict(_app_template("dev", predict_reserved_concurrency="30"))
    assert reserved["ReservedConcurrentExecutions"] == 30


# --------------------------------------------------------------------- gateway responses
def _responses(template: Template) -> dict[str, dict[str, Any]]:
    return {
        r["Properties"]["ResponseType"]: r["Properties"]
        for r in _resources(template, "AWS::ApiGateway::GatewayResponse").values()
    }


def _render(template: str, message: str = "Some message") -> Any:
    """The body API Gateway would send: ``$context.error.messageString`` is a quoted string."""
    return json.loads(template.replace("$context.error.messageString", json.dumps(message)))


EXPECTED = {
    "INVALID_API_KEY": ("403", "forbidden"),
    "ACCESS_DENIED": ("403", "forbidden"),
    "MISSING_AUTHENTICATION_TOKEN": ("404", "not_found"),
    "THROTTLED": ("429", "throttled"),
    "QUOTA_EXCEEDED": ("429", "quota_exceeded"),
    "REQUEST_TOO_LARGE": ("413", "payload_too_large"),
    "INTEGRATION_TIMEOUT": ("504", "endpoint_timeout"),
    "INTEGRATION_FAILURE": ("502", "bad_gateway"),
    "DEFAULT_4XX": (None, "client_error"),
    "DEFAULT_5XX": (None, "internal_error"),
}


@pytest.mark.parametrize(("kind", "expected"), EXPECTED.items())
def test_gateway_responses_carry_the_json_error_shape(
    dev: Template, kind: str, expected: tuple[str | None, str]
) -> None:
    responses = _responses(dev)
    props = responses[kind]
    status, code = expected
    assert props.get("StatusCode") == status
    body = _render(props["ResponseTemplates"]["application/json"])
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert body["error"]["details"] == []


def test_every_configured_response_type_is_deployed(dev: Template) -> None:
    assert set(_responses(dev)) == {*GATEWAY_RESPONSES, "MISSING_AUTHENTICATION_TOKEN"}


def test_exact_bodies_of_the_key_and_throttle_responses(dev: Template) -> None:
    responses = _responses(dev)
    assert _render(responses["INVALID_API_KEY"]["ResponseTemplates"]["application/json"]) == {
        "error": {
            "code": "forbidden",
            "message": "Forbidden: a valid x-api-key header is required",
            "details": [],
        }
    }
    throttled = responses["THROTTLED"]
    assert _render(throttled["ResponseTemplates"]["application/json"]) == {
        "error": {"code": "throttled", "message": "Too many requests: slow down", "details": []}
    }
    assert throttled["ResponseParameters"] == {"gatewayresponse.header.Retry-After": "'1'"}
    too_large = responses["REQUEST_TOO_LARGE"]["ResponseTemplates"]["application/json"]
    assert _render(too_large, "Request Too Long") == {
        "error": {"code": "payload_too_large", "message": "Request Too Long", "details": []}
    }


def test_with_iam_a_missing_signature_is_403_and_cors_headers_are_on_errors(
    secured: Template,
) -> None:
    responses = _responses(secured)
    missing = responses["MISSING_AUTHENTICATION_TOKEN"]
    assert missing["StatusCode"] == "403"
    assert _render(missing["ResponseTemplates"]["application/json"])["error"]["code"] == "forbidden"
    for props in responses.values():
        assert (
            props["ResponseParameters"]["gatewayresponse.header.Access-Control-Allow-Origin"]
            == "'https://app.example'"
        )


def test_cors_preflight_only_when_origins_are_configured(dev: Template, secured: Template) -> None:
    assert not [k for k in _methods(dev) if k[1] == "options"]
    preflights = [props for k, props in _methods(secured).items() if k[1] == "options"]
    assert preflights
    for props in preflights:
        headers = props["Integration"]["IntegrationResponses"][0]["ResponseParameters"]
        assert headers["method.response.header.Access-Control-Allow-Origin"] == (
            "'https://app.example'"
        )


def test_waf_web_acl_is_associated_only_when_configured(dev: Template, secured: Template) -> None:
    dev.resource_count_is("AWS::WAFv2::WebACLAssociation", 0)
    secured.has_resource_properties(
        "AWS::WAFv2::WebACLAssociation",
        {
            "WebACLArn": "arn:aws:wafv2:eu-west-1:123456789012:regional/webacl/sluice/abc",
            "ResourceArn": Match.any_value(),
        },
    )


# ------------------------------------------------------------------------- the function
def _predict(template: Template) -> dict[str, Any]:
    functions = _resources(template, "AWS::Lambda::Function")
    return next(
        f["Properties"]
        for f in functions.values()
        if f["Properties"].get("Handler") == "lambdas.predict.handler.handler"
    )


def test_predict_function_settings_come_from_the_stage(dev: Template) -> None:
    config = STAGES["dev"]
    props = _predict(dev)
    env = props["Environment"]["Variables"]
    assert env["SLUICE_PREFIX"] == "sluice-dev"
    assert json.loads(env["CAPTURE_STREAMS"]) == {
        d: f"sluice-dev-capture-{d}" for d in declared_datasets()
    }  # one stream per declared dataset
    assert float(env["CAPTURE_SHARE"]) == config.capture_share
    assert int(env["MAX_INSTANCES"]) == config.max_instances
    assert int(env["MAX_BODY_BYTES"]) == config.max_body_bytes
    assert props["TracingConfig"] == {"Mode": "Active"}
    assert props["Timeout"] < INTEGRATION_TIMEOUT.to_seconds()
    assert float(env["ENDPOINT_TIMEOUT_SECONDS"]) < props["Timeout"]


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_documented_body_limit_fits_lambdas_payload_even_json_escaped(stage: str) -> None:
    # the body travels JSON-escaped inside the proxy event: at worst every byte doubles,
    # plus the event's own headers and context
    assert STAGES[stage].max_body_bytes * 2 + 64 * 1024 < LAMBDA_SYNC_PAYLOAD


def test_the_predict_package_holds_no_pyarrow_or_pandas() -> None:
    requirements = (REPO_ROOT / "lambdas" / "predict" / "requirements.txt").read_text().lower()
    for heavy in ("pyarrow", "pandas", "numpy", "xgboost"):
        assert not re.search(rf"^{heavy}\b", requirements, re.MULTILINE)
    for source in (REPO_ROOT / "lambdas" / "predict").glob("*.py"):
        text = source.read_text()
        assert "import pyarrow" not in text and "import pandas" not in text, source


def _statements(template: Template, policy_fragment: str) -> list[dict[str, Any]]:
    found = []
    for logical, policy in _resources(template, "AWS::IAM::Policy").items():
        if policy_fragment in logical:
            found += policy["Properties"]["PolicyDocument"]["Statement"]
    return found


def test_predict_may_invoke_the_stages_endpoints_and_put_to_its_capture_streams(
    dev: Template,
) -> None:
    statements = _statements(dev, "ServingPredictAccess")
    by_action: dict[str, str] = {}
    for statement in statements:
        actions = statement["Action"]
        for action in [actions] if isinstance(actions, str) else actions:
            by_action[action] = json.dumps(statement["Resource"])
    assert ":endpoint/sluice-dev-*" in by_action["sagemaker:InvokeEndpoint"]
    assert ":endpoint-config/sluice-dev-*" in by_action["sagemaker:DescribeEndpointConfig"]
    assert "deliverystream/sluice-dev-capture-churn" in by_action["firehose:PutRecordBatch"]
    assert all(s["Resource"] != "*" for s in statements)


# ------------------------------------------------------------------------------ capture
def test_one_capture_stream_per_dataset_hourly_prefix_buffered_and_kms(dev: Template) -> None:
    config = STAGES["dev"]
    dev.has_resource_properties(
        "AWS::KinesisFirehose::DeliveryStream",
        {
            "DeliveryStreamName": "sluice-dev-capture-churn",
            "DeliveryStreamType": "DirectPut",
            "DeliveryStreamEncryptionConfigurationInput": {
                "KeyType": "CUSTOMER_MANAGED_CMK",
                "KeyARN": Match.any_value(),
            },
            "ExtendedS3DestinationConfiguration": Match.object_like(
                {
                    "Prefix": "churn/capture/!{timestamp:yyyy/MM/dd/HH}/",
                    "ErrorOutputPrefix": Match.string_like_regexp(r"^churn/capture-errors/"),
                    "BufferingHints": {
                        "IntervalInSeconds": config.capture_buffer_seconds,
                        "SizeInMBs": config.capture_buffer_mb,
                    },
                    "EncryptionConfiguration": {
                        "KMSEncryptionConfig": {"AWSKMSKeyARN": Match.any_value()}
                    },
                }
            ),
        },
    )


def test_firehose_may_write_only_the_capture_prefixes(dev: Template) -> None:
    statements = _statements(dev, "ServingCaptureDelivery")
    put = next(s for s in statements if "s3:PutObject" in s["Action"])
    rendered = json.dumps(put["Resource"])
    assert "/churn/capture/*" in rendered and "/churn/capture-errors/*" in rendered
    assert '"/*"' not in rendered


def test_captured_data_expires_after_the_configured_days(dev_data: Template) -> None:
    days = STAGES["dev"].capture_expire_days
    dev_data.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "LifecycleConfiguration": {
                "Rules": Match.array_with(
                    [
                        Match.object_like({"Prefix": "churn/capture/", "ExpirationInDays": days}),
                        Match.object_like(
                            {"Prefix": "churn/capture-errors/", "ExpirationInDays": days}
                        ),
                    ]
                )
            }
        },
    )


def test_stage_config_parses_serving_overrides() -> None:
    config = stage_config(
        "dev",
        {"api_iam_auth": "yes", "cors_origins": "https://a, https://b", "capture_share": "0.5"},
    )
    assert config.api_iam_auth is True
    assert config.cors_origins == ("https://a", "https://b")
    assert config.capture_share == 0.5


def test_outputs_name_the_api_and_its_key() -> None:
    app = make_app("dev")
    outputs = Template.from_stack(stack(app, "sluice-dev-app")).find_outputs("*")
    assert {"ApiUrl", "ApiId", "ApiKeyId", "PredictFunctionName", "CaptureStreams"} <= set(outputs)
    assert isinstance(stack(app, "sluice-dev-app"), cdk.Stack)
