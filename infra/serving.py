"""Serving: the prediction API (API Gateway REST → predict Lambda → the dataset's endpoint).

- Routes ``POST /v1/{dataset}/predictions`` and ``GET /v1/{dataset}``, both Lambda proxy
  integrations of one function (``lambdas/predict``), both requiring an API key (and, with
  ``api_iam_auth``, SigV4 signatures as well). A REGIONAL endpoint: a regional WAF web ACL can
  be associated (``waf_web_acl_arn``) and clients pay no CloudFront hop.
- One stage (named after the stage config) with JSON access logs in a KMS-encrypted log group,
  X-Ray tracing and detailed metrics (no execution logs: see ``_findings``).
- A usage plan with the stage's rate, burst and daily quota per key, and one key for the stage.
  It is what caps the function (reserved concurrency is an opt-in; when set, it stays above the
  burst so that API Gateway throttles, 429, before Lambda would: a Lambda throttle is a 5xx).
- Gateway Responses: whatever API Gateway answers itself (403, 429, 413, 504, its default 4xx
  and 5xx) carries the API's JSON error shape ``{"error": {"code", "message", "details"}}``.
- Capture streams (``infra/capture.py``) the function writes to.

Endpoints are created by the training pipeline, not here: the function may invoke any endpoint
of the stage (``<prefix>-*``), and answers 503 while a dataset has none.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import Duration
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_iam as iam
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from infra.capture import CaptureStreams
from infra.config import StageConfig
from infra.data_lake import DataLake
from infra.lambda_function import RUNTIME_PROVIDED, PythonFunction
from infra.log_groups import encrypted_log_group
from infra.nag import acknowledge_findings, checkov_skip
from infra.network import Network

#: API Gateway's integration timeout (the REST maximum without a quota increase)
INTEGRATION_TIMEOUT = Duration.seconds(29)
#: the function gives up on the endpoint earlier and answers 504 itself (config)
FUNCTION_TIMEOUT = Duration.seconds(28)
#: never imported by the predict function (its package must stay small and quick to load)
PREDICT_UNUSED = ("pyarrow", "pyarrow-*", "pandas", "pandas-*", "numpy", "numpy-*")

#: the API's own answers: gateway response type → (status, error code, message or None to
#: keep API Gateway's, extra headers)
Answer = tuple[str | None, str, str | None, dict[str, str]]
GATEWAY_RESPONSES: dict[str, Answer] = {
    "ACCESS_DENIED": ("403", "forbidden", None, {}),
    "INVALID_API_KEY": ("403", "forbidden", "Forbidden: a valid x-api-key header is required", {}),
    "INVALID_SIGNATURE": ("403", "forbidden", None, {}),
    "EXPIRED_TOKEN": ("403", "forbidden", None, {}),
    "WAF_FILTERED": ("403", "forbidden", None, {}),
    "UNAUTHORIZED": ("401", "unauthorized", None, {}),
    "THROTTLED": ("429", "throttled", "Too many requests: slow down", {"Retry-After": "1"}),
    "QUOTA_EXCEEDED": ("429", "quota_exceeded", "The key's daily quota is used up", {}),
    "REQUEST_TOO_LARGE": ("413", "payload_too_large", None, {}),
    "INTEGRATION_TIMEOUT": ("504", "endpoint_timeout", None, {}),
    "INTEGRATION_FAILURE": ("502", "bad_gateway", None, {}),
    "BAD_REQUEST_BODY": ("400", "invalid_request", None, {}),
    "BAD_REQUEST_PARAMETERS": ("400", "invalid_request", None, {}),
    "UNSUPPORTED_MEDIA_TYPE": ("415", "unsupported_media_type", None, {}),
    "RESOURCE_NOT_FOUND": ("404", "not_found", None, {}),
    "DEFAULT_4XX": (None, "client_error", None, {}),
    "DEFAULT_5XX": (None, "internal_error", None, {}),
}
#: with IAM authorization off, "Missing Authentication Token" only ever means an unknown route
UNKNOWN_ROUTE: Answer = ("404", "not_found", "No such route", {})
MISSING_SIGNATURE: Answer = ("403", "forbidden", None, {})

#: JSON access log line: who called what, how it ended, how long it took (no bodies)
ACCESS_LOG_FORMAT = {
    "requestId": "$context.requestId",
    "extendedRequestId": "$context.extendedRequestId",
    "requestTime": "$context.requestTime",
    "ip": "$context.identity.sourceIp",
    "caller": "$context.identity.caller",
    "user": "$context.identity.user",
    "apiKeyId": "$context.identity.apiKeyId",
    "httpMethod": "$context.httpMethod",
    "resourcePath": "$context.resourcePath",
    "path": "$context.path",
    "status": "$context.status",
    "protocol": "$context.protocol",
    "responseLength": "$context.responseLength",
    "responseLatency": "$context.responseLatency",
    "integrationLatency": "$context.integrationLatency",
    "integrationStatus": "$context.integrationStatus",
    "errorType": "$context.error.responseType",
    "errorMessage": "$context.error.message",
    "wafStatus": "$context.waf.status",
    "xrayTraceId": "$context.xrayTraceId",
}


def error_template(code: str, message: str | None) -> str:
    """The JSON error shape as a gateway response template (``messageString`` is quoted)."""
    text = json.dumps(message) if message is not None else "$context.error.messageString"
    return f'{{"error": {{"code": "{code}", "message": {text}, "details": []}}}}'


class Serving(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: StageConfig,
        lake: DataLake,
        datasets: Sequence[str],
        network: Network | None = None,
    ) -> None:
        super().__init__(scope, id_)
        self.config = config
        self.capture = CaptureStreams(self, "Capture", config=config, lake=lake, datasets=datasets)
        self.function = PythonFunction(
            self,
            "Predict",
            name="predict",
            config=config,
            key=lake.key,
            description="Prediction API: check the request, call the dataset's endpoint, capture",
            timeout=FUNCTION_TIMEOUT,
            memory_size=config.predict_memory_mb,
            no_dlq_reason=(
                "Invoked synchronously by API Gateway only: the caller gets the answer, an "
                "error included; a function DLQ applies to asynchronous invocations."
            ),
            reserved_concurrency=config.predict_reserved_concurrency,
            concurrency_note=(
                "Capped by the API's usage plan: each key may make "
                f"{config.api_rate_limit:g} requests a second with bursts of "
                f"{config.api_burst_limit} in this stage (429 above)."
            ),
            network=network,
            uses=("sagemaker.runtime", "sagemaker.api", "firehose"),
            with_specs=True,
            exclude=(*RUNTIME_PROVIDED, *PREDICT_UNUSED),
            environment={
                "SLUICE_PREFIX": config.prefix,
                "CAPTURE_STREAMS": json.dumps(self.capture.names, sort_keys=True),
                "CAPTURE_SHARE": str(config.capture_share),
                "MAX_INSTANCES": str(config.max_instances),
                "MAX_BODY_BYTES": str(config.max_body_bytes),
                "ENDPOINT_TIMEOUT_SECONDS": str(config.endpoint_timeout_seconds),
                "RETRY_AFTER_SECONDS": str(config.retry_after_seconds),
                "CORS_ORIGINS": ",".join(config.cors_origins),
            },
        )
        self._grant_predict(config)
        self.api = self._api(config, lake)
        self.stage = self.api.deployment_stage
        self._gateway_responses(config)
        self.api_key, self.usage_plan = self._usage_plan(config)
        if config.waf_web_acl_arn:
            wafv2.CfnWebACLAssociation(
                self,
                "WebAcl",
                resource_arn=self.stage.stage_arn,
                web_acl_arn=config.waf_web_acl_arn,
            )

    # ------------------------------------------------------------------------------ api
    def _api(self, config: StageConfig, lake: DataLake) -> apigw.RestApi:
        self.access_logs = encrypted_log_group(self, "AccessLogs", config=config, key=lake.key)
        cors = (
            apigw.CorsOptions(
                allow_origins=list(config.cors_origins),
                allow_methods=["GET", "POST", "OPTIONS"],
                allow_headers=["Content-Type", "X-Api-Key", "Authorization", "X-Amz-Date",
                               "X-Amz-Security-Token"],
                max_age=Duration.minutes(10),
            )
            if config.cors_origins
            else None
        )  # fmt: skip
        api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=f"{config.prefix}-predictions",
            description=f"Sluice {config.stage}: predictions from the models serving datasets",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            api_key_source_type=apigw.ApiKeySourceType.HEADER,
            cloud_watch_role=False,  # the account's logging role: _logging_role below
            default_cors_preflight_options=cors,
            deploy_options=apigw.StageOptions(
                stage_name=config.stage,
                access_log_destination=apigw.LogGroupLogDestination(self.access_logs),
                access_log_format=apigw.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FORMAT)),
                tracing_enabled=True,
                metrics_enabled=True,
                # no execution logs: see _findings
                logging_level=apigw.MethodLoggingLevel.OFF,
                data_trace_enabled=False,  # request bodies hold PII: never logged
            ),
        )
        integration = apigw.LambdaIntegration(
            self.function.function, proxy=True, timeout=INTEGRATION_TIMEOUT
        )
        validator = api.add_request_validator(
            "PathValidator", validate_request_parameters=True, validate_request_body=False
        )
        options = {
            "api_key_required": True,
            "authorization_type": apigw.AuthorizationType.IAM
            if config.api_iam_auth
            else apigw.AuthorizationType.NONE,
            "request_validator": validator,
            "request_parameters": {"method.request.path.dataset": True},
        }
        dataset = api.root.add_resource("v1").add_resource("{dataset}")
        dataset.add_method("GET", integration, **options)  # type: ignore[arg-type]
        dataset.add_resource("predictions").add_method("POST", integration, **options)  # type: ignore[arg-type]
        self._findings(config, api)
        return api

    def _findings(self, config: StageConfig, api: apigw.RestApi) -> None:
        acknowledge_findings(
            api,
            ["AwsSolutions-APIG2"],
            reason="The request validator checks the path parameter; the body is checked by the "
            "function (envelope) and the model (records) against one definition, the pydantic "
            "models docs/openapi.json is generated from. A JSON-schema model here would be a "
            "second copy to drift, answering 400s in another shape.",
        )
        findings = ["AwsSolutions-COG4"]
        if not config.api_iam_auth:
            findings.append("AwsSolutions-APIG4")
        acknowledge_findings(
            api,
            findings,
            reason="Callers authenticate with API keys bound to a usage plan (per-key throttle "
            "and quota); SigV4 (IAM) authorization is a stage option (api_iam_auth). There are "
            "no end users to sign in, so no Cognito user pool.",
        )
        stage = api.deployment_stage
        no_execution_logs = (
            "Execution logs are off: API Gateway writes them to a log group it names "
            "(API-Gateway-Execution-Logs_<api>/<stage>) that the stage key's policy cannot cover "
            "and that needs an account-wide logging role. The JSON access log (every request: "
            "id, key id, status, latencies, error type and message) and the function's own log "
            "(the request id as correlation id) hold what is needed, encrypted."
        )
        acknowledge_findings(stage, ["AwsSolutions-APIG6"], reason=no_execution_logs)
        checkov_skip(stage, "CKV2_AWS_4", no_execution_logs)
        checkov_skip(
            stage,
            "CKV_AWS_120",
            "No response caching: every prediction is computed for its request (and captured); "
            "a cache would answer a different request's id and skip capture.",
        )
        checkov_skip(
            stage,
            "CKV2_AWS_51",
            "Clients authenticate with API keys (and optionally SigV4); the integration is a "
            "Lambda proxy, not an HTTP backend that would verify a client certificate.",
        )
        if not config.waf_web_acl_arn:
            acknowledge_findings(
                stage,
                ["AwsSolutions-APIG3"],
                reason="A WAF web ACL is associated when the stage config names one "
                "(waf_web_acl_arn); throttling and quotas are enforced by the usage plan.",
            )
            checkov_skip(
                stage,
                "CKV2_AWS_29",
                "A WAF web ACL is associated when the stage config names one (waf_web_acl_arn); "
                "throttling and quotas are enforced by the usage plan.",
            )

    def _gateway_responses(self, config: StageConfig) -> None:
        headers: dict[str, str] = {}
        if len(config.cors_origins) == 1:
            headers["Access-Control-Allow-Origin"] = f"'{config.cors_origins[0]}'"
        responses = dict(GATEWAY_RESPONSES)
        responses["MISSING_AUTHENTICATION_TOKEN"] = (
            MISSING_SIGNATURE if config.api_iam_auth else UNKNOWN_ROUTE
        )
        for kind, (status, code, message, extra) in responses.items():
            self.api.add_gateway_response(
                f"Response{kind.title().replace('_', '')}",
                type=apigw.ResponseType.of(kind),
                status_code=status,
                response_headers={**headers, **{k: f"'{v}'" for k, v in extra.items()}},
                templates={"application/json": error_template(code, message)},
            )

    def _usage_plan(self, config: StageConfig) -> tuple[apigw.IApiKey, apigw.UsagePlan]:
        plan = self.api.add_usage_plan(
            "UsagePlan",
            name=f"{config.prefix}-predictions",
            description=f"Sluice {config.stage}: per-key throttle and daily quota",
            throttle=apigw.ThrottleSettings(
                rate_limit=config.api_rate_limit, burst_limit=config.api_burst_limit
            ),
            quota=apigw.QuotaSettings(limit=config.api_daily_quota, period=apigw.Period.DAY),
        )
        plan.add_api_stage(stage=self.api.deployment_stage)
        key = self.api.add_api_key(
            "ApiKey",
            api_key_name=f"{config.prefix}-predictions",
            description=f"Sluice {config.stage}: the stage's prediction API key",
        )
        plan.add_api_key(key)
        return key, plan

    # ---------------------------------------------------------------------- permissions
    def _grant_predict(self, config: StageConfig) -> None:
        """Invoke and describe the stage's endpoints (named ``<prefix>-<dataset>`` by the
        pipeline, which creates them after this stack), put to the capture streams."""
        stack = cdk.Stack.of(self)

        def arn(resource: str) -> str:
            return stack.format_arn(
                service="sagemaker", resource=resource, resource_name=f"{config.prefix}-*"
            )

        streams = [
            stack.format_arn(service="firehose", resource="deliverystream", resource_name=name)
            for name in self.capture.names.values()
        ]
        statements = [
            iam.PolicyStatement(actions=["sagemaker:InvokeEndpoint"], resources=[arn("endpoint")]),
            iam.PolicyStatement(
                actions=["sagemaker:DescribeEndpoint"], resources=[arn("endpoint")]
            ),
            iam.PolicyStatement(
                actions=["sagemaker:DescribeEndpointConfig"], resources=[arn("endpoint-config")]
            ),
            iam.PolicyStatement(actions=["sagemaker:DescribeModel"], resources=[arn("model")]),
        ]
        if streams:
            statements.append(
                iam.PolicyStatement(actions=["firehose:PutRecordBatch"], resources=streams)
            )
        policy = iam.Policy(
            self, "PredictAccess", roles=[self.function.role], statements=statements
        )
        acknowledge_findings(
            policy,
            [
                f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:"
                f"<AWS::AccountId>:{kind}/{config.prefix}-*]"
                for kind in ("endpoint", "endpoint-config", "model")
            ],
            reason="Endpoints, their configs and models are created per dataset and per model "
            "version by the training pipeline after this stack; all are named after the stage "
            "prefix, which bounds the wildcard to this stage.",
        )
