"""Endpoints: one long-lived worker process per production variant, serving ``inference.py``.

Create: Creating -> InService (or Failed with the worker's error). Update: a blue/green
deployment (``blue_green.py``): the new config's workers start beside the old ones, traffic
shifts as the ``DeploymentConfig`` says, the old fleet stops after baking or the new one after a
rollback; if the new config cannot start, the endpoint stays on the old one, InService, with
FailureReason set (as on AWS). Delete: stop the workers. Invocations pick a fleet by its share of
the traffic, then a variant by weight, and may be captured to S3.
"""

from __future__ import annotations

import base64
import contextlib
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
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from localstack.aws.connect import connect_to

from sluice_local import faults, settings
from sluice_local.sagemaker import deployment, s3io
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
    #: the endpoint config this worker serves (the fleet it belongs to)
    config_name: str = ""
    #: instances the variant stands for (one worker serves them all); None when serverless
    instances: int | None = 1
    serverless_config: dict[str, Any] | None = None
    #: requests the worker is answering now (a fleet leaving service drains them first)
    in_flight: int = 0
    #: a fault (``EndpointInvocations``): the model answers every request with this error (500)
    failing: str | None = None
    _counter: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @contextlib.contextmanager
    def serving(self) -> Iterator[None]:
        with self._counter:
            self.in_flight += 1
        try:
            yield
        finally:
            with self._counter:
                self.in_flight -= 1

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
    #: during a blue/green update: the new fleet, and the share of requests it answers
    green: LiveEndpoint | None = None
    green_share: float = 0.0

    def pick(self, target_variant: str | None) -> Variant:
        fleet, green = self, self.green
        if green is not None and deployment.to_green(self.green_share, random.random):
            fleet = green
        return fleet.pick_variant(target_variant)

    def pick_variant(self, target_variant: str | None) -> Variant:
        if target_variant:
            for variant in self.variants:
                if variant.name == target_variant:
                    return variant
            raise KeyError(target_variant)
        weights = [max(variant.weight, 0.0) for variant in self.variants]
        if sum(weights) <= 0:
            return self.variants[0]
        return random.choices(self.variants, weights=weights)[0]  # noqa: S311 - traffic split

    def summaries(self) -> list[dict[str, Any]]:
        """``ProductionVariants`` of DescribeEndpoint for this fleet once it serves."""
        summaries: list[dict[str, Any]] = []
        for variant in self.variants:
            summary: dict[str, Any] = {
                "VariantName": variant.name,
                "CurrentWeight": variant.weight,
                "DesiredWeight": variant.weight,
            }
            if variant.serverless_config is not None:
                summary["CurrentServerlessConfig"] = variant.serverless_config
                summary["DesiredServerlessConfig"] = variant.serverless_config
            else:
                summary["CurrentInstanceCount"] = variant.instances
                summary["DesiredInstanceCount"] = variant.instances
            summaries.append(summary)
        return summaries

    def stop(self, *, drain: bool = False, replaced: bool = False) -> None:
        """Stop the workers; ``drain``: first let requests already routed here finish (this
        fleet no longer gets new ones), as a fleet leaves service on AWS. ``replaced``: the new
        fleet serves the endpoint now (``replace``); it keeps running, and requests that still
        reach this fleet go on to it."""
        green = self.green
        if not replaced:
            self.green, self.green_share = None, 0.0
            if green is not None:
                green.stop(drain=drain)
        if drain:
            time.sleep(0.05)  # a request that picked this fleet just before the switch
            deadline = time.monotonic() + INVOKE_TIMEOUT_SECONDS
            while any(v.in_flight for v in self.variants) and time.monotonic() < deadline:
                time.sleep(0.02)
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
    fault = faults.take("sagemaker", "EndpointStart", endpoint)
    if fault is not None:
        raise DeployFailed(
            f"The primary container for production variant {variant['VariantName']} did not "
            f"pass the ping health check. {fault.message}"
        )
    failing = faults.take("sagemaker", "EndpointInvocations", endpoint)
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
    serverless = variant.get("ServerlessConfig")
    return Variant(
        name=variant["VariantName"],
        weight=float(variant.get("InitialVariantWeight", 1.0)),
        model_name=variant["ModelName"],
        process=process,
        port=int(ready.read_text()),
        log_path=log_path,
        instances=None if serverless else int(variant.get("InitialInstanceCount") or 1),
        serverless_config=dict(serverless) if serverless else None,
        failing=failing.message if failing is not None else None,
    )


def _error_lines(log_path: Path) -> str:
    text = log_path.read_text(encoding="utf-8", errors="replace") if log_path.exists() else ""
    lines = [line for line in text.splitlines() if line.strip()]
    return " ".join(lines[-1:])[:800]


def start_fleet(
    account: str,
    region: str,
    endpoint: str,
    config_name: str,
    overrides: dict[str, dict[str, Any]] | None = None,
) -> LiveEndpoint:
    """Start the workers of ``config_name``; ``overrides`` replace a variant's config fields
    (``InitialInstanceCount``, ``InitialVariantWeight``: variant properties an update retains)."""
    config = _clients(account, region).sagemaker.describe_endpoint_config(
        EndpointConfigName=config_name
    )
    root = settings.state_dir() / "sagemaker" / "endpoints" / endpoint / uuid.uuid4().hex[:8]
    started: list[Variant] = []
    try:
        for configured in config["ProductionVariants"]:
            variant = {**configured, **(overrides or {}).get(configured["VariantName"], {})}
            workdir = root / variant["VariantName"]
            workdir.mkdir(parents=True)
            started.append(_start_variant(account, region, endpoint, variant, workdir))
            started[-1].config_name = config_name
    except Exception:
        for variant in started:
            variant.stop()
        raise
    return LiveEndpoint(config_name, started, config.get("DataCaptureConfig") or {})


def failure_reason(exc: Exception) -> str:
    return (str(exc) if isinstance(exc, DeployFailed) else f"{type(exc).__name__}: {exc}")[:1024]


def deploy(record: Any, account: str, region: str, config_name: str) -> None:
    """Run in a thread: bring a new endpoint ``record`` (moto's FakeEndpoint) InService."""
    key = (account, region, record.endpoint_name)
    try:
        fresh = start_fleet(account, region, record.endpoint_name, config_name)
    except Exception as exc:
        LOG.warning("endpoint %s: %s", record.endpoint_name, failure_reason(exc))
        record.failure_reason = failure_reason(exc)
        record.endpoint_status = "Failed"
        record.last_modified_time = now()
        return
    with _LOCK:
        old = _LIVE.get(key)
        _LIVE[key] = fresh
    if old is not None:
        old.stop()
    serve(record, fresh)


def serve(record: Any, fleet: LiveEndpoint) -> None:
    """Describe ``fleet`` as the endpoint's current one, InService."""
    record.endpoint_config_name = fleet.config_name
    record.production_variants = fleet.summaries()
    record.failure_reason = None
    record.endpoint_status = "InService"
    record.last_modified_time = now()


def replace(account: str, region: str, name: str, old: LiveEndpoint, new: LiveEndpoint) -> bool:
    """Make ``new`` the endpoint's fleet if ``old`` still is (False: deleted meanwhile)."""
    with _LOCK:
        if _LIVE.get((account, region, name)) is not old:
            return False
        _LIVE[(account, region, name)] = new
        # a request that found the old fleet just before the swap picks its fleet after it:
        # all of them go to the new one, as all traffic already did
        old.green, old.green_share = new, 1.0
        return True


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


#: the one "instance" behind a local variant (names its log stream as AWS does: <variant>/<id>)
INSTANCE_ID = "i-0000000000local"


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: str
    variant: str
    #: time the container took to answer (seconds), for ModelLatency
    model_seconds: float | None = None
    #: the variant's worker that answered (fleet, instances) for the endpoint metrics
    served_by: Variant | None = None


def invoke(
    endpoint: LiveEndpoint,
    body: bytes,
    content_type: str,
    accept: str | None,
    target_variant: str | None,
) -> Answer:
    variant = endpoint.pick(target_variant)
    with variant.serving():
        return _invoke(variant, body, content_type, accept)


def _invoke(variant: Variant, body: bytes, content_type: str, accept: str | None) -> Answer:
    started = time.perf_counter()
    if variant.failing is not None:  # the model's handler raises: the container answers 500
        answer = Answer(500, f"ModelError: {variant.failing}".encode(), "text/plain", variant.name)
        answer.model_seconds, answer.served_by = time.perf_counter() - started, variant
        return answer
    request = urllib.request.Request(
        f"http://127.0.0.1:{variant.port}/invocations",
        data=body,
        method="POST",
        headers={"Content-Type": content_type, "Accept": accept or "*/*"},
    )
    try:
        with urllib.request.urlopen(request, timeout=INVOKE_TIMEOUT_SECONDS) as response:  # noqa: S310
            answer = Answer(
                response.status,
                response.read(),
                response.headers.get("Content-Type", "application/json"),
                variant.name,
            )
    except urllib.error.HTTPError as error:  # the container's 4xx/5xx, body and type as sent
        content_type = error.headers.get("Content-Type", "text/plain")
        answer = Answer(error.code, error.read(), content_type, variant.name)
    answer.model_seconds, answer.served_by = time.perf_counter() - started, variant
    return answer


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
