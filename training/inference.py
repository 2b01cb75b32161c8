"""SageMaker inference handlers: ``model_fn``, ``input_fn``, ``predict_fn``, ``output_fn``.

Requests (``Content-Type``):
- ``application/json``: ``{"instances": [{"<feature>": value, ...}, ...]}``;
- ``text/csv``: one row per instance; the first line is a header naming the features (any
  order) when it contains a feature name, otherwise every row holds all features in schema order.

Every instance is checked against the saved feature schema: a missing feature, an unknown field, a
value of the wrong type, an unknown category or a null in a non-nullable feature raises
``InvalidInputError`` whose message names the feature (and the instance); a serving layer maps it
to HTTP 400. Valid instances are encoded exactly like the training data (``training.schema``).

Responses (``Accept``, default ``application/json``): ``{"predictions": [...]}``, one per instance:
- binary: ``{"label": <predicted class>, "probability": <P(positive class)>}``, the positive class
  being the spec's ``positive_class`` (else its last category) and the label positive when the
  probability is at least 0.5;
- multiclass: ``{"label": <predicted class>, "probabilities": {"<class>": p, ...}}``;
- regression: ``{"value": <prediction>}``.
``text/csv`` answers one line per instance: ``label,probability`` / ``label`` / ``value``.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from training.artifacts import LoadedModel, load_model_dir
from training.schema import FeatureSchema, FeatureSpec, arrow_type, encode_table

JSON = "application/json"
CSV = "text/csv"
_MAX_DETAILS = 10
_TYPE_NAMES = {"float": "a number", "int": "an integer", "bool": "a boolean", "string": "a string"}
_ALLOWED = {"float": (int, float), "int": (int, float), "bool": (bool,), "string": (str,)}


class InvalidInputError(ValueError):
    """The request does not match the model's schema (HTTP 400); ``details`` lists each issue."""

    code = "invalid_input"

    def __init__(self, details: list[str]) -> None:
        self.details = details[:_MAX_DETAILS]
        more = len(details) - len(self.details)
        super().__init__("; ".join(self.details) + (f" (and {more} more)" if more > 0 else ""))


class UnsupportedMediaError(ValueError):
    """A content type or accept type the handlers do not speak (HTTP 415 / 406)."""


@dataclass(frozen=True)
class Batch:
    """Validated, encoded instances: the model matrix (float32, schema order)."""

    matrix: np.ndarray

    @property
    def rows(self) -> int:
        return int(self.matrix.shape[0])


@dataclass(frozen=True)
class Prediction:
    problem_type: str
    values: np.ndarray  # P(positive) | (n, k) probabilities | regression values
    labels: np.ndarray | None
    classes: tuple[Any, ...]


# ---------------------------------------------------------------------- validation
def _type_name(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string"}.get(
        type(value), type(value).__name__
    )


def _column_from_values(feature: FeatureSpec, values: list[Any], issues: list[str]) -> pa.Array:
    allowed = _ALLOWED[feature.dtype]
    bad_types = {t for t in set(map(type, values)) if t not in allowed and t is not type(None)}
    if bad_types:
        for i, v in enumerate(values):
            if type(v) in bad_types:
                issues.append(
                    f"instance {i}: feature {feature.name!r} expects {_TYPE_NAMES[feature.dtype]},"
                    f" got {_type_name(v)} {v!r}"
                )
                break
        return pa.nulls(len(values), arrow_type(feature))
    try:
        return pa.array(values, type=arrow_type(feature))
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        for i, v in enumerate(values):
            try:
                pa.array([v], type=arrow_type(feature))
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
                issues.append(
                    f"instance {i}: feature {feature.name!r} expects {_TYPE_NAMES[feature.dtype]},"
                    f" got {v!r}"
                )
                break
        return pa.nulls(len(values), arrow_type(feature))


def _check_values(feature: FeatureSpec, column: pa.Array, issues: list[str]) -> None:
    if not feature.nullable and column.null_count:
        first = pc.index(pc.is_null(column), True).as_py()
        issues.append(f"instance {first}: feature {feature.name!r} must not be null")
    if feature.kind == "categorical":
        value_set = pa.array(list(feature.categories or ()), type=column.type)
        unknown = pc.and_(pc.invert(pc.is_in(column, value_set=value_set)), pc.is_valid(column))
        if pc.any(unknown).as_py():
            i = pc.index(unknown, True).as_py()
            allowed = ", ".join(map(str, feature.categories or ()))
            issues.append(
                f"instance {i}: feature {feature.name!r} has unknown category "
                f"{column[i].as_py()!r} (expected one of {allowed})"
            )


def _encode(
    schema: FeatureSchema,
    columns: dict[str, pa.Array],
    issues: list[str],
    reported: frozenset[str] = frozenset(),
) -> Batch:
    for feature in schema.features:
        if feature.name not in reported:
            _check_values(feature, columns[feature.name], issues)
    if issues:
        raise InvalidInputError(issues)
    return Batch(encode_table(pa.table(columns), schema))


def parse_instances(instances: Any, schema: FeatureSchema) -> Batch:
    """Validate JSON instances (a list of objects) and encode them."""
    if not isinstance(instances, list) or not instances:
        raise InvalidInputError(["'instances' must be a non-empty list of objects"])
    for i, row in enumerate(instances):
        if not isinstance(row, dict):
            raise InvalidInputError([f"instance {i}: expected an object, got {_type_name(row)}"])
    issues: list[str] = []
    names = schema.names
    unknown = set().union(*instances) - set(names)
    for name in sorted(unknown):
        i = next(k for k, row in enumerate(instances) if name in row)
        issues.append(
            f"instance {i}: unknown field {name!r} (the model's features: {', '.join(names)})"
        )
    missing = object()
    absent: set[str] = set()
    columns: dict[str, pa.Array] = {}
    for feature in schema.features:
        values = [row.get(feature.name, missing) for row in instances]
        if any(v is missing for v in values):
            i = next(k for k, v in enumerate(values) if v is missing)
            issues.append(f"instance {i}: missing feature {feature.name!r}")
            absent.add(feature.name)
            values = [None if v is missing else v for v in values]
        columns[feature.name] = _column_from_values(feature, values, issues)
    return _encode(schema, columns, issues, frozenset(absent))


def parse_json(body: str | bytes, schema: FeatureSchema) -> Batch:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInputError([f"the body is not valid JSON: {exc}"]) from exc
    if not isinstance(doc, dict) or "instances" not in doc:
        raise InvalidInputError(['the body must be an object {"instances": [...]}'])
    extra = sorted(set(doc) - {"instances"})
    if extra:
        raise InvalidInputError([f"unknown field {name!r} in the body" for name in extra])
    return parse_instances(doc["instances"], schema)


def _csv_column(feature: FeatureSpec, text: pa.ChunkedArray, issues: list[str]) -> pa.Array:
    text = text.combine_chunks()
    target = arrow_type(feature)
    if target == pa.string():
        return text
    try:
        return pc.cast(text, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        for i, v in enumerate(text.to_pylist()):
            try:
                pc.cast(pa.array([v]), target)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                issues.append(
                    f"instance {i}: feature {feature.name!r} expects {_TYPE_NAMES[feature.dtype]},"
                    f" got {v!r}"
                )
                break
        return pa.nulls(len(text), target)


def parse_csv(body: str | bytes, schema: FeatureSchema) -> Batch:
    data = body.encode() if isinstance(body, str) else body
    first_line = data.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    if not first_line:
        raise InvalidInputError(["the CSV body is empty"])
    first = [c.strip() for c in next(csv.reader([first_line]))]
    names = schema.names
    has_header = any(c in names for c in first)
    if not has_header and len(first) != len(names):
        raise InvalidInputError(
            [
                f"CSV rows have {len(first)} fields but the model takes {len(names)}; "
                f"send a header row, or all features in this order: {', '.join(names)}"
            ]
        )
    columns_in = first if has_header else names
    issues = [f"unknown field {c!r}" for c in columns_in if c not in names]
    issues += [f"missing feature {n!r}" for n in names if n not in columns_in]
    if issues:
        raise InvalidInputError(issues)
    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(
                column_names=columns_in, skip_rows=1 if has_header else 0
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(columns_in, pa.string()),
                null_values=[""],
                strings_can_be_null=True,
            ),
        )
    except pa.ArrowInvalid as exc:
        raise InvalidInputError([f"the CSV body cannot be parsed: {exc}"]) from exc
    if table.num_rows == 0:
        raise InvalidInputError(["the CSV body holds no instances"])
    columns = {f.name: _csv_column(f, table.column(f.name), issues) for f in schema.features}
    return _encode(schema, columns, issues)


# ---------------------------------------------------------------------- SageMaker handlers
_SCHEMA: FeatureSchema | None = None


def _schema() -> FeatureSchema:
    """The schema of the model this worker loaded (model_fn runs before input_fn)."""
    global _SCHEMA  # noqa: PLW0603 (one model per worker process, as SageMaker serves)
    if _SCHEMA is None:
        model_dir = Path(os.environ.get("SM_MODEL_DIR", "/opt/ml/model"))
        _SCHEMA = FeatureSchema.load(model_dir / "schema.json")
    return _SCHEMA


def model_fn(model_dir: str) -> LoadedModel:
    global _SCHEMA  # noqa: PLW0603
    model = load_model_dir(Path(model_dir))
    _SCHEMA = model.schema
    return model


def _media(content_type: str | None) -> str:
    return (content_type or JSON).split(";")[0].strip().lower()


def input_fn(input_data: str | bytes, content_type: str | None) -> Batch:
    media = _media(content_type)
    if media == JSON:
        return parse_json(input_data, _schema())
    if media == CSV:
        return parse_csv(input_data, _schema())
    raise UnsupportedMediaError(f"unsupported content type {content_type!r}; use {JSON} or {CSV}")


def predict_fn(input_data: Batch, model: LoadedModel) -> Prediction:
    """One ``inplace_predict`` over the whole batch; labels derived with numpy."""
    schema = model.schema
    values = model.scores(input_data.matrix)
    labels = None
    if schema.problem_type == "binary":
        labels = np.asarray(schema.classes, dtype=object)[(values >= 0.5).astype(np.intp)]
    elif schema.problem_type == "multiclass":
        labels = np.asarray(schema.classes, dtype=object)[np.argmax(values, axis=1)]
    return Prediction(schema.problem_type, values, labels, schema.classes)


def _rows(prediction: Prediction) -> list[Any]:
    values = np.round(prediction.values.astype(np.float64), 6).tolist()
    if prediction.problem_type == "regression":
        return [{"value": v} for v in values]
    labels = prediction.labels.tolist() if prediction.labels is not None else []
    if prediction.problem_type == "binary":
        return [{"label": lab, "probability": p} for lab, p in zip(labels, values, strict=True)]
    keys = [str(c) for c in prediction.classes]
    return [
        {"label": lab, "probabilities": dict(zip(keys, ps, strict=True))}
        for lab, ps in zip(labels, values, strict=True)
    ]


def output_fn(prediction: Prediction, accept: str | None) -> str:
    media = _media(accept if accept and accept != "*/*" else JSON)
    if media == JSON:
        return json.dumps({"predictions": _rows(prediction)})
    if media == CSV:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        for row in _rows(prediction):
            if prediction.problem_type == "binary":
                writer.writerow([row["label"], row["probability"]])
            else:
                writer.writerow([row.get("label", row.get("value"))])
        return out.getvalue()
    raise UnsupportedMediaError(f"unsupported accept type {accept!r}; use {JSON} or {CSV}")
