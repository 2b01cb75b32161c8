"""Join a label file with the captured predictions it labels; make the labelled records training
data; count and report what matches nothing.

For a file ``s3://<raw>/<dataset>/_feedback/<name>`` (``labels.parse``):

1. the captures of the last ``join_days`` are read once; a label matches the capture of its
   request id and instance, or else the newest capture of its record id;
2. ``s3://<artifacts>/<dataset>/feedback/joined/<yyyy>/<MM>/<dd>/<name>.jsonl``: one line per
   matched label (the capture's request id, instance, time, model version, record and
   prediction, and the label) — what model quality is computed from;
3. ``s3://<raw>/<dataset>/_labelled/<yyyy>/<MM>/<dd>/<name>.csv``: the matched records as an
   upload of the dataset (its declared columns, the label as the target; PII columns empty, as
   captured), which ingestion validates and curates like any upload (origin ``feedback``), so
   the next run trains on live traffic. Written once: a redelivered event never makes a second
   version (which ingestion would curate again);
4. ``s3://<artifacts>/<dataset>/feedback/reports/<name>.json``: counts (labels, matched by id,
   by request, unmatched, invalid), and every unmatched and invalid label with its line and
   why. Nothing is dropped silently: unmatched and invalid labels are counted in metrics, listed
   in the report, and announced on the notifications topic.

``<name>`` is the file's path below ``_feedback/`` (slashes as ``_``) and its version.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from datasets import names
from datasets.spec import DatasetSpec
from lambdas.feedback.labels import Label, parse
from lambdas.shared import monitoring

#: unmatched and invalid labels listed in the notification (all of them are in the report)
NOTIFY_LIMIT = 10


@dataclass
class Outcome:
    dataset: str
    source: dict[str, Any]
    labels: int = 0
    matched_by_request: int = 0
    matched_by_id: int = 0
    unmatched: list[dict[str, Any]] = field(default_factory=list)
    invalid: list[dict[str, Any]] = field(default_factory=list)
    joined_key: str | None = None
    labelled_key: str | None = None
    report_key: str | None = None

    @property
    def matched(self) -> int:
        return self.matched_by_request + self.matched_by_id

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "source": self.source,
            "labels": self.labels,
            "matched": self.matched,
            "matched_by_request": self.matched_by_request,
            "matched_by_id": self.matched_by_id,
            "unmatched_count": len(self.unmatched),
            "invalid_count": len(self.invalid),
            "joined": self.joined_key,
            "labelled_upload": self.labelled_key,
            "report": self.report_key,
            "unmatched": self.unmatched,
            "invalid": self.invalid,
        }


def output_name(key: str, version: str | None) -> str:
    """``churn/_feedback/2026/w1.csv`` version ``abc`` → ``2026_w1-<8 hex of the version>``."""
    relative = key.split("/", 2)[2] if key.count("/") >= 2 else key
    stem = relative.rsplit(".", 1)[0] if "." in relative.rsplit("/", 1)[-1] else relative
    tag = hashlib.sha256((version or "null").encode()).hexdigest()[:8]
    return f"{stem.replace('/', '_')}-{tag}"


def match(
    labels: list[Label], captures: list[dict[str, Any]], id_column: str | None
) -> tuple[list[tuple[Label, dict[str, Any], str]], list[Label]]:
    """(label, capture, how) for each label that matches, and the labels that match none."""
    by_request: dict[tuple[str, int], dict[str, Any]] = {}
    by_id: dict[str, dict[str, Any]] = {}
    for line in captures:
        key = (str(line.get("request_id")), int(line.get("instance") or 0))
        by_request[key] = line
        if id_column:
            record_id = (line.get("record") or {}).get(id_column)
            if record_id is not None:
                current = by_id.get(str(record_id))
                if current is None or str(line.get("time", "")) > str(current.get("time", "")):
                    by_id[str(record_id)] = line
    matched, unmatched = [], []
    for label in labels:
        found = by_request.get(label.request_key) if label.request_key else None
        if found is not None:
            matched.append((label, found, "request"))
            continue
        found = by_id.get(label.id) if label.id is not None else None
        if found is not None:
            matched.append((label, found, "id"))
        else:
            unmatched.append(label)
    return matched, unmatched


def _unmatched(label: Label, join_days: int) -> dict[str, Any]:
    named = (
        f"request {label.request_id} instance {label.instance}"
        if label.request_id
        else f"id {label.id}"
    )
    return {
        "line": label.line,
        "id": label.id,
        "request_id": label.request_id,
        "instance": label.instance if label.request_id else None,
        "reason": f"no captured prediction of {named} in the last {join_days} days",
    }


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def labelled_csv(spec: DatasetSpec, joined: list[dict[str, Any]]) -> bytes:
    """The joined records as an upload of the dataset: declared columns, label as target.

    PII columns are empty (never captured). A record captured without its id gets
    ``<request id>:<instance>`` as one, so the split and joins still have a stable id.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(spec.column_names)
    for item in joined:
        record = item["record"]
        row = []
        for name in spec.column_names:
            if name == spec.target_column:
                value: Any = item["label"]
            elif name == spec.id_column and record.get(name) in (None, ""):
                value = f"{item['request_id']}:{item['instance']}"
            else:
                value = record.get(name)
            row.append(_cell(value))
        writer.writerow(row)
    return out.getvalue().encode()


@dataclass
class FeedbackJoin:
    stage: str
    raw_bucket: str
    artifacts_bucket: str
    s3: Any
    cloudwatch: Any
    sns: Any = None
    topic_arn: str = ""
    join_days: int = 14

    def join(self, spec: DatasetSpec, key: str, version: str | None, now: datetime) -> Outcome:
        dataset = spec.name
        outcome = Outcome(dataset, {"bucket": self.raw_bucket, "key": key, "version_id": version})
        extra = {"VersionId": version} if version else {}
        body = self.s3.get_object(Bucket=self.raw_bucket, Key=key, **extra)["Body"].read()
        labels, invalid = parse(spec, body, key)
        outcome.labels = len(labels) + len(invalid)
        outcome.invalid = [i.as_dict() for i in invalid]
        captures = list(
            monitoring.captured(
                self.s3,
                self.artifacts_bucket,
                dataset,
                now - timedelta(days=self.join_days),
                now + timedelta(minutes=5),
            )
        )
        matched, unmatched = match(labels, captures, spec.id_column)
        outcome.unmatched = [_unmatched(label, self.join_days) for label in unmatched]
        outcome.matched_by_request = sum(1 for *_, how in matched if how == "request")
        outcome.matched_by_id = sum(1 for *_, how in matched if how == "id")
        name = output_name(key, version)
        day = f"{now:%Y/%m/%d}"
        labelled_at = now.isoformat(timespec="microseconds")
        joined = [
            {
                "request_id": capture.get("request_id"),
                "instance": capture.get("instance"),
                "time": capture.get("time"),
                "model_version": capture.get("model_version"),
                "record": capture.get("record") or {},
                "prediction": capture.get("prediction") or {},
                "label": label.label,
                "labelled_at": labelled_at,
                "matched_by": how,
                "source": {"key": key, "version_id": version, "line": label.line},
            }
            for label, capture, how in matched
        ]
        if joined:
            outcome.joined_key = f"{names.joined_prefix(dataset)}{day}/{name}.jsonl"
            self.s3.put_object(
                Bucket=self.artifacts_bucket,
                Key=outcome.joined_key,
                Body="".join(json.dumps(j, default=str) + "\n" for j in joined).encode(),
                ContentType="application/x-ndjson",
            )
            outcome.labelled_key = f"{dataset}/{names.LABELLED_PREFIX}/{day}/{name}.csv"
            self._write_once(self.raw_bucket, outcome.labelled_key, labelled_csv(spec, joined))
        outcome.report_key = f"{names.feedback_reports_prefix(dataset)}{name}.json"
        self.s3.put_object(
            Bucket=self.artifacts_bucket,
            Key=outcome.report_key,
            Body=json.dumps(outcome.as_dict(), indent=1, default=str).encode(),
            ContentType="application/json",
        )
        self._publish(outcome, now)
        return outcome

    def _write_once(self, bucket: str, key: str, body: bytes) -> None:
        """Put ``key`` unless it exists (S3's conditional write; a HEAD first for stores
        without it)."""
        try:
            self.s3.head_object(Bucket=bucket, Key=key)
            return
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                raise
        try:
            self.s3.put_object(
                Bucket=bucket, Key=key, Body=body, ContentType="text/csv", IfNoneMatch="*"
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in (
                "PreconditionFailed",
                "ConditionalRequestConflict",
            ):
                raise

    def _publish(self, outcome: Outcome, now: datetime) -> None:
        dims = {"Stage": self.stage, "Dataset": outcome.dataset}
        counts = (outcome.labels, outcome.matched, len(outcome.unmatched), len(outcome.invalid))
        monitoring.put_metrics(
            self.cloudwatch,
            [
                monitoring.datum(metric, value, dims, now, "Count")
                for metric, value in zip(names.FEEDBACK_METRICS, counts, strict=True)
            ],
        )
        if not (outcome.unmatched or outcome.invalid) or self.sns is None or not self.topic_arn:
            return
        source = outcome.source
        lines = [
            f"Dataset: {outcome.dataset}",
            f"Feedback file: s3://{source['bucket']}/{source['key']} (version "
            f"{source['version_id']})",
            f"Labels: {outcome.labels}; joined with a captured prediction: {outcome.matched} "
            f"(by request id {outcome.matched_by_request}, by record id "
            f"{outcome.matched_by_id}); unmatched: {len(outcome.unmatched)}; invalid: "
            f"{len(outcome.invalid)}",
            "",
            "Unmatched labels name no prediction captured in the last "
            f"{self.join_days} days (a wrong id, traffic that was not captured, or labels "
            "older than the captures, which expire); invalid ones are listed with the reason. "
            "Fix them and upload them again as a new file.",
        ]
        for item in outcome.unmatched[:NOTIFY_LIMIT]:
            lines.append(f"  line {item['line']}: {item['reason']}")
        for item in outcome.invalid[:NOTIFY_LIMIT]:
            lines.append(f"  line {item['line']}: {item['reason']}")
        lines.append(f"Every one of them: s3://{self.artifacts_bucket}/{outcome.report_key}")
        subject = (
            f"Sluice {self.stage} {outcome.dataset}: feedback with "
            f"{len(outcome.unmatched)} unmatched, {len(outcome.invalid)} invalid label(s)"
        )
        self.sns.publish(
            TopicArn=self.topic_arn,
            Subject=subject[:100],
            Message="\n".join(lines),
            MessageAttributes={
                "dataset": {"DataType": "String", "StringValue": outcome.dataset},
                "outcome": {"DataType": "String", "StringValue": "feedback_unmatched"},
            },
        )
