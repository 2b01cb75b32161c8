"""CloudFormation custom resources (``AWS::CloudFormation::CustomResource``, ``Custom::*``).

As on AWS: the ServiceToken Lambda gets the custom resource event with a pre-signed-style
``ResponseURL``; the resource completes when the function PUTs its response there (SUCCESS or
FAILED with a Reason). ``Data`` becomes the resource's ``Fn::GetAtt`` attributes. Unlike AWS we
also fail fast when the function errors without ever responding, instead of waiting an hour.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, ClassVar

from localstack.http import Request, Response, route
from localstack.services.cloudformation.resource_provider import (
    OperationStatus,
    ProgressEvent,
    ResourceProvider,
    ResourceRequest,
)
from localstack.services.edge import ROUTER

from sluice_local import settings

LOG = logging.getLogger(__name__)
RESPONSE_PATH = "/_sluice/cfn-response"
#: how long a function may take to answer (AWS waits up to an hour; locally that hides bugs)
RESPONSE_TIMEOUT_SECONDS = 300.0
#: after a failed invocation, how long a late response may still arrive
GRACE_SECONDS = 3.0
BOOKKEEPING = "SluiceCustomResource"

Properties = dict[str, Any]


@dataclass
class _Pending:
    done: threading.Event = field(default_factory=threading.Event)
    body: dict[str, Any] | None = None


_PENDING: dict[str, _Pending] = {}
_PENDING_LOCK = threading.Lock()


class _ResponseRouter:
    @route(f"{RESPONSE_PATH}/<token>", methods=["PUT", "POST"])
    def respond(self, request: Request, token: str) -> Response:
        with _PENDING_LOCK:
            pending = _PENDING.get(token)
        if pending is None:
            return Response(status=HTTPStatus.NOT_FOUND)
        try:
            pending.body = json.loads(request.get_data() or b"{}")
        except json.JSONDecodeError:
            pending.body = {"Status": "FAILED", "Reason": "response body is not JSON"}
        pending.done.set()
        return Response(status=HTTPStatus.OK)


_ROUTER_INSTALLED = threading.Event()


def register_response_route() -> None:
    if not _ROUTER_INSTALLED.is_set():
        ROUTER.add(_ResponseRouter())
        _ROUTER_INSTALLED.set()


class CustomResourceProvider(ResourceProvider[Properties]):
    SCHEMA: ClassVar[dict[str, Any]] = {
        "typeName": "AWS::CloudFormation::CustomResource",
        "primaryIdentifier": ["/properties/PhysicalResourceId"],
        "properties": {"ServiceToken": {"type": "string"}},
        "required": ["ServiceToken"],
    }

    def create(self, request: ResourceRequest[Properties]) -> ProgressEvent[Properties]:
        return self._handle(request, "Create")

    def update(self, request: ResourceRequest[Properties]) -> ProgressEvent[Properties]:
        return self._handle(request, "Update")

    def delete(self, request: ResourceRequest[Properties]) -> ProgressEvent[Properties]:
        return self._handle(request, "Delete")

    def _handle(self, request: ResourceRequest[Properties], kind: str) -> ProgressEvent[Properties]:
        register_response_route()
        previous = (request.previous_state or {}).get(BOOKKEEPING) or {}
        if kind == "Delete":
            properties = previous.get("Properties") or _template_properties(request.desired_state)
        else:
            properties = _template_properties(request.desired_state)
        token = uuid.uuid4().hex
        event: dict[str, Any] = {
            "RequestType": kind,
            "ServiceToken": properties["ServiceToken"],
            "ResponseURL": f"{settings.gateway_url()}{RESPONSE_PATH}/{token}",
            "StackId": request.stack_id,
            "RequestId": str(uuid.uuid4()),
            "LogicalResourceId": request.logical_resource_id,
            "ResourceType": request.resource_type,
            "ResourceProperties": properties,
        }
        if kind != "Create":
            event["PhysicalResourceId"] = previous.get("PhysicalResourceId") or _default_id(request)
        if kind == "Update":
            event["OldResourceProperties"] = previous.get("Properties") or {}

        response = _invoke_and_wait(request, event, token)
        if response.get("Status") != "SUCCESS":
            reason = response.get("Reason") or "the custom resource reported a failure"
            if kind == "Delete" and not previous:
                # never created by this engine (e.g. a failed create): nothing to delete
                return ProgressEvent(status=OperationStatus.SUCCESS, resource_model={})
            return ProgressEvent(
                status=OperationStatus.FAILED, resource_model={}, message=str(reason)
            )
        physical_id = (
            response.get("PhysicalResourceId")
            or event.get("PhysicalResourceId")
            or _default_id(request)
        )
        data = response.get("Data") or {}
        model: Properties = {
            **{key: value for key, value in data.items() if isinstance(key, str)},
            "PhysicalResourceId": physical_id,
            BOOKKEEPING: {"Properties": properties, "PhysicalResourceId": physical_id},
        }
        return ProgressEvent(status=OperationStatus.SUCCESS, resource_model=model)


def _template_properties(state: Properties) -> Properties:
    """The template's properties (the engine hands back our own model on later actions)."""
    bookkeeping = state.get(BOOKKEEPING)
    if bookkeeping and "ServiceToken" not in state:
        return dict(bookkeeping["Properties"])
    return _as_cloudformation_sends({k: v for k, v in state.items() if k != BOOKKEEPING})


def _as_cloudformation_sends(value: Any) -> Any:
    """CloudFormation hands custom resources every scalar as a string ("true", "5")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict):
        return {key: _as_cloudformation_sends(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_cloudformation_sends(item) for item in value]
    return value


def _default_id(request: ResourceRequest[Properties]) -> str:
    return f"{request.stack_name}-{request.logical_resource_id}-{uuid.uuid4().hex[:12]}"


def _invoke_and_wait(
    request: ResourceRequest[Properties], event: dict[str, Any], token: str
) -> dict[str, Any]:
    pending = _Pending()
    with _PENDING_LOCK:
        _PENDING[token] = pending
    try:
        lambda_client = request.aws_client_factory.lambda_
        function = event["ServiceToken"]
        lambda_client.get_waiter("function_active_v2").wait(
            FunctionName=function, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
        )
        outcome: dict[str, Any] = {}

        def invoke() -> None:
            try:
                result = lambda_client.invoke(
                    FunctionName=function, Payload=json.dumps(event).encode()
                )
                outcome["error"] = result.get("FunctionError")
                outcome["payload"] = result["Payload"].read().decode(errors="replace")
            except Exception as exc:  # reported below as the resource's failure
                outcome["error"], outcome["payload"] = type(exc).__name__, str(exc)

        worker = threading.Thread(target=invoke, name=f"cfn-custom-{token[:8]}", daemon=True)
        worker.start()
        deadline = time.monotonic() + RESPONSE_TIMEOUT_SECONDS
        while not pending.done.wait(0.2):
            if not worker.is_alive():
                pending.done.wait(GRACE_SECONDS)
                break
            if time.monotonic() > deadline:
                break
        if pending.body is not None:
            return pending.body
        if outcome.get("error"):
            reason = f"Custom resource function failed: {outcome['payload']}"
        else:
            reason = "Custom resource function did not send a response to ResponseURL"
        LOG.warning("%s (%s)", reason, event["LogicalResourceId"])
        return {"Status": "FAILED", "Reason": reason[:4000]}
    finally:
        with _PENDING_LOCK:
            _PENDING.pop(token, None)
