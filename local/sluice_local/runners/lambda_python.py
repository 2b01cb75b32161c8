"""Runs one Lambda invocation of a Python handler, the way the Lambda Python runtime does.

Started by the subprocess executor with the function's environment, its code directory as the
working directory and first on PYTHONPATH. Reads the event from ``SLUICE_EVENT_FILE`` and writes
``{"ok": bool, "payload": ...}`` to ``SLUICE_RESULT_FILE``; everything printed goes to the logs.
Standard library only: it must not shadow what the function bundles.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import time
import traceback
from typing import Any


class LambdaContext:
    """The ``context`` object handlers receive (the attributes Powertools reads)."""

    def __init__(self, request_id: str, deadline_ms: int) -> None:
        self.aws_request_id = request_id
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.invoked_function_arn = os.environ.get("SLUICE_INVOKED_ARN", "")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def _error(error_type: str, message: str, stack: list[str] | None = None) -> dict[str, Any]:
    return {
        "errorMessage": message,
        "errorType": error_type,
        "requestId": os.environ.get("SLUICE_REQUEST_ID", ""),
        "stackTrace": stack or [],
    }


def _exception_payload(exc: BaseException) -> dict[str, Any]:
    stack = traceback.format_list(traceback.extract_tb(exc.__traceback__)[1:])
    return _error(type(exc).__name__, str(exc), stack)


def _log_error(payload: dict[str, Any]) -> None:
    print(f"[ERROR] {payload['errorType']}: {payload['errorMessage']}", file=sys.stderr)
    if payload["stackTrace"]:
        print("Traceback (most recent call last):", file=sys.stderr)
        print("".join(payload["stackTrace"]), end="", file=sys.stderr)


def _configure_logging(request_id: str) -> None:
    """Like the runtime: a root handler that prefixes level, time and request id."""

    class _RequestIdFilter(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            record.aws_request_id = request_id
            return True

    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        logging.Formatter(
            "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s",
            "%Y-%m-%dT%H:%M:%S",
        )
    )
    handler.addFilter(_RequestIdFilter())
    logging.getLogger().addHandler(handler)


def _load_handler(spec: str) -> Any:
    module_path, _, function_name = spec.rpartition(".")
    module_name = module_path.replace("/", ".")
    try:
        module = importlib.import_module(module_name)
    except SyntaxError as exc:
        raise _RuntimeError(
            "Runtime.UserCodeSyntaxError", f"Syntax error in module '{module_name}': {exc}"
        ) from exc
    except ImportError as exc:
        raise _RuntimeError(
            "Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}"
        ) from exc
    handler = getattr(module, function_name, None)
    if handler is None:
        raise _RuntimeError(
            "Runtime.HandlerNotFound",
            f"Handler '{function_name}' missing on module '{module_name}'",
        )
    return handler


class _RuntimeError(Exception):
    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


def main() -> int:
    request_id = os.environ["SLUICE_REQUEST_ID"]
    deadline_ms = int(os.environ["SLUICE_DEADLINE_MS"])
    with open(os.environ["SLUICE_EVENT_FILE"], encoding="utf-8") as f:
        event = json.load(f)
    _configure_logging(request_id)
    result: dict[str, Any]
    try:
        handler = _load_handler(os.environ["_HANDLER"])
        value = handler(event, LambdaContext(request_id, deadline_ms))
        try:
            payload = json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise _RuntimeError(
                "Runtime.MarshalError", f"Unable to marshal response: {exc}"
            ) from exc
        result = {"ok": True, "payload": payload}
    except _RuntimeError as exc:
        error = _error(exc.error_type, str(exc))
        _log_error(error)
        result = {"ok": False, "payload": json.dumps(error)}
    except Exception as exc:
        error = _exception_payload(exc)
        _log_error(error)
        result = {"ok": False, "payload": json.dumps(error)}
    sys.stdout.flush()
    sys.stderr.flush()
    with open(os.environ["SLUICE_RESULT_FILE"], "w", encoding="utf-8") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
