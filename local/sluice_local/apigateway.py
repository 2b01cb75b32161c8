"""API Gateway REST APIs answer as AWS does where LocalStack 2026.3.0 does not.

Installed at start-up (``on_infra_start``) by patching LocalStack's next-gen REST API invocation
pipeline, so every deployed API gets it:

- **Usage plans are enforced.** After the API key is validated, the key's usage plan for the
  stage applies its throttle (a token bucket per plan and key: ``burstLimit`` tokens, refilled
  at ``rateLimit`` a second; per-method throttles of the plan's API stage take precedence) and
  its quota (``limit`` requests per DAY/WEEK/MONTH, UTC, with ``offset``). Over either: the
  ``THROTTLED`` or ``QUOTA_EXCEEDED`` gateway response, 429 ("Too Many Requests" / "Limit
  Exceeded"). ``GetUsage`` is not kept.
- **Payload limits.** A body over 10 MiB never reaches the API: 413 ``HTTP content length
  exceeded 10485760 bytes.`` as plain text, as AWS's front door answers (no gateway response
  applies). A Lambda proxy event over Lambda's 6 MB synchronous limit is refused with the
  ``REQUEST_TOO_LARGE`` gateway response (413 "Request Too Long") instead of invoking.
- **Integration timeout.** A Lambda proxy integration that has not answered within the
  integration's ``timeoutInMillis`` (default 29 s) gets ``INTEGRATION_TIMEOUT`` (504,
  "Endpoint request timed out").
- **Gateway Responses are applied whole:** the response's (or DEFAULT_4XX/5XX's) status code,
  its ``application/json`` template rendered with ``$context`` (``$context.error.messageString``
  is the quoted message, as on AWS) and its ``responseParameters`` headers (static values,
  ``method.request.header|path|querystring.*``, ``stageVariables.*``, ``context.*``).
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

LOG = logging.getLogger(__name__)
#: API Gateway's request payload limit (REST): 10 MiB
MAX_REQUEST_BYTES = 10 * 1024 * 1024
#: Lambda's synchronous invocation payload limit
MAX_LAMBDA_EVENT_BYTES = 6 * 1024 * 1024
DEFAULT_INTEGRATION_TIMEOUT_MS = 29_000
_installed = False


# ------------------------------------------------------------------------------ usage plans
@dataclass
class _Bucket:
    tokens: float
    at: float


class UsagePlanLimiter:
    """Token buckets and quota counters, per (usage plan, API key)."""

    def __init__(self, clock: Any = time.monotonic, now: Any = None) -> None:
        self._clock = clock
        self._now = now or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, ...], _Bucket] = {}
        self._quota: dict[tuple[str, str, str], int] = {}

    def take(self, key: tuple[str, ...], rate: float, burst: int) -> bool:
        """One token from the bucket (full at first); False when it is empty."""
        if burst <= 0 and rate <= 0:
            return True
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(float(max(burst, 1)), now)
            bucket.tokens = min(float(max(burst, 1)), bucket.tokens + (now - bucket.at) * rate)
            bucket.at = now
            if bucket.tokens < 1.0:
                return False
            bucket.tokens -= 1.0
            return True

    def count(self, plan: str, key: str, quota: dict[str, Any]) -> bool:
        """Count one request against the quota's current period; False when it is used up."""
        limit = int(quota.get("limit") or 0)
        if limit <= 0:
            return True
        period = _period_start(self._now(), str(quota.get("period") or "DAY"), quota.get("offset"))
        with self._lock:
            used = self._quota.get((plan, key, period), 0)
            if used >= limit:
                return False
            self._quota[(plan, key, period)] = used + 1
            return True


def _period_start(now: datetime, period: str, offset: Any) -> str:
    offset = int(offset or 0)
    if period == "WEEK":  # offset: days after Monday
        start = (now - timedelta(days=(now.weekday() - offset) % 7)).date()
    elif period == "MONTH":  # offset: days after the 1st
        start = (now - timedelta(days=(now.day - 1 - offset) % 31)).date()
    else:
        start = now.date()
    return f"{period}:{start.isoformat()}"


LIMITER = UsagePlanLimiter()


def _plan_for(context: Any) -> dict[str, Any] | None:
    """The usage plan holding the request's (validated) key for this API stage."""
    from localstack.services.apigateway.next_gen.execute_api.moto_helpers import (
        get_usage_plan_keys,
        get_usage_plans,
    )

    key_id = (context.context_variables.get("identity") or {}).get("apiKeyId")
    if not key_id:
        return None
    for plan in get_usage_plans(account_id=context.account_id, region_name=context.region):
        stages = [
            s
            for s in plan.get("apiStages") or []
            if s.get("apiId") == context.api_id and s.get("stage") == context.stage
        ]
        if not stages:
            continue
        keys = get_usage_plan_keys(
            usage_plan_id=plan["id"], account_id=context.account_id, region_name=context.region
        )
        if any(k.get("id") == key_id for k in keys):
            return {**plan, "_stage": stages[0]}
    return None


def enforce_usage_plan(context: Any) -> None:
    from localstack.services.apigateway.next_gen.execute_api.gateway_response import (
        QuotaExceededError,
        ThrottledError,
    )

    plan = _plan_for(context)
    if plan is None:
        return
    key_id = context.context_variables["identity"]["apiKeyId"]
    method = context.resource_method or {}
    route = f"{context.resource.get('path', '')}/{method.get('httpMethod', '')}"
    per_method = (plan["_stage"].get("throttle") or {}).get(route)
    throttle = per_method or plan.get("throttle") or {}
    rate = float(throttle.get("rateLimit") or 0)
    burst = int(throttle.get("burstLimit") or 0)
    if (rate or burst) and not LIMITER.take((plan["id"], key_id, route if per_method else ""),
                                            rate, burst):  # fmt: skip
        raise ThrottledError("Too Many Requests")
    if plan.get("quota") and not LIMITER.count(plan["id"], key_id, plan["quota"]):
        raise QuotaExceededError("Limit Exceeded")


# ---------------------------------------------------------------------- gateway responses
def _parameter(value: str, context: Any) -> str | None:
    """A gateway response header value: ``'static'`` or a request/context reference."""
    if value.startswith("'") and value.endswith("'"):
        return value[1:-1]
    request = context.invocation_request or {}
    sources: dict[str, Any] = {
        "method.request.header.": {k.lower(): v for k, v in (request.get("headers") or {}).items()},
        "method.request.path.": request.get("path_parameters") or {},
        "method.request.querystring.": request.get("query_string_parameters") or {},
        "stageVariables.": context.stage_variables or {},
    }
    for prefix, values in sources.items():
        if value.startswith(prefix):
            name = value[len(prefix) :]
            found = values.get(name.lower() if "header" in prefix else name)
            return None if found is None else str(found)
    if value.startswith("context."):
        current: Any = context.context_variables
        for part in value[len("context.") :].split("."):
            current = current.get(part) if isinstance(current, dict) else None
        return None if current is None else str(current)
    return None


def render_gateway_response(exception: Any, context: Any) -> Any:
    """The Response of a gateway exception: the configured (or default) Gateway Response's
    status, rendered template and headers."""
    from localstack.services.apigateway.next_gen.execute_api.gateway_response import (
        get_gateway_response_or_default,
    )
    from localstack.utils.aws.templating import VtlTemplate
    from rolo import Response
    from werkzeug.datastructures import Headers

    responses = context.deployment.rest_api.gateway_responses if context.deployment else {}
    gateway_response = get_gateway_response_or_default(exception.type, responses)
    status = gateway_response.get("statusCode") or exception.status_code or 500
    templates = gateway_response.get("responseTemplates") or {}
    template = templates.get("application/json") or '{"message":$context.error.messageString}'
    variables = dict(context.context_variables or {})
    message = exception.message
    variables["error"] = {
        **(variables.get("error") or {}),
        "message": message if message is not None else "",
        "messageString": json.dumps(message) if message is not None else '""',
        "responseType": exception.type,
    }
    try:
        body = VtlTemplate().render_vtl(template, variables={"context": variables})
    except Exception:  # a broken template: AWS answers its default body
        LOG.warning("gateway response template failed to render", exc_info=True)
        body = json.dumps({"message": message})
    headers = Headers({"Content-Type": "application/json", "x-amzn-ErrorType": exception.code})
    for name, value in (gateway_response.get("responseParameters") or {}).items():
        if name.startswith("gatewayresponse.header."):
            rendered = _parameter(str(value), context)
            if rendered is not None:
                headers[name[len("gatewayresponse.header.") :]] = rendered
    return Response(response=body, headers=headers, status=int(status))


# ----------------------------------------------------------------------------- installing
def install() -> None:
    """Patch LocalStack's REST API pipeline (once)."""
    global _installed  # noqa: PLW0603
    if _installed:
        return
    _installed = True
    from localstack.services.apigateway.next_gen.execute_api.gateway_response import (
        IntegrationTimeoutError,
        RequestTooLargeError,
    )
    from localstack.services.apigateway.next_gen.execute_api.handlers import (
        api_key_validation,
        gateway_exception,
        modify_request,
    )
    from localstack.services.apigateway.next_gen.execute_api.integrations import aws

    # 1. bodies over 10 MiB: AWS's front door answers, before the API
    def limit_body(chain: Any, context: Any, response: Any) -> None:
        request = context.request
        length = request.content_length
        if length is None:
            length = len(request.get_data(cache=True))
        if length > MAX_REQUEST_BYTES:
            chain.respond(
                413,
                f"HTTP content length exceeded {MAX_REQUEST_BYTES} bytes.",
                {"Content-Type": "text; charset=utf-8"},
            )

    modify_request.handlers.insert(0, limit_body)

    # 2. usage plans, once the key is known
    validate = api_key_validation.ApiKeyValidationHandler.__call__

    def validate_and_meter(self: Any, chain: Any, context: Any, response: Any) -> None:
        validate(self, chain, context, response)
        if (context.resource_method or {}).get("apiKeyRequired"):
            enforce_usage_plan(context)

    api_key_validation.ApiKeyValidationHandler.__call__ = validate_and_meter  # type: ignore[method-assign]

    # 3. gateway responses, whole
    def create_exception_response(self: Any, exception: Any, context: Any) -> Any:
        return render_gateway_response(exception, context)

    gateway_exception.GatewayExceptionHandler.create_exception_response = (  # type: ignore[method-assign]
        create_exception_response
    )

    # 4. Lambda's payload limit and the integration timeout, for Lambda proxy integrations
    proxy = aws.RestApiAwsProxyIntegration
    create_event = proxy.create_lambda_input_event
    invoke = proxy.invoke
    pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="apigw-integration")

    def create_lambda_input_event(self: Any, context: Any) -> Any:
        event = create_event(self, context)
        if len(json.dumps(event).encode()) > MAX_LAMBDA_EVENT_BYTES:
            raise RequestTooLargeError("Request Too Long")
        return event

    def invoke_with_timeout(self: Any, context: Any) -> Any:
        timeout_ms = int(
            (context.integration or {}).get("timeoutInMillis") or DEFAULT_INTEGRATION_TIMEOUT_MS
        )
        future = pool.submit(invoke, self, context)
        try:
            return future.result(timeout=math.ceil(timeout_ms) / 1000)
        except FutureTimeout:
            raise IntegrationTimeoutError("Endpoint request timed out") from None

    proxy.create_lambda_input_event = create_lambda_input_event  # type: ignore[method-assign]
    proxy.invoke = invoke_with_timeout  # type: ignore[method-assign]
    LOG.info("sluice: API Gateway usage plans, payload limits and gateway responses enforced")
