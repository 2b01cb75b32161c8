"""Model-quality metrics: ``datasets.metrics``, the one implementation training, evaluation
and the model-quality monitor (``lambdas/feedback``) share."""

from datasets.metrics import (
    average_precision,
    compute,
    confusion_matrix,
    is_better,
    pr_curve,
    predicted_classes,
    residual_summary,
    roc_auc,
    roc_curve,
)

__all__ = [
    "average_precision",
    "compute",
    "confusion_matrix",
    "is_better",
    "pr_curve",
    "predicted_classes",
    "residual_summary",
    "roc_auc",
    "roc_curve",
]
