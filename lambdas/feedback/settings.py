"""The feedback function's configuration, parsed once from its environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


class SettingsError(ValueError):
    """A required environment variable is missing or malformed."""


@dataclass(frozen=True)
class Settings:
    stage: str
    prefix: str
    raw_bucket: str
    artifacts_bucket: str
    topic_arn: str
    datasets: tuple[str, ...]
    join_days: int = 14
    window_days: int = 7
    min_samples: int = 100

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        try:
            return cls(
                stage=env["SLUICE_STAGE"],
                prefix=env["SLUICE_PREFIX"],
                raw_bucket=env["RAW_BUCKET"],
                artifacts_bucket=env["ARTIFACTS_BUCKET"],
                topic_arn=env.get("TOPIC_ARN", ""),
                datasets=tuple(d for d in env.get("DATASETS", "").split(",") if d),
                join_days=int(env.get("FEEDBACK_JOIN_DAYS", "14")),
                window_days=int(env.get("QUALITY_WINDOW_DAYS", "7")),
                min_samples=int(env.get("QUALITY_MIN_SAMPLES", "100")),
            )
        except KeyError as exc:
            raise SettingsError(f"environment variable {exc.args[0]} is not set") from exc
        except ValueError as exc:
            raise SettingsError(f"malformed feedback setting: {exc}") from exc
