"""A SageMaker inference container stand-in: serves a model's ``inference.py`` over HTTP.

Runs in the local "image" interpreter (the project venv), standard library only. Like the
framework containers: ``model_fn(model_dir)`` loads the model once at start (a failure stops the
worker, so the endpoint fails instead of going InService), then ``GET /ping`` and
``POST /invocations`` run ``input_fn`` -> ``predict_fn`` -> ``output_fn`` (or ``transform_fn``).
A handler exception answers 500 with its message; unsupported formats in the defaults 415/406.
The chosen port is written to ``--ready-file`` once the model is loaded.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class UnsupportedFormat(Exception):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


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
    if hasattr(prediction, "tolist"):
        prediction = prediction.tolist()
    if accept.startswith("application/json"):
        return json.dumps(prediction)
    if accept.startswith("text/csv"):
        rows = prediction if isinstance(prediction, list) else [prediction]
        return "\n".join(
            ",".join(map(str, row)) if isinstance(row, list) else str(row) for row in rows
        )
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

    def invoke(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        with self.lock:
            if self.transform_fn is not None:
                result = self.transform_fn(self.model, body, content_type, accept)
            else:
                data = self.input_fn(body, content_type)
                prediction = self.predict_fn(data, self.model)
                result = self.output_fn(prediction, accept)
        if isinstance(result, tuple):
            payload, accept = result[0], result[1]
        else:
            payload = result
        if isinstance(payload, str):
            payload = payload.encode()
        return bytes(payload), accept


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
            try:
                payload, out_type = handlers.invoke(body, content_type, accept)
            except UnsupportedFormat as exc:
                self._reply(exc.status, str(exc).encode(), "text/plain")
                return
            except Exception as exc:
                traceback.print_exc()
                self._reply(500, f"{type(exc).__name__}: {exc}".encode(), "text/plain")
                return
            self._reply(200, payload, out_type)

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
