"""Faults on demand, for tests of the paths AWS takes when it misbehaves.

``POST /_sluice/faults`` with ``{"service": "sagemaker", "operation": "CreateTrainingJob",
"code": "ThrottlingException", "message": "Rate exceeded", "count": 1, "match": "leads"}``
makes the next ``count`` calls of that operation whose request contains ``match`` (optional)
fail as AWS fails them (HTTP 400 with that error code).
``"operation": "EndpointStart"`` makes the next endpoint worker fail its start (the model
"cannot start": the endpoint or update fails with that message). ``"operation":
"EndpointInvocations"`` makes the next endpoint worker of an endpoint whose name contains
``match`` start, pass its health check, then answer every invocation with a model error (HTTP
500 with the message): a model that passed its evaluation and fails on live traffic.
``DELETE`` clears them all.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http import HTTPStatus

from localstack.http import Request, Response, route
from localstack.services.edge import ROUTER

PATH = "/_sluice/faults"


@dataclass
class Fault:
    code: str
    message: str
    count: int
    #: only calls whose request (or resource name) contains this are failed ("" = all)
    match: str = ""


_FAULTS: dict[tuple[str, str], Fault] = {}
_LOCK = threading.Lock()


def take(service: str, operation: str, subject: str = "") -> Fault | None:
    """The fault to raise for this call (``subject``: its request or resource name), if one is
    armed for it (and count it down)."""
    with _LOCK:
        fault = _FAULTS.get((service, operation))
        if fault is None or fault.match not in subject:
            return None
        fault.count -= 1
        if fault.count <= 0:
            del _FAULTS[(service, operation)]
        return fault


class _FaultRouter:
    @route(PATH, methods=["POST", "DELETE"])
    def faults(self, request: Request) -> Response:
        if request.method == "DELETE":
            with _LOCK:
                _FAULTS.clear()
            return Response(status=HTTPStatus.NO_CONTENT)
        try:
            body = json.loads(request.get_data() or b"{}")
            key = (str(body["service"]), str(body["operation"]))
            fault = Fault(
                code=str(body.get("code", "ThrottlingException")),
                message=str(body.get("message", "Rate exceeded")),
                count=int(body.get("count", 1)),
                match=str(body.get("match", "")),
            )
        except (ValueError, KeyError, TypeError) as exc:
            return Response(f"bad fault: {exc}", status=HTTPStatus.BAD_REQUEST)
        with _LOCK:
            _FAULTS[key] = fault
        return Response(status=HTTPStatus.CREATED)


_INSTALLED = threading.Event()


def install() -> None:
    if not _INSTALLED.is_set():
        ROUTER.add(_FaultRouter())
        _INSTALLED.set()
