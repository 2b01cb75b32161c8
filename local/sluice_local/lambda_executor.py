"""A LocalStack Lambda runtime executor that runs handlers as local subprocesses (no Docker).

Every invocation is a fresh process (a cold start): the function's environment variables, its
unzipped code as working directory and first on the module path, then its layers, then a stand-in
for the runtime's own packages (boto3). The function's timeout is enforced by killing the process
group. A global semaphore caps how many handlers run at once. Output becomes the invocation's
logs, which LocalStack stores in CloudWatch Logs with START/END/REPORT lines like Lambda's.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from localstack.services.lambda_.invocation.lambda_models import FunctionVersion, InvocationResult
from localstack.services.lambda_.invocation.runtime_executor import (
    LambdaRuntimeException,
    RuntimeExecutor,
)

from sluice_local import settings

LOG = logging.getLogger(__name__)
RUNNERS = Path(__file__).parent / "runners"
_SLOTS = settings.Slots(settings.lambda_concurrency)


def _runtime_family(runtime: str | None) -> str:
    if runtime and runtime.startswith("python"):
        return "python"
    if runtime and runtime.startswith("nodejs"):
        return "node"
    raise LambdaRuntimeException(
        f"Runtime {runtime!r} is not supported by the local executor (Python and Node.js only)"
    )


def _layer_paths(function_version: FunctionVersion, family: str) -> list[str]:
    paths: list[str] = []
    for layer in function_version.config.layers or []:
        if layer.code is None:
            continue
        layer.code.prepare_for_execution()
        root = Path(layer.code.get_unzipped_code_location())
        if family == "python":
            paths += [
                str(root / "python"),
                *map(str, root.glob("python/lib/python3*/site-packages")),
            ]
        else:
            paths += [str(root / "nodejs" / "node_modules"), str(root / "nodejs")]
    return paths


class SubprocessRuntimeExecutor(RuntimeExecutor):
    """One execution environment; each ``invoke`` is one subprocess."""

    def __init__(self, id: str, function_version: FunctionVersion) -> None:
        super().__init__(id, function_version)
        self._env: dict[str, str] = {}
        self._logs: list[str] = []
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._family = _runtime_family(function_version.config.runtime)

    # -- lifecycle
    def start(self, env_vars: dict[str, str]) -> None:
        code_dir = str(self.function_version.config.code.get_unzipped_code_location())
        env = {key: str(value) for key, value in env_vars.items()}
        env.update(
            LAMBDA_TASK_ROOT=code_dir,
            PATH=os.environ.get("PATH", "/usr/bin:/bin"),
            LANG="C.UTF-8",
            HOME=os.environ.get("HOME", "/tmp"),  # noqa: S108 - Lambda's HOME is not writable either
        )
        layers = _layer_paths(self.function_version, self._family)
        if self._family == "python":
            env["PYTHONPATH"] = os.pathsep.join(
                [code_dir, *layers, str(settings.lambda_runtime_path())]
            )
            env["PYTHONUNBUFFERED"] = "1"
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        else:
            env["NODE_PATH"] = os.pathsep.join([*layers, str(settings.node_runtime_path())])
            env["EDGE_PORT"] = str(urllib.parse.urlsplit(settings.gateway_url()).port or 4566)
        self._env = env

    def stop(self) -> None:
        with self._lock:
            process = self._process
        if process is not None and process.poll() is None:
            _kill_group(process)

    # -- addresses (the subprocess talks to the gateway on loopback)
    def get_address(self) -> str:
        return "127.0.0.1"

    def get_endpoint_from_executor(self) -> str:
        return "127.0.0.1"

    def get_runtime_endpoint(self) -> str:
        return f"{settings.gateway_url()}/_localstack_lambda/{self.id}"

    # -- invocations
    def invoke(self, payload: dict[str, str]) -> InvocationResult:
        request_id = payload["invoke-id"]
        with _SLOTS:
            return self._run(request_id, payload)

    def _command(self) -> list[str]:
        if self._family == "python":
            return [settings.lambda_python(), "-s", "-P", str(RUNNERS / "lambda_python.py")]
        return [settings.node_binary(), str(RUNNERS / "lambda_node.js")]

    def _run(self, request_id: str, payload: dict[str, str]) -> InvocationResult:
        config = self.function_version.config
        timeout = float(config.timeout)
        workdir = Path(tempfile.mkdtemp(prefix="lambda-", dir=settings.state_dir()))
        try:
            event_file, result_file, log_file = (
                workdir / "event.json",
                workdir / "result.json",
                workdir / "out.log",
            )
            event_file.write_text(payload["payload"] or "null", encoding="utf-8")
            started = time.monotonic()
            env = {
                **self._env,
                "SLUICE_REQUEST_ID": request_id,
                "SLUICE_INVOKED_ARN": payload.get("invoked-function-arn", ""),
                "SLUICE_EVENT_FILE": str(event_file),
                "SLUICE_RESULT_FILE": str(result_file),
                "SLUICE_DEADLINE_MS": str(int((time.time() + timeout) * 1000)),
                "_X_AMZN_TRACE_ID": payload.get("trace-id", ""),
            }
            with log_file.open("wb") as out:
                process = subprocess.Popen(
                    self._command(),
                    cwd=self._env["LAMBDA_TASK_ROOT"],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
                with self._lock:
                    self._process = process
                timed_out = False
                try:
                    process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    timed_out = True
                    _kill_group(process)
            duration_ms = (time.monotonic() - started) * 1000
            output = log_file.read_text(encoding="utf-8", errors="replace")
            ok, body = self._outcome(request_id, timed_out, process.returncode, result_file)
            if timed_out:
                output += f"{_now()} {request_id} Task timed out after {timeout:.2f} seconds\n"
            logs = self._format_logs(request_id, output, duration_ms)
            self._logs.append(logs)
            return InvocationResult(request_id, body.encode(), is_error=not ok, logs=logs)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _outcome(
        self, request_id: str, timed_out: bool, returncode: int | None, result_file: Path
    ) -> tuple[bool, str]:
        if timed_out:
            timeout = float(self.function_version.config.timeout)
            message = f"{_now()} {request_id} Task timed out after {timeout:.2f} seconds"
            return False, json.dumps({"errorMessage": message, "errorType": "Sandbox.Timedout"})
        if result_file.exists():
            result: dict[str, Any] = json.loads(result_file.read_text(encoding="utf-8"))
            return bool(result["ok"]), str(result["payload"])
        message = (
            f"RequestId: {request_id} Error: Runtime exited with error: exit status {returncode}"
        )
        return False, json.dumps({"errorType": "Runtime.ExitError", "errorMessage": message})

    def _format_logs(self, request_id: str, output: str, duration_ms: float) -> str:
        config = self.function_version.config
        version = self.function_version.id.qualifier
        return (
            f"START RequestId: {request_id} Version: {version}\n"
            f"{output}"
            f"END RequestId: {request_id}\n"
            f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
            f"Billed Duration: {int(duration_ms) + 1} ms\tMemory Size: {config.memory_size} MB\n"
        )

    def get_logs(self) -> str:
        return "".join(self._logs[-5:])

    # -- versions
    @classmethod
    def prepare_version(cls, function_version: FunctionVersion) -> None:
        _runtime_family(function_version.config.runtime)
        if function_version.config.code:
            function_version.config.code.prepare_for_execution()

    @classmethod
    def cleanup_version(cls, function_version: FunctionVersion) -> None:
        """Nothing to clean: the unzipped code belongs to LocalStack."""

    @classmethod
    def validate_environment(cls) -> bool:
        if shutil.which(settings.lambda_python()) is None:
            LOG.warning("Lambda Python interpreter not found: %s", settings.lambda_python())
            return False
        return True


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    process.wait(timeout=10)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
