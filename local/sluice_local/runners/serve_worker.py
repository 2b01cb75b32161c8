"""A SageMaker inference container stand-in: serves a model's ``inference.py`` over HTTP.

Runs in the local "image" interpreter (the project venv), standard library only. Like the
framework containers: ``model_fn(model_dir)`` loads the model once at start (a failure stops the
worker, so the endpoint fails instead of going InService), then ``GET /ping`` and
``POST /invocations`` run ``input_fn`` -> ``predict_fn`` -> ``output_fn`` (or ``transform_fn``).
The chosen port is written to ``--ready-file`` once the model is loaded.

What happens to a handler's result and exceptions is what the XGBoost container's script-mode
server does (sagemaker-containers' transformer in a Flask app under gunicorn):
- the transformer wraps every handler the module defines in ``error_wrapper``, which re-raises
  any exception as its ``ClientError``, and Flask answers that with 500: so any exception from
  the module's handlers (a werkzeug ``HTTPException`` too) answers 500; its traceback goes to
  the log, never the request body;
- the defaults' unsupported content or accept type (where the module defines no handler)
  answers 415 / 406 with the transformer's JSON error, as sagemaker-containers' own defaults do;
- the result is the response: a ``(body, mimetype)`` tuple is a 200 of that type (werkzeug adds
  ``; charset=utf-8`` to ``text/*``); a werkzeug ``Response`` is sent as it is, status included
  (how a handler answers a client error with a 4xx); a bare ``str``/``bytes`` goes out with
  Flask's default ``text/html; charset=utf-8``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import threading
import traceback
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: what Flask gives a view's bare str/bytes result
FLASK_DEFAULT_TYPE = "text/html; charset=utf-8"


class UnsupportedFormat(Exception):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Reply:
    status: int
    body: bytes
    content_type: str


def _from_result(result: Any, accept: str) -> Reply:
    if isinstance(result, tuple):
        payload, content_type = result[0], result[1] or accept
        if content_type.startswith("text/") and "charset" not in content_type:
            content_type += "; charset=utf-8"
    elif hasattr(result, "get_data") and hasattr(result, "status_code"):  # a werkzeug Response
        content_type = result.headers.get("Content-Type", FLASK_DEFAULT_TYPE)
        return Reply(int(result.status_code), bytes(result.get_data()), content_type)
    else:
        payload, content_type = result, FLASK_DEFAULT_TYPE
    if isinstance(payload, str):
        payload = payload.encode()
    return Reply(200, bytes(payload), content_type)


def default_input_fn(body: bytes, content_type: str) -> Any:
    if content_type.startswith("application/json"):
        return json.loads(body)
    if content_type.startswith("text/csv"):
        rows = [line for line in body.decode().splitlines() if line.strip()]
        return [[float(value) for value in row.split(",")] for row in rows]
    raise UnsupportedFormat(f"Content type {content_type} is not supported by this framework.", 415)


def default_predict_fn(data: Any, model: Any) -> Any:
    return model.predict(data)


def default_output_fn(prediction: Any, accept: str) -> Any:
    """The encoded prediction and its type (the transformer sends a Response of that type)."""
    if hasattr(prediction, "tolist"):
        prediction = prediction.tolist()
    if accept.startswith("application/json"):
        return json.dumps(prediction), accept
    if accept.startswith("text/csv"):
        rows = prediction if isinstance(prediction, list) else [prediction]
        text = "\n".join(
            ",".join(map(str, row)) if isinstance(row, list) else str(row) for row in rows
        )
        return text, accept
    raise UnsupportedFormat(f"Accept type {accept} is not supported by this framework.", 406)


class Handlers:
    def __init__(self, module: Any, model_dir: str) -> None:
        self.transform_fn = getattr(module, "transform_fn", None)
        names = ("input_fn", "predict_fn", "output_fn")
        if self.transform_fn and any(hasattr(module, name) for name in names):
            raise ValueError("Cannot use transform_fn together with input_fn/predict_fn/output_fn")
        self.input_fn = getattr(module, "input_fn", default_input_fn)
        self.predict_fn = getattr(module, "predict_fn", default_predict_fn)
        self.output_fn = getattr(module, "output_fn", default_output_fn)
        self.model = module.model_fn(model_dir)
        self.lock = threading.Lock()

    def run(self, body: bytes, content_type: str, accept: str) -> Any:
        with self.lock:
            if self.transform_fn is not None:
                return self.transform_fn(self.model, body, content_type, accept)
            data = self.input_fn(body, content_type)
            prediction = self.predict_fn(data, self.model)
            return self.output_fn(prediction, accept)

    def invoke(self, body: bytes, content_type: str, accept: str) -> Reply:
        """The reply the container sends for one request (see the module docstring)."""
        try:
            return _from_result(self.run(body, content_type, accept), accept)
        except UnsupportedFormat as exc:
            error = {
                "error": "UnsupportedFormatError",
                "error-message": str(exc),
                "stack-trace": traceback.format_exc(),
            }
            return Reply(exc.status, json.dumps(error).encode(), "application/json")
        except Exception as exc:
            traceback.print_exc()
            return Reply(500, f"{type(exc).__name__}: {exc}".encode(), "text/plain")


def make_server(handlers: Handlers) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")

        def _reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/ping":
                self._reply(200, b"", "text/plain")
            else:
                self._reply(404, b"not found", "text/plain")

        def do_POST(self) -> None:
            if self.path != "/invocations":
                self._reply(404, b"not found", "text/plain")
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            content_type = self.headers.get("Content-Type") or "application/json"
            accept = self.headers.get("Accept") or "application/json"
            if accept == "*/*":
                accept = "application/json"
            reply = handlers.invoke(body, content_type, accept)
            self._reply(reply.status, reply.body, reply.content_type)

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--code-dir", required=True)
    parser.add_argument("--program", required=True)
    parser.add_argument("--ready-file", required=True)
    args = parser.parse_args()
    sys.path.insert(0, args.code_dir)
    module_name = args.program[:-3] if args.program.endswith(".py") else args.program
    module = importlib.import_module(module_name)
    handlers = Handlers(module, args.model_dir)
    server = make_server(handlers)
    with open(args.ready_file, "w", encoding="utf-8") as f:
        f.write(str(server.server_address[1]))
    print(f"serving {args.program} on port {server.server_address[1]}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
