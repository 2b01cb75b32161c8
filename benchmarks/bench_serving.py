"""The prediction path on the local cloud: the predict function's own time, cold start, load.

Needs the local cloud (``make local-up``; started here, and stopped again, when it is not up),
the dev stage deployed on it (``make local-deploy``, run here) and the churn endpoint (a model
trained here on a small generated sample, as the serving integration tests do). Then, side by
side in one run:

- **overhead**: the function invoked warm with an API Gateway event of 10 instances. Its own
  time per call is the REPORT line's Duration (the handler, Powertools and all) minus the
  endpoint call it logs (``endpoint_ms``); a direct ``InvokeEndpoint`` with the same payload
  from this process is measured alternately for comparison. Limit: median 10 ms (ratio 1.0).
- **cold start**: the Init Duration of a fresh environment plus its first call, against 1.5 s.
- **load** (loopback only): 50 concurrent clients POST 10 instances for 30 s through API
  Gateway. Every request must be answered, 200 or 429 within the usage plan's limits: no 5xx
  (limit 0), and no more 200s than the plan allows (burst + rate x seconds; ratio <= 1.0).
  p50/p99 latency and throughput are printed.
"""

from __future__ import annotations

import base64
import concurrent.futures
import json
import os
import re
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import requests

from infra.config import STAGES

ROOT = Path(__file__).resolve().parent.parent
PORT = int(os.environ.get("SLUICE_LOCAL_PORT") or 4566)
ENDPOINT = f"http://127.0.0.1:{PORT}"
CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
CALLS = 100
INSTANCES = 10
CLIENTS = 50
SECONDS = 30.0
MAX_REQUESTS = 50_000


def _client(service: str) -> Any:
    return boto3.client(service, endpoint_url=ENDPOINT, region_name="us-east-1", **CREDENTIALS)


def _healthy() -> bool:
    try:
        return requests.get(f"{ENDPOINT}/_localstack/health", timeout=2).ok
    except requests.RequestException:
        return False


def _make(*targets: str) -> None:
    env = {**os.environ, "SLUICE_LOCAL_PORT": str(PORT)}
    subprocess.run(["make", *targets], cwd=ROOT, env=env, check=True, timeout=1200,
                   stdout=subprocess.DEVNULL)  # fmt: skip


def _outputs() -> dict[str, str]:
    stacks = _client("cloudformation").describe_stacks()["Stacks"]
    return {o["OutputKey"]: o["OutputValue"] for s in stacks for o in s.get("Outputs", [])}


def _event(records: list[dict[str, Any]], request_id: str) -> dict[str, Any]:
    body = json.dumps({"instances": records})
    headers = {"Content-Type": "application/json", "x-api-key": "bench"}
    return {
        "resource": "/v1/{dataset}/predictions",
        "path": "/v1/churn/predictions",
        "httpMethod": "POST",
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"dataset": "churn"},
        "stageVariables": None,
        "requestContext": {
            "requestId": request_id,
            "resourcePath": "/v1/{dataset}/predictions",
            "httpMethod": "POST",
            "stage": "dev",
            "identity": {"sourceIp": "127.0.0.1"},
        },
        "body": body,
        "isBase64Encoded": False,
    }


def _invoke(function: str, event: dict[str, Any]) -> tuple[float, float, float | None, float]:
    """(Duration, endpoint_ms, Init Duration, capture_ms) of one invocation, from its logs."""
    response = _client("lambda").invoke(
        FunctionName=function, Payload=json.dumps(event), LogType="Tail"
    )
    payload = json.loads(response["Payload"].read())
    assert payload.get("statusCode") == 200, payload
    tail = base64.b64decode(response["LogResult"]).decode()
    duration = float(re.search(r"\tDuration: ([0-9.]+) ms", tail).group(1))  # type: ignore[union-attr]
    init = re.search(r"Init Duration: ([0-9.]+) ms", tail)
    served = next(
        json.loads(line)
        for line in tail.splitlines()
        if line.startswith("{") and '"prediction served"' in line
    )
    return (
        duration,
        float(served["endpoint_ms"]),
        float(init.group(1)) if init else None,
        float(served.get("capture_ms", 0.0)),
    )


def _overhead(function: str, records: list[dict[str, Any]]) -> list[tuple[str, float, float]]:
    runtime = _client("sagemaker-runtime")
    forwarded = json.dumps(
        {"instances": [{k: v for k, v in r.items() if k not in ("customer_id", "email", "phone")}
                       for r in records]}
    )  # fmt: skip
    # a fresh environment first: publish a new configuration so LocalStack starts one
    lam = _client("lambda")
    env = lam.get_function_configuration(FunctionName=function)["Environment"]["Variables"]
    lam.update_function_configuration(
        FunctionName=function, Environment={"Variables": {**env, "BENCH_RUN": uuid.uuid4().hex}}
    )
    lam.get_waiter("function_updated_v2").wait(FunctionName=function)
    duration, _, init, _ = _invoke(function, _event(records, "bench-cold"))
    cold_ms = (init or 0.0) + duration
    for i in range(5):  # warm up
        _invoke(function, _event(records, f"bench-warm-{i}"))
    own, endpoint, direct, captures = [], [], [], []
    for i in range(CALLS):
        duration, endpoint_ms, _, capture_ms = _invoke(function, _event(records, f"bench-{i}"))
        own.append(duration - endpoint_ms)
        endpoint.append(endpoint_ms)
        captures.append(capture_ms)
        started = time.perf_counter()
        runtime.invoke_endpoint(EndpointName="sluice-dev-churn", ContentType="application/json",
                                Body=forwarded)["Body"].read()  # fmt: skip
        direct.append((time.perf_counter() - started) * 1000)
    median = statistics.median(own)
    print(
        f"  predict, {INSTANCES} instances, {CALLS} warm calls: own time median {median:.2f} ms "
        f"(p90 {statistics.quantiles(own, n=10)[-1]:.2f}); its endpoint call median "
        f"{statistics.median(endpoint):.2f} ms; direct InvokeEndpoint median "
        f"{statistics.median(direct):.2f} ms; of the own time, the capture's Firehose put "
        f"median {statistics.median(captures):.2f} ms; cold start {cold_ms:.0f} ms "
        f"(Init Duration {init or 0:.0f} ms)"
    )
    return [
        (f"predict own time per warm call, median {median:.2f} ms / 10 ms", median / 10.0, 1.0),
        (f"predict cold start (init + first call) {cold_ms:.0f} ms / 1500 ms", cold_ms / 1500, 1.0),
    ]


def _load(base: str, key: str, records: list[dict[str, Any]]) -> list[tuple[str, float, float]]:
    body = json.dumps({"instances": records})
    results: list[tuple[int, float]] = []
    lock = threading.Lock()
    deadline = time.monotonic() + SECONDS

    def client() -> None:
        session = requests.Session()
        while time.monotonic() < deadline:
            with lock:
                if len(results) >= MAX_REQUESTS:
                    return
            started = time.perf_counter()
            try:
                status = session.post(
                    f"{base}/v1/churn/predictions",
                    data=body,
                    headers={"x-api-key": key, "Content-Type": "application/json"},
                    timeout=60,
                ).status_code
            except requests.RequestException:
                status = 0  # unanswered
            with lock:
                results.append((status, (time.perf_counter() - started) * 1000))

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
        for future in [pool.submit(client) for _ in range(CLIENTS)]:
            future.result()
    elapsed = time.monotonic() - started
    statuses = [s for s, _ in results]
    ok = statuses.count(200)
    throttled = statuses.count(429)
    errors = sum(1 for s in statuses if s >= 500 or s == 0)
    other = len(statuses) - ok - throttled - errors
    config = STAGES["dev"]
    allowance = config.api_burst_limit + config.api_rate_limit * elapsed
    print(
        f"  load: {CLIENTS} clients, {elapsed:.0f} s, {len(statuses)} requests "
        f"({len(statuses) / elapsed:.1f}/s answered, {ok / elapsed:.1f}/s 200): {ok} x 200, "
        f"{throttled} x 429, {errors} x 5xx/unanswered, {other} other; plan allows "
        f"{allowance:.0f} in that time; latency {_percentiles(results)}; 200s "
        f"{_percentiles([r for r in results if r[0] == 200])}; 429s "
        f"{_percentiles([r for r in results if r[0] == 429])}"
    )
    return [
        (f"load: 5xx or unanswered of {len(statuses)} requests", float(errors + other), 0.0),
        (f"load: 200s {ok} / plan allowance {allowance:.0f}", ok / allowance, 1.0),
    ]


def _percentiles(results: list[tuple[int, float]]) -> str:
    if not results:
        return "none"
    latencies = sorted(ms for _, ms in results)
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    return f"p50 {statistics.median(latencies):.0f} ms / p99 {p99:.0f} ms"


def run() -> list[tuple[str, float, float]]:
    from tests.integration import serving_model

    started_here = not _healthy()
    if started_here:
        _make("local-up")
    try:
        _make("local-deploy")
        outputs = _outputs()
        with tempfile.TemporaryDirectory() as tmp:
            sample = serving_model.make_sample(Path(tmp), rows=2000)
            serving_model.delete_endpoint(_client)
            deployed = serving_model.deploy(_client, outputs["ArtifactsBucket"], sample)
            records = [deployed.record(sample, row) for row in sample.rows[:INSTANCES]]
            key = _client("apigateway").get_api_key(apiKey=outputs["ApiKeyId"],
                                                    includeValue=True)["value"]  # fmt: skip
            base = f"{ENDPOINT}/_aws/execute-api/{outputs['ApiId']}/dev"
            rows = _overhead(outputs["PredictFunctionName"], records)
            time.sleep(2)  # the usage plan's bucket refills
            rows += _load(base, key, records)
            serving_model.delete_endpoint(_client)
        return rows
    finally:
        if started_here:
            _make("local-down")
