"""Batch scoring: a file under ``<dataset>/_score/`` prepared for Batch Transform with the model
serving the dataset, and its predictions assembled (``service.py``)."""
