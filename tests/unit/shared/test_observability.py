"""The shared observability module: real X-Ray tracing in Lambda, nothing to pay elsewhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from lambdas.shared import observability

ROOT = Path(__file__).resolve().parents[3]
LAMBDA_ENV = {
    "LAMBDA_TASK_ROOT": str(ROOT),
    "AWS_LAMBDA_FUNCTION_NAME": "test",
    "AWS_REGION": "us-east-1",
    "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
    "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
}


def _probe(env: dict[str, str]) -> dict[str, object]:
    """Import the module in a fresh interpreter and report what it loaded."""
    code = (
        "import json, sys\n"
        "from lambdas.shared.observability import tracer\n"
        "xray = 'aws_xray_sdk.core' in sys.modules\n"
        "patched = sorted(sys.modules['aws_xray_sdk.core.patcher']._PATCHED_MODULES) if xray "
        "else []\n"
        "sampler = type(sys.modules['aws_xray_sdk.core'].xray_recorder.sampler).__name__ "
        "if xray else None\n"
        "print(json.dumps({'tracer': type(tracer).__name__, 'xray': xray, "
        "'patched': patched, 'sampler': sampler}))\n"
    )
    clean = {k: v for k, v in os.environ.items() if k not in LAMBDA_ENV}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, "PYTHONPATH": str(ROOT), **env},
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_in_lambda_the_tracer_is_real_and_traces_every_aws_call() -> None:
    # Given the environment the Lambda runtime sets; When the module is imported
    seen = _probe(LAMBDA_ENV)
    # Then Powertools' Tracer records botocore (every boto3 call) and nothing else, with the
    # SDK's Lambda sampler (no botocore client created at import)
    assert seen == {
        "tracer": "Tracer",
        "xray": True,
        "patched": ["botocore"],
        "sampler": "LocalSampler",
    }


def test_outside_lambda_the_xray_sdk_is_never_imported() -> None:
    # Given no Lambda runtime (CLI, processing job, tests); When the module is imported
    seen = _probe({})
    # Then tracing is a no-op and the X-Ray SDK (and its sampler's clients) is never loaded
    assert seen == {"tracer": "NoTracer", "xray": False, "patched": [], "sampler": None}


def test_the_no_op_tracer_keeps_the_decorators_usable() -> None:
    tracer = observability.make_tracer({})

    @tracer.capture_lambda_handler
    def handler(event: dict[str, int], context: object) -> int:
        tracer.put_annotation("k", "v")
        tracer.put_metadata("k", {"v": 1})
        return event["n"]

    @tracer.capture_method(capture_response=False)
    def method() -> str:
        return "ok"

    assert handler({"n": 3}, None) == 3
    assert method() == "ok"
