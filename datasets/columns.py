"""A column's values as an upload holds them -> typed Arrow values, and the checks on them.

One implementation of "is this value valid for this column" for every path a record takes:
ingestion (``lambdas/preprocess``) curates uploads with it, and serving (``training/inference.py``
through ``datasets.record``) validates prediction records with it, so a value ingestion would
quarantine is refused at prediction time and a value it accepts is accepted, typed the same way
(timestamps with an offset converted to UTC, a timestamp without one taken as UTC).

Clean columns take one vectorised Arrow cast. Only when that cast fails is the column looked at
value by value: a regular expression sets the obvious junk aside, and the rest is cut in halves
until the values Arrow cannot cast are found, so "valid" means exactly what Arrow accepts.

Needs numpy and pyarrow only, and never imports pandas (see ``arrow_bools``). Runs on Python 3.10
(the SageMaker XGBoost image).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from datasets.spec import Column

#: a single value longer than this sends its row to quarantine
MAX_FIELD_BYTES = 64 << 10
_MAX_FIELD = pa.Array.from_buffers(
    pa.int32(), 1, [None, pa.py_buffer(np.array([MAX_FIELD_BYTES], dtype=np.int32))]
)[0]
TIMESTAMP = pa.timestamp("us", tz="UTC")
_INT_RE = r"^-?[0-9]{1,19}$"
_FLOAT_RE = r"^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$"
_TS_RE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?)?"
_ZONE_RE = r"(Z|[+-][0-9]{2}:?[0-9]{2})$"
#: rows of a column that fail a check; None when none does
Mask = np.ndarray | None

_TRUE = ("true", "1", "yes", "t", "y")
_FALSE = ("false", "0", "no", "f", "n")

_OUT_TYPES: dict[str, pa.DataType] = {
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "timestamp": TIMESTAMP,
    "category": pa.string(),
    "string": pa.string(),
}

_EXPECTED: dict[str, str] = {
    "int": "an integer",
    "float": "a finite number",
    "bool": "true or false",
    "timestamp": "an ISO-8601 timestamp such as 2024-01-31T12:00:00Z",
    "category": "a category",
    "string": "text",
}


def expected(col: Column) -> str:
    """What a value of the column's type looks like, as messages say it."""
    return _EXPECTED[col.type]


def output_type(col: Column) -> pa.DataType:
    """The curated Parquet type of a declared column (PII: the hex digest, a string)."""
    return pa.string() if col.pii else _OUT_TYPES[col.type]


@dataclass
class Problem:
    """Rows of one column that fail one check, and what was expected of them."""

    column: str
    mask: np.ndarray
    expected: str  # "" for a missing required value

    def describe(self, raw: Any = None, *, show_value: bool = True) -> str:
        """What is wrong with one value (``raw``: the value as given), without the column."""
        if not self.expected:
            return "missing required value"
        if not show_value:
            return f"expected {self.expected}"
        return f"expected {self.expected}, got {shorten(raw)}"


def shorten(value: Any, limit: int = 80) -> str:
    """A raw value as it may appear in a message: repr'd and cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 5] + "...'"


# ------------------------------------------------------------------------------------ casting
def _cast_exact(values: pa.Array, to: pa.DataType) -> tuple[pa.Array, np.ndarray]:
    """Cast, setting to null (and flagging) exactly the values Arrow cannot cast."""
    try:
        return values.cast(to), np.zeros(len(values), dtype=bool)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        if len(values) == 1:
            return pa.nulls(1, to), np.ones(1, dtype=bool)
    half = len(values) // 2
    left, left_bad = _cast_exact(values.slice(0, half), to)
    right, right_bad = _cast_exact(values.slice(half), to)
    return pa.concat_arrays([left, right]), np.concatenate([left_bad, right_bad])


def _parse(values: pa.Array, to: pa.DataType, pattern: str) -> tuple[pa.Array, Mask]:
    try:
        return values.cast(to), None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    shaped = pc.match_substring_regex(values, pattern).fill_null(True)
    typed, failed = _cast_exact(pc.if_else(shaped, values, None), to)
    return typed, failed | ~numpy_mask(shaped)


def _parse_timestamp(values: pa.Array) -> tuple[pa.Array, Mask]:
    try:
        return values.cast(TIMESTAMP), None
    except pa.ArrowInvalid:
        pass
    shaped = numpy_mask(pc.match_substring_regex(values, _TS_RE).fill_null(True))
    zoned = pc.match_substring_regex(values, _ZONE_RE).fill_null(False)
    with_zone, bad_zone = _cast_exact(pc.if_else(zoned, values, None), TIMESTAMP)
    # no zone written: the wall time is taken as UTC
    naive, bad_naive = _cast_exact(pc.if_else(zoned, None, values), pa.timestamp("us"))
    typed = pc.coalesce(with_zone, naive.cast(TIMESTAMP))
    bad = bad_zone | bad_naive | ~shaped
    return pc.if_else(arrow_bools(bad), None, typed), bad


def _parse_bool(values: pa.Array) -> tuple[pa.Array, Mask]:
    lower = pc.utf8_lower(values)
    is_true = pc.is_in(lower, value_set=arrow_values(_TRUE))
    is_false = pc.is_in(lower, value_set=arrow_values(_FALSE))
    bad = _mask(pc.and_(values.is_valid(), pc.invert(pc.or_(is_true, is_false))))
    typed = pc.if_else(is_true, True, pc.if_else(is_false, False, None))
    return typed.cast(pa.bool_()), bad


# Python values and numpy arrays become Arrow ones here without ``pa.array``/``pa.scalar``:
# those ask pyarrow whether the value is a pandas object, which imports pandas (0.2 s of a
# process's start) wherever it is installed, although nothing here needs it.
def arrow_bools(mask: np.ndarray) -> pa.BooleanArray:
    """A numpy bool array as an Arrow one."""
    bits = np.packbits(mask, bitorder="little")
    return pa.Array.from_buffers(pa.bool_(), len(mask), [None, pa.py_buffer(bits)])


def arrow_ints(values: np.ndarray) -> pa.Int64Array:
    """A numpy integer array as an Arrow int64 one."""
    values = np.ascontiguousarray(values, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(values), [None, pa.py_buffer(values)])


def arrow_number(value: float) -> pa.Scalar:
    """An int64 scalar for an int, else a float64 one (the types ``pa.scalar`` would infer)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return arrow_ints(np.array([value]))[0]
    data = np.array([value], dtype=np.float64)
    return pa.Array.from_buffers(pa.float64(), 1, [None, pa.py_buffer(data)])[0]


def arrow_values(values: Sequence[Any]) -> pa.Array:
    values = list(values)
    if values and all(isinstance(v, str) for v in values):
        encoded = [v.encode() for v in values]
        offsets = np.cumsum([0] + [len(v) for v in encoded], dtype=np.int32)
        buffers = [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))]
        return pa.Array.from_buffers(pa.string(), len(values), buffers)
    if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return arrow_ints(np.array(values, dtype=np.int64))
    return pa.array(values)


def numpy_mask(mask: pa.Array) -> np.ndarray:
    """A boolean Arrow array as a numpy one, null taken as False.

    Unpacks the bits itself: ``to_numpy(zero_copy_only=False)`` converts value by value (and
    imports pandas to do so).
    """
    n, offset = len(mask), mask.offset
    buffers = mask.buffers()
    if n == 0 or buffers[1] is None:
        return np.zeros(n, dtype=bool)
    out = _unpack(buffers[1], offset, n)
    if mask.null_count and buffers[0] is not None:
        out &= _unpack(buffers[0], offset, n)
    return out


def _unpack(bits: pa.Buffer, offset: int, n: int) -> np.ndarray:
    packed = np.frombuffer(bits, dtype=np.uint8)
    return np.unpackbits(packed, count=offset + n, bitorder="little")[offset:].view(bool)


def _mask(mask: pa.Array) -> Mask:
    """``numpy_mask(mask)``, or None when no value is true (the common case: no work, no array)."""
    return numpy_mask(mask) if mask.true_count else None


def _or(a: Mask, b: Mask) -> Mask:
    if a is None:
        return b
    if b is None:
        return a
    return a | b


def _from_text(col: Column, values: pa.Array) -> tuple[pa.Array, Mask]:
    if col.type == "int":
        return _parse(values, pa.int64(), _INT_RE)
    if col.type == "float":
        typed, bad = _parse(values, pa.float64(), _FLOAT_RE)
        infinite = pc.invert(pc.is_finite(typed))
        if not infinite.true_count:
            return typed, bad
        infinite = infinite.fill_null(False)
        return pc.if_else(infinite, None, typed), _or(bad, numpy_mask(infinite))
    if col.type == "bool":
        return _parse_bool(values)
    if col.type == "timestamp":
        return _parse_timestamp(values)
    return values, None


def _from_typed(col: Column, values: pa.Array) -> tuple[pa.Array, Mask] | None:
    """Parquet columns already of a fitting type; None means: go through text."""
    t = values.type
    ok = (
        (col.type == "int" and pa.types.is_integer(t))
        or (col.type == "float" and (pa.types.is_integer(t) or pa.types.is_floating(t)))
        or (col.type == "bool" and pa.types.is_boolean(t))
        or (col.type == "timestamp" and pa.types.is_timestamp(t))
    )
    if not ok:
        return None
    target = output_type(col)
    if pa.types.is_timestamp(t) and t.tz is None:
        values = values.cast(pa.timestamp("us")).cast(target)  # naive: taken as UTC
    try:
        return values.cast(target), None
    except pa.ArrowInvalid:
        return None


# ------------------------------------------------------------------------------------- checks
def missing_markers(raw: pa.Array, na_values: Sequence[str]) -> pa.Array:
    """Text values listed in ``na_values`` set to null (exact, case-sensitive matches)."""
    if not na_values or not pa.types.is_string(raw.type):
        return raw
    marked = pc.is_in(raw, value_set=arrow_values(list(na_values)))
    if not marked.true_count:
        return raw
    return pc.if_else(marked, None, raw)


def convert_column(
    col: Column, raw: pa.Array, required: bool, na_values: Sequence[str] = ()
) -> tuple[pa.Array, list[Problem]]:
    """The typed column (null where a value is bad) and the problems found in it.

    ``raw`` holds the values as an upload has them: text (CSV, JSON strings) or typed (Parquet);
    a null is an empty field. ``na_values`` (``DatasetSpec.na_values_for(col)``) are text
    markers read as missing, before the required check.
    """
    problems: list[Problem] = []
    raw = missing_markers(raw, na_values)
    if required and raw.null_count:
        problems.append(Problem(col.name, numpy_mask(raw.is_null()), ""))
    if col.pii:
        return raw, problems  # masked later; any value is a valid identifier
    text = raw if pa.types.is_string(raw.type) else None
    typed_bad = None if text is not None else _from_typed(col, raw)
    if typed_bad is None:
        text = raw if text is not None else raw.cast(pa.string())
        typed_bad = _from_text(col, text)
    typed, bad = typed_bad
    if bad is not None and bad.any():
        problems.append(Problem(col.name, bad, expected(col)))
    problems.extend(_range_and_categories(col, typed))
    return typed, problems


def _range_and_categories(col: Column, typed: pa.Array) -> list[Problem]:
    out: list[Problem] = []
    if col.type in ("int", "float"):
        if col.min is not None:
            low = _mask(pc.less(typed, arrow_number(col.min)))
            if low is not None:
                out.append(Problem(col.name, low, f"a value >= {_num(col.min)}"))
        if col.max is not None:
            high = _mask(pc.greater(typed, arrow_number(col.max)))
            if high is not None:
                out.append(Problem(col.name, high, f"a value <= {_num(col.max)}"))
    if col.categories:
        allowed = arrow_values(
            [str(c) for c in col.categories]
            if pa.types.is_string(typed.type)
            else list(col.categories)
        ).cast(typed.type)
        outside = _mask(pc.and_(typed.is_valid(), pc.invert(pc.is_in(typed, value_set=allowed))))
        if outside is not None:
            listed = ", ".join(str(c) for c in col.categories)
            out.append(Problem(col.name, outside, f"one of {listed}"))
    return out


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def oversized(name: str, raw: pa.Array) -> Problem | None:
    """Values longer than MAX_FIELD_BYTES (checked cheaply: most buffers are smaller)."""
    if not (pa.types.is_string(raw.type) or pa.types.is_binary(raw.type)):
        return None
    data = raw.buffers()[2]
    if data is None or data.size <= MAX_FIELD_BYTES:
        return None
    long = _mask(pc.greater(pc.binary_length(raw), _MAX_FIELD))
    if long is None:
        return None
    return Problem(name, long, f"a value of at most {MAX_FIELD_BYTES} bytes")
