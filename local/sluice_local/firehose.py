"""Amazon Data Firehose delivers to S3 the way the stream is configured, as on AWS.

LocalStack 2026.3.0's Firehose writes one object per PutRecord(Batch) call, takes the prefix
literally and ignores KMS. Installed at start-up (``on_infra_start``), this module replaces its
S3 delivery:

- **Buffering.** Records wait in a per-stream buffer until it holds ``BufferingHints.SizeInMBs``
  or its oldest record is ``IntervalInSeconds`` old (0 = at once); then one object is written.
- **Prefixes.** ``!{timestamp:<Java DateTimeFormatter pattern>}`` (the oldest record's arrival
  time, UTC), ``!{firehose:random-string}`` and, in the error prefix,
  ``!{firehose:error-output-type}``. A prefix without expressions gets AWS's default
  ``YYYY/MM/dd/HH/``. Object names are ``<stream>-<version>-<yyyy-MM-dd-HH-mm-ss>-<uuid>``
  (``.gz`` with GZIP compression). Dynamic partitioning (``partitionKeyFrom*``) is not emulated.
- **Encryption.** ``EncryptionConfiguration.KMSEncryptionConfig`` writes with SSE-KMS and that
  key; the stream's own ``DeliveryStreamEncryptionConfigurationInput`` (server-side encryption
  of buffered data) is kept and reported by DescribeDeliveryStream as ENABLED.
- A delivery that fails (no bucket, a bad key) is logged and retried at the next flush, as AWS
  retries for up to 24 hours; records are never silently dropped while the cloud runs.
"""

from __future__ import annotations

import gzip
import logging
import re
import secrets
import string
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

LOG = logging.getLogger(__name__)
_EXPRESSION = re.compile(r"!\{([a-zA-Z]+):([^}]*)\}")
#: Java DateTimeFormatter letters → strftime, longest first
_JAVA_DATE = [
    ("yyyy", "%Y"), ("yy", "%y"), ("MM", "%m"), ("dd", "%d"), ("HH", "%H"), ("mm", "%M"),
    ("ss", "%S"),
]  # fmt: skip
_installed = False


def java_date(pattern: str, at: datetime) -> str:
    """Format ``at`` with a Java DateTimeFormatter pattern (the letters Firehose users use;
    text in single quotes is literal)."""
    out: list[str] = []
    for i, part in enumerate(pattern.split("'")):
        if i % 2:  # quoted literal
            out.append(part.replace("%", "%%"))
            continue
        text = part.replace("%", "%%")
        for java, py in _JAVA_DATE:
            text = text.replace(java, py)
        out.append(text)
    return at.strftime("".join(out))


def evaluate_prefix(prefix: str, at: datetime, error_type: str | None = None) -> str:
    """A destination prefix at ``at``; without expressions, AWS appends ``YYYY/MM/dd/HH/``."""
    if not _EXPRESSION.search(prefix):
        return f"{prefix}{at:%Y/%m/%d/%H}/"

    def replace(match: re.Match[str]) -> str:
        namespace, value = match.group(1), match.group(2)
        if namespace == "timestamp":
            return java_date(value, at)
        if namespace == "firehose" and value == "random-string":
            alphabet = string.ascii_letters + string.digits
            return "".join(secrets.choice(alphabet) for _ in range(11))
        if namespace == "firehose" and value == "error-output-type":
            return error_type or "processing-failed"
        raise ValueError(f"prefix expression {match.group(0)!r} is not emulated")

    return _EXPRESSION.sub(replace, prefix)


@dataclass
class _Buffer:
    stream: str
    destination: dict[str, Any]
    account: str
    region: str
    records: list[bytes] = field(default_factory=list)
    size: int = 0
    oldest: datetime | None = None
    oldest_at: float = 0.0


class S3Delivery:
    """Buffers of every stream's S3 destination, flushed by size or by age."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffers: dict[tuple[str, str, str], _Buffer] = {}
        self._timer: threading.Thread | None = None

    def add(
        self, account: str, region: str, stream: str, destination: dict[str, Any], data: list[bytes]
    ) -> None:
        hints = destination.get("BufferingHints") or {}
        size_limit = int(hints.get("SizeInMBs") or 5) * 1024 * 1024
        key = (account, region, f"{stream}|{destination.get('BucketARN')}")
        due: list[_Buffer] = []
        with self._lock:
            buffer = self._buffers.get(key)
            if buffer is None:
                buffer = self._buffers[key] = _Buffer(stream, destination, account, region)
            buffer.destination = destination
            for item in data:
                if buffer.oldest is None:
                    buffer.oldest, buffer.oldest_at = datetime.now(UTC), time.monotonic()
                buffer.records.append(item)
                buffer.size += len(item)
                if buffer.size >= size_limit:
                    due.append(self._take(key))
                    buffer = self._buffers[key] = _Buffer(stream, destination, account, region)
            if buffer.records and _interval(destination) <= 0:
                due.append(self._take(key))
            self._ensure_timer()
        for ready in due:
            self._deliver(ready)

    def _take(self, key: tuple[str, str, str]) -> _Buffer:
        return self._buffers.pop(key)

    def _ensure_timer(self) -> None:
        if self._timer is None or not self._timer.is_alive():
            self._timer = threading.Thread(target=self._tick, name="firehose-flush", daemon=True)
            self._timer.start()

    def _tick(self) -> None:
        while True:
            time.sleep(0.25)
            self.flush(only_due=True)

    def flush(self, *, only_due: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            keys = [
                key
                for key, buffer in self._buffers.items()
                if buffer.records
                and (not only_due or now - buffer.oldest_at >= _interval(buffer.destination))
            ]
            due = [self._take(key) for key in keys]
        for ready in due:
            self._deliver(ready)

    def _deliver(self, buffer: _Buffer) -> None:
        destination = buffer.destination
        at = buffer.oldest or datetime.now(UTC)
        bucket = destination["BucketARN"].split(":::", 1)[-1]
        body = b"".join(buffer.records)
        extension = ""
        if (destination.get("CompressionFormat") or "UNCOMPRESSED") == "GZIP":
            body, extension = gzip.compress(body), ".gz"
        name = f"{buffer.stream}-1-{at:%Y-%m-%d-%H-%M-%S}-{uuid.uuid4()}{extension}"
        extra: dict[str, Any] = {}
        kms = (destination.get("EncryptionConfiguration") or {}).get("KMSEncryptionConfig") or {}
        if kms.get("AWSKMSKeyARN"):
            extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms["AWSKMSKeyARN"]}
        try:
            key = evaluate_prefix(destination.get("Prefix") or "", at) + name
            _s3(buffer.account, buffer.region).put_object(
                Bucket=bucket, Key=key, Body=body, **extra
            )
            LOG.debug("firehose %s delivered %d records to s3://%s/%s", buffer.stream,
                      len(buffer.records), bucket, key)  # fmt: skip
        except Exception:
            LOG.warning("firehose %s: delivery to %s failed; retried at the next flush",
                        buffer.stream, bucket, exc_info=True)  # fmt: skip
            with self._lock:  # back in front of the buffer, as AWS retries delivery
                key3 = (
                    buffer.account,
                    buffer.region,
                    f"{buffer.stream}|{destination['BucketARN']}",
                )
                current = self._buffers.get(key3)
                if current is not None:
                    buffer.records += current.records
                    buffer.size += current.size
                buffer.oldest_at = time.monotonic()
                self._buffers[key3] = buffer


def _interval(destination: dict[str, Any]) -> float:
    hints = destination.get("BufferingHints") or {}
    value = hints.get("IntervalInSeconds")
    return 300.0 if value is None else float(value)


def _s3(account: str, region: str) -> Any:
    from localstack.aws.connect import connect_to

    return connect_to(aws_access_key_id=account, region_name=region).s3


DELIVERY = S3Delivery()
#: the account and region of the PutRecord(Batch) being served (delivery happens later)
_ORIGIN = threading.local()


def install() -> None:
    """Patch LocalStack's Firehose provider (once)."""
    global _installed  # noqa: PLW0603
    if _installed:
        return
    _installed = True
    import base64

    from localstack.services.firehose import provider as module

    provider = module.FirehoseProvider
    create = provider.create_delivery_stream
    put_records = provider._put_records

    def create_delivery_stream(self: Any, context: Any, delivery_stream_name: str,
                               *args: Any, **kwargs: Any) -> Any:  # fmt: skip
        response = create(self, context, delivery_stream_name, *args, **kwargs)
        encryption = kwargs.get("delivery_stream_encryption_configuration_input")
        if encryption:
            store = self.get_store(context.account_id, context.region)
            stream = store.delivery_streams[delivery_stream_name]
            stream["DeliveryStreamEncryptionConfiguration"] = {
                **({"KeyARN": encryption["KeyARN"]} if encryption.get("KeyARN") else {}),
                "KeyType": encryption.get("KeyType") or "AWS_OWNED_CMK",
                "Status": "ENABLED",
            }
        return response

    def _put_records(self: Any, account_id: str, region_name: str, stream_name: str,
                     records: list[Any]) -> Any:  # fmt: skip
        _ORIGIN.value = (account_id, region_name)
        return put_records(self, account_id, region_name, stream_name, records)

    def _put_records_to_s3_bucket(self: Any, stream_name: str, records: list[dict[str, Any]],
                                  destination: dict[str, Any]) -> None:  # fmt: skip
        account, region = getattr(_ORIGIN, "value", ("000000000000", "us-east-1"))
        data = [base64.b64decode(r.get("Data") or r.get("data") or b"") for r in records]
        DELIVERY.add(account, region, stream_name, dict(destination), data)

    provider.create_delivery_stream = create_delivery_stream  # type: ignore[method-assign]
    provider._put_records = _put_records  # type: ignore[method-assign]
    provider._put_records_to_s3_bucket = _put_records_to_s3_bucket  # type: ignore[method-assign]
    LOG.info("sluice: Firehose buffering, prefix expressions and KMS enforced")
