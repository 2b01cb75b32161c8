"""Endpoints: one long-lived worker process per production variant, serving ``inference.py``.

Create: Creating -> InService (or Failed with the worker's error). Update: Updating, start the
new config's workers, switch traffic, stop the old ones -> InService; if the new config cannot
start, the endpoint stays on the old one, InService, with FailureReason set (as on AWS).
Delete: stop the workers. Invocations pick a variant by weight and may be captured to S3.
"""

from __future__ import annotations

import base64
import json
import logging
import random
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from localstack.aws.connect import connect_to

from sluice_local import settings
from sluice_local.sagemaker import s3io
from sluice_local.sagemaker.jobs import now

LOG = logging.getLogger(__name__)
WORKER = Path(__file__).resolve().parent.parent / "runners" / "serve_worker.py"
START_TIMEOUT_SECONDS = 120.0
INVOKE_TIMEOUT_SECONDS = 60.0


class DeployFailed(Exception):
    pass


@dataclass
class Variant:
    name: str
    weight: float
    model_name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class LiveEndpoint:
    config_name: str
    variants: list[Variant]
    data_capture: dict[str, Any] = field(default_factory=dict)

    def pick(self, target_variant: str | None) -> Variant:
        if target_variant:
            for variant in self.variants:
                if variant.name == target_variant:
                    return variant
            raise KeyError(target_variant)
        weights = [max(variant.weight, 0.0) for variant in self.variants]
        if sum(weights) <= 0:
            return self.variants[0]
        return random.choices(self.variants, weights=weights)[0]  # noqa: S311 - traffic split

    def stop(self) -> None:
        for variant in self.variants:
            variant.stop()


_LIVE: dict[tuple[str, str, str], LiveEndpoint] = {}
_LOCK = threading.Lock()


def live(account: str, region: str, name: str) -> LiveEndpoint | None:
    with _LOCK:
        return _LIVE.get((account, region, name))


def _clients(account: str, region: str) -> Any:
    return connect_to(aws_access_key_id=account, region_name=region)


def _start_variant(
    account: str,
    region: str,
    endpoint: str,
    variant: dict[str, Any],
    workdir: Path,
    environment: dict[str, str] | None = None,
) -> Variant:
    """A worker serving ``variant``'s model; ``environment`` is added to the container's
    (a transform job's ``Environment``)."""
    clients = _clients(account, region)
    model = clients.sagemaker.describe_model(ModelName=variant["ModelName"])
    container = model.get("PrimaryContainer") or (model.get("Containers") or [{}])[0]
    env = container.get("Environment") or {}
    program = env.get("SAGEMAKER_PROGRAM")
    if not program:
        raise DeployFailed(
            f"model {variant['ModelName']}: only script mode serves locally "
            "(set SAGEMAKER_PROGRAM in the container environment)"
        )
    model_dir, code_dir = workdir / "model", workdir / "code"
    model_dir.mkdir(parents=True)
    if container.get("ModelDataUrl"):
        archive = workdir / "model.tar.gz"
        s3io.download_file(clients.s3, container["ModelDataUrl"], archive)
        s3io.unpack(archive, model_dir)
    submit = env.get("SAGEMAKER_SUBMIT_DIRECTORY", "/opt/ml/model/code")
    if submit.startswith("s3://"):
        archive = workdir / "sourcedir.tar.gz"
        s3io.download_file(clients.s3, submit, archive)
        s3io.unpack(archive, code_dir)
    elif submit.startswith("/opt/ml/model"):
        code_dir = model_dir / submit[len("/opt/ml/model") :].lstrip("/")
    else:
        raise DeployFailed(f"SAGEMAKER_SUBMIT_DIRECTORY {submit!r} cannot be served locally")

    ready, log_path = workdir / "ready", workdir / "worker.log"
    worker_env = {
        "PATH": f"{Path(settings.job_python()).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(workdir),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "SAGEMAKER_REGION": region,
        **{key: str(value) for key, value in env.items()},
        **{key: str(value) for key, value in (environment or {}).items()},
    }
    command = [
        settings.job_python(),
        str(WORKER),
        "--model-dir",
        str(model_dir),
        "--code-dir",
        str(code_dir),
        "--program",
        program,
        "--ready-file",
        str(ready),
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=workdir,
            env=worker_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not ready.exists() or not ready.read_text().strip():
        if process.poll() is not None or time.monotonic() > deadline:
            if process.poll() is None:
                process.kill()
                process.wait()
            tail = _error_lines(log_path)
            raise DeployFailed(
                f"The primary container for production variant {variant['VariantName']} did not "
                f"pass the ping health check. {tail}"
            )
        time.sleep(0.1)
    return Variant(
        name=variant["VariantName"],
        weight=float(variant.get("InitialVariantWeight", 1.0)),
        model_name=variant["ModelName"],
        process=process,
        port=int(ready.read_text()),
        log_path=log_path,
    )


def _error_lines(log_path: Path) -> str:
    text = log_path.read_text(encoding="utf-8", errors="replace") if log_path.exists() else ""
    lines = [line for line in text.splitlines() if line.strip()]
    return " ".join(lines[-1:])[:800]


def _start(account: str, region: str, endpoint: str, config_name: str) -> LiveEndpoint:
    config = _clients(account, region).sagemaker.describe_endpoint_config(
        EndpointConfigName=config_name
    )
    root = settings.state_dir() / "sagemaker" / "endpoints" / endpoint / uuid.uuid4().hex[:8]
    started: list[Variant] = []
    try:
        for variant in config["ProductionVariants"]:
            workdir = root / variant["VariantName"]
            workdir.mkdir(parents=True)
            started.append(_start_variant(account, region, endpoint, variant, workdir))
    except Exception:
        for variant in started:
            variant.stop()
        raise
    return LiveEndpoint(config_name, started, config.get("DataCaptureConfig") or {})


def deploy(record: Any, account: str, region: str, config_name: str, *, update: bool) -> None:
    """Run in a thread: bring ``record`` (moto's FakeEndpoint) to the new config."""
    key = (account, region, record.endpoint_name)
    try:
        fresh = _start(account, region, record.endpoint_name, config_name)
    except Exception as exc:
        reason = str(exc) if isinstance(exc, DeployFailed) else f"{type(exc).__name__}: {exc}"
        LOG.warning("endpoint %s: %s", record.endpoint_name, reason)
        record.failure_reason = reason[:1024]
        record.endpoint_status = "InService" if update and live(*key) else "Failed"
        record.last_modified_time = now()
        return
    with _LOCK:
        old = _LIVE.get(key)
        _LIVE[key] = fresh
    if old is not None:
        old.stop()
    record.endpoint_config_name = config_name
    record.production_variants = [
        {
            "VariantName": variant.name,
            "CurrentWeight": variant.weight,
            "DesiredWeight": variant.weight,
            "CurrentInstanceCount": 1,
            "DesiredInstanceCount": 1,
        }
        for variant in fresh.variants
    ]
    record.failure_reason = None
    record.endpoint_status = "InService"
    record.last_modified_time = now()


def undeploy(account: str, region: str, name: str) -> None:
    with _LOCK:
        endpoint = _LIVE.pop((account, region, name), None)
    if endpoint is not None:
        endpoint.stop()
        shutil.rmtree(settings.state_dir() / "sagemaker" / "endpoints" / name, ignore_errors=True)


def stop_all() -> None:
    with _LOCK:
        endpoints = list(_LIVE.values())
        _LIVE.clear()
    for endpoint in endpoints:
        endpoint.stop()


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: str
    variant: str


def invoke(
    endpoint: LiveEndpoint,
    body: bytes,
    content_type: str,
    accept: str | None,
    target_variant: str | None,
) -> Answer:
    variant = endpoint.pick(target_variant)
    request = urllib.request.Request(
        f"http://127.0.0.1:{variant.port}/invocations",
        data=body,
        method="POST",
        headers={"Content-Type": content_type, "Accept": accept or "*/*"},
    )
    try:
        with urllib.request.urlopen(request, timeout=INVOKE_TIMEOUT_SECONDS) as response:  # noqa: S310
            return Answer(
                response.status,
                response.read(),
                response.headers.get("Content-Type", "application/json"),
                variant.name,
            )
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.read(), "text/plain", variant.name)


def capture(
    account: str,
    region: str,
    endpoint_name: str,
    endpoint: LiveEndpoint,
    answer: Answer,
    request_body: bytes,
    content_type: str,
) -> None:
    """Data capture: a JSON line per request, <prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/."""
    config = endpoint.data_capture
    if not config.get("EnableCapture"):
        return
    modes = {option.get("CaptureMode") for option in config.get("CaptureOptions") or []}
    at = datetime.now(UTC)

    def encoded(data: bytes, observed: str) -> dict[str, str]:
        try:
            text = data.decode()
        except UnicodeDecodeError:
            return {
                "observedContentType": observed,
                "data": base64.b64encode(data).decode(),
                "encoding": "BASE64",
            }
        kind = "CSV" if observed.startswith("text/csv") else "JSON"
        return {"observedContentType": observed, "data": text, "encoding": kind}

    capture_data: dict[str, Any] = {}
    if "Input" in modes or not modes:
        capture_data["endpointInput"] = {"mode": "INPUT", **encoded(request_body, content_type)}
    if "Output" in modes or not modes:
        capture_data["endpointOutput"] = {
            "mode": "OUTPUT",
            **encoded(answer.body, answer.content_type),
        }
    record = {
        "captureData": capture_data,
        "eventMetadata": {
            "eventId": str(uuid.uuid4()),
            "inferenceTime": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        "eventVersion": "0",
    }
    destination = config["DestinationS3Uri"].rstrip("/")
    file_name = f"{at:%M-%S-%f}-{uuid.uuid4().hex[:8]}.jsonl"
    key = f"{endpoint_name}/{answer.variant}/{at:%Y/%m/%d/%H}/{file_name}"
    bucket, prefix = s3io.split_uri(f"{destination}/{key}")
    try:
        _clients(account, region).s3.put_object(
            Bucket=bucket, Key=prefix, Body=(json.dumps(record) + "\n").encode()
        )
    except Exception:
        LOG.warning("data capture for %s failed", endpoint_name, exc_info=True)
