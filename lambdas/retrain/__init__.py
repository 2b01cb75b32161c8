"""Retraining on alarms: drift and model-quality alarms start a run, at most one per cool-down."""
