"""Serving handlers for the integration tests' model (SageMaker inference contract)."""

import json
import os

import numpy as np
import xgboost as xgb


def model_fn(model_dir):
    booster = xgb.Booster()
    booster.load_model(os.path.join(model_dir, "model.json"))
    return booster


def input_fn(body, content_type):
    if content_type != "application/json":
        raise ValueError(f"unsupported content type {content_type}")
    return np.array(json.loads(body)["instances"], dtype=float)


def predict_fn(data, model):
    return model.predict(xgb.DMatrix(data))


def output_fn(prediction, accept):
    return json.dumps({"predictions": prediction.tolist()}), "application/json"
