"""The retrain function's configuration, parsed once from its environment."""

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
    state_machine_arn: str
    cooldown_table: str
    #: replaces every spec's ``retrain.cooldown_hours`` when set (tests, demos)
    cooldown_minutes_override: int | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        try:
            override = env.get("RETRAIN_COOLDOWN_MINUTES") or None
            return cls(
                stage=env["SLUICE_STAGE"],
                prefix=env["SLUICE_PREFIX"],
                state_machine_arn=env["TRAINING_STATE_MACHINE_ARN"],
                cooldown_table=env["COOLDOWN_TABLE"],
                cooldown_minutes_override=int(override) if override is not None else None,
            )
        except KeyError as exc:
            raise SettingsError(f"environment variable {exc.args[0]} is not set") from exc
        except ValueError as exc:
            raise SettingsError(f"malformed retrain setting: {exc}") from exc
