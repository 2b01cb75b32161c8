"""The record as a headerless CSV row: the column order of batch scoring.

Batch Transform splits a CSV file by line, so only the first mini-batch would see a header: the
batch-scoring preparation (``lambdas/score``) writes rows without one, and the model's inference
code reads a headerless row in this order (``datasets.record.RecordShape.csv_order``): the
dataset's record (its declared columns minus the target, in spec order) less its PII columns.
Values are as an upload holds them (timestamps as ISO-8601 text, categories as text, empty =
missing). Light on purpose (no pyarrow): the infrastructure and tests may import it.
"""

from __future__ import annotations

from datasets.spec import DatasetSpec


def scoring_columns(spec: DatasetSpec) -> list[str]:
    """The columns of a headerless scoring row, in order."""
    pii = set(spec.pii_columns)
    return [name for name in spec.record_columns if name not in pii]
