"""The pipeline from the command line (``make train``, ``make runs``, ``make deploy-model``),
with your AWS credentials.

    python -m lambdas.pipeline train DATASET [--stage dev] [--approval manual] [--hp name=value]
    python -m lambdas.pipeline runs [--dataset DATASET] [--stage dev] [--limit 20]
    python -m lambdas.pipeline deploy DATASET VERSION [--stage dev] [--no-wait]

``train`` starts the training state machine with the input documented in README.md
(``{"dataset": ..., "trigger": {"type": "manual", "by": ...}}``); the run takes the dataset's
lock like any other, so it queues behind a running one. ``runs`` prints the run ledger.
``deploy`` puts an approved model package version of the dataset back on its endpoint through
the same deploy steps (blue/green canary, rollback alarms), and follows it to its end; the
ledger records it as a deploy of its own (trigger ``deploy``). Resources are found through the
stacks' outputs (``sluice-<stage>-app``/``-data``).
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from typing import Any

import boto3

from datasets import names

#: how often ``deploy`` looks at the endpoint while it follows a deploy
FOLLOW_SECONDS = 1.0


def _outputs(cloudformation: Any, stack: str) -> dict[str, str]:
    described = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lambdas.pipeline")
    parser.add_argument("--stage", default="dev")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="start a training run of a dataset")
    train.add_argument("dataset")
    train.add_argument("--approval", choices=("auto", "manual"), default=None)
    train.add_argument("--hp", action="append", default=[], metavar="NAME=VALUE")
    runs = sub.add_parser("runs", help="print the recent runs")
    runs.add_argument("--dataset", default=None)
    runs.add_argument("--limit", type=int, default=20)
    deploy = sub.add_parser("deploy", help="deploy an approved model package version again")
    deploy.add_argument("dataset")
    deploy.add_argument("version", type=int)
    deploy.add_argument("--no-wait", action="store_true", help="start it and return")
    args = parser.parse_args(argv)

    prefix = f"sluice-{args.stage}"
    cloudformation = boto3.client("cloudformation")
    if args.command == "deploy":
        return deploy_model(
            _outputs(cloudformation, f"{prefix}-app"),
            prefix,
            args.dataset,
            args.version,
            wait=not args.no_wait,
        )
    if args.command == "train":
        outputs = _outputs(cloudformation, f"{prefix}-app")
        request: dict[str, Any] = {
            "dataset": args.dataset,
            "trigger": {"type": "manual", "by": getpass.getuser()},
        }
        if args.approval:
            request["approval"] = args.approval
        if args.hp:
            request["hyperparameters"] = {
                name: _value(value) for name, value in (hp.split("=", 1) for hp in args.hp)
            }
        started = boto3.client("stepfunctions").start_execution(
            stateMachineArn=outputs["TrainingStateMachineArn"], input=json.dumps(request)
        )
        print(started["executionArn"])
        return 0
    from lambdas.pipeline.ledger import Ledger, table

    outputs = _outputs(cloudformation, f"{prefix}-data")
    ledger = Ledger(outputs["RunLedgerTableName"], boto3.client("dynamodb"))
    print(table(ledger.runs(args.dataset, args.limit)))
    return 0


class DeployRefused(Exception):
    """The version cannot be deployed (unknown, or not approved); the message says why."""


def find_package(sagemaker: Any, group: str, version: int) -> dict[str, Any]:
    """The approved package ``version`` of ``group``, described."""
    for page in sagemaker.get_paginator("list_model_packages").paginate(
        ModelPackageGroupName=group
    ):
        for summary in page.get("ModelPackageSummaryList", []):
            if int(summary.get("ModelPackageVersion", 0)) == version:
                package = dict(
                    sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
                )
                status = package.get("ModelApprovalStatus")
                if status != "Approved":
                    why = package.get("ApprovalDescription") or "no reason recorded"
                    raise DeployRefused(
                        f"version {version} of {group} is {status} ({why}): only approved "
                        "versions are deployed. If it should serve after all, approve it first: "
                        "aws sagemaker update-model-package --model-package-arn "
                        f"{package['ModelPackageArn']} --model-approval-status Approved"
                    )
                return package
    raise DeployRefused(f"{group} has no version {version} (make runs lists the versions)")


def deploy_model(
    outputs: dict[str, str], prefix: str, dataset: str, version: int, *, wait: bool = True
) -> int:
    sagemaker, sfn = boto3.client("sagemaker"), boto3.client("stepfunctions")
    group = names.model_package_group_name(prefix, dataset)
    try:
        package = find_package(sagemaker, group, version)
    except DeployRefused as refused:
        print(f"not deployed: {refused}", file=sys.stderr)
        return 2
    started = sfn.start_execution(
        stateMachineArn=outputs["DeployStateMachineArn"],
        input=json.dumps(
            {"package_arn": package["ModelPackageArn"], "source": "manual", "by": getpass.getuser()}
        ),
    )
    execution = started["executionArn"]
    endpoint = names.endpoint_name(prefix, dataset)
    print(f"deploying version {version} of {dataset} to {endpoint}: {execution}", flush=True)
    if not wait:
        return 0
    seen = ""
    while True:
        described = sfn.describe_execution(executionArn=execution)
        try:
            phase = _phase(sagemaker.describe_endpoint(EndpointName=endpoint))
        except sagemaker.exceptions.ClientError:
            phase = "no endpoint yet"
        if phase != seen:
            print(f"  endpoint: {phase}", flush=True)
            seen = phase
        if described["status"] != "RUNNING":
            break
        time.sleep(FOLLOW_SECONDS)
    if described["status"] == "SUCCEEDED":
        print(f"deployed: version {version} serves on {endpoint}")
        return 0
    print(f"not deployed ({described.get('error', described['status'])}): "
          f"{described.get('cause', '')}", file=sys.stderr)  # fmt: skip
    return 1


def _phase(described: dict[str, Any]) -> str:
    """The endpoint's status, with the traffic on the new fleet while a deployment runs."""
    status = str(described["EndpointStatus"])
    pending = (described.get("PendingDeploymentSummary") or {}).get("ProductionVariants") or []
    if not pending:
        return f"{status} on {described.get('EndpointConfigName')}"
    variant = pending[0]
    latest = (variant.get("VariantStatus") or [{}])[-1]
    desired = variant.get("DesiredWeight") or 1
    share = (variant.get("CurrentWeight") or 0) / desired
    return f"{status}: {latest.get('Status', '')} ({share:.0%} of the traffic on the new model)"


if __name__ == "__main__":
    sys.exit(main())
