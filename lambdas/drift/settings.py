"""The drift function's configuration, parsed once from its environment."""

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
    artifacts_bucket: str
    datasets: tuple[str, ...]
    window_minutes: int = 60
    min_samples: int = 200
    max_samples: int = 100_000

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        try:
            return cls(
                stage=env["SLUICE_STAGE"],
                prefix=env["SLUICE_PREFIX"],
                artifacts_bucket=env["ARTIFACTS_BUCKET"],
                datasets=tuple(d for d in env.get("DATASETS", "").split(",") if d),
                window_minutes=int(env.get("DRIFT_WINDOW_MINUTES", "60")),
                min_samples=int(env.get("DRIFT_MIN_SAMPLES", "200")),
                max_samples=int(env.get("DRIFT_MAX_SAMPLES", "100000")),
            )
        except KeyError as exc:
            raise SettingsError(f"environment variable {exc.args[0]} is not set") from exc
        except ValueError as exc:
            raise SettingsError(f"malformed drift setting: {exc}") from exc
