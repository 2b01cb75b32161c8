"""The prediction record: one row in the dataset's own shape, checked and featurized as ingestion
does it.

A prediction instance is a record with the spec's declared columns minus the target, named and
written as an upload has them: ISO-8601 timestamps as text (any offset, or none = UTC),
categories as text, numbers (JSON numbers or their text), ``null``/empty for a missing value, and
the spec's missing-value markers (``na_values``) read as missing. A request needs only the
columns the model's features come from (``DatasetSpec.input_columns``); the id and PII columns
may be absent, and so may a column the spec marks ``optional``. The id, when present, is kept to
be echoed with the prediction. PII columns, when present, are dropped unread: never checked,
used, logged or written.

Every value goes through ``datasets.columns`` (the checks ingestion quarantines rows with) and
the engineered features through ``datasets.features`` (the code that wrote ingestion's curated
columns), so serving sees exactly what training saw. A request that would not pass raises
``RecordError``, whose ``details`` name the instance and the field of each problem.

    shape = RecordShape(spec)
    records = shape.from_json(body)        # {"instances": [record, ...]}
    records = shape.from_csv(body)         # the upload's header and rows
    records.columns                        # typed model inputs: declared columns + features

Needs numpy and pyarrow; runs on Python 3.10 (the SageMaker XGBoost image).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from datasets import features
from datasets.columns import Problem, convert_column, expected, output_type, oversized
from datasets.spec import Column, DatasetSpec

#: problems listed in an error (the message says how many more there are)
MAX_DETAILS = 20
_BOM = b"\xef\xbb\xbf"
_ABSENT = object()


@dataclass(frozen=True)
class FieldError:
    """One problem of a request: the instance (0-based) and field it is in, when it has them."""

    instance: int | None
    field: str | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"instance": self.instance, "field": self.field, "message": self.message}

    def __str__(self) -> str:
        where = [f"instance {self.instance}"] if self.instance is not None else []
        where += [f"field {self.field!r}"] if self.field is not None else []
        return f"{', '.join(where)}: {self.message}" if where else self.message


class RecordError(ValueError):
    """The records of a request do not match the dataset's shape (a client error)."""

    def __init__(self, details: Sequence[FieldError]) -> None:
        self.details = list(details[:MAX_DETAILS])
        self.more = len(details) - len(self.details)
        text = "; ".join(map(str, self.details))
        super().__init__(text + (f" (and {self.more} more)" if self.more > 0 else ""))


@dataclass(frozen=True)
class Records:
    """Checked records: the model's inputs as typed columns, and the ids to echo."""

    #: declared input columns and engineered features, typed as curated data has them
    columns: dict[str, pa.Array]
    #: instance index -> id value, for the instances that carried the id column
    ids: dict[int, Any]
    rows: int


@dataclass
class _Raw:
    """A column of a request as given: text values and the instances they belong to."""

    text: pa.Array
    #: the values as the client wrote them (JSON), for messages; None = the text itself (CSV)
    given: list[Any] | None = None
    #: instance index of each text value; None = every instance, in order
    where: np.ndarray | None = None
    #: positions (into text) of values that are not scalars (a JSON object or array)
    not_scalar: tuple[int, ...] = ()


class RecordShape:
    """The record shape of one spec: checks requests and makes the model's inputs from them."""

    def __init__(self, spec: DatasetSpec) -> None:
        self.spec = spec
        self.fields = spec.record_columns
        #: the columns the model's features come from, in spec order
        self.inputs = spec.input_columns()
        self.pii = frozenset(spec.pii_columns)
        #: the column order of a CSV body without a header: the record minus its PII columns
        self.csv_order = tuple(name for name in self.fields if name not in self.pii)
        self._order = {name: i for i, name in enumerate(spec.column_names)}

    # ------------------------------------------------------------------------------ JSON
    def from_json(self, body: str | bytes) -> Records:
        """``{"instances": [record, ...]}``."""
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _error(f"the body is not valid JSON: {exc}") from None
        if not isinstance(doc, dict) or "instances" not in doc:
            raise _error('the body must be an object {"instances": [record, ...]}')
        extra = sorted(set(doc) - {"instances"})
        if extra:
            raise _error(f"unknown key(s) {', '.join(map(repr, extra))} in the body")
        return self.from_instances(doc["instances"])

    def from_instances(self, instances: Any) -> Records:
        """A list of records (JSON objects: field name -> value)."""
        if not isinstance(instances, list) or not instances:
            raise _error("'instances' must be a non-empty list of records")
        not_records = [
            FieldError(i, None, f"expected a record (an object of fields), got {_kind(row)}")
            for i, row in enumerate(instances)
            if not isinstance(row, dict)
        ]
        if not_records:
            raise RecordError(not_records)
        errors: list[FieldError] = []
        names: set[str] = set().union(*instances)
        for name in sorted(names - set(self.fields), key=self._rank):
            errors += [
                FieldError(i, name, self._undeclared(name))
                for i, row in enumerate(instances)
                if name in row
            ]
        raw: dict[str, _Raw] = {}
        n = len(instances)
        for name in self.fields:
            if name in self.pii:
                continue
            values = [row.get(name, _ABSENT) for row in instances]
            absent = [i for i, v in enumerate(values) if v is _ABSENT]
            if len(absent) == n and name not in self.inputs:
                continue
            if absent and name in self.inputs and not self.spec.column(name).optional:
                if len(absent) == n:
                    errors.append(FieldError(None, name, _MISSING_FIELD))
                else:
                    errors += [FieldError(i, name, _MISSING_FIELD) for i in absent]
            where = None
            if absent:
                kept = np.array([v is not _ABSENT for v in values])
                where = np.flatnonzero(kept)
                values = [v for v in values if v is not _ABSENT]
            raw[name] = _json_column(values, where)
        return self._records(raw, n, errors)

    # ------------------------------------------------------------------------------- CSV
    def from_csv(self, body: str | bytes) -> Records:
        """An upload's CSV: its header and rows (or rows alone, in ``csv_order``)."""
        data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        data = data.removeprefix(_BOM)
        if not data.strip():
            raise _error("the CSV body is empty")
        try:
            first_line = data.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8")
        except UnicodeDecodeError:
            raise _error("the CSV body is not UTF-8 text") from None
        first = next(csv.reader([first_line]), [])
        declared = set(self.spec.column_names)
        has_header = any(name in declared for name in first)
        names = first if has_header else list(self.csv_order)
        if has_header:
            _check_header(names)
        elif len(first) != len(names):
            raise _error(
                f"the first line is neither a header naming the record's fields nor a row of "
                f"its {len(names)} fields ({', '.join(names)}); it has {len(first)} fields"
            )
        bad_rows: list[FieldError] = []

        def invalid(row: pacsv.InvalidRow) -> str:
            instance = None if row.number is None else row.number - (2 if has_header else 1)
            bad_rows.append(
                FieldError(
                    instance,
                    None,
                    f"expected {row.expected_columns} fields, found {row.actual_columns}",
                )
            )
            return "skip"

        try:
            table = pacsv.read_csv(
                io.BytesIO(data),
                read_options=pacsv.ReadOptions(
                    column_names=names, skip_rows=1 if has_header else 0, use_threads=False
                ),
                parse_options=pacsv.ParseOptions(
                    newlines_in_values=True, invalid_row_handler=invalid
                ),
                convert_options=pacsv.ConvertOptions(
                    column_types=dict.fromkeys(names, pa.string()),
                    null_values=[""],
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=True,
                ),
            )
        except (pa.ArrowInvalid, OSError) as exc:
            raise _error(f"the CSV body cannot be parsed: {exc}") from None
        if bad_rows:
            raise RecordError(bad_rows)
        if table.num_rows == 0:
            raise _error("the CSV body holds no records")
        errors = [
            FieldError(None, name, self._undeclared(name))
            for name in sorted(set(names) - set(self.fields), key=self._rank)
        ]
        errors += [
            FieldError(None, name, _MISSING_FIELD)
            for name in self.inputs
            if name not in names and not self.spec.column(name).optional
        ]
        raw = {
            name: _Raw(table.column(name).combine_chunks())
            for name in names
            if name in self.fields and name not in self.pii
        }
        return self._records(raw, table.num_rows, errors)

    # ----------------------------------------------------------------------------- common
    def _records(self, raw: dict[str, _Raw], n: int, errors: list[FieldError]) -> Records:
        """Type and check every given column as ingestion does; add the engineered features."""
        typed: dict[str, pa.Array] = {}
        for name, given in raw.items():
            typed[name] = self._column(self.spec.column(name), given, n, errors)
        if errors:
            raise RecordError(sorted(errors, key=self._error_order))
        inputs = {
            # an optional column absent from every record is all missing
            name: typed[name] if name in typed else pa.nulls(n, output_type(self.spec.column(name)))
            for name in self.inputs
        }
        columns = features.add_features(inputs, self.spec.features)
        ids: dict[int, Any] = {}
        id_column = self.spec.id_column
        if id_column is not None and id_column in raw:
            values = typed[id_column].to_pylist()
            where = raw[id_column].where
            indices = range(n) if where is None else where.tolist()
            ids = {int(i): values[int(i)] for i in indices}
        return Records(columns=columns, ids=ids, rows=n)

    def _column(self, col: Column, given: _Raw, n: int, errors: list[FieldError]) -> pa.Array:
        values, problems = convert_column(
            col, given.text, col.required, self.spec.na_values_for(col)
        )
        too_long = oversized(col.name, given.text)
        if too_long is not None:
            problems.append(too_long)
        if given.not_scalar:
            mask = np.zeros(len(given.text), dtype=bool)
            mask[list(given.not_scalar)] = True
            problems.insert(0, Problem(col.name, mask, expected(col)))
        for problem in problems:
            for k in np.flatnonzero(problem.mask).tolist():
                shown = given.given[k] if given.given is not None else given.text[k].as_py()
                instance = k if given.where is None else int(given.where[k])
                errors.append(FieldError(instance, col.name, problem.describe(shown)))
        if given.where is None:
            return values
        # scatter the given values back to their instances; absent ones are null
        index = np.full(n, -1, dtype=np.int64)
        index[given.where] = np.arange(len(given.where))
        return values.take(pa.array(index, mask=index < 0))

    def _undeclared(self, name: str) -> str:
        if name == self.spec.target_column:
            return "the target, which the model predicts: leave it out of the record"
        return f"undeclared: the {self.spec.name} record's fields are {', '.join(self.fields)}"

    def _rank(self, name: str) -> tuple[int, str]:
        return (self._order.get(name, len(self._order)), name)

    def _error_order(self, error: FieldError) -> tuple[int, tuple[int, str]]:
        instance = -1 if error.instance is None else error.instance
        return (instance, self._rank(error.field or ""))


_MISSING_FIELD = (
    "missing: the model needs this field (send null, or an empty value, for a missing value)"
)


def _error(message: str) -> RecordError:
    return RecordError([FieldError(None, None, message)])


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else f"a {type(value).__name__}"


def _json_column(values: list[Any], where: np.ndarray | None) -> _Raw:
    """JSON values as the text an upload would hold (numbers and booleans written out)."""
    text: list[str | None] = []
    not_scalar: list[int] = []
    for k, value in enumerate(values):
        if value is None:
            text.append(None)
        elif isinstance(value, str):
            text.append(value or None)  # an empty field is missing, as in CSV
        elif isinstance(value, bool):
            text.append("true" if value else "false")
        elif isinstance(value, int):
            text.append(str(value))
        elif isinstance(value, float):
            text.append(repr(value))  # the shortest text that reads back as the same number
        else:
            text.append(None)
            not_scalar.append(k)
    return _Raw(pa.array(text, pa.string()), values, where, tuple(not_scalar))


def _check_header(names: list[str]) -> None:
    seen: set[str] = set()
    for pos, name in enumerate(names, start=1):
        if not name.strip():
            raise _error(f"header field {pos} is empty")
        if name in seen:
            raise RecordError([FieldError(None, name, "is named twice in the header")])
        seen.add(name)
