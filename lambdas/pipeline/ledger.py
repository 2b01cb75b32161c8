"""The run ledger: one DynamoDB item per run (partition ``dataset``, sort ``run_id``).

Attributes: execution, status (RUNNING, SUCCEEDED, FAILED, ABORTED, TIMED_OUT), outcome
(deployed, rejected, awaiting_approval, failed, skipped, stopped, timed_out), triggers,
started_at/ended_at, inputs (URI, hash, counts — never the list itself), champion, verdict,
reason, metrics, model package, report, durations per step, error, and the deployment (also the
one an approval starts later).
``python -m lambdas.pipeline runs`` prints them (``make runs``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _dynamo(value: Any) -> Any:
    """Floats as Decimal (DynamoDB numbers); NaN/None dropped by the JSON round trip."""
    return json.loads(json.dumps(value, default=str), parse_float=Decimal)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | set):
        return [_plain(v) for v in value]
    return value


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _SERIALIZER.serialize(_dynamo(v)) for k, v in values.items() if v is not None}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _plain(_DESERIALIZER.deserialize(v)) for k, v in item.items()}


class Ledger:
    def __init__(self, table: str, dynamodb: Any) -> None:
        self.table, self.dynamodb = table, dynamodb

    def _key(self, dataset: str, run_id: str) -> dict[str, Any]:
        return {"dataset": {"S": dataset}, "run_id": {"S": run_id}}

    def start(self, run: dict[str, Any]) -> None:
        """Record a run that starts (a retried prepare finds its own item and keeps it)."""
        try:
            self.dynamodb.put_item(
                TableName=self.table,
                Item=to_item({**run, "status": "RUNNING"}),
                ConditionExpression="attribute_not_exists(run_id) OR execution = :me",
                ExpressionAttributeValues={":me": {"S": run["execution"]}},
            )
        except self.dynamodb.exceptions.ConditionalCheckFailedException as exc:
            raise RuntimeError(
                f"run {run['run_id']} is already recorded by another execution"
            ) from exc

    def update(self, dataset: str, run_id: str, values: dict[str, Any]) -> None:
        """Set attributes of a run (creating the item when the run never got one)."""
        values = {k: v for k, v in values.items() if v is not None}
        if not values:
            return
        names = {f"#a{i}": k for i, k in enumerate(values)}
        item = to_item(values)
        self.dynamodb.update_item(
            TableName=self.table,
            Key=self._key(dataset, run_id),
            UpdateExpression="SET " + ", ".join(f"#a{i} = :v{i}" for i in range(len(values))),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={f":v{i}": item[k] for i, k in enumerate(values)},
        )

    def claim(self, dataset: str, run_id: str, attribute: str, owner: str) -> bool:
        """Set ``attribute`` to ``owner`` unless someone else holds it; False when they do.

        True too when the run has no item (nothing to deduplicate against).
        """
        try:
            self.dynamodb.update_item(
                TableName=self.table,
                Key=self._key(dataset, run_id),
                UpdateExpression="SET #c = :me",
                ConditionExpression="attribute_exists(run_id) AND "
                "(attribute_not_exists(#c) OR #c = :me)",
                ExpressionAttributeNames={"#c": attribute},
                ExpressionAttributeValues={":me": {"S": owner}},
            )
            return True
        except self.dynamodb.exceptions.ConditionalCheckFailedException:
            return self.get(dataset, run_id) is None

    def get(self, dataset: str, run_id: str) -> dict[str, Any] | None:
        item = self.dynamodb.get_item(
            TableName=self.table, Key=self._key(dataset, run_id), ConsistentRead=True
        ).get("Item")
        return from_item(item) if item else None

    def runs(self, dataset: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        """The newest runs first (of one dataset, or of all)."""
        items: list[dict[str, Any]] = []
        if dataset:
            pages: Iterable[dict[str, Any]] = self.dynamodb.get_paginator("query").paginate(
                TableName=self.table,
                KeyConditionExpression="dataset = :d",
                ExpressionAttributeValues={":d": {"S": dataset}},
                ScanIndexForward=False,
                PaginationConfig={"MaxItems": limit},
            )
        else:
            pages = self.dynamodb.get_paginator("scan").paginate(TableName=self.table)
        for page in pages:
            items.extend(from_item(i) for i in page.get("Items", []))
        items.sort(key=lambda r: str(r.get("started_at", "")), reverse=True)
        return items[:limit]


COLUMNS = (
    ("dataset", 12),
    ("run_id", 22),
    ("trigger", 9),
    ("status", 9),
    ("outcome", 17),
    ("metric", 24),
    ("version", 7),
    ("seconds", 7),
)


def row(run: dict[str, Any]) -> dict[str, str]:
    """One run as the table shows it (and as the notifications say it)."""
    triggers = run.get("triggers") or []
    first = triggers[0] if triggers else {}
    metrics = run.get("metrics") or {}
    metric = ""
    if metrics.get("name"):
        champion = metrics.get("champion")
        metric = f"{metrics['name']} {_fmt(metrics.get('challenger'))}"
        if champion is not None:
            metric += f" vs {_fmt(champion)}"
    package = run.get("model_package") or {}
    return {
        "dataset": str(run.get("dataset", "")),
        "run_id": str(run.get("run_id", "")),
        "trigger": str(first.get("type", ""))
        + (f"+{len(triggers) - 1}" if len(triggers) > 1 else ""),
        "status": str(run.get("status", "")),
        "outcome": str(run.get("outcome", "")),
        "metric": metric,
        "version": str(package.get("version", "")),
        "seconds": str(run.get("seconds", "")),
    }


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "-"


def table(runs: list[dict[str, Any]]) -> str:
    lines = ["  ".join(name.upper().ljust(width) for name, width in COLUMNS)]
    for run in runs:
        cells = row(run)
        lines.append("  ".join(cells[name].ljust(width) for name, width in COLUMNS))
    return "\n".join(lines)
