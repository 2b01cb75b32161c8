"""Training and inference overhead against bare XGBoost, measured side by side in one run.

- training: ``train.py`` end to end (read curated Parquet, split, encode, train with checkpoints
  and per-round metric lines, score validation/test, baseline, write artifacts) vs the bare floor:
  ``QuantileDMatrix`` + ``xgboost.train`` with the same params, validation set and early stopping
  on the already encoded arrays. Limit 1.20.
- inference: ``predict_fn`` on a validated 10,000-record batch (raw churn records, as uploaded)
  vs ``inplace_predict`` on the same matrix. Limit 1.25.

``run()`` returns ``(name, ratio, limit)`` rows; each timing is the best of a few alternating runs.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import xgboost as xgb

from datasets.spec import load_spec
from training import inference, train
from training.data import (
    TRAIN,
    VALIDATION,
    SplitConfig,
    assign_split,
    encode_target,
    load_curated,
    needed_columns,
    schema_from_spec,
)
from training.sample import raw_table, write_curated
from training.schema import encode_table

SPEC = Path(__file__).resolve().parent.parent / "datasets" / "churn.yaml"
ROWS = 200_000
PREDICT_ROWS = 10_000


def _best(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _bench_training(work: Path, data: Path) -> tuple[float, Path]:
    spec = load_spec(SPEC)
    schema = schema_from_spec(spec)
    env = {"SM_NUM_GPUS": "0"}
    args = train.parse_args(
        ["--spec", str(SPEC), "--train", str(data), "--model_dir", str(work / "model"),
         "--output_data_dir", str(work / "out"), "--checkpoint_dir", str(work / "ckpt")],
        env,
    )  # fmt: skip
    params = train.xgb_params(args, spec, env)
    table = load_curated([data], *needed_columns(spec, schema)).table
    split = assign_split(table, SplitConfig.from_spec(spec))
    y, usable = encode_target(table, schema)
    x = encode_table(table, schema)
    tr, va = (split == TRAIN) & usable, (split == VALIDATION) & usable

    def bare() -> None:
        dtrain = train._matrix(x[tr], y[tr], schema, max_bin=args.max_bin)
        dval = train._matrix(x[va], y[va], schema, ref=dtrain)
        xgb.train(
            params, dtrain, num_boost_round=args.num_round, evals=[(dval, "validation")],
            early_stopping_rounds=args.early_stopping_rounds, verbose_eval=False,
        )  # fmt: skip

    def ours() -> None:
        shutil.rmtree(work / "ckpt", ignore_errors=True)  # a fresh job, not a resume
        with contextlib.redirect_stdout(io.StringIO()):
            train.run(args, env)

    floor = ours_t = float("inf")
    for _ in range(3):
        floor = min(floor, _best(bare, 1))
        ours_t = min(ours_t, _best(ours, 1))
    return ours_t / floor, work / "model"


def _bench_predict(model_dir: Path) -> float:
    model = inference.model_fn(str(model_dir))
    spec = load_spec(SPEC)
    table = raw_table(spec, PREDICT_ROWS, seed=11).drop_columns([spec.target_column])
    body = json.dumps({"instances": table.to_pylist()})
    batch = inference.input_fn(body, inference.JSON)
    assert isinstance(batch, inference.Batch), batch
    matrix = batch.matrix
    inference.predict_fn(batch, model)  # warm-up
    floor = ours = float("inf")
    for _ in range(5):
        floor = min(floor, _best(lambda: model.booster.inplace_predict(matrix), 5))
        ours = min(ours, _best(lambda: inference.predict_fn(batch, model), 5))
    return ours / floor


def run() -> list[tuple[str, float, float]]:
    with tempfile.TemporaryDirectory(prefix="sluice-bench-training-") as tmp:
        work = Path(tmp)
        data = write_curated(load_spec(SPEC), work / "curated", ROWS)
        train_ratio, model_dir = _bench_training(work, data)
        predict_ratio = _bench_predict(model_dir)
    return [
        (f"training: train.py vs bare xgboost.train ({ROWS:,} rows)", train_ratio, 1.20),
        (f"inference: predict_fn vs inplace_predict ({PREDICT_ROWS:,} rows)", predict_ratio, 1.25),
    ]


if __name__ == "__main__":
    for name, ratio, limit in run():
        print(f"{name}: {ratio:.3f}x (limit {limit:.2f}x) {'ok' if ratio <= limit else 'OVER'}")
