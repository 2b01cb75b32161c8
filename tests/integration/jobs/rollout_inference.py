"""Serving handlers of the rollout tests' model: says which model answered, fails on purpose.

``model.json`` in the model archive sets the behaviour: ``{"fail": true}`` raises on every
prediction (HTTP 500: a model that breaks on live traffic), ``{"sleep_ms": N}`` answers slowly.
No ``input_fn``: the container's default parses JSON and answers 415 for any other content type
(a client error, 4xx). The answer names ``SLUICE_MODEL_VERSION`` as the Inference contract does.
"""

import json
import os
import time


def model_fn(model_dir):
    with open(os.path.join(model_dir, "model.json"), encoding="utf-8") as f:
        return json.load(f)


def predict_fn(data, model):
    if model.get("fail"):
        raise RuntimeError("this model breaks on live traffic")
    if model.get("sleep_ms"):
        time.sleep(model["sleep_ms"] / 1000)
    prediction = {"label": 1, "probability": model.get("probability", 0.5)}
    return {
        "predictions": [prediction for _ in data.get("instances") or []],
        "model_version": os.environ.get("SLUICE_MODEL_VERSION", "unknown"),
    }


def output_fn(prediction, accept):
    return json.dumps(prediction), "application/json"
