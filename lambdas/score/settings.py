"""The batch-scoring function's configuration, parsed once from its environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


class SettingsError(ValueError):
    """A required environment variable is missing or malformed."""


@dataclass(frozen=True)
class Settings:
    artifacts_bucket: str
    #: ``sluice-<stage>``: endpoints are ``<prefix>-<dataset>``, jobs ``<prefix>-score-...``
    prefix: str
    #: the stage key: transform output and volumes are encrypted with it
    kms_key_arn: str
    instance_type: str = "ml.m5.xlarge"
    max_payload_mb: int = 6
    max_runtime_seconds: int = 6 * 3600
    #: where the uploaded file is downloaded to (Lambda's ephemeral storage)
    work_dir: str = "/tmp"  # noqa: S108 - Lambda's only writable path
    #: the stage's private subnets (empty: no private network). A transform job takes its
    #: network from its model, so with them the serving model must run there.
    private_subnets: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        required = ("ARTIFACTS_BUCKET", "SLUICE_PREFIX", "KMS_KEY_ARN")
        missing = [name for name in required if not env.get(name)]
        if missing:
            raise SettingsError(f"missing environment variable(s): {', '.join(missing)}")
        try:
            return cls(
                artifacts_bucket=env["ARTIFACTS_BUCKET"],
                prefix=env["SLUICE_PREFIX"],
                kms_key_arn=env["KMS_KEY_ARN"],
                instance_type=env.get("TRANSFORM_INSTANCE_TYPE") or "ml.m5.xlarge",
                max_payload_mb=int(env.get("TRANSFORM_MAX_PAYLOAD_MB") or 6),
                max_runtime_seconds=int(env.get("TRANSFORM_MAX_RUNTIME_SECONDS") or 6 * 3600),
                work_dir=env.get("WORK_DIR") or "/tmp",  # noqa: S108
                private_subnets=tuple(
                    s for s in (env.get("PRIVATE_SUBNET_IDS") or "").split(",") if s
                ),
            )
        except ValueError as exc:
            raise SettingsError(f"invalid batch-scoring settings: {exc}") from exc
