"""Settings of the extension, read from the environment the start script sets.

Read lazily (functions, not module constants) so tests and the start script can change them.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType


def repo_root() -> Path:
    """The Sluice checkout (the start script exports ``SLUICE_ROOT``)."""
    return Path(os.environ.get("SLUICE_ROOT") or Path(__file__).resolve().parents[2])


def state_dir() -> Path:
    """Where jobs and endpoints keep their files (``.local/`` in the checkout by default)."""
    path = Path(os.environ.get("SLUICE_STATE_DIR") or repo_root() / ".local")
    path.mkdir(parents=True, exist_ok=True)
    return path


def lambda_python() -> str:
    """Interpreter for Python Lambda handlers: the base Python 3.13 this venv was made from."""
    return os.environ.get("SLUICE_LAMBDA_PYTHON") or getattr(
        sys, "_base_executable", sys.executable
    )


def lambda_runtime_path() -> Path:
    """Stand-in for the Lambda runtime's own packages (boto3), last on a handler's path."""
    default = Path(sys.prefix) / "lambda-runtime"
    return Path(os.environ.get("SLUICE_LAMBDA_RUNTIME_PATH") or default)


def node_binary() -> str:
    return os.environ.get("SLUICE_NODE") or "node"


def node_runtime_path() -> Path:
    """Stand-in for the Node.js Lambda runtime's AWS SDK v3 (``local/node/node_modules``)."""
    default = repo_root() / "local" / "node" / "node_modules"
    return Path(os.environ.get("SLUICE_NODE_RUNTIME_PATH") or default)


def lambda_concurrency() -> int:
    """How many Lambda handlers run at once (each is a process; the machine has few cores)."""
    return max(1, int(os.environ.get("SLUICE_LAMBDA_CONCURRENCY") or 3))


def job_python() -> str:
    """Interpreter standing in for the SageMaker container image (the project venv)."""
    return os.environ.get("SLUICE_SAGEMAKER_PYTHON") or str(
        repo_root() / ".venv" / "bin" / "python"
    )


def job_concurrency() -> int:
    """How many SageMaker jobs run at once; the rest wait InProgress (Starting)."""
    return max(1, int(os.environ.get("SLUICE_JOB_CONCURRENCY") or 1))


def gateway_url() -> str:
    return os.environ.get("SLUICE_GATEWAY_URL") or "http://127.0.0.1:4566"


class Slots:
    """A process-wide cap on concurrent runs (``with SLOTS: ...``), sized on first use by
    ``size`` so the environment the start script sets is read, not the one at import."""

    def __init__(self, size: Callable[[], int]) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._semaphore: threading.BoundedSemaphore | None = None

    def __enter__(self) -> None:
        with self._lock:
            if self._semaphore is None:
                self._semaphore = threading.BoundedSemaphore(self._size())
            semaphore = self._semaphore
        semaphore.acquire()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._semaphore is not None
        self._semaphore.release()
