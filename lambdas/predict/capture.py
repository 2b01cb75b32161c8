"""Capture for monitoring: a share of requests, one JSON line per instance, through Firehose.

The record format is the Capture contract (CONTRACTS.md), read by drift and quality monitoring:
``{"request_id", "instance", "time", "dataset", "model_version", "record", "prediction"}``
where ``record`` holds the request's declared columns minus PII columns. Firehose buffers the
lines and writes them to ``s3://<artifacts>/<dataset>/capture/yyyy/MM/dd/HH/``.

Capture never fails a prediction: a Firehose error is logged and counted, not raised.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

#: PutRecordBatch takes at most 500 records (and 4 MiB) a call
BATCH_RECORDS = 500
BATCH_BYTES = 4 * 1024 * 1024


def sampled(request_id: str, share: float) -> bool:
    """Whether this request is captured: a stable function of its id (reproducible)."""
    if share >= 1.0:
        return True
    if share <= 0.0:
        return False
    digest = hashlib.sha256(request_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def records(
    *,
    request_id: str,
    dataset: str,
    model_version: str,
    instances: Sequence[dict[str, Any]],
    predictions: Sequence[dict[str, Any]],
    declared: frozenset[str],
    pii: frozenset[str],
    at: datetime | None = None,
) -> list[bytes]:
    """The capture lines of one request: declared, non-PII columns only."""
    time = (at or datetime.now(UTC)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    keep = declared - pii
    lines = []
    for index, (instance, prediction) in enumerate(zip(instances, predictions, strict=True)):
        line = {
            "request_id": request_id,
            "instance": index,
            "time": time,
            "dataset": dataset,
            "model_version": model_version,
            "record": {k: v for k, v in instance.items() if k in keep},
            "prediction": prediction,
        }
        lines.append((json.dumps(line, separators=(",", ":"), default=str) + "\n").encode())
    return lines


def _batches(lines: Sequence[bytes]) -> list[list[bytes]]:
    out: list[list[bytes]] = [[]]
    size = 0
    for line in lines:
        if len(out[-1]) >= BATCH_RECORDS or size + len(line) > BATCH_BYTES:
            out.append([])
            size = 0
        out[-1].append(line)
        size += len(line)
    return [batch for batch in out if batch]


def send(firehose: Any, stream: str, lines: Sequence[bytes]) -> int:
    """Put the lines to the stream (one retry of what Firehose refused); returns how many
    could not be delivered."""
    failed = 0
    for batch in _batches(lines):
        pending = batch
        for _attempt in range(2):
            answer = firehose.put_record_batch(
                DeliveryStreamName=stream, Records=[{"Data": line} for line in pending]
            )
            if not answer.get("FailedPutCount"):
                pending = []
                break
            pending = [
                line
                for line, result in zip(pending, answer["RequestResponses"], strict=True)
                if result.get("ErrorCode")
            ]
        failed += len(pending)
    return failed
