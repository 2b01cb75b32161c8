"""Typed errors of ingestion, each mapped to one precise, user-facing message.

A ``Rejection`` is the one way the pipeline says "this whole file is not accepted": it carries a
stable ``code`` a machine can switch on and the facts a person needs to fix the file (which
column, which line, what was expected, what was found). ``as_dict`` is what ``rejection.json``,
the ``FileRejected`` event and the logs all show, so the message lives in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from datasets.columns import shorten

__all__ = ["ConfigError", "Rejection", "shorten"]


@dataclass
class Rejection(Exception):
    code: str
    message: str
    column: str | None = None
    line: int | None = None
    expected: str | None = None
    got: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        where = []
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        prefix = f"{', '.join(where)}: " if where else ""
        return f"{prefix}{self.message}"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": str(self)}
        for key in ("column", "line", "expected", "got"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        out.update(self.details)
        return out


class ConfigError(Exception):
    """The pipeline cannot run at all (bad spec, no PII key, unwritable output)."""
