"""Ground-truth label files: ``s3://<raw>/<dataset>/_feedback/<name>`` (CSV or JSON lines).

A label names the prediction it belongs to in one of two ways, and gives the true value:

- by the record's id: the spec's id column (``customer_id``) or ``id``;
- by the API's request id and instance index: ``request_id`` and ``instance`` (the position of
  the record in the request's ``instances``; 0 when absent);
- the label: the spec's target column (``churned``) or ``label``.

CSV files have a header; JSON-lines files one object per line (``.jsonl``, ``.ndjson``,
``.json``, or any file whose first character is ``{``). A label is checked against the spec's
target (a class of a classification target, a number for regression); a row that names no
prediction or carries no valid label is invalid, counted and reported with its line.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

from datasets.spec import DatasetSpec

JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")


@dataclass(frozen=True)
class Label:
    #: 1-based line of the file (CSV: the header is line 1)
    line: int
    label: Any
    id: str | None = None
    request_id: str | None = None
    instance: int = 0

    @property
    def request_key(self) -> tuple[str, int] | None:
        return (self.request_id, self.instance) if self.request_id else None


@dataclass(frozen=True)
class Invalid:
    line: int
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "reason": self.reason}


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _label(spec: DatasetSpec, value: Any) -> tuple[Any, str | None]:
    """The label as the target's type (a class of the spec, or a number), or why not."""
    text = _text(value)
    if text is None:
        return None, "no label"
    if spec.problem_type == "regression":
        try:
            return float(text), None
        except ValueError:
            return None, f"label {text!r} is not a number"
    for cls in spec.classes:
        if str(cls) == text or (isinstance(value, bool | int | float) and value == cls):
            return cls, None
    classes = ", ".join(map(str, spec.classes))
    return None, f"label {text!r} is not one of the target's classes ({classes})"


def _row(spec: DatasetSpec, line: int, row: dict[str, Any]) -> Label | Invalid:
    id_field = spec.id_column if spec.id_column and spec.id_column in row else "id"
    label_field = spec.target_column if spec.target_column in row else "label"
    label, problem = _label(spec, row.get(label_field))
    if problem is not None:
        return Invalid(line, problem)
    request_id = _text(row.get("request_id"))
    raw_instance = _text(row.get("instance"))
    try:
        instance = int(raw_instance) if raw_instance is not None else 0
    except ValueError:
        return Invalid(line, f"instance {raw_instance!r} is not a whole number")
    if instance < 0:
        return Invalid(line, "instance must be 0 or more")
    record_id = _text(row.get(id_field))
    if request_id is None and record_id is None:
        named = f"{spec.id_column} (or id)" if spec.id_column else "id"
        return Invalid(line, f"names no prediction: give {named}, or request_id and instance")
    return Label(line=line, label=label, id=record_id, request_id=request_id, instance=instance)


def parse(spec: DatasetSpec, body: bytes, key: str) -> tuple[list[Label], list[Invalid]]:
    """The labels of a file, and its invalid rows."""
    text = body.decode("utf-8-sig", errors="replace")
    labels: list[Label] = []
    invalid: list[Invalid] = []
    as_json = key.lower().endswith(JSON_SUFFIXES) or text.lstrip().startswith("{")
    if as_json:
        for number, raw in enumerate(text.splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
            except ValueError:
                invalid.append(Invalid(number, "not a JSON object"))
                continue
            if not isinstance(row, dict):
                invalid.append(Invalid(number, "not a JSON object"))
                continue
            parsed = _row(spec, number, row)
            (labels if isinstance(parsed, Label) else invalid).append(parsed)  # type: ignore[arg-type]
        return labels, invalid
    reader = csv.DictReader(io.StringIO(text))
    for number, row in enumerate(reader, start=2):
        parsed = _row(spec, number, dict(row))
        (labels if isinstance(parsed, Label) else invalid).append(parsed)  # type: ignore[arg-type]
    return labels, invalid
