"""The functions' configuration, parsed once from their environment into a typed model."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class SettingsError(ValueError):
    """A required environment variable is missing or malformed."""


@dataclass(frozen=True)
class TrainingSettings:
    """What a training job runs on (stage config, through the function's environment)."""

    instance_type: str = "ml.m5.xlarge"
    volume_gb: int = 30
    max_runtime_seconds: int = 6 * 3600
    #: managed spot training: SageMaker waits up to ``max_wait_seconds`` for capacity, in all
    spot: bool = True
    max_wait_seconds: int = 12 * 3600
    hyperparameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Settings:
    stage: str
    prefix: str
    region: str
    curated_bucket: str = ""
    artifacts_bucket: str = ""
    ledger_table: str = ""
    topic_arn: str = ""
    #: where the job and model code lives: the sourcedir (train.py, evaluate.py, ...)
    sourcedir_uri: str = ""
    image_uri: str = ""
    #: "auto" (dev: registered Approved and deployed) or "manual" (prod: PendingManualApproval)
    approval: str = "auto"
    training: TrainingSettings = field(default_factory=TrainingSettings)
    processing_instance_type: str = "ml.m5.large"
    processing_volume_gb: int = 30
    processing_max_runtime_seconds: int = 3600
    #: per dataset, what the deploy steps deploy (infra/rollout.py ``deploy_settings``): the
    #: endpoint's kind, its production variant, the UpdateEndpoint DeploymentConfig with the
    #: rollback alarms, and the autoscaling bounds (None when serverless)
    endpoints: Mapping[str, Any] = field(default_factory=dict)
    #: seconds between DescribeEndpoint polls, and the throttling back-off steps
    poll_seconds: int = 30
    backoff_seconds: tuple[int, ...] = (2, 4, 8, 16, 32)
    code_version: str = ""

    def endpoint(self, dataset: str) -> dict[str, Any]:
        """The deploy settings of ``dataset``'s endpoint (``kind``, ``variant``, ``deployment``,
        ``scaling``)."""
        found = self.endpoints.get(dataset)
        if not found:
            raise SettingsError(
                f"no endpoint settings for dataset {dataset!r}: is it declared "
                f"(datasets/{dataset}.yaml) in the deployed app?"
            )
        return dict(found)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env

        def need(name: str) -> str:
            value = env.get(name)
            if not value:
                raise SettingsError(f"environment variable {name} is not set")
            return value

        try:
            training = TrainingSettings(
                instance_type=env.get("TRAINING_INSTANCE_TYPE", "ml.m5.xlarge"),
                volume_gb=int(env.get("TRAINING_VOLUME_GB", "30")),
                max_runtime_seconds=int(env.get("TRAINING_MAX_RUNTIME_SECONDS", "21600")),
                spot=env.get("TRAINING_SPOT", "true") == "true",
                max_wait_seconds=int(env.get("TRAINING_MAX_WAIT_SECONDS", "43200")),
                hyperparameters=json.loads(env.get("TRAINING_HYPERPARAMETERS", "{}")),
            )
            return cls(
                stage=need("SLUICE_STAGE"),
                prefix=need("SLUICE_PREFIX"),
                region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
                curated_bucket=env.get("CURATED_BUCKET", ""),
                artifacts_bucket=env.get("ARTIFACTS_BUCKET", ""),
                ledger_table=env.get("LEDGER_TABLE", ""),
                topic_arn=env.get("TOPIC_ARN", ""),
                sourcedir_uri=env.get("SOURCEDIR_URI", ""),
                image_uri=env.get("IMAGE_URI", ""),
                approval=env.get("APPROVAL", "auto"),
                training=training,
                processing_instance_type=env.get("PROCESSING_INSTANCE_TYPE", "ml.m5.large"),
                processing_volume_gb=int(env.get("PROCESSING_VOLUME_GB", "30")),
                processing_max_runtime_seconds=int(
                    env.get("PROCESSING_MAX_RUNTIME_SECONDS", "3600")
                ),
                endpoints=json.loads(env.get("ENDPOINTS", "{}")),
                poll_seconds=int(env.get("POLL_SECONDS", "30")),
                backoff_seconds=tuple(
                    int(v) for v in env.get("BACKOFF_SECONDS", "2,4,8,16,32").split(",")
                ),
                code_version=env.get("SLUICE_CODE_VERSION", ""),
            )
        except ValueError as exc:  # json.JSONDecodeError is one
            raise SettingsError(f"malformed pipeline setting: {exc}") from exc
