"""The predict function's configuration, parsed once (per cold start) into a typed model."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class SettingsError(ValueError):
    """A required environment variable is missing or malformed."""


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    #: ``sluice-<stage>``: endpoint names are ``<prefix>-<dataset>`` (datasets/names.py)
    prefix: str = Field(min_length=1)
    #: dataset → Firehose stream that captures its predictions (no entry: not captured)
    capture_streams: dict[str, str] = Field(default_factory=dict)
    #: share of requests captured, 0..1
    capture_share: float = Field(default=1.0, ge=0.0, le=1.0)
    max_instances: int = Field(default=1000, ge=1)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1)
    #: how long the function waits for the endpoint before answering 504
    endpoint_timeout_seconds: float = Field(default=20.0, gt=0)
    #: Retry-After of a 503 (the dataset has no endpoint yet)
    retry_after_seconds: int = Field(default=60, ge=1)
    #: how long GET /v1/{dataset} reuses what it learned about the serving model
    model_info_ttl_seconds: float = Field(default=30.0, ge=0)
    cors_origins: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        raw: dict[str, object] = {}
        names = {
            "SLUICE_PREFIX": "prefix",
            "CAPTURE_SHARE": "capture_share",
            "MAX_INSTANCES": "max_instances",
            "MAX_BODY_BYTES": "max_body_bytes",
            "ENDPOINT_TIMEOUT_SECONDS": "endpoint_timeout_seconds",
            "RETRY_AFTER_SECONDS": "retry_after_seconds",
            "MODEL_INFO_TTL_SECONDS": "model_info_ttl_seconds",
        }
        for variable, field in names.items():
            if env.get(variable):
                raw[field] = env[variable]
        try:
            if env.get("CAPTURE_STREAMS"):
                raw["capture_streams"] = json.loads(env["CAPTURE_STREAMS"])
            if env.get("CORS_ORIGINS"):
                raw["cors_origins"] = tuple(
                    o.strip() for o in env["CORS_ORIGINS"].split(",") if o.strip()
                )
            return cls.model_validate(raw)
        except (ValueError, ValidationError) as exc:
            raise SettingsError(f"invalid predict function settings: {exc}") from exc
