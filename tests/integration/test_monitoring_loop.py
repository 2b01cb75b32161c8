"""The feedback loop on the local cloud, as one story on the churn dataset (in file order):

a model trained by the pipeline serves churn → a window with too few captured records is
skipped, and says so → drifted traffic through the API → the drift function publishes PSI per
feature and the largest → the drift alarm (evaluated at the local time scale) → SNS → the
retrain function starts exactly one run, trigger ``drift``, which ends at once as ``skipped``
(nothing new since the serving model) → a second drift alarm within the cool-down starts none →
feedback labels joined with the captures (unmatched ones counted and reported), the labelled
records curated as data of origin ``feedback`` → model quality published, below the spec's
threshold → the quality alarm starts a run, trigger ``quality``, that trains on the new data.

The app is deployed with the test monitoring settings of ``conftest.MONITORING`` (one-minute
cool-down, small windows and minimum samples).
"""

from __future__ import annotations

import csv
import io
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from datasets import names
from datasets.generate import write_csv
from tests.integration import serving_model
from tests.integration.conftest import MONITORING
from tests.integration.helpers import ENDPOINT, wait_for
from tests.integration.pipeline_helpers import Pipeline, model_request

pytestmark = pytest.mark.integration

DATASET = "churn"
PREFIX = "sluice-dev"
#: drifted requests: rows generated with ``--drift`` (standard deviations), in requests of
DRIFT = 2.0
DRIFTED_ROWS = 240
PER_REQUEST = 60


@dataclass
class Story:
    """What the steps of the story hand on to each other."""

    pipeline: Pipeline
    api_base: str
    api_key: str
    #: the executions of runs before the story's alarms
    known: set[str] = field(default_factory=set)
    drifted_ids: list[str] = field(default_factory=list)
    drift_execution: str = ""
    drift_run_started: float = 0.0


@pytest.fixture(scope="module")
def story(
    aws: Callable[[str], Any], app_outputs: dict[str, dict[str, str]], tmp_path_factory: Any
) -> Story:
    """Churn served by a model the pipeline trained on the dataset's current inputs."""
    outputs = {**app_outputs["sluice-dev-data"], **app_outputs["sluice-dev-app"]}
    pipeline = Pipeline(aws, outputs)
    # the runs earlier tests' uploads started end first (ours would queue behind them)
    wait_for(
        lambda: not any(e["status"] == "RUNNING" for e in pipeline.executions()),
        timeout=300,
        interval=2,
        what="the training runs of earlier tests to end",
    )
    # no endpoint left by other tests (theirs are not the pipeline's): the run deploys its own
    serving_model.delete_endpoint(aws)
    pipeline.seed_curated(DATASET, 1500, 71, tmp_path_factory.mktemp("monitoring"))
    described, run = pipeline.run(DATASET)
    assert described["status"] == "SUCCEEDED", run.get("error")
    assert run["outcome"] == "deployed", run
    key = aws("apigateway").get_api_key(apiKey=outputs["ApiKeyId"], includeValue=True)["value"]
    base = f"{ENDPOINT}/_aws/execute-api/{outputs['ApiId']}/dev"
    known = {r["execution"] for r in pipeline.ledger.runs(DATASET, limit=1000)}
    return Story(pipeline, base, key, known)


def _invoke(aws: Callable[[str], Any], function: str, event: dict[str, Any]) -> dict[str, Any]:
    answer = aws("lambda").invoke(FunctionName=function, Payload=json.dumps(event).encode())
    body = json.loads(answer["Payload"].read())
    assert "FunctionError" not in answer, body
    return dict(body)


def _drift(story: Story, **event: Any) -> dict[str, Any]:
    function = story.pipeline.outputs["DriftFunctionName"]
    (window,) = _invoke(story.pipeline.aws, function, {"dataset": DATASET, **event})["windows"]
    return dict(window)


def _alarms_raised(aws: Callable[[str], Any], alarm: str) -> int:
    """How many times an alarm went to ALARM (its history)."""
    history = aws("cloudwatch").describe_alarm_history(
        AlarmName=alarm, HistoryItemType="StateUpdate", MaxRecords=100
    )["AlarmHistoryItems"]
    return sum(
        json.loads(item["HistoryData"])["newState"]["stateValue"] == "ALARM" for item in history
    )


def _runs_with(story: Story, trigger: str) -> list[dict[str, Any]]:
    """The dataset's runs started since the story began with a trigger of this type."""
    return [
        run
        for run in story.pipeline.ledger.runs(DATASET, limit=100)
        if run.get("execution") not in story.known
        and any(t.get("type") == trigger for t in run.get("triggers") or [])
    ]


# ---------------------------------------------------------------- drift


def test_a_window_below_the_minimum_sample_is_skipped_and_says_so(story: Story) -> None:
    # the last minute: nothing was predicted while the model trained
    window = _drift(story, window_minutes=1)
    assert window["status"] == "skipped", window
    assert f"fewer than the {MONITORING['drift_min_samples']}" in window["reason"]
    assert "no drift published" in window["reason"]


def test_drifted_traffic_alarms_and_starts_one_retraining_run_that_is_skipped(
    story: Story, tmp_path: Path
) -> None:
    aws = story.pipeline.aws
    alarm = names.drift_alarm_name(PREFIX, DATASET)
    raised = _alarms_raised(aws, alarm)
    # Given drifted churn records scored through the prediction API (and so captured)
    drifted = tmp_path / "drifted.csv"
    write_csv(DATASET, DRIFTED_ROWS, drifted, seed=73, drift=DRIFT)
    with drifted.open(newline="") as f:
        rows = list(csv.DictReader(f))
    tag = uuid.uuid4().hex[:6]  # ids of this story only (generated ids repeat across files)
    for n, row in enumerate(rows):
        row["customer_id"] = f"M{tag}-{n}"
    story.drifted_ids = [row["customer_id"] for row in rows]
    for start in range(0, len(rows), PER_REQUEST):
        answer = requests.post(
            f"{story.api_base}/v1/{DATASET}/predictions",
            json=model_request(DATASET, rows[start : start + PER_REQUEST]),
            headers={"x-api-key": story.api_key},
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
    # When the drift function checks the window, once the capture stream delivered them
    ids = set(story.drifted_ids)
    wait_for(
        lambda: (
            len(_captured_scores(aws, story.pipeline.outputs["ArtifactsBucket"], ids)) == len(ids)
        ),
        timeout=90,
        interval=3,
        what="the drifted records captured",
    )
    window = _drift(story)
    assert window["status"] == "computed", window
    # Then PSI per feature and the largest are published, far above the threshold
    assert window["max_psi"] >= 0.25, window
    assert window["samples"] >= MONITORING["drift_min_samples"], window
    assert len(window["features"]) > 1, window
    published = aws("cloudwatch").list_metrics(
        Namespace=names.METRICS_NAMESPACE, MetricName=names.FEATURE_DRIFT_METRIC
    )["Metrics"]
    features = {d["Value"] for m in published for d in m["Dimensions"] if d["Name"] == "Feature"}
    assert set(window["features"]) <= features
    # and the drift alarm goes to ALARM
    wait_for(
        lambda: _alarms_raised(aws, alarm) > raised,
        timeout=30,
        interval=1,
        what="the drift alarm",
    )
    # and exactly one run starts, trigger drift, ending at once as skipped: nothing new
    (run,) = wait_for(
        lambda: _runs_with(story, "drift"), timeout=60, interval=1, what="the drift run"
    )
    story.drift_execution, story.drift_run_started = run["execution"], time.time()
    execution = story.pipeline.wait(run["execution"], timeout=120)
    run = story.pipeline.run_of(run["execution"])
    assert execution["status"] == "SUCCEEDED", run
    assert run["outcome"] == "skipped", run
    assert run["reason"].startswith("drift detected, no new labelled data since the serving model")
    (trigger,) = run["triggers"]
    assert trigger["alarm"] == alarm


def test_a_second_drift_alarm_within_the_cool_down_starts_no_run(story: Story) -> None:
    aws = story.pipeline.aws
    assert story.drift_execution, "needs the drift run of the test before"
    alarm = names.drift_alarm_name(PREFIX, DATASET)
    # (the alarm is back to OK once a period passed without drift data)
    cloudwatch = aws("cloudwatch")
    wait_for(
        lambda: (
            cloudwatch.describe_alarms(AlarmNames=[alarm])["MetricAlarms"][0]["StateValue"] == "OK"
        ),
        timeout=30,
        interval=1,
        what="the drift alarm back to OK",
    )
    raised = _alarms_raised(aws, alarm)
    # When the next window drifts too (within the one-minute cool-down)
    assert _drift(story)["status"] == "computed"
    wait_for(
        lambda: _alarms_raised(aws, alarm) > raised,
        timeout=30,
        interval=1,
        what="the drift alarm again",
    )
    # Then the retrain function holds it back: still one drift run
    time.sleep(5)
    assert time.time() - story.drift_run_started < MONITORING["retrain_cooldown_minutes"] * 60
    assert [r["execution"] for r in _runs_with(story, "drift")] == [story.drift_execution]


# ---------------------------------------------------------------- feedback and quality


def _report(aws: Callable[[str], Any], bucket: str, name: str) -> dict[str, Any] | None:
    s3 = aws("s3")
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=names.feedback_reports_prefix(DATASET))
    for item in listed.get("Contents", []):
        if name in item["Key"]:
            return dict(json.loads(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()))
    return None


def _captured_scores(aws: Callable[[str], Any], bucket: str, ids: set[str]) -> dict[str, float]:
    """customer id → P(churn) of its captured prediction."""
    s3, scores = aws("s3"), {}
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=names.capture_prefix(DATASET)
    )
    for page in pages:
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            for line in body.decode().splitlines():
                if line.strip():
                    capture = json.loads(line)
                    record_id = capture["record"].get("customer_id")
                    if record_id in ids:
                        scores[record_id] = float(capture["prediction"]["probability"])
    return scores


def test_feedback_labels_are_joined_unmatched_counted_and_labelled_records_curated(
    story: Story,
) -> None:
    aws, outputs = story.pipeline.aws, story.pipeline.outputs
    scores = _captured_scores(aws, outputs["ArtifactsBucket"], set(story.drifted_ids))
    assert len(scores) >= MONITORING["quality_min_samples"], len(scores)
    # Given labels that contradict the model (a model gone bad), and three that match nothing
    median = sorted(scores.values())[len(scores) // 2]
    labels = io.StringIO()
    writer = csv.writer(labels)
    writer.writerow(["customer_id", "churned"])
    for record_id, score in scores.items():
        writer.writerow([record_id, 1 if score < median else 0])
    for n in range(3):
        writer.writerow([f"nobody-{n}", 1])
    name = f"it-labels-{uuid.uuid4().hex[:8]}.csv"
    # When they are uploaded under <raw>/<dataset>/_feedback/
    aws("s3").put_object(
        Bucket=outputs["RawBucket"],
        Key=f"{names.feedback_prefix(DATASET)}{name}",
        Body=labels.getvalue().encode(),
    )
    # Then the feedback function joins them: matched, and the unmatched counted and listed
    report = wait_for(
        lambda: _report(aws, outputs["ArtifactsBucket"], name.removesuffix(".csv")),
        timeout=90,
        interval=2,
        what="the feedback report",
    )
    assert report["labels"] == len(scores) + 3
    assert report["matched"] == report["matched_by_id"] == len(scores)
    assert report["unmatched_count"] == 3
    assert len(report["unmatched"]) == 3
    # and the labelled records become curated data of the dataset, origin feedback
    labelled = report["labelled_upload"]
    assert f"/{names.LABELLED_PREFIX}/" in labelled

    def curated() -> dict[str, Any] | None:
        s3 = aws("s3")
        pages = s3.get_paginator("list_objects_v2").paginate(
            Bucket=outputs["CuratedBucket"], Prefix=f"{DATASET}/"
        )
        for page in pages:
            for item in page.get("Contents", []):
                if item["Key"].endswith("manifest.json") and names.LABELLED_PREFIX in item["Key"]:
                    manifest = json.loads(
                        s3.get_object(Bucket=outputs["CuratedBucket"], Key=item["Key"])[
                            "Body"
                        ].read()
                    )
                    if labelled.endswith(manifest["source"]["key"]):
                        return dict(manifest)
        return None

    manifest = wait_for(curated, timeout=90, interval=2, what="the labelled records curated")
    assert manifest["source"]["origin"] == names.ORIGIN_FEEDBACK
    assert manifest["rows"]["curated"] == len(scores)


def test_quality_below_the_threshold_alarms_and_retrains_on_the_labelled_data(
    story: Story,
) -> None:
    aws, outputs = story.pipeline.aws, story.pipeline.outputs
    # (the drift run's cool-down passes first: one run per dataset per cool-down)
    cooldown = MONITORING["retrain_cooldown_minutes"] * 60
    time.sleep(max(0.0, story.drift_run_started + cooldown + 2 - time.time()))
    alarm = names.quality_alarm_name(PREFIX, DATASET)
    raised = _alarms_raised(aws, alarm)
    # When model quality is computed on the labelled traffic
    answer = _invoke(aws, outputs["FeedbackFunctionName"], {"action": "quality",
                                                              "dataset": DATASET})  # fmt: skip
    (quality,) = answer["quality"]
    # Then the spec's metric is published, below its threshold
    assert quality["status"] == "computed", quality
    assert quality["samples"] >= MONITORING["quality_min_samples"]
    assert quality["value"] < quality["threshold"], quality
    # and the quality alarm starts one run, trigger quality, that trains on the new data
    wait_for(
        lambda: _alarms_raised(aws, alarm) > raised,
        timeout=30,
        interval=1,
        what="the quality alarm",
    )
    (run,) = wait_for(
        lambda: _runs_with(story, "quality"), timeout=60, interval=1, what="the quality run"
    )
    execution = story.pipeline.wait(run["execution"], timeout=300)
    run = story.pipeline.run_of(run["execution"])
    assert execution["status"] == "SUCCEEDED", run
    assert run["outcome"] in ("deployed", "rejected"), run  # trained, not skipped
    bucket, key = run["inputs"]["list"].removeprefix("s3://").split("/", 1)
    listing = aws("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    assert f"/{names.LABELLED_PREFIX}/" in listing


def test_a_specs_schedule_starts_a_run_recorded_with_trigger_schedule(story: Story) -> None:
    # Given the deployed rule of churn's retrain.schedule (weekly: it does not fire in a test)
    aws, outputs = story.pipeline.aws, story.pipeline.outputs
    events = aws("events")
    rules = [
        r
        for r in events.list_rules()["Rules"]
        if str(r.get("ScheduleExpression", "")).startswith("cron(")
        and f"retraining of {DATASET}" in r.get("Description", "")
    ]
    (rule,) = rules
    (target,) = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
    assert target["Arn"] == outputs["TrainingStateMachineArn"]
    # When it fires: EventBridge starts the training machine with the target's input
    execution = aws("stepfunctions").start_execution(
        stateMachineArn=target["Arn"], input=target["Input"]
    )["executionArn"]
    described = story.pipeline.wait(execution, timeout=300)
    # Then the run records the schedule as its trigger; with nothing new since the serving
    # model it ends at once as skipped, saying so
    run = story.pipeline.run_of(execution)
    assert described["status"] == "SUCCEEDED", run
    (trigger,) = run["triggers"]
    assert trigger["type"] == "schedule" and trigger["schedule"] == rule["ScheduleExpression"]
    if run["outcome"] == "skipped":
        assert run["reason"].startswith("scheduled retraining: no new data"), run
    else:  # the quality run before was rejected: the serving model is an older one
        assert run["outcome"] in ("deployed", "rejected"), run
