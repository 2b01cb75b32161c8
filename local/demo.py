"""``make demo``: the real product on the local cloud, through AWS APIs only.

1. generate a churn export (4,000 rows, a few malformed) and upload it to the raw bucket;
2. follow what happens: ingestion curates it, its ``DatasetCurated`` event starts a training
   run, and the run goes through its states (each printed with its duration when it ends);
3. invoke the churn endpoint with rows of the upload as they are, and print the predictions;
   then call the prediction API with the same rows (curl, API key) and score a file in bulk;
4. the verdict, the metrics, the report (also copied to ``.demo/``) and the time from
   upload to serving, and ``make local-up`` + ``make local-deploy`` as ``make`` measured them;
5. upload a second, larger export: its run trains a better model, which rolls out through the
   canary (blue/green, a share of the traffic first, then all, baking, the rollback alarms
   watching) while the demo calls the endpoint and counts which model answered in each phase;
6. end with the feedback loop: drifted records through the API, the drift check (PSI per
   feature), the drift alarm, and the retraining run it starts (trigger ``drift``): skipped when
   nothing is new since the serving model, or trained when new data arrived.

Needs ``make local-up`` and ``make local-deploy`` first. Dummy credentials, local endpoint only.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from datasets.generate import write_csv  # noqa: E402  (sample data only; no app code)

PORT = os.environ.get("SLUICE_LOCAL_PORT") or "4566"
ENDPOINT = f"http://127.0.0.1:{PORT}"
LOCAL = {"aws_access_key_id": "test", "aws_secret_access_key": "test", "region_name": "us-east-1"}
DATASET, ROWS, TARGET = "churn", 4000, "churned"
#: the second upload: more data, so its model beats the first (by ~0.01-0.015 ROC-AUC here)
SECOND_ROWS = 8000
TIMEOUT = 300


def client(service: str) -> Any:
    return boto3.client(service, endpoint_url=ENDPOINT, **LOCAL)


def outputs() -> dict[str, str]:
    found: dict[str, str] = {}
    for stack in ("sluice-dev-data", "sluice-dev-app"):
        described = client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
        found.update({o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])})
    return found


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def since(start: float) -> str:
    return f"{time.monotonic() - start:6.1f}s"


class Follower:
    """Prints the states of an execution (and of the deploy it starts) as they end."""

    def __init__(self, sfn: Any, start: float) -> None:
        self.sfn, self.start, self.seen = sfn, start, set()
        self.entered: dict[tuple[str, str], Any] = {}
        self.children: list[str] = []

    def poll(self, execution: str, indent: str = "   ") -> None:
        events = self.sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"]
        for event in events:
            key = (execution, event["id"])
            if key in self.seen:
                continue
            self.seen.add(key)
            if "stateEnteredEventDetails" in event:
                self.entered[(execution, event["stateEnteredEventDetails"]["name"])] = event
            elif "stateExitedEventDetails" in event:
                name = event["stateExitedEventDetails"]["name"]
                began = self.entered.pop((execution, name), None)
                seconds = (event["timestamp"] - began["timestamp"]).total_seconds() if began else 0
                print(f"{since(self.start)}  {indent}{name:<34} {seconds:6.2f}s", flush=True)
            elif (
                event["type"] == "TaskSubmitted"
                and event.get("taskSubmittedEventDetails", {}).get("resourceType") == "states"
            ):
                child = json.loads(event["taskSubmittedEventDetails"]["output"])["ExecutionArn"]
                self.children.append(child)


def wait_for_run(sfn: Any, ledger: str, key: str, start: float) -> dict[str, Any]:
    """The ledger item of the run whose triggers include the upload."""
    dynamodb = client("dynamodb")
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        items = dynamodb.query(
            TableName=ledger,
            KeyConditionExpression="dataset = :d",
            ExpressionAttributeValues={":d": {"S": DATASET}},
            ScanIndexForward=False,
            Limit=20,
        )["Items"]
        for item in items:
            if key in json.dumps(item):
                return item
        time.sleep(0.5)
    raise SystemExit(f"no run took the upload after {TIMEOUT}s: see `make runs LOCAL=1`")


def request_body(rows: list[dict[str, str]]) -> bytes:
    """The uploaded rows as they are, less the target (a record in the dataset's own shape)."""
    return json.dumps(
        {"instances": [{k: v for k, v in r.items() if k != TARGET} for r in rows]}
    ).encode()


def main() -> int:
    try:
        out = outputs()
    except Exception as exc:  # any failure here means "not up" or "not deployed"
        print(
            f"the local cloud is not up or the app is not deployed ({exc}); run "
            "`make local-up && make local-deploy` first",
            file=sys.stderr,
        )
        return 2
    s3, sfn = client("s3"), client("stepfunctions")
    work = ROOT / ".demo" / time.strftime("run-%Y%m%dT%H%M%S")
    work.mkdir(parents=True, exist_ok=True)

    step(f"generating {ROWS:,} churn rows (1% malformed) and uploading them to the raw bucket")
    path = work / "churn.csv"
    write_csv(DATASET, ROWS, path, seed=int(time.time()) % 10_000, dirty=0.01)
    key = f"{DATASET}/demo/{time.strftime('%Y%m%dT%H%M%S')}.csv"
    start = time.monotonic()
    version = s3.put_object(Bucket=out["RawBucket"], Key=key, Body=path.read_bytes())["VersionId"]
    print(f"s3://{out['RawBucket']}/{key} (version {version})")

    step("ingestion curates it; its DatasetCurated event starts a training run")
    item = wait_for_run(sfn, out["RunLedgerTableName"], key, start)
    execution = item["execution"]["S"]
    print(f"{since(start)}  run {item['run_id']['S']} ({execution.rsplit(':', 1)[-1]})")

    step("the run, state by state (seconds since the upload, then the state's own duration)")
    follower = Follower(sfn, start)
    served_at = None
    while True:
        follower.poll(execution)
        for child in follower.children:
            follower.poll(child, indent="   deploy: ")
        status = sfn.describe_execution(executionArn=execution)["status"]
        if served_at is None and follower.children:
            child = sfn.describe_execution(executionArn=follower.children[-1])
            if child["status"] == "SUCCEEDED":
                served_at = time.monotonic() - start
        if status != "RUNNING":
            break
        time.sleep(0.5)
    for child in follower.children:
        follower.poll(child, indent="   deploy: ")
    follower.poll(execution)

    from_ledger = client("dynamodb").get_item(
        TableName=out["RunLedgerTableName"],
        Key={"dataset": {"S": DATASET}, "run_id": item["run_id"]},
    )["Item"]
    outcome = from_ledger.get("outcome", {}).get("S", status)
    print(f"\nrun ended: {status} ({outcome})")
    if "error" in from_ledger:
        print(json.dumps(from_ledger["error"], indent=1))
        return 1

    step("the churn endpoint answers for rows of the upload")
    with path.open(newline="") as f:
        rows = [r for r, _ in zip(csv.DictReader(f), range(3), strict=False)]
    runtime = client("sagemaker-runtime")
    try:
        answer = runtime.invoke_endpoint(
            EndpointName=f"sluice-dev-{DATASET}",
            ContentType="application/json",
            Body=request_body(rows),
        )
    except runtime.exceptions.ModelError as exc:
        print(f"the endpoint refused the uploaded rows: {exc}", file=sys.stderr)
        return 1
    print("request: the uploaded rows as they are (minus the target)")
    print(json.dumps(json.loads(answer["Body"].read()), indent=1))
    request = work / "request.json"
    request.write_bytes(request_body(rows))
    if call_api(out, request) != 0 or score_file(out, work) != 0:
        return 1

    step("verdict, metrics, report")
    metrics = from_ledger.get("metrics", {}).get("M", {})
    verdict, reason = (from_ledger.get(k, {}).get("S") for k in ("verdict", "reason"))
    print(f"verdict: {verdict} - {reason}")
    name = metrics.get("name", {}).get("S", "metric")
    for who in ("challenger", "champion"):
        value = metrics.get(who, {}).get("N")
        print(f"{name} of the {who}: {value if value is not None else 'n/a (none)'}")
    report = from_ledger.get("report", {}).get("S")
    if report:
        bucket, report_key = report.removeprefix("s3://").split("/", 1)
        s3.download_file(bucket, report_key, str(work / "report.html"))
        print(f"report: {report}\n        {work / 'report.html'}")
    durations = {k: float(v["N"]) for k, v in from_ledger.get("durations", {}).get("M", {}).items()}
    print("longest states: " + ", ".join(
        f"{k} {v:.1f}s" for k, v in sorted(durations.items(), key=lambda kv: -kv[1])[:4]
    ))  # fmt: skip
    if served_at is not None:
        print(f"\nupload -> serving: {served_at:.1f} s ({ROWS:,} rows; target 45 s)")
    timings = ROOT / ".local" / "timings.json"
    if timings.is_file():
        spent = json.loads(timings.read_text())
        total = sum(spent.values())
        print(
            f"make local-up + make local-deploy: {total:.1f} s "
            + " + ".join(f"{v:.1f} s {k}" for k, v in spent.items())
            + " (target 60 s)"
        )
    return second_upload(out, work, request_body(rows)) or drift_retraining(out, work)


def _scale() -> float:
    try:
        settings = f"{ENDPOINT}/_sluice/settings"  # the local endpoint, http
        with urllib.request.urlopen(settings, timeout=5) as response:  # noqa: S310
            return float(json.loads(response.read())["time_scale"])
    except (OSError, ValueError, KeyError):
        return 1.0


class CanaryWatch:
    """Calls the endpoint while a deployment runs and counts which model answered, per phase
    (what DescribeEndpoint's PendingDeploymentSummary says), printing each phase as it begins."""

    def __init__(self, body: bytes, start: float) -> None:
        self.sagemaker, self.runtime = client("sagemaker"), client("sagemaker-runtime")
        self.body, self.start = body, start
        self.phase = ""
        self.answers: dict[str, dict[str, int]] = {}

    def tick(self) -> bool:
        """One look and (during a deployment) one request; True while a deployment runs."""
        try:
            described = self.sagemaker.describe_endpoint(EndpointName=f"sluice-dev-{DATASET}")
        except self.sagemaker.exceptions.ClientError:
            return False
        pending = (described.get("PendingDeploymentSummary") or {}).get("ProductionVariants")
        status = described["EndpointStatus"]
        if pending:
            latest = (pending[0].get("VariantStatus") or [{}])[-1]
            phase = latest.get("StatusMessage") or latest.get("Status", status)
        elif status in ("Updating", "RollingBack"):
            phase = status
        else:
            return False
        if phase != self.phase:
            print(f"{since(self.start)}     endpoint: {status} - {phase}", flush=True)
            self.phase = phase
        try:
            answer = self.runtime.invoke_endpoint(
                EndpointName=f"sluice-dev-{DATASET}", ContentType="application/json", Body=self.body
            )
            version = f"version {json.loads(answer['Body'].read())['model_version']}"
        except self.runtime.exceptions.ModelError:
            version = "a model error"
        counts = self.answers.setdefault(phase, {})
        counts[version] = counts.get(version, 0) + 1
        return True

    def report(self) -> None:
        for phase, counts in self.answers.items():
            said = ", ".join(f"{who} answered {n}" for who, n in sorted(counts.items()))
            print(f"   {phase}: {said}")


def second_upload(out: dict[str, str], work: Path, body: bytes) -> int:
    """A second, larger upload; its better model rolls out through the canary."""
    s3, sfn = client("s3"), client("stepfunctions")
    step(
        f"a second upload ({SECOND_ROWS:,} more rows): its model rolls out through the canary "
        f"(waits run {_scale():g} times faster than on AWS)"
    )
    path = work / "churn-2.csv"
    write_csv(DATASET, SECOND_ROWS, path, seed=int(time.time() + 1) % 10_000, dirty=0.01)
    key = f"{DATASET}/demo/{time.strftime('%Y%m%dT%H%M%S')}-2.csv"
    start = time.monotonic()
    s3.put_object(Bucket=out["RawBucket"], Key=key, Body=path.read_bytes())
    item = wait_for_run(sfn, out["RunLedgerTableName"], key, start)
    execution = item["execution"]["S"]
    print(f"{since(start)}  run {item['run_id']['S']}")
    follower, watch = Follower(sfn, start), CanaryWatch(body, start)
    served_at = None
    while True:
        follower.poll(execution)
        for child in follower.children:
            follower.poll(child, indent="   deploy: ")
        deploying = watch.tick()
        status = sfn.describe_execution(executionArn=execution)["status"]
        if status != "RUNNING":
            break
        if follower.children and served_at is None:
            child = sfn.describe_execution(executionArn=follower.children[-1])
            served_at = time.monotonic() - start if child["status"] == "SUCCEEDED" else None
        if not deploying:
            time.sleep(0.3)
    for child in follower.children:
        follower.poll(child, indent="   deploy: ")
    follower.poll(execution)
    run = client("dynamodb").get_item(
        TableName=out["RunLedgerTableName"],
        Key={"dataset": {"S": DATASET}, "run_id": item["run_id"]},
    )["Item"]
    outcome = run.get("outcome", {}).get("S", status)
    print(f"\nrun ended: {status} ({outcome}) - {run.get('reason', {}).get('S', '')}")
    if watch.answers:
        print("who answered the demo's requests while the endpoint was updating:")
        watch.report()
    deployment = run.get("deployment", {}).get("M", {})
    if outcome == "rolled_back":
        print(f"rolled back: {deployment.get('reason', {}).get('S', '')}")
    elif outcome == "deployed":
        version = run["model_package"]["M"]["version"]["N"]
        took = f"{served_at:.1f} s" if served_at else "n/a"
        print(f"version {version} serves: second upload -> new model serving through the canary "
              f"{took}")  # fmt: skip
    return 0 if outcome in ("deployed", "rejected", "rolled_back") else 1


def call_api(out: dict[str, str], request: Path) -> int:
    """The prediction API through API Gateway, as a client calls it: curl and the API key."""
    key = client("apigateway").get_api_key(apiKey=out["ApiKeyId"], includeValue=True)["value"]
    url = f"{ENDPOINT}/_aws/execute-api/{out['ApiId']}/dev/v1/{DATASET}/predictions"
    step("calling the prediction API with curl (the same rows)")
    print(f"curl -s -X POST {url} -H 'x-api-key: <ApiKeyId's value>' "
          f"-H 'Content-Type: application/json' -d @{request.name}")  # fmt: skip
    answer = subprocess.run(
        ["curl", "-s", "-w", "\nHTTP %{http_code}\n", "-X", "POST", url, "-H",
         f"x-api-key: {key}", "-H", "Content-Type: application/json", "-d", f"@{request}"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    print(answer.stdout.strip())
    return 0 if answer.stdout.strip().endswith("HTTP 200") else 1


def score_file(out: dict[str, str], work: Path) -> int:
    """Batch scoring: a file under churn/_score/ -> churn/predictions/<name>/ (or error.json)."""
    step("scoring 1,000 rows in bulk: s3://<raw>/churn/_score/demo.csv")
    rows = work / "to-score.csv"
    write_csv(DATASET, 1_000, rows, seed=7)
    s3 = client("s3")
    s3.upload_file(str(rows), out["RawBucket"], f"{DATASET}/_score/demo.csv")
    prefix = f"{DATASET}/predictions/demo.csv/"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        listed = s3.list_objects_v2(Bucket=out["ArtifactsBucket"], Prefix=prefix)
        names = {o["Key"].removeprefix(prefix) for o in listed.get("Contents", [])}
        for name in ("predictions.csv", "error.json"):
            if name in names and (name == "error.json" or "manifest.json" in names):
                body = s3.get_object(Bucket=out["ArtifactsBucket"], Key=prefix + name)
                text = body["Body"].read().decode()
                print(f"s3://{out['ArtifactsBucket']}/{prefix}{name}:")
                print("\n".join(text.splitlines()[:6]))
                return 0  # an error report is an outcome too (the file could not be scored)
        time.sleep(2)
    print("no predictions after 10 minutes: see the batch-scoring state machine's executions")
    return 1


def drift_retraining(out: dict[str, str], work: Path) -> int:
    """Drifted traffic -> drift function -> drift alarm -> retrain function -> a run (trigger
    drift), followed to its end."""
    step("drift: 400 churn records shifted by 2 standard deviations, through the API")
    drifted = work / "drifted.csv"
    write_csv(DATASET, 400, drifted, seed=int(time.time()) % 10_000 + 1, drift=2.0)
    with drifted.open(newline="") as f:
        rows = list(csv.DictReader(f))
    key = client("apigateway").get_api_key(apiKey=out["ApiKeyId"], includeValue=True)["value"]
    url = f"{ENDPOINT}/_aws/execute-api/{out['ApiId']}/dev/v1/{DATASET}/predictions"
    for first in range(0, len(rows), 100):
        request = urllib.request.Request(  # noqa: S310  (the local endpoint, http)
            url, data=request_body(rows[first : first + 100]), method="POST",
            headers={"x-api-key": key, "Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310
            assert answer.status == 200
    start = time.monotonic()
    print("captured by the predict function (Firehose, 15 s buffer in dev) ...")
    lambda_, window = client("lambda"), None
    while time.monotonic() - start < 120:
        time.sleep(5)
        answer = lambda_.invoke(
            FunctionName=out["DriftFunctionName"],
            Payload=json.dumps({"dataset": DATASET}).encode(),
        )
        (window,) = json.loads(answer["Payload"].read())["windows"]
        if window["status"] == "computed":
            break
        print(f"{since(start)}  drift check: {window['reason']}")
    if window is None or window["status"] != "computed":
        print("the drift window never filled: see the drift function's log")
        return 1
    print(f"{since(start)}  drift check on {window['samples']} captured records (PSI, > 0.25 is "
          "significant):")  # fmt: skip
    for feature, psi in list(window["features"].items())[:6]:
        print(f"           {feature:<22} {psi:7.3f}")
    alarm = f"sluice-dev-{DATASET}-drift"
    cloudwatch, sfn = client("cloudwatch"), client("stepfunctions")
    ledger = out["RunLedgerTableName"]
    before = {i["run_id"]["S"] for i in _runs(ledger)}
    while time.monotonic() - start < 180:
        state = cloudwatch.describe_alarms(AlarmNames=[alarm])["MetricAlarms"][0]
        if state["StateValue"] == "ALARM" or any(
            i["run_id"]["S"] not in before for i in _runs(ledger)
        ):
            break
        time.sleep(1)
    print(f"{since(start)}  alarm {alarm}: ALARM -> SNS -> retrain function")
    run = None
    while time.monotonic() - start < 180 and run is None:
        run = next((i for i in _runs(ledger) if i["run_id"]["S"] not in before
                    and '"drift"' in json.dumps(i.get("triggers"))), None)  # fmt: skip
        time.sleep(1)
    if run is None:
        item = (
            client("dynamodb")
            .get_item(TableName=out["RetrainCooldownTableName"], Key={"dataset": {"S": DATASET}})
            .get("Item")
        )
        why = (
            f"the dataset is cooling down since a run an alarm started ({json.dumps(item)})"
            if item
            else "see the retrain function's log"
        )
        print(f"no retraining run: {why}")
        return 0 if item else 1
    execution = run["execution"]["S"]
    print(f"{since(start)}  run {run['run_id']['S']} started, trigger drift")
    while sfn.describe_execution(executionArn=execution)["status"] == "RUNNING":
        time.sleep(1)
    ended = client("dynamodb").get_item(
        TableName=ledger, Key={"dataset": {"S": DATASET}, "run_id": run["run_id"]}
    )["Item"]
    outcome = ended.get("outcome", {}).get("S", "?")
    reason = ended.get("reason", {}).get("S", "")
    print(f"{since(start)}  run ended: {outcome}" + (f" - {reason}" if reason else ""))
    return 0 if outcome != "failed" else 1


def _runs(ledger: str) -> list[dict[str, Any]]:
    return list(
        client("dynamodb").query(
            TableName=ledger,
            KeyConditionExpression="dataset = :d",
            ExpressionAttributeValues={":d": {"S": DATASET}},
            ScanIndexForward=False,
            Limit=20,
        )["Items"]
    )


if __name__ == "__main__":
    raise SystemExit(main())
