"""One Logger, Tracer and Metrics for every function (service name and namespace from env).

The X-Ray SDK is part of the deployed package (``requirements.txt``); where it is missing (a
bare development venv) the tracer degrades to a no-op with the same decorators, so handlers
import and run the same way in tests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics, Tracer

F = TypeVar("F", bound=Callable[..., Any])

logger = Logger()
metrics = Metrics()


class _NoTracer:
    """Stand-in for ``Tracer`` when aws_xray_sdk is not installed."""

    def capture_lambda_handler(self, func: F | None = None, **_: Any) -> Any:
        return func if func is not None else (lambda f: f)

    def capture_method(self, func: F | None = None, **_: Any) -> Any:
        return func if func is not None else (lambda f: f)

    def put_annotation(self, key: str, value: Any) -> None:
        return None


def _tracer() -> Any:
    try:
        import aws_xray_sdk  # noqa: F401
    except ImportError:
        return _NoTracer()
    return Tracer()


tracer: Any = _tracer()
