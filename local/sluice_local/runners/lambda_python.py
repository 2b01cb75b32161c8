"""A warm Lambda execution environment for a Python handler, the way the Lambda runtime runs one.

Started once per environment by the subprocess executor (``--serve``), with the function's
environment, its code directory as the working directory and first on PYTHONPATH. The init
phase imports the handler (module-level code runs once, as on Lambda); then invocations arrive
one after another as JSON lines on the request pipe and their results go back on the result
pipe (``SLUICE_RUNTIME_FDS=<request fd>,<result fd>``):

    -> {"ready": true, "init_ms": 412.0}  |  {"init_error": {...}}         (once)
    <- {"request_id", "invoked_arn", "deadline_ms", "trace_id", "payload"}  (per invocation)
    -> {"ok": bool, "payload": "<JSON>", "duration_ms": 3.1}

Everything printed goes to the environment's log (the executor cuts it per invocation).
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

    def __init__(self, request_id: str, deadline_ms: int, invoked_arn: str) -> None:
        self.aws_request_id = request_id
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.invoked_function_arn = invoked_arn
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def _error(error_type: str, message: str, request_id: str = "", stack: list[str] | None = None):
    return {
        "errorMessage": message,
        "errorType": error_type,
        "requestId": request_id,
        "stackTrace": stack or [],
    }


def _exception_payload(exc: BaseException, request_id: str) -> dict[str, Any]:
    stack = traceback.format_list(traceback.extract_tb(exc.__traceback__)[1:])
    return _error(type(exc).__name__, str(exc), request_id, stack)


def _log_error(payload: dict[str, Any]) -> None:
    print(f"[ERROR] {payload['errorType']}: {payload['errorMessage']}", file=sys.stderr)
    if payload["stackTrace"]:
        print("Traceback (most recent call last):", file=sys.stderr)
        print("".join(payload["stackTrace"]), end="", file=sys.stderr)


class _Current:
    request_id = ""


def _configure_logging() -> None:
    """Like the runtime: a root handler that prefixes level, time and the current request id."""

    class _RequestIdFilter(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            record.aws_request_id = _Current.request_id
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


class _RuntimeError(Exception):
    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


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


class _Pipe:
    def __init__(self, read_fd: int, write_fd: int) -> None:
        self.reader = os.fdopen(read_fd, "rb", buffering=0)
        self.writer = os.fdopen(write_fd, "wb", buffering=0)
        self._buffer = b""

    def read(self) -> dict[str, Any] | None:
        while b"\n" not in self._buffer:
            chunk = self.reader.read(1 << 20)
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        message: dict[str, Any] = json.loads(line)
        return message

    def write(self, message: dict[str, Any]) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        self.writer.write((json.dumps(message) + "\n").encode())


def _invoke(handler: Any, request: dict[str, Any]) -> dict[str, Any]:
    request_id = request["request_id"]
    _Current.request_id = request_id
    os.environ["_X_AMZN_TRACE_ID"] = request.get("trace_id") or ""
    started = time.perf_counter()
    try:
        event = json.loads(request["payload"])
        context = LambdaContext(request_id, int(request["deadline_ms"]), request["invoked_arn"])
        value = handler(event, context)
        try:
            payload = json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise _RuntimeError(
                "Runtime.MarshalError", f"Unable to marshal response: {exc}"
            ) from exc
        result = {"ok": True, "payload": payload}
    except _RuntimeError as exc:
        error = _error(exc.error_type, str(exc), request_id)
        _log_error(error)
        result = {"ok": False, "payload": json.dumps(error)}
    except Exception as exc:
        error = _exception_payload(exc, request_id)
        _log_error(error)
        result = {"ok": False, "payload": json.dumps(error)}
    result["duration_ms"] = (time.perf_counter() - started) * 1000
    return result


def serve() -> int:
    read_fd, write_fd = (int(fd) for fd in os.environ.pop("SLUICE_RUNTIME_FDS").split(","))
    pipe = _Pipe(read_fd, write_fd)
    _configure_logging()
    started = time.perf_counter()
    try:
        handler = _load_handler(os.environ["_HANDLER"])
    except _RuntimeError as exc:
        error = _error(exc.error_type, str(exc))
        _log_error(error)
        pipe.write({"init_error": error})
        return 1
    except Exception as exc:  # module-level code raised: Runtime.Unknown init error on Lambda
        error = _exception_payload(exc, "")
        _log_error(error)
        pipe.write({"init_error": error})
        return 1
    pipe.write(
        {"ready": True, "init_ms": (time.perf_counter() - started) * 1000, "ready_at": time.time()}
    )
    while (request := pipe.read()) is not None:
        pipe.write(_invoke(handler, request))
    return 0


if __name__ == "__main__":
    if "--serve" not in sys.argv:
        sys.exit("usage: lambda_python.py --serve (started by sluice_local's executor)")
    sys.exit(serve())
