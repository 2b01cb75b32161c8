"""Feedback labels: parsed strictly, joined with captures by id and by request id, unmatched
labels counted and reported, the joined records made an upload ingestion accepts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from datasets.spec import load_spec, spec_path
from lambdas.feedback.join import FeedbackJoin, output_name
from lambdas.feedback.labels import parse
from tests.unit.monitoring.fakes import ARTIFACTS, RAW, World, csv_body

SPEC = load_spec(spec_path("churn"))  # type: ignore[arg-type]


class Topic:
    def __init__(self) -> None:
        self.messages: list[dict] = []

    def publish(self, **kwargs: object) -> None:
        self.messages.append(kwargs)


def joiner(world: World, topic: Topic | None = None) -> FeedbackJoin:
    return FeedbackJoin(
        stage="test",
        raw_bucket=RAW,
        artifacts_bucket=ARTIFACTS,
        s3=world.s3,
        cloudwatch=world.cloudwatch,
        sns=topic,
        topic_arn="arn:aws:sns:eu-west-1:123456789012:topic" if topic else "",
        join_days=14,
    )


def upload(world: World, key: str, body: bytes) -> str:
    world.s3.put_bucket_versioning(Bucket=RAW, VersioningConfiguration={"Status": "Enabled"})
    return str(world.s3.put_object(Bucket=RAW, Key=key, Body=body)["VersionId"])


def test_labels_are_read_from_csv_and_json_lines_with_either_key() -> None:
    csv_labels, bad = parse(
        SPEC,
        b"customer_id,churned\nC1,1\nC2,0\n,1\nC4,yes\n",
        "churn/_feedback/a.csv",
    )
    assert [(x.line, x.id, x.label) for x in csv_labels] == [(2, "C1", 1), (3, "C2", 0)]
    assert [(b.line, b.reason) for b in bad] == [
        (4, "names no prediction: give customer_id (or id), or request_id and instance"),
        (5, "label 'yes' is not one of the target's classes (0, 1)"),
    ]
    lines = b'{"request_id": "r1", "instance": 2, "label": 1}\n{"id": "C9", "churned": 0}\nnope\n'
    json_labels, bad = parse(SPEC, lines, "churn/_feedback/b.jsonl")
    assert json_labels[0].request_key == ("r1", 2) and json_labels[0].label == 1
    assert json_labels[1].id == "C9" and json_labels[1].label == 0
    assert [(b.line, b.reason) for b in bad] == [(3, "not a JSON object")]


def test_labels_join_by_request_id_and_by_id_and_unmatched_ones_are_counted_and_reported(
    world: World,
) -> None:
    # Given two captured requests
    first = world.capture(world.rows(5, seed=1), request_id="req-a")
    second = world.capture(world.rows(5, seed=2), request_id="req-b")
    # When a label file names two by request id and instance, two by customer id, and two that
    # match nothing, plus one invalid row
    rows = [
        {"request_id": "req-a", "instance": 1, "customer_id": "", "churned": 1},
        {"request_id": "req-b", "instance": 4, "customer_id": "", "churned": 0},
        {"request_id": "", "instance": "", "customer_id": first[3]["record"]["customer_id"],
         "churned": 1},
        {"request_id": "", "instance": "", "customer_id": second[0]["record"]["customer_id"],
         "churned": 0},
        {"request_id": "req-zzz", "instance": 0, "customer_id": "", "churned": 1},
        {"request_id": "", "instance": "", "customer_id": "C-nobody", "churned": 0},
        {"request_id": "", "instance": "", "customer_id": "C-x", "churned": 7},
    ]  # fmt: skip
    key = "churn/_feedback/2026/week-1.csv"
    version = upload(world, key, csv_body(rows))
    topic = Topic()
    outcome = joiner(world, topic).join(SPEC, key, version, datetime.now(UTC))
    # Then four are joined, two by each key, and nothing is dropped silently
    assert (outcome.labels, outcome.matched) == (7, 4)
    assert (outcome.matched_by_request, outcome.matched_by_id) == (2, 2)
    assert [u["line"] for u in outcome.unmatched] == [6, 7]
    assert outcome.unmatched[0]["reason"] == (
        "no captured prediction of request req-zzz instance 0 in the last 14 days"
    )
    assert outcome.unmatched[1]["reason"] == (
        "no captured prediction of id C-nobody in the last 14 days"
    )
    assert [i["line"] for i in outcome.invalid] == [8]
    # the joined lines carry the capture and the label
    joined = [json.loads(x) for x in world.text(ARTIFACTS, outcome.joined_key or "").splitlines()]
    assert {(j["request_id"], j["instance"], j["label"]) for j in joined} == {
        ("req-a", 1, 1), ("req-b", 4, 0), ("req-a", 3, 1), ("req-b", 0, 0),
    }  # fmt: skip
    assert all(j["prediction"]["probability"] == 0.3 and j["model_version"] == "1" for j in joined)
    # the report lists every unmatched and invalid label
    report = json.loads(world.text(ARTIFACTS, outcome.report_key or ""))
    assert report["unmatched_count"] == 2 and report["invalid_count"] == 1
    assert report["labelled_upload"] == outcome.labelled_key
    # metrics count them, and one notification says so
    dims = {"Stage": "test", "Dataset": "churn"}
    assert world.metric("FeedbackUnmatched", **dims) == [2]
    assert world.metric("FeedbackMatched", **dims) == [4]
    assert world.metric("FeedbackInvalid", **dims) == [1]
    (message,) = topic.messages
    assert "2 unmatched, 1 invalid" in str(message["Subject"])
    assert "line 6: no captured prediction of request req-zzz" in str(message["Message"])


def test_the_newest_capture_of_an_id_is_the_one_labelled(world: World) -> None:
    rows = world.rows(1, seed=3)
    world.capture(rows, request_id="old", at=datetime.now(UTC) - timedelta(days=2))
    world.capture(rows, request_id="new", probability=0.9)
    key = "churn/_feedback/x.jsonl"
    body = json.dumps({"customer_id": rows[0]["customer_id"], "churned": 1}).encode()
    outcome = joiner(world).join(SPEC, key, upload(world, key, body), datetime.now(UTC))
    (line,) = world.text(ARTIFACTS, outcome.joined_key or "").splitlines()
    assert json.loads(line)["request_id"] == "new"


def test_labelled_records_become_an_upload_that_ingestion_accepts(
    world: World, tmp_path: Path
) -> None:
    from lambdas.preprocess.pipeline import process_file

    # Given labels for ten captured records (which hold no PII)
    captured = world.capture(world.rows(10, seed=6), request_id="req-c")
    rows = [{"customer_id": c["record"]["customer_id"], "churned": i % 2}
            for i, c in enumerate(captured)]  # fmt: skip
    key = "churn/_feedback/labels.csv"
    outcome = joiner(world).join(SPEC, key, upload(world, key, csv_body(rows)), datetime.now(UTC))
    # Then the labelled records land as an upload of churn, under _labelled/ (origin feedback)
    assert outcome.labelled_key is not None
    assert outcome.labelled_key.startswith("churn/_labelled/")
    body = world.text(RAW, outcome.labelled_key)
    header = body.splitlines()[0].split(",")
    assert header == list(SPEC.column_names)
    first = dict(zip(header, body.splitlines()[1].split(","), strict=True))
    assert first["email"] == "" and first["phone"] == ""  # never captured
    assert first["churned"] == "0"
    # and ingestion's own code accepts every row of it, as it would any upload
    path = tmp_path / "labelled.csv"
    path.write_text(body)
    result = process_file(path, tmp_path / "out", spec=SPEC, pii_key=b"k" * 32)
    assert result.accepted
    manifest = result.manifest or {}
    assert manifest["rows"]["curated"] == 10 and manifest["rows"]["quarantined"] == 0
    # and a redelivered event does not write it again (no second version to curate)
    again = joiner(world).join(SPEC, key, None, datetime.now(UTC))
    versions = world.s3.list_object_versions(Bucket=RAW, Prefix=again.labelled_key)
    assert len(versions["Versions"]) == 1


def test_output_names_keep_the_path_and_tell_versions_apart() -> None:
    assert output_name("churn/_feedback/2026/w1.csv", "v1").startswith("2026_w1-")
    assert output_name("churn/_feedback/a.csv", "v1") != output_name("churn/_feedback/a.csv", "v2")


@pytest.mark.parametrize("problem", ["binary"])
def test_quality_is_the_specs_metric_on_the_serving_models_labelled_traffic(
    world: World, problem: str
) -> None:
    from lambdas.feedback.quality import QualityMonitor

    monitor = QualityMonitor(
        stage="test",
        prefix="sluice-test",
        artifacts_bucket=ARTIFACTS,
        s3=world.s3,
        sagemaker=world.sagemaker,
        cloudwatch=world.cloudwatch,
        window_days=7,
        min_samples=20,
    )
    # Given 40 captured predictions of model 1 whose labels agree with the scores
    good = []
    for i in range(40):
        p = 0.9 if i % 2 else 0.1
        good += world.capture(world.rows(1, seed=100 + i), request_id=f"g{i}", probability=p)
    rows = [{"request_id": line["request_id"], "instance": 0, "churned": int(i % 2)}
            for i, line in enumerate(good)]  # fmt: skip
    key = "churn/_feedback/good.csv"
    joiner(world).join(SPEC, key, upload(world, key, csv_body(rows)), datetime.now(UTC))
    (quality,) = monitor.run([SPEC], datetime.now(UTC))
    assert quality.status == "computed" and quality.samples == 40
    assert quality.value == pytest.approx(1.0) and quality.metric == "roc_auc"
    dims = {"Stage": "test", "Dataset": "churn", "Metric": "roc_auc"}
    assert world.metric("ModelQuality", **dims) == [1.0]
    # When labels contradict the model (newest label wins), Then quality drops
    flipped = [{**row, "churned": 1 - int(row["churned"])} for row in rows]
    key = "churn/_feedback/flipped.csv"
    joiner(world).join(SPEC, key, upload(world, key, csv_body(flipped)), datetime.now(UTC))
    (quality,) = monitor.run([SPEC], datetime.now(UTC))
    assert quality.value == pytest.approx(0.0) and quality.samples == 40
    # When another model serves, its traffic has no labels yet: skipped, and it says so
    world.sagemaker.deploy("sluice-test-churn", "s3://artifacts/x", "2")
    (quality,) = monitor.run([SPEC], datetime.now(UTC))
    assert quality.status == "skipped"
    assert "0 labelled prediction(s) of model 2 in the window, fewer than the 20" in quality.reason
