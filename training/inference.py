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
415, ``not_acceptable`` 406). How: SageMaker's XGBoost container serves script mode with
sagemaker-containers' Flask worker, whose transformer turns any exception from the handlers into
a 500 except one that is a werkzeug ``HTTPException``: Flask answers that with the exception's own
status, body and headers. So ``ClientError`` is an ``HTTPException`` whenever werkzeug is
importable (it is in the container: Flask's), and also a sagemaker-inference-toolkit
``BaseInferenceToolkitError`` when that toolkit is installed (the multi-model server path, which
answers with its ``status_code``). Without either it is a plain ``ValueError`` with the same
attributes; ``training.local predict`` exits 2 on it.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from datasets.record import RecordError, RecordShape
from training.artifacts import SPEC_FILE, LoadedModel, load_model_dir
from training.schema import encode_table

JSON = "application/json"
CSV = "text/csv"


# ---------------------------------------------------------------------- client errors
def _client_error_base() -> type:
    """A base class the serving stacks answer with the error's status (module docstring)."""
    bases: list[type] = []
    try:
        from werkzeug.exceptions import HTTPException

        bases.append(HTTPException)
    except ImportError:
        pass
    try:
        from sagemaker_inference.errors import BaseInferenceToolkitError

        bases.append(BaseInferenceToolkitError)
    except ImportError:
        pass
    return type("_ClientErrorBase", (*bases, ValueError), {})


if TYPE_CHECKING:
    _ClientErrorBase = ValueError
else:
    _ClientErrorBase = _client_error_base()


class ClientError(_ClientErrorBase):
    """A request the client must fix: answered with ``status`` and the JSON error body."""

    status = 400
    error_code = "invalid_input"

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None) -> None:
        Exception.__init__(self, message)
        self.text = message
        self.details = details or []
        # werkzeug.exceptions.HTTPException: the status, and no prepared response
        self.code = self.status
        self.description = message
        self.response = None
        # sagemaker_inference BaseInferenceToolkitError: status, body, reason phrase
        self.status_code = self.status
        self.message = self.body()
        self.phrase = self.error_code

    def body(self) -> str:
        error = {"code": self.error_code, "message": self.text, "details": self.details}
        return json.dumps({"error": error})

    # what Flask's handling of an HTTPException answers with
    def get_body(self, *args: Any, **kwargs: Any) -> str:
        return self.body()

    def get_headers(self, *args: Any, **kwargs: Any) -> list[tuple[str, str]]:
        return [("Content-Type", JSON)]

    def __str__(self) -> str:
        return self.text


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


def input_fn(input_data: str | bytes, content_type: str | None) -> Batch:
    model = _model()
    assert _SHAPE is not None
    media = _media(content_type)
    try:
        if media == JSON:
            records = _SHAPE.from_json(input_data)
        elif media == CSV:
            records = _SHAPE.from_csv(input_data)
        else:
            raise UnsupportedMediaError(
                f"unsupported content type {content_type!r}; use {JSON} or {CSV}"
            )
    except RecordError as exc:
        raise InvalidInputError.from_record_error(exc) from None
    return Batch(encode_table(pa.table(records.columns), model.schema), records.ids)


def model_version(model: LoadedModel) -> str:
    """The endpoint's SLUICE_MODEL_VERSION (model package version), else the run's id."""
    meta = model.metadata
    return os.environ.get("SLUICE_MODEL_VERSION") or str(
        meta.get("run_id") or meta.get("run_key") or "unknown"
    )


def predict_fn(input_data: Batch, model: LoadedModel) -> Prediction:
    """One ``inplace_predict`` over the whole batch; labels derived with numpy."""
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


def output_fn(prediction: Prediction, accept: str | None) -> tuple[str, str]:
    """The body and its content type (a tuple, so the container sends that type)."""
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
    raise NotAcceptableError(f"unsupported accept type {accept!r}; use {JSON} or {CSV}")
