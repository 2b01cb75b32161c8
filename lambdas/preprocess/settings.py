"""The function's configuration, parsed once from its environment into a typed model.

The same model configures the SageMaker Processing job that takes the files too large for the
function (``job.py``): it reads the same variables, less the idempotency table (the function
already recorded the object) and the routing settings (a job never routes).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from datasets import names


class SettingsError(ValueError):
    """A required environment variable is missing or malformed."""


@dataclass(frozen=True)
class ProcessingSettings:
    """Where and how an object too large for the function is processed instead."""

    #: objects above this many bytes go to a job (compressed ones: see ``compressed_expansion``)
    threshold_bytes: int
    role_arn: str
    image_uri: str
    #: S3 URI of the code asset (a zip of ``lambdas/`` + ``datasets/``)
    code_uri: str
    kms_key_arn: str
    #: job names are ``<job_prefix>-ingest-<hash of bucket/key/version>``
    job_prefix: str
    #: where the job writes its summary (``<uri>/<job name>/summary.json``)
    summary_uri: str
    instance_type: str = "ml.m5.2xlarge"
    volume_gb: int = 100
    max_runtime_seconds: int = 24 * 3600
    #: gzip CSV and Parquet hold several times their size in CSV: their threshold is divided
    compressed_expansion: float = 4.0
    #: the stage's private network: the job runs in these subnets with this security group
    subnet_ids: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Settings:
    curated_bucket: str
    quarantine_bucket: str
    pii_secret_arn: str
    idempotency_table: str = ""
    event_bus: str = "default"
    event_source: str = names.INGESTION_EVENT_SOURCE
    #: where the S3 object is downloaded to (Lambda's ephemeral storage)
    work_dir: str = "/tmp"  # noqa: S108 - Lambda's only writable path
    #: hashing worker processes; None = one per spare core
    workers: int | None = None
    #: None: every object is processed where it arrives (the CLI, tests, the job itself)
    processing: ProcessingSettings | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, job: bool = False) -> Settings:
        """The function's settings; ``job=True``: the processing job's (no table, no routing)."""
        env = os.environ if env is None else env
        required = ["CURATED_BUCKET", "QUARANTINE_BUCKET", "PII_SECRET_ARN"]
        if not job:
            required.append("IDEMPOTENCY_TABLE")
        missing = [name for name in required if not env.get(name)]
        if missing:
            raise SettingsError(f"missing environment variable(s): {', '.join(missing)}")
        return cls(
            curated_bucket=env["CURATED_BUCKET"],
            quarantine_bucket=env["QUARANTINE_BUCKET"],
            pii_secret_arn=env["PII_SECRET_ARN"],
            idempotency_table=env.get("IDEMPOTENCY_TABLE", ""),
            event_bus=env.get("EVENT_BUS_NAME", "default"),
            work_dir=env.get("WORK_DIR", "/tmp"),  # noqa: S108
            workers=_int(env, "PII_WORKERS"),
            processing=None if job else _processing(env),
        )


PROCESSING_VARIABLES = {
    "LARGE_OBJECT_BYTES": "threshold_bytes",
    "PROCESSING_ROLE_ARN": "role_arn",
    "PROCESSING_IMAGE_URI": "image_uri",
    "PROCESSING_CODE_URI": "code_uri",
    "PROCESSING_KMS_KEY_ARN": "kms_key_arn",
    "PROCESSING_JOB_PREFIX": "job_prefix",
    "PROCESSING_SUMMARY_URI": "summary_uri",
}


def _processing(env: Mapping[str, str]) -> ProcessingSettings | None:
    """Routing is on when ``LARGE_OBJECT_BYTES`` is set; then every variable it needs must be."""
    if not env.get("LARGE_OBJECT_BYTES"):
        return None
    missing = [name for name in PROCESSING_VARIABLES if not env.get(name)]
    if missing:
        raise SettingsError(
            f"LARGE_OBJECT_BYTES is set but these are missing: {', '.join(missing)}"
        )
    values: dict[str, object] = {field: env[name] for name, field in PROCESSING_VARIABLES.items()}
    values["threshold_bytes"] = _int(env, "LARGE_OBJECT_BYTES")
    if env.get("PROCESSING_INSTANCE_TYPE"):
        values["instance_type"] = env["PROCESSING_INSTANCE_TYPE"]
    for name, field in (
        ("PROCESSING_VOLUME_GB", "volume_gb"),
        ("PROCESSING_MAX_RUNTIME_SECONDS", "max_runtime_seconds"),
    ):
        if env.get(name):
            values[field] = _int(env, name)
    for name, field in (
        ("PROCESSING_SUBNET_IDS", "subnet_ids"),
        ("PROCESSING_SECURITY_GROUP_IDS", "security_group_ids"),
    ):
        if env.get(name):
            values[field] = tuple(part for part in env[name].split(",") if part)
    if bool(values.get("subnet_ids")) != bool(values.get("security_group_ids")):
        raise SettingsError(
            "PROCESSING_SUBNET_IDS and PROCESSING_SECURITY_GROUP_IDS go together (a job in "
            "a VPC needs both)"
        )
    if env.get("COMPRESSED_EXPANSION"):
        try:
            values["compressed_expansion"] = float(env["COMPRESSED_EXPANSION"])
        except ValueError as exc:
            raise SettingsError("COMPRESSED_EXPANSION must be a number") from exc
    return ProcessingSettings(**values)  # type: ignore[arg-type]


def _int(env: Mapping[str, str], name: str) -> int | None:
    value = env.get(name)
    try:
        return int(value) if value else None
    except ValueError as exc:
        raise SettingsError(f"{name} must be an integer, got {value!r}") from exc
