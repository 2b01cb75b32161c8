"""Integration tests on the embedded local cloud (LocalStack host mode + ``local/`` extension).

The session fixture starts the local cloud once (or reuses one already running), deploys the
test-only CDK app in ``fixture_app/`` with cdklocal, and yields boto3 clients and the stack's
outputs. The dummy credentials below are only ever sent to the local endpoint.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.integration.helpers import ENDPOINT, LOCAL_CREDENTIALS, REGION, healthy

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
VENV_LOCAL = ROOT / ".venv-local"
FIXTURE_STACK = "SluiceLocalFixture"
DEPLOY_TIMEOUT_SECONDS = 300
#: monitoring of the deployed app, sized for tests (test_monitoring_loop.py): small windows and
#: samples, a one-minute retraining cool-down (the drift and quality alarms keep their 5-minute
#: period: 5 s at the local time scale, evaluated every second)
MONITORING = {
    "drift_window_minutes": 10,
    "drift_min_samples": 50,
    "quality_min_samples": 20,
    "retrain_cooldown_minutes": 1,
}


def cdklocal_env() -> dict[str, str]:
    """Environment for cdklocal: the local endpoint and dummy credentials, no real profile."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("AWS_") and key != "CDK_DEFAULT_ACCOUNT"
    }
    env.update(
        AWS_ENDPOINT_URL=ENDPOINT,
        AWS_ENDPOINT_URL_S3=ENDPOINT,
        AWS_ACCESS_KEY_ID=LOCAL_CREDENTIALS["aws_access_key_id"],
        AWS_SECRET_ACCESS_KEY=LOCAL_CREDENTIALS["aws_secret_access_key"],
        AWS_REGION=REGION,
        AWS_DEFAULT_REGION=REGION,
        JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20",
        JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION="1",
    )
    return env


@dataclass
class LocalCloud:
    """Clients for the local endpoint; ``started`` says whether this session started it."""

    started: bool

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=ENDPOINT, region_name=REGION, **LOCAL_CREDENTIALS)


#: run last, in this order: deleting the app stack, then stopping the cloud
LAST = ("test_stack_deletion.py", "test_local_down.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """``make local-down`` ends the session's cloud: its test runs last, right after the one
    that deletes the app stack (which every other test of the app needs)."""
    items.sort(key=lambda item: LAST.index(item.path.name) + 1 if item.path.name in LAST else 0)


@pytest.fixture(scope="session")
def local_cloud() -> Iterator[LocalCloud]:
    if not (VENV_LOCAL / "bin" / "python").exists():
        pytest.skip("local cloud not installed (.venv-local missing): run `make local-install`")
    if not (ROOT / "node_modules" / ".bin" / "cdklocal").exists():
        pytest.skip("cdklocal not installed (node_modules missing): run `npm ci`")
    started = not healthy()
    if started:
        subprocess.run([str(ROOT / "local" / "start.sh")], check=True, timeout=120)
    yield LocalCloud(started=started)
    if started and healthy():
        subprocess.run([str(ROOT / "local" / "stop.sh"), "--wipe"], check=False, timeout=120)


def _cdklocal(args: list[str], outdir: Path, cwd: Path = HERE / "fixture_app") -> None:
    app = f"{os.environ.get('SLUICE_TEST_PYTHON', ROOT / '.venv' / 'bin' / 'python')} app.py"
    command = ["npx", "--no-install", "cdklocal", *args, "--app", app, "--output", str(outdir)]
    result = subprocess.run(
        command,
        cwd=cwd,
        env=cdklocal_env(),
        capture_output=True,
        text=True,
        timeout=DEPLOY_TIMEOUT_SECONDS,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"cdklocal {args[0]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}")


@pytest.fixture(scope="session")
def stack_outputs(local_cloud: LocalCloud, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Deploys the fixture app (bootstrap + deploy) and returns its CloudFormation outputs."""
    outdir = tmp_path_factory.mktemp("cdk-out")
    outputs_file = outdir / "outputs.json"
    _cdklocal(["bootstrap"], outdir / "assembly")
    _cdklocal(
        ["deploy", "--require-approval", "never", "--outputs-file", str(outputs_file)],
        outdir / "assembly",
    )
    return json.loads(outputs_file.read_text())[FIXTURE_STACK]


def host_architecture() -> str:
    return "arm64" if platform.machine() in ("arm64", "aarch64") else "x86_64"


@pytest.fixture(scope="session")
def app_outputs(
    stack_outputs: dict, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, str]]:
    """Deploys the real app's dev stage as ``make local-deploy`` does; outputs by stack name.

    Depends on ``stack_outputs`` so the environment is bootstrapped once, by the fixture app.
    """
    outdir = tmp_path_factory.mktemp("app-out")
    outputs_file = outdir / "outputs.json"
    context = ["-c", "stage=dev", "-c", f"lambda_architecture={host_architecture()}"]
    context += ["-c", "pipeline_poll_seconds=1"]  # the pipeline's waits, in seconds, not 30
    context += ["-c", f"monitoring={json.dumps(MONITORING)}"]
    # one dataset on a serverless endpoint (test_rollout_pipeline.py), the others real-time
    context += ["-c", 'endpoints={"wine": {"kind": "serverless"}}']
    deploy = ["deploy", "--all", *context, "--require-approval", "never"]
    _cdklocal(
        [*deploy, "--outputs-file", str(outputs_file)],
        outdir / "assembly",
        cwd=ROOT,
    )
    outputs: dict[str, dict[str, str]] = json.loads(outputs_file.read_text())
    return outputs


@pytest.fixture(scope="session")
def aws(local_cloud: LocalCloud) -> Callable[[str], Any]:
    """``aws("s3")`` -> a boto3 client for the local endpoint."""
    return local_cloud.client
