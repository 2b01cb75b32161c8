"""One Logger, Tracer and Metrics for every function (service name and namespace from env).

Tracing costs only where it traces. In Lambda (``LAMBDA_TASK_ROOT`` set, as the runtime does)
``tracer`` is Powertools' ``Tracer`` and the X-Ray SDK records a subsegment for every AWS call
(botocore patched, nothing else: our functions make no other outbound calls, and patching all of
the SDK's supported libraries costs ~30 ms more at import for modules we never use). Everywhere
else (the CLI, the SageMaker processing job, tests, benchmarks) there is no X-Ray daemon and
Powertools would disable tracing anyway, so ``tracer`` is a no-op with the same decorators and the
X-Ray SDK is never imported. Importing it outside Lambda is what cost ~250 ms: its global recorder
then builds a ``DefaultSampler`` whose connector creates botocore ``xray`` clients at import
(inside Lambda the SDK uses a ``LocalSampler`` and creates no client). Measured and compared in
``benchmarks/bench_preprocess.py`` and README "Security".

Every later function imports ``logger``, ``metrics`` and ``tracer`` from here; a function that
calls out with another library (``requests``, ``httpx``) adds it to ``TRACED_MODULES``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics

F = TypeVar("F", bound=Callable[..., Any])

#: libraries whose calls become X-Ray subsegments (boto3's AWS calls go through botocore)
TRACED_MODULES: tuple[str, ...] = ("botocore",)

logger = Logger()
metrics = Metrics()


class NoTracer:
    """Stand-in for ``Tracer`` where nothing can receive traces (outside Lambda)."""

    def capture_lambda_handler(self, func: F | None = None, **_: Any) -> Any:
        return func if func is not None else (lambda f: f)

    def capture_method(self, func: F | None = None, **_: Any) -> Any:
        return func if func is not None else (lambda f: f)

    def put_annotation(self, key: str, value: Any) -> None:
        return None

    def put_metadata(self, key: str, value: Any, namespace: str | None = None) -> None:
        return None


def in_lambda(env: Mapping[str, str] | None = None) -> bool:
    """True in the Lambda runtime: the same test the X-Ray SDK and Powertools make."""
    env = os.environ if env is None else env
    return bool(env.get("LAMBDA_TASK_ROOT"))


def make_tracer(env: Mapping[str, str] | None = None) -> Any:
    """Powertools' ``Tracer`` in Lambda (when the X-Ray SDK is installed), else ``NoTracer``."""
    if not in_lambda(env):
        return NoTracer()
    try:
        from aws_lambda_powertools import Tracer
    except ImportError:  # pragma: no cover - Powertools always ships Tracer
        return NoTracer()
    try:
        import aws_xray_sdk  # noqa: F401
    except ImportError:
        return NoTracer()
    return Tracer(patch_modules=list(TRACED_MODULES))


tracer: Any = make_tracer()
