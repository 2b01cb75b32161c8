"""Prepare a run: its id, inputs, spec, champion, hyperparameters and job settings.

Runs right after the run took its dataset's lock. Writes under ``s3://<artifacts>/runs/<dataset>/
<run>/``: ``inputs/`` (the input list and SageMaker manifest), ``spec/`` (the spec this run
uses), ``champion/`` (a copy of the serving model, so jobs read only their run's prefix).
Returns the whole state the rest of the run reads (``run`` holds names, URIs and job settings).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from botocore.exceptions import ClientError

from datasets import names
from datasets.spec import DatasetSpec, load_spec, spec_path
from lambdas.pipeline import champion as champions
from lambdas.pipeline.inputs import write_run_inputs
from lambdas.pipeline.ledger import Ledger
from lambdas.pipeline.settings import Settings

TRIGGER_TYPES = ("upload", "manual", "drift", "quality", "schedule", "coalesced")


class UnknownDataset(ValueError):
    """The run names a dataset that has no spec in this deployment."""


class BadInput(ValueError):
    """The execution input is not what the state machine accepts (see README)."""


def triggers(raw: Any) -> list[dict[str, Any]]:
    """The run's triggers: the one that started it, plus those a follow-up run coalesced."""
    trigger = raw if isinstance(raw, dict) else {"type": "manual"}
    if trigger.get("type", "manual") not in TRIGGER_TYPES:
        raise BadInput(f"trigger.type must be one of {', '.join(TRIGGER_TYPES)}")
    out = [{k: v for k, v in trigger.items() if k != "triggers"}]
    queued = trigger.get("triggers") or []
    if isinstance(queued, str | dict):  # one queued trigger: some JSONPath engines unwrap it
        queued = [queued]
    for item in queued:
        try:
            parsed = json.loads(item) if isinstance(item, str) else dict(item)
        except (ValueError, TypeError):
            parsed = None
        out.append(
            parsed if isinstance(parsed, dict) else {"type": "unknown", "raw": str(item)[:200]}
        )
    return out


def hyperparameters(settings: Settings, spec: DatasetSpec, overrides: Any) -> dict[str, Any]:
    """Stage defaults, then the spec's ``training.hyperparameters``, then the run's input."""
    if overrides is not None and not isinstance(overrides, dict):
        raise BadInput("hyperparameters must be a mapping of name: value")
    return {
        **settings.training.hyperparameters,
        **spec.training.hyperparameters,
        **(overrides or {}),
    }


def sagemaker_hyperparameters(values: dict[str, Any], sourcedir: str) -> dict[str, str]:
    """As the SageMaker SDK passes them: JSON-encoded strings, plus the script-mode entries."""
    encoded = {name: json.dumps(value) for name, value in sorted(values.items())}
    encoded["sagemaker_program"] = json.dumps("train.py")
    encoded["sagemaker_submit_directory"] = json.dumps(sourcedir)
    return encoded


def training_key(inputs_sha256: str, spec_fingerprint: str, code: str, hps: dict[str, Any]) -> str:
    """What makes a model: the input list, the spec, the job code and the hyperparameters.

    Two runs with the same key train the same model (up to the seed), so a run whose key is the
    serving model's ends at once as skipped instead of repeating its training.
    """
    blob = json.dumps(
        {"inputs": inputs_sha256, "spec": spec_fingerprint, "code": code, "hyperparameters": hps},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def champion_key(sagemaker: Any, package_arn: str) -> str | None:
    """The training key of the serving model's package (from its metadata; computed from the
    lineage fields for packages registered before the key was), or None when unknown."""
    if not package_arn:
        return None
    try:
        described = sagemaker.describe_model_package(ModelPackageName=package_arn)
    except ClientError:
        return None
    meta = described.get("CustomerMetadataProperties") or {}
    if meta.get("training_key"):
        return str(meta["training_key"])
    try:
        hps = json.loads(meta["hyperparameters"])
        return training_key(
            meta["inputs_sha256"], meta["spec_fingerprint"], meta["code_version"], hps
        )
    except (KeyError, ValueError):  # missing, or truncated to the metadata's 256 characters
        return None


#: why a run with the serving model's inputs is skipped, by what started it (most specific first)
SKIP_REASONS = {
    "drift": "drift detected, no new labelled data since the serving model — upload recent "
    "labelled data or feedback",
    "quality": "model quality below the threshold, no new labelled data since the serving "
    "model — upload recent labelled data or feedback",
    "schedule": "scheduled retraining: no new data since the serving model was trained — "
    "upload recent labelled data or feedback",
}
SAME_INPUTS = (
    "the same inputs as the serving model (data, spec, code, hyperparameters): training "
    "again would only repeat it"
)


def skip_reason(run_triggers: list[dict[str, Any]]) -> str:
    kinds = {str(t.get("type")) for t in run_triggers}
    for kind, reason in SKIP_REASONS.items():
        if kind in kinds:
            return reason
    return SAME_INPUTS


def approval(settings: Settings, requested: Any) -> str:
    """The stage decides; a run may only ask for more care (manual), never less."""
    if requested not in (None, "auto", "manual"):
        raise BadInput('approval must be "auto" or "manual"')
    return "manual" if "manual" in (settings.approval, requested) else "auto"


def prepare(
    event: dict[str, Any], settings: Settings, *, s3: Any, sagemaker: Any, dynamodb: Any
) -> dict[str, Any]:
    state = event["input"]
    dataset = str(state.get("dataset") or "")
    if not names.DATASET_NAME.match(dataset):
        raise BadInput(f"dataset {dataset!r} is not a dataset name")
    path = spec_path(dataset)
    if path is None:
        raise UnknownDataset(f"no spec datasets/{dataset}.yaml is deployed")
    spec = load_spec(path)
    run_id = names.run_id(event["started_at"], event["execution_name"])
    run_prefix = names.run_artifacts_prefix(dataset, run_id)
    artifacts = f"s3://{settings.artifacts_bucket}/{run_prefix}"

    inputs = write_run_inputs(
        s3,
        curated_bucket=settings.curated_bucket,
        dataset=dataset,
        window_days=spec.training.window_days,
        artifacts_bucket=settings.artifacts_bucket,
        run_prefix=run_prefix,
    )
    s3.put_object(
        Bucket=settings.artifacts_bucket,
        Key=f"{run_prefix}spec/{path.name}",
        Body=path.read_bytes(),
        ContentType="application/yaml",
    )
    endpoint = names.endpoint_name(settings.prefix, dataset)
    serving = champions.serving(sagemaker, endpoint)
    champion: dict[str, Any] = {"package_arn": "", "version": "", "model": f"{artifacts}champion/"}
    if serving is not None and serving.status in ("InService", "Updating") and serving.model_data:
        bucket, key = serving.model_data.removeprefix("s3://").split("/", 1)
        s3.copy_object(
            Bucket=settings.artifacts_bucket,
            Key=f"{run_prefix}champion/model.tar.gz",
            CopySource={"Bucket": bucket, "Key": key},
        )
        champion.update(package_arn=serving.package_arn, version=serving.version)
    else:
        s3.put_object(
            Bucket=settings.artifacts_bucket,
            Key=f"{run_prefix}champion/NONE",
            Body=b"no champion: the endpoint serves no model yet\n",
        )

    hps = hyperparameters(settings, spec, state.get("hyperparameters"))
    key = training_key(inputs.sha256, spec.fingerprint, settings.code_version or "unknown", hps)
    run_triggers = triggers(state.get("trigger"))
    skip = None
    if inputs.files and key == champion_key(sagemaker, champion["package_arn"]):
        skip = {"reason": skip_reason(run_triggers), "champion": champion["version"]}
    train = settings.training
    stopping: dict[str, int] = {"MaxRuntimeInSeconds": train.max_runtime_seconds}
    if train.spot:
        stopping["MaxWaitTimeInSeconds"] = max(train.max_wait_seconds, train.max_runtime_seconds)
    tags = [
        {"Key": names.TAG_STAGE, "Value": settings.stage},
        {"Key": names.TAG_DATASET, "Value": dataset},
        {"Key": names.TAG_RUN, "Value": run_id},
        {"Key": names.TAG_MANAGED_BY, "Value": names.MANAGED_BY_PIPELINE},
    ]
    run = {
        "id": run_id,
        "dataset": dataset,
        "stage": settings.stage,
        "execution": event["execution"],
        "started_at": event["started_at"],
        "artifacts": artifacts,
        "approval": approval(settings, state.get("approval")),
        "spec": {
            "uri": f"{artifacts}spec/",
            "version": spec.version,
            "fingerprint": spec.fingerprint,
            "metric": spec.metric.name,
        },
        "inputs": inputs.as_dict(),
        "training_key": key,
        "champion": champion,
        "endpoint": endpoint,
        "names": {
            "train": names.run_resource_name(settings.prefix, dataset, run_id, "train"),
            "evaluate": names.run_resource_name(settings.prefix, dataset, run_id, "eval"),
        },
        "train": {
            "instance_type": train.instance_type,
            "volume_gb": train.volume_gb,
            "spot": train.spot,
            "stopping": stopping,
            "hyperparameters": sagemaker_hyperparameters(hps, settings.sourcedir_uri),
            "checkpoints": f"{artifacts}checkpoints/",
            "output": f"{artifacts}model/",
            "environment": {"SLUICE_CODE_VERSION": settings.code_version or "unknown"},
        },
        "evaluate": {
            "instance_type": settings.processing_instance_type,
            "volume_gb": settings.processing_volume_gb,
            "stopping": {"MaxRuntimeInSeconds": settings.processing_max_runtime_seconds},
            "output": f"{artifacts}evaluation/",
        },
        "tags": tags,
        "timing": {
            "poll_seconds": settings.poll_seconds,
            "backoff": list(settings.backoff_seconds),
        },
    }
    if skip is not None:  # the state machine ends the run at once ("Nothing new")
        run["skip"] = skip
    Ledger(settings.ledger_table, dynamodb).start(
        {
            "dataset": dataset,
            "run_id": run_id,
            "execution": event["execution"],
            "triggers": run_triggers,
            "started_at": event["started_at"],
            "inputs": inputs.as_dict(),
            "training_key": key,
            "champion": {k: v for k, v in champion.items() if k != "model"},
            "hyperparameters": hps,
            "spec": run["spec"],
            "approval": run["approval"],
            "artifacts": artifacts,
        }
    )
    return {
        "dataset": dataset,
        "trigger": state.get("trigger"),
        "run": run,
        "retry": {"count": 0, "wait": 0},
    }
