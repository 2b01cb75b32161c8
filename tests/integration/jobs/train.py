"""Tiny script-mode training job for the integration tests: XGBoost on the ``train`` channel."""

import argparse
import glob
import os

import numpy as np
import xgboost as xgb

parser = argparse.ArgumentParser()
parser.add_argument("--num_round", type=int, default=5)
parser.add_argument("--min_rows", type=int, default=1)
args = parser.parse_args()

files = glob.glob(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "*.csv"))
data = np.loadtxt(files[0], delimiter=",")
if len(data) < args.min_rows:
    raise ValueError(f"need at least {args.min_rows} rows, got {len(data)}")
booster = xgb.train(
    {"objective": "binary:logistic", "max_depth": 2},
    xgb.DMatrix(data[:, 1:], label=data[:, 0]),
    num_boost_round=args.num_round,
)
booster.save_model(os.path.join(os.environ["SM_MODEL_DIR"], "model.json"))
print(f"trained on {len(data)} rows")
