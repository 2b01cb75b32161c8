"""The pipeline from the command line (``make train``, ``make runs``), with your AWS credentials.

    python -m lambdas.pipeline train DATASET [--stage dev] [--approval manual] [--hp name=value]
    python -m lambdas.pipeline runs [--dataset DATASET] [--stage dev] [--limit 20]

``train`` starts the training state machine with the input documented in README.md
(``{"dataset": ..., "trigger": {"type": "manual", "by": ...}}``); the run takes the dataset's
lock like any other, so it queues behind a running one. ``runs`` prints the run ledger.
Resources are found through the stacks' outputs (``sluice-<stage>-app``/``-data``).
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Any

import boto3


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
    args = parser.parse_args(argv)

    prefix = f"sluice-{args.stage}"
    cloudformation = boto3.client("cloudformation")
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


if __name__ == "__main__":
    sys.exit(main())
