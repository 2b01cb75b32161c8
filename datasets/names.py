"""Names and event shapes that the infrastructure and the runtime code must agree on.

``infra/`` declares resources (rules that match events, alarms on an endpoint, policies on a
job-name prefix) and ``lambdas/`` and ``training/`` create or emit them at run time. Neither may
import the other (DESIGN.md), so what both need lives here: plain functions of the stage prefix
(``sluice-<stage>``) and the dataset name, no dependencies.
"""

from __future__ import annotations

import hashlib
import platform
import re
import sys

#: EventBridge ``source`` of ingestion's events, and their detail types
INGESTION_EVENT_SOURCE = "sluice.ingestion"
DATASET_CURATED = "DatasetCurated"
FILE_REJECTED = "FileRejected"

#: the one production variant of every dataset endpoint (kept across updates)
VARIANT_NAME = "AllTraffic"

#: what a dataset may be called: it becomes part of S3 prefixes and SageMaker resource names
DATASET_NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")

#: ingestion's large-object processing jobs: a redelivery reruns a failed one this often in all
MAX_INGEST_JOB_ATTEMPTS = 3


def ingest_job_prefix(prefix: str) -> str:
    """What every ingestion job name of a stage starts with (the failure rule matches it)."""
    return f"{prefix}-ingest-"


def endpoint_name(prefix: str, dataset: str) -> str:
    """The SageMaker endpoint serving ``dataset`` in a stage (``sluice-dev-churn``)."""
    return f"{prefix}-{dataset}"


def model_package_group_name(prefix: str, dataset: str) -> str:
    """The model registry group of ``dataset`` in a stage."""
    return f"{prefix}-{dataset}"


# ---------------------------------------------------------------- training pipeline
#: SageMaker names: at most 63 characters of [a-zA-Z0-9-]
SAGEMAKER_NAME_LIMIT = 63
#: EventBridge ``source``/detail type of the pipeline's own events (none yet; reserved)
PIPELINE_EVENT_SOURCE = "sluice.pipeline"
#: tags on everything a run creates outside CloudFormation (teardown finds them by these)
TAG_STAGE = "sluice:stage"
TAG_DATASET = "sluice:dataset"
TAG_RUN = "sluice:run"
TAG_MANAGED_BY = "sluice:managed-by"
MANAGED_BY_PIPELINE = "training-pipeline"


def training_state_machine_name(prefix: str) -> str:
    """The training pipeline's state machine (users start it by hand: ``make train``)."""
    return f"{prefix}-training"


def deploy_state_machine_name(prefix: str) -> str:
    """The deploy steps, run by the pipeline and by an approval in the model registry."""
    return f"{prefix}-deploy"


def run_id(started_at: str, execution_name: str) -> str:
    """A run's id from its execution's start time (ISO-8601) and name, sortable by time:
    ``20261127T180102-a1b2c3`` (the hash keeps two runs started in one second apart)."""
    digits = "".join(ch for ch in started_at[:19] if ch.isdigit())
    stamp = f"{digits[:8]}T{digits[8:14]}"
    return f"{stamp}-{hashlib.sha256(execution_name.encode()).hexdigest()[:6]}"


def run_resource_name(prefix: str, dataset: str, run: str, kind: str) -> str:
    """The name of a job, model or endpoint config of one run: ``sluice-dev-churn-<run>-train``.

    The dataset part is shortened (never the run id or the kind) to fit SageMaker's limit.
    """
    room = SAGEMAKER_NAME_LIMIT - len(prefix) - len(run) - len(kind) - 3
    return f"{prefix}-{dataset[: max(room, 1)]}-{run}-{kind}"


def run_artifacts_prefix(dataset: str, run: str) -> str:
    """Key prefix of everything a run writes in the artifacts bucket."""
    return f"{RUNS_PREFIX}/{dataset}/{run}/"


#: top-level prefix of the artifacts bucket under which runs write (the job role's only write)
RUNS_PREFIX = "runs"
#: prefixes under ``s3://<raw>/<dataset>/`` that are not training data: files to score (batch
#: predictions) and ground-truth labels. Ingestion skips them; batch scoring watches ``_score/``.
SCORE_PREFIX = "_score"
FEEDBACK_PREFIX = "_feedback"
RESERVED_PREFIXES = (SCORE_PREFIX, FEEDBACK_PREFIX)


def reserved_prefix(key: str) -> str | None:
    """``_score`` or ``_feedback`` when a raw-bucket key lies under one (``<dataset>/_score/x``)."""
    parts = key.split("/", 2)
    if len(parts) >= 3 and parts[1] in RESERVED_PREFIXES:
        return parts[1]
    return None


def capture_prefix(dataset: str) -> str:
    """Where prediction capture lands in the artifacts bucket (``churn/capture/``)."""
    return f"{dataset}/capture/"


def predictions_prefix(dataset: str, name: str) -> str:
    """Where the batch predictions of ``s3://<raw>/<dataset>/_score/<name>`` land (artifacts)."""
    return f"{dataset}/predictions/{name}/"


def score_job_prefix(prefix: str) -> str:
    """What every batch-scoring transform job name of a stage starts with."""
    return f"{prefix}-score-"


def endpoint_errors_alarm_name(prefix: str, dataset: str) -> str:
    """The alarm on the endpoint's model errors (Invocation5XXErrors): a rollback alarm."""
    return f"{endpoint_name(prefix, dataset)}-endpoint-5xx-errors"


def endpoint_latency_alarm_name(prefix: str, dataset: str) -> str:
    """The alarm on the endpoint's p99 ModelLatency: a rollback alarm."""
    return f"{endpoint_name(prefix, dataset)}-endpoint-p99-latency"


def endpoint_rollback_alarm_names(prefix: str, dataset: str) -> tuple[str, ...]:
    """What a deployment of ``dataset``'s endpoint names in AutoRollbackConfiguration."""
    return (
        endpoint_errors_alarm_name(prefix, dataset),
        endpoint_latency_alarm_name(prefix, dataset),
    )


def endpoint_scaling_resource_id(prefix: str, dataset: str) -> str:
    """Application Auto Scaling's ResourceId of the endpoint's one variant."""
    return f"endpoint/{endpoint_name(prefix, dataset)}/variant/{VARIANT_NAME}"


def machine(name: str | None = None) -> str:
    """A CPU name as Linux spells it (``aarch64``, ``x86_64``); None: this machine's."""
    name = (name or platform.machine()).lower()
    return {"arm64": "aarch64", "amd64": "x86_64", "x64": "x86_64"}.get(name, name)


def native_library_file(system: str | None = None, cpu: str | None = None) -> str:
    """The file name of ingestion's native HMAC library for an OS (``linux``, ``darwin``) and
    CPU, one file per pair, in ``lambdas/preprocess/native/``: the bundling builds it there
    and the masker loads it from there."""
    system = (system or sys.platform).lower()
    if system.startswith("linux"):
        system = "linux"
    return f"libhmac_sha256-{system}-{machine(cpu)}.so"
