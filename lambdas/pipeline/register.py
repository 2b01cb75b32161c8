"""Read the evaluation's verdict, and register the challenger in the dataset's model group.

``summarize`` turns ``evaluation.json`` into the few fields the gate and the notifications need.
``register`` creates the model package — ``Rejected`` with the reason when the gate said no;
``Approved`` (auto approval, dev) or ``PendingManualApproval`` (manual, prod) when it said yes —
with ``ModelMetrics`` pointing at ``evaluation.json``, and the run's lineage (run id, input
manifest, code and spec versions, hyperparameters) in its metadata and in ``lineage.json``.
``ClientToken`` is the run id: a retried call returns the same package.
"""

from __future__ import annotations

import json
from typing import Any

from datasets import names
from lambdas.pipeline.ledger import Ledger
from lambdas.pipeline.settings import Settings

#: CustomerMetadataProperties values hold at most 256 characters
METADATA_VALUE_LIMIT = 256
SERVING_ENVIRONMENT = {
    "SAGEMAKER_PROGRAM": "inference.py",
    "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
}


def _split(uri: str) -> tuple[str, str]:
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    return bucket, key


def summarize(event: dict[str, Any], *, s3: Any) -> dict[str, Any]:
    run = event["run"]
    uri = f"{run['evaluate']['output']}evaluation.json"
    bucket, key = _split(uri)
    doc = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    champion = doc.get("champion") or {}
    gaps = (doc.get("challenger") or {}).get("segment_gaps") or {}
    return {
        "verdict": doc["verdict"],
        "promote": bool(doc["promote"]),
        "reason": doc.get("reason", ""),
        "metric": doc["metric"]["name"],
        "challenger": (doc.get("challenger") or {}).get("primary"),
        "champion": champion.get("primary") if champion else None,
        "segment_gap": gaps.get("largest"),
        "evaluation": uri,
        "report": f"{run['evaluate']['output']}report.html",
    }


def _metadata(values: dict[str, Any]) -> dict[str, str]:
    out = {}
    for key, value in values.items():
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        out[key] = (
            text if len(text) <= METADATA_VALUE_LIMIT else text[: METADATA_VALUE_LIMIT - 1] + "…"
        )
    return out


def register(
    event: dict[str, Any], settings: Settings, *, s3: Any, sagemaker: Any, dynamodb: Any
) -> dict[str, Any]:
    run, train, evaluation = event["run"], event["train"], event["evaluation"]
    promote = event["decision"] == "promote"
    status = (
        "Rejected"
        if not promote
        else ("Approved" if run["approval"] == "auto" else "PendingManualApproval")
    )
    hps = {
        k: json.loads(v)
        for k, v in run["train"]["hyperparameters"].items()
        if not k.startswith("sagemaker_")
    }
    lineage = {
        "run_id": run["id"],
        "dataset": run["dataset"],
        "execution": run["execution"],
        "inputs": run["inputs"],
        "spec": run["spec"],
        "code_version": run["train"]["environment"].get("SLUICE_CODE_VERSION", ""),
        "hyperparameters": hps,
        "training_job": train["job"],
        "champion": run["champion"],
        "evaluation": evaluation,
    }
    bucket, key = _split(f"{run['artifacts']}lineage.json")
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(lineage, indent=1).encode())
    group = names.model_package_group_name(settings.prefix, run["dataset"])
    inference: dict[str, Any] = {
        "Containers": [
            {
                "Image": settings.image_uri,
                "ModelDataUrl": train["model"],
                "Environment": SERVING_ENVIRONMENT,
            }
        ],
        "SupportedContentTypes": ["application/json", "text/csv"],
        "SupportedResponseMIMETypes": ["application/json"],
    }
    variant = (settings.endpoints.get(run["dataset"]) or {}).get("variant") or {}
    if variant.get("InstanceType"):  # a real-time endpoint's (serverless has none)
        inference["SupportedRealtimeInferenceInstanceTypes"] = [variant["InstanceType"]]
    response = sagemaker.create_model_package(
        ModelPackageGroupName=group,
        ModelPackageDescription=f"run {run['id']}: {evaluation['reason']}"[:1000],
        InferenceSpecification=inference,
        ModelApprovalStatus=status,
        ModelMetrics={
            "ModelQuality": {
                "Statistics": {"ContentType": "application/json", "S3Uri": evaluation["evaluation"]}
            }
        },
        CustomerMetadataProperties=_metadata(
            {
                "run_id": run["id"],
                "dataset": run["dataset"],
                "approval": run["approval"],
                "verdict": evaluation["verdict"],
                "reason": evaluation["reason"],
                "inputs_manifest": run["inputs"]["list"],
                "inputs_sha256": run["inputs"]["sha256"],
                "inputs_rows": str(run["inputs"]["rows"]),
                # the run's input list, spec, code and hyperparameters in one hash: a later
                # run with the same key ends at once as skipped (prepare.training_key)
                "training_key": run.get("training_key", ""),
                "code_version": lineage["code_version"],
                "spec_version": str(run["spec"]["version"]),
                "spec_fingerprint": run["spec"]["fingerprint"],
                "hyperparameters": hps,
                "training_job": train["job"],
                "report": evaluation["report"],
                "lineage": f"{run['artifacts']}lineage.json",
            }
        ),
        ClientToken=run["id"],
        Tags=run["tags"],
    )
    arn = response["ModelPackageArn"]
    package = sagemaker.describe_model_package(ModelPackageName=arn)
    if status == "Rejected" and not package.get("ApprovalDescription"):
        # CreateModelPackage takes no ApprovalDescription: the reason is set right after
        sagemaker.update_model_package(
            ModelPackageArn=arn,
            ModelApprovalStatus=status,
            ApprovalDescription=evaluation["reason"][:1000],
        )
    result = {"package_arn": arn, "version": int(package["ModelPackageVersion"]), "status": status}
    Ledger(settings.ledger_table, dynamodb).update(
        run["dataset"],
        run["id"],
        {
            "verdict": evaluation["verdict"],
            "reason": evaluation["reason"],
            "metrics": {
                "name": evaluation["metric"],
                "challenger": evaluation["challenger"],
                "champion": evaluation["champion"],
                "segment_gap": evaluation.get("segment_gap"),
            },
            "model_package": result,
            "report": evaluation["report"],
            "evaluation": evaluation["evaluation"],
        },
    )
    return result
