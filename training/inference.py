"""SageMaker inference handlers: ``model_fn``, ``input_fn``, ``predict_fn``, ``output_fn``.

Requests are records in the dataset's own shape, the way an upload holds them (``datasets.record``,
against the spec saved with the model): the declared columns minus the target, id and PII
optional, timestamps as ISO-8601 text. The engineered features are computed here, by the code
ingestion computed the training data's features with; a caller never computes one.
- ``application/json``: ``{"instances": [record, ...]}``;
- ``text/csv``: the upload's header and rows (without a header: every row holds the record's
  non-PII fields in spec order).

Answers (``Accept``, default ``application/json``), one prediction per instance, in order::

    {"predictions": [{"id": "C1", "label": 1, "probability": 0.83}, ...], "model_version": "7"}

``id`` only for instances that had the spec's id column; binary: ``label`` + ``probability``
(P(positive class), the spec's ``positive_class`` or its last category; label positive from 0.5);
multiclass: ``label`` + ``probabilities`` {class: p}; regression: ``value``. ``model_version`` is
the endpoint's ``SLUICE_MODEL_VERSION`` (the model package version), else the training run's id.
``text/csv`` answers one line per instance: ``label,probability`` / ``label`` / ``value``.

Client errors leave the container as 4xx, never 500 (a 500 counts in the endpoint's
``Invocation5XXErrors``, which is a rollback alarm; a malformed request must never roll a good
model back). Body: ``{"error": {"code": "invalid_input", "message": "...", "details":
[{"instance": 0, "field": "plan", "message": "..."}]}}`` with status 400 (``unsupported_media_type``
415, ``not_acceptable`` 406). How, in SageMaker's terms: the XGBoost container serves script mode
with sagemaker-containers (gunicorn + a Flask app whose ``/invocations`` view is the
transformer's ``transform()``). The transformer wraps every handler of this module in
``_functions.error_wrapper``, which re-raises *any* exception as ``_errors.ClientError``; Flask
answers that with 500. What the transformer does not touch is a handler's return value:
``output_fn``'s result goes to Flask as the view's response. So a client error is not raised here:
``input_fn`` returns it (a ``ClientError``) instead of a batch, ``predict_fn`` passes it on
without calling the model, and ``output_fn`` returns its response (a werkzeug ``Response`` with
the status, JSON body and ``Content-Type``; werkzeug is Flask's, in the image).
``training.local predict`` exits 2 on it. (The multi-model server path, with
sagemaker-inference-toolkit, is not used by Sluice.)
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

from datasets.record import RecordError, RecordShape
from training.artifacts import SPEC_FILE, LoadedModel, load_model_dir
from training.schema import encode_table

JSON = "application/json"
CSV = "text/csv"


# ---------------------------------------------------------------------- client errors
class ClientError(ValueError):
    """A request the client must fix, answered with ``status`` and the JSON error body.

    Returned by ``input_fn`` (and passed on by ``predict_fn``), not raised: the container would
    turn a raised exception into a 500 (module docstring).
    """

    status = 400
    error_code = "invalid_input"

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.details = details or []

    def body(self) -> str:
        error = {"code": self.error_code, "message": str(self), "details": self.details}
        return json.dumps({"error": error})

    def response(self) -> Any:
        """What ``output_fn`` hands the container's Flask app: status, body, content type."""
        from werkzeug.wrappers import Response

        return Response(self.body(), status=self.status, mimetype=JSON)


class InvalidInputError(ClientError):
    """The request does not match the dataset's record shape (HTTP 400)."""

    @classmethod
    def from_record_error(cls, error: RecordError) -> InvalidInputError:
        return cls(str(error), [d.as_dict() for d in error.details])


class UnsupportedMediaError(ClientError):
    """A content type the handlers do not read (HTTP 415)."""

    status = 415
    error_code = "unsupported_media_type"


class NotAcceptableError(ClientError):
    """An accept type the handlers do not write (HTTP 406)."""

    status = 406
    error_code = "not_acceptable"


# ---------------------------------------------------------------------- data passed along
@dataclass(frozen=True)
class Batch:
    """Checked instances: the model matrix (float32, schema order) and the ids to echo."""

    matrix: np.ndarray
    ids: dict[int, Any]

    @property
    def rows(self) -> int:
        return int(self.matrix.shape[0])


@dataclass(frozen=True)
class Prediction:
    problem_type: str
    values: np.ndarray  # P(positive) | (n, k) probabilities | regression values
    labels: np.ndarray | None
    classes: tuple[Any, ...]
    ids: dict[int, Any]
    model_version: str


# ---------------------------------------------------------------------- SageMaker handlers
_SHAPE: RecordShape | None = None
_MODEL: LoadedModel | None = None


def _model() -> LoadedModel:
    """The model this worker loaded (model_fn runs before input_fn)."""
    if _MODEL is None:
        model_fn(os.environ.get("SM_MODEL_DIR", "/opt/ml/model"))
    assert _MODEL is not None
    return _MODEL


def model_fn(model_dir: str) -> LoadedModel:
    global _SHAPE, _MODEL  # one model per worker process, as SageMaker serves
    model = load_model_dir(Path(model_dir))
    if model.spec is None:
        raise ValueError(
            f"{model_dir}: the model has no {SPEC_FILE} (trained before records were served); "
            "train it again"
        )
    _SHAPE, _MODEL = RecordShape(model.spec), model
    return model


def _media(content_type: str | None) -> str:
    return (content_type or JSON).split(";")[0].strip().lower()


def input_fn(input_data: str | bytes, content_type: str | None) -> Batch | ClientError:
    """The checked, encoded records; or, for a bad request, the client error to answer with."""
    model = _model()
    assert _SHAPE is not None
    media = _media(content_type)
    try:
        if media == JSON:
            records = _SHAPE.from_json(input_data)
        elif media == CSV:
            records = _SHAPE.from_csv(input_data)
        else:
            return UnsupportedMediaError(
                f"unsupported content type {content_type!r}; use {JSON} or {CSV}"
            )
    except RecordError as exc:
        return InvalidInputError.from_record_error(exc)
    return Batch(encode_table(pa.table(records.columns), model.schema), records.ids)


def model_version(model: LoadedModel) -> str:
    """The endpoint's SLUICE_MODEL_VERSION (model package version), else the run's id."""
    meta = model.metadata
    return os.environ.get("SLUICE_MODEL_VERSION") or str(
        meta.get("run_id") or meta.get("run_key") or "unknown"
    )


def predict_fn(input_data: Batch | ClientError, model: LoadedModel) -> Prediction | ClientError:
    """One ``inplace_predict`` over the whole batch; labels derived with numpy."""
    if isinstance(input_data, ClientError):
        return input_data
    schema = model.schema
    values = model.scores(input_data.matrix)
    labels = None
    if schema.problem_type == "binary":
        labels = np.asarray(schema.classes, dtype=object)[(values >= 0.5).astype(np.intp)]
    elif schema.problem_type == "multiclass":
        labels = np.asarray(schema.classes, dtype=object)[np.argmax(values, axis=1)]
    return Prediction(
        schema.problem_type,
        values,
        labels,
        schema.classes,
        input_data.ids,
        model_version(model),
    )


def _rows(prediction: Prediction) -> list[dict[str, Any]]:
    values = np.round(prediction.values.astype(np.float64), 6).tolist()
    rows: list[dict[str, Any]]
    if prediction.problem_type == "regression":
        rows = [{"value": v} for v in values]
    else:
        labels = prediction.labels.tolist() if prediction.labels is not None else []
        if prediction.problem_type == "binary":
            rows = [{"label": lab, "probability": p} for lab, p in zip(labels, values, strict=True)]
        else:
            keys = [str(c) for c in prediction.classes]
            rows = [
                {"label": lab, "probabilities": dict(zip(keys, ps, strict=True))}
                for lab, ps in zip(labels, values, strict=True)
            ]
    for i, value in prediction.ids.items():
        rows[i] = {"id": value, **rows[i]}
    return rows


def output_fn(prediction: Prediction | ClientError, accept: str | None) -> Any:
    """The body and its content type (a tuple, so the container sends that type); for a client
    error, its response (status, JSON body)."""
    if isinstance(prediction, ClientError):
        return prediction.response()
    media = _media(accept if accept and accept != "*/*" else JSON)
    if media == JSON:
        doc = {"predictions": _rows(prediction), "model_version": prediction.model_version}
        return json.dumps(doc, default=str), JSON
    if media == CSV:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        for row in _rows(prediction):
            if prediction.problem_type == "binary":
                writer.writerow([row["label"], row["probability"]])
            else:
                writer.writerow([row.get("label", row.get("value"))])
        return out.getvalue(), CSV
    return NotAcceptableError(f"unsupported accept type {accept!r}; use {JSON} or {CSV}").response()
