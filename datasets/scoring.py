"""The record as a headerless CSV row: the column order of batch scoring.

Batch Transform splits a CSV file by line, so only the first mini-batch would see a header: the
batch-scoring preparation (``lambdas/score``) writes rows without one, and the model's
inference code reads them in this order. It is the dataset's record (its declared columns in
spec order) less what the model never uses: the target, the id column and PII columns. Values
are as an upload holds them (timestamps as ISO-8601 text, categories as text, empty = missing).
"""

from __future__ import annotations

from datasets.spec import DatasetSpec


def scoring_columns(spec: DatasetSpec) -> list[str]:
    """The columns of a headerless scoring row, in order."""
    withheld = {spec.target_column, spec.id_column, *spec.pii_columns}
    return [column.name for column in spec.columns if column.name not in withheld]
