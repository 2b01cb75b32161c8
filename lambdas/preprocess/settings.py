"""The function's configuration, parsed once from its environment into a typed model."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


class SettingsError(ValueError):
    """A required environment variable is missing or malformed."""


@dataclass(frozen=True)
class Settings:
    curated_bucket: str
    quarantine_bucket: str
    pii_secret_arn: str
    idempotency_table: str
    event_bus: str = "default"
    event_source: str = "sluice.ingestion"
    #: where the S3 object is downloaded to (Lambda's ephemeral storage)
    work_dir: str = "/tmp"  # noqa: S108 - Lambda's only writable path
    #: hashing worker processes; None = one per spare core
    workers: int | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        missing = [
            name
            for name in (
                "CURATED_BUCKET",
                "QUARANTINE_BUCKET",
                "PII_SECRET_ARN",
                "IDEMPOTENCY_TABLE",
            )
            if not env.get(name)
        ]
        if missing:
            raise SettingsError(f"missing environment variable(s): {', '.join(missing)}")
        workers = env.get("PII_WORKERS")
        try:
            parsed_workers = int(workers) if workers else None
        except ValueError as exc:
            raise SettingsError(f"PII_WORKERS must be an integer, got {workers!r}") from exc
        return cls(
            curated_bucket=env["CURATED_BUCKET"],
            quarantine_bucket=env["QUARANTINE_BUCKET"],
            pii_secret_arn=env["PII_SECRET_ARN"],
            idempotency_table=env["IDEMPOTENCY_TABLE"],
            event_bus=env.get("EVENT_BUS_NAME", "default"),
            work_dir=env.get("WORK_DIR", "/tmp"),  # noqa: S108
            workers=parsed_workers,
        )
