"""A LocalStack Lambda runtime executor that runs handlers as local subprocesses (no Docker).

Python functions get warm execution environments, as Lambda gives them: each environment is one
long-lived runtime process (``runners/lambda_python.py``) that imports the handler once (the
init phase, reported as ``Init Duration``) and then serves one invocation after another over a
pipe, keeping module state, clients and caches. LocalStack's own environment manager decides
when an environment is created, reused or retired (``LAMBDA_KEEPALIVE_MS`` idle), and how many
a function may have at once: its reserved concurrency (or the account's), throttling the rest.
An invocation that times out or crashes the process ends the environment's process; the next
invocation in that environment starts a fresh one (a new init), as on Lambda.

Node.js functions (CDK's own custom-resource handlers) still run one process per invocation.

Every process gets the function's environment variables, its unzipped code as working
directory and first on the module path, then its layers, then a stand-in for the runtime's own
packages (boto3). Output becomes the invocation's logs, which LocalStack stores in CloudWatch
Logs with START/END/REPORT lines like Lambda's. A global cap bounds how many handlers execute
at once (``SLUICE_LAMBDA_CONCURRENCY``): the machine has few cores.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
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
#: how long an environment's runtime may take to import the handler (Lambda: 10 s on-demand,
#: then the init is retried as part of the invocation; here it just counts as the invocation's)
INIT_TIMEOUT_SECONDS = 60.0


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


class _Channel:
    """JSON lines over a pair of pipes to one runtime process."""

    def __init__(self, to_runtime: int, from_runtime: int) -> None:
        self.to_runtime, self.from_runtime = to_runtime, from_runtime
        self._buffer = b""

    def send(self, message: dict[str, Any]) -> None:
        data = (json.dumps(message) + "\n").encode()
        view = memoryview(data)
        while view:
            written = os.write(self.to_runtime, view)
            view = view[written:]

    def receive(self, deadline: float, alive: Any) -> dict[str, Any] | None:
        """The next message, or None when the deadline passes or the process ends first."""
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([self.from_runtime], [], [], min(remaining, 0.5))
            if not ready:
                if not alive():
                    return None
                continue
            chunk = os.read(self.from_runtime, 1 << 20)
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        message: dict[str, Any] = json.loads(line)
        return message

    def close(self) -> None:
        for fd in (self.to_runtime, self.from_runtime):
            with contextlib.suppress(OSError):
                os.close(fd)


class _Runtime:
    """One warm runtime process of a Python function, and its log file."""

    def __init__(self, command: list[str], cwd: str, env: dict[str, str], workdir: Path) -> None:
        self.log_path = workdir / "runtime.log"
        self.log_offset = 0
        requests_r, requests_w = os.pipe()
        results_r, results_w = os.pipe()
        env = {**env, "SLUICE_RUNTIME_FDS": f"{requests_r},{results_w}"}
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                pass_fds=(requests_r, results_w),
            )
        os.close(requests_r)
        os.close(results_w)
        self.channel = _Channel(requests_w, results_r)
        self.started = time.time()
        self.ready = False
        self.init_ms: float | None = None

    def alive(self) -> bool:
        return self.process.poll() is None

    def new_output(self) -> str:
        """What the process printed since the last call."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(self.log_offset)
                data = log.read()
        except OSError:
            return ""
        self.log_offset += len(data)
        return data.decode("utf-8", errors="replace")

    def kill(self) -> None:
        if self.alive():
            _kill_group(self.process)
        self.channel.close()


class SubprocessRuntimeExecutor(RuntimeExecutor):
    """One execution environment: a warm runtime process (Python) or a process per call."""

    def __init__(self, id: str, function_version: FunctionVersion) -> None:
        super().__init__(id, function_version)
        self._env: dict[str, str] = {}
        self._logs: list[str] = []
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._runtime: _Runtime | None = None
        self._workdir: Path | None = None
        self._stopped = False
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
        if self._family == "python":
            self._workdir = Path(tempfile.mkdtemp(prefix="lambda-env-", dir=settings.state_dir()))
            with self._lock:
                self._runtime = self._spawn()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            process, runtime = self._process, self._runtime
            self._runtime = None
        if process is not None and process.poll() is None:
            _kill_group(process)
        if runtime is not None:
            runtime.kill()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)

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
            if self._family == "python":
                return self._invoke_warm(request_id, payload)
            return self._run(request_id, payload)

    # ---------------------------------------------------------------- Python: warm runtime
    def _spawn(self) -> _Runtime:
        assert self._workdir is not None
        command = [
            settings.lambda_python(), "-s", "-P", str(RUNNERS / "lambda_python.py"), "--serve",
        ]  # fmt: skip
        return _Runtime(command, self._env["LAMBDA_TASK_ROOT"], self._env, self._workdir)

    def _invoke_warm(self, request_id: str, payload: dict[str, str]) -> InvocationResult:
        timeout = float(self.function_version.config.timeout)
        with self._lock:
            if self._stopped:
                raise LambdaRuntimeException("the execution environment was stopped")
            runtime = self._runtime
            if runtime is None or not runtime.alive():
                if runtime is not None:
                    runtime.kill()
                runtime = self._runtime = self._spawn()
        init_report = ""
        if not runtime.ready:
            message = runtime.channel.receive(
                time.monotonic() + INIT_TIMEOUT_SECONDS, runtime.alive
            )
            if message is None or "init_error" in message:
                error = (message or {}).get("init_error") or {
                    "errorType": "Runtime.ExitError",
                    "errorMessage": f"RequestId: {request_id} Error: Runtime exited during init",
                }
                output = runtime.new_output()
                runtime.kill()
                with self._lock:
                    self._runtime = None
                logs = self._format_logs(request_id, output, 0.0, None)
                self._logs.append(logs)
                return InvocationResult(
                    request_id, json.dumps(error).encode(), is_error=True, logs=logs
                )
            runtime.ready = True
            # Lambda's Init Duration: from the runtime's start to the end of the handler import
            runtime.init_ms = (
                float(message.get("ready_at", runtime.started)) - runtime.started
            ) * 1000
            init_report = f"{runtime.init_ms:.2f}"
        started = time.monotonic()
        deadline_ms = int((time.time() + timeout) * 1000)
        runtime.channel.send(
            {
                "request_id": request_id,
                "invoked_arn": payload.get("invoked-function-arn", ""),
                "deadline_ms": deadline_ms,
                "trace_id": payload.get("trace-id", ""),
                "payload": payload["payload"] or "null",
            }
        )
        result = runtime.channel.receive(started + timeout, runtime.alive)
        duration_ms = (time.monotonic() - started) * 1000
        if result is not None:
            duration_ms = float(result.get("duration_ms", duration_ms))
        # no result before the deadline: timed out; before it: the runtime went away (crash)
        timed_out = result is None and time.monotonic() >= started + timeout
        if result is None:
            # timed out or crashed: the environment's process goes (a fresh init next time)
            with contextlib.suppress(subprocess.TimeoutExpired):
                runtime.process.wait(timeout=0 if timed_out else 2)
            returncode = runtime.process.poll()
            runtime.kill()
            with self._lock:
                if self._runtime is runtime:
                    self._runtime = None
        output = runtime.new_output()
        if timed_out:
            output += f"{_now()} {request_id} Task timed out after {timeout:.2f} seconds\n"
            message_text = f"{_now()} {request_id} Task timed out after {timeout:.2f} seconds"
            ok, body = (
                False,
                json.dumps({"errorMessage": message_text, "errorType": "Sandbox.Timedout"}),
            )
        elif result is None:
            exited = f"RequestId: {request_id} Error: Runtime exited with error: exit status"
            ok, body = (
                False,
                json.dumps(
                    {"errorType": "Runtime.ExitError", "errorMessage": f"{exited} {returncode}"}
                ),
            )
        else:
            ok, body = bool(result["ok"]), str(result["payload"])
        logs = self._format_logs(request_id, output, duration_ms, init_report or None)
        self._logs.append(logs)
        del self._logs[:-20]
        return InvocationResult(request_id, body.encode(), is_error=not ok, logs=logs)

    # -------------------------------------------------------------- Node.js: a process a call
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
                    [settings.node_binary(), str(RUNNERS / "lambda_node.js")],
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
            logs = self._format_logs(request_id, output, duration_ms, None)
            self._logs.append(logs)
            del self._logs[:-20]
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

    def _format_logs(
        self, request_id: str, output: str, duration_ms: float, init_ms: str | None
    ) -> str:
        config = self.function_version.config
        version = self.function_version.id.qualifier
        init = f"\tInit Duration: {init_ms} ms" if init_ms else ""
        if output and not output.endswith("\n"):
            output += "\n"
        return (
            f"START RequestId: {request_id} Version: {version}\n"
            f"{output}"
            f"END RequestId: {request_id}\n"
            f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
            f"Billed Duration: {int(duration_ms) + 1} ms\tMemory Size: {config.memory_size} MB"
            f"{init}\n"
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
