"""How a file's header maps onto the spec: present, absent and undeclared columns.

Column presence and nullability are different things. A declared column absent from the header
rejects the file (``missing_columns``, naming it) unless the spec marks it ``optional: true``;
``required: true`` is about values (an empty value, or a missing-value marker, quarantines the
row). The values themselves are typed and checked by ``datasets.columns``, the code serving uses
for prediction records too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from datasets.spec import Column, DatasetSpec
from lambdas.preprocess.errors import Rejection


@dataclass
class Layout:
    """How the file's header maps onto the spec, decided once per file."""

    present: list[Column]
    missing_optional: list[str]
    keep_unknown: list[str]
    dropped_unknown: list[str]
    required: set[str] = field(default_factory=set)


def plan_layout(spec: DatasetSpec, header: list[str]) -> Layout:
    names = set(header)
    missing = [c.name for c in spec.columns if c.name not in names and not c.optional]
    if missing:
        expected = [c.name for c in spec.columns if not c.optional]
        raise Rejection(
            "missing_columns",
            f"declared column(s) {', '.join(repr(m) for m in missing)} not in the header "
            "(a column files may lack is marked `optional: true` in the spec)",
            column=missing[0],
            line=1,
            expected=f"a header with {', '.join(expected)}",
            got=", ".join(header),
        )
    declared = set(spec.column_names)
    unknown = [h for h in header if h not in declared]
    if unknown and spec.unknown_columns == "reject":
        raise Rejection(
            "unknown_columns",
            f"column(s) {', '.join(repr(u) for u in unknown)} are not declared in the spec "
            f"{spec.name} v{spec.version} (unknown_columns: reject)",
            column=unknown[0],
            line=1,
            expected="only the columns the spec declares",
        )
    return Layout(
        present=[c for c in spec.columns if c.name in names],
        missing_optional=[c.name for c in spec.columns if c.name not in names],
        keep_unknown=unknown if spec.unknown_columns == "keep" else [],
        dropped_unknown=unknown if spec.unknown_columns == "drop" else [],
        required=set(spec.required_columns) | {spec.target_column},
    )
