"""SageMaker script-mode code: training, evaluation and inference for a declared dataset.

The entry points (``train.py``, ``evaluate.py``, ``inference.py``) run unchanged in SageMaker's
XGBoost 3.0-5 framework container and locally through ``python -m training.local``. This package
imports nothing heavy at import time, and needs Python 3.10+ (the container's interpreter).
"""
