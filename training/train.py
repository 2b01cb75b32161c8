"""SageMaker script-mode training: XGBoost on the curated Parquet of a declared dataset.

    python -m train --num_round 300 --eta 0.1 ...        (what SageMaker runs in /opt/ml/code)

Inputs (SageMaker environment; every path can also be given as an argument):
- ``SM_CHANNEL_TRAIN``: curated data (``*.parquet`` + manifests; ``quarantine/`` is ignored). It is
  split into train/validation/test by a stable hash of the spec's id column; the test share is
  the holdout that evaluate.py scores and is never trained on.
- ``SM_CHANNEL_VALIDATION`` (optional): curated data used for early stopping instead of the hashed
  validation share (which then joins the training rows).
- ``SM_CHANNEL_SPEC`` (or ``--spec FILE``): the dataset spec, ``datasets/<name>.yaml``.
- checkpoints: ``--checkpoint_dir`` or ``SLUICE_CHECKPOINT_DIR``, default ``/opt/ml/checkpoints``.
Outputs: the model directory described in ``training.artifacts`` (``SM_MODEL_DIR``) and
``metrics.json`` in ``SM_OUTPUT_DATA_DIR``. Metric lines on stdout (``<name>=<value>;``):
``iteration=12; validation-auc=0.91;`` per round, then ``validation-<metric>=...;``,
``test-<metric>=...;``, ``best_iteration=...;``.

The job's sourcedir holds this file at its root, the ``training/`` package and the ``datasets/``
package (``training.package`` builds it). Exit 0 on success, 1 with ``error: ...`` on stderr when
the spec or data cannot be used.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

from datasets.spec import DatasetSpec, SpecError, load_spec
from training import artifacts, baseline, metrics
from training.callbacks import (
    Checkpoint,
    MetricLines,
    ResumableEarlyStopping,
    ValidationScores,
    latest_checkpoint,
)
from training.data import (
    SPLIT_NAMES,
    TEST,
    TRAIN,
    VALIDATION,
    DataError,
    SplitConfig,
    assign_split,
    encode_target,
    load_curated,
    needed_columns,
    schema_from_spec,
)
from training.schema import FeatureSchema, encode_table

#: spec metric -> XGBoost eval_metric used for early stopping
EVAL_METRICS = {
    "binary": {"roc_auc": "auc", "pr_auc": "aucpr", "accuracy": "error", "f1": "logloss"},
    "multiclass": {"accuracy": "merror", "macro_f1": "mlogloss", "logloss": "mlogloss"},
    "regression": {"rmse": "rmse", "mae": "mae", "r2": "rmse"},
}
OBJECTIVES = {
    "binary": "binary:logistic",
    "multiclass": "multi:softprob",
    "regression": "reg:squarederror",
}
HYPERPARAMETERS = (
    "num_round",
    "early_stopping_rounds",
    "eta",
    "max_depth",
    "min_child_weight",
    "subsample",
    "colsample_bytree",
    "reg_lambda",
    "alpha",
    "gamma",
    "max_bin",
    "scale_pos_weight",
    "eval_metric",
    "seed",
    "device",
    "nthread",
    "checkpoint_interval",
)


def parse_args(argv: list[str] | None, env: dict[str, str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="train.py", description="Train XGBoost on curated data.")
    hp = p.add_argument_group("hyperparameters (SageMaker passes them as --name value)")
    hp.add_argument("--num_round", type=int, default=300)
    hp.add_argument("--early_stopping_rounds", type=int, default=20, help="0 turns it off")
    hp.add_argument("--eta", type=float, default=0.1)
    hp.add_argument("--max_depth", type=int, default=6)
    hp.add_argument("--min_child_weight", type=float, default=1.0)
    hp.add_argument("--subsample", type=float, default=1.0)
    hp.add_argument("--colsample_bytree", type=float, default=1.0)
    hp.add_argument("--lambda", dest="reg_lambda", type=float, default=1.0)
    hp.add_argument("--alpha", type=float, default=0.0)
    hp.add_argument("--gamma", type=float, default=0.0)
    hp.add_argument("--max_bin", type=int, default=256)
    hp.add_argument("--scale_pos_weight", type=float, default=1.0)
    hp.add_argument("--eval_metric", default="", help="default: from the spec's metric")
    hp.add_argument("--seed", type=int, default=42)
    hp.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    hp.add_argument("--nthread", type=int, default=0, help="0 = all cores")
    hp.add_argument("--checkpoint_interval", type=int, default=25, help="rounds between saves")
    io = p.add_argument_group("paths (default: the SageMaker environment)")
    io.add_argument("--spec", default=None, help="spec file; default: the one in the spec channel")
    io.add_argument("--spec_dir", default=env.get("SM_CHANNEL_SPEC", "/opt/ml/input/data/spec"))
    io.add_argument("--train", default=env.get("SM_CHANNEL_TRAIN", "/opt/ml/input/data/train"))
    io.add_argument("--validation", default=env.get("SM_CHANNEL_VALIDATION"))
    io.add_argument("--model_dir", default=env.get("SM_MODEL_DIR", "/opt/ml/model"))
    io.add_argument(
        "--output_data_dir", default=env.get("SM_OUTPUT_DATA_DIR", "/opt/ml/output/data")
    )
    io.add_argument(
        "--checkpoint_dir", default=env.get("SLUICE_CHECKPOINT_DIR", "/opt/ml/checkpoints")
    )
    return p.parse_args(argv)


def resolve_spec(args: argparse.Namespace) -> DatasetSpec:
    if args.spec:
        return load_spec(args.spec)
    spec_dir = Path(args.spec_dir)
    found = (
        sorted(
            p for p in spec_dir.glob("*") if p.suffix in (".yaml", ".yml", ".json") and p.is_file()
        )
        if spec_dir.is_dir()
        else []
    )
    if len(found) != 1:
        raise SpecError(
            f"expected exactly one spec file in the spec channel {spec_dir} "
            f"(found {len(found)}); or pass --spec FILE"
        )
    return load_spec(found[0])


def xgb_params(args: argparse.Namespace, spec: DatasetSpec, env: dict[str, str]) -> dict[str, Any]:
    device = args.device
    if device == "auto":
        device = "cuda" if artifacts.gpu_available(env) else "cpu"
    params: dict[str, Any] = {
        "objective": OBJECTIVES[spec.problem_type],
        "eval_metric": args.eval_metric
        or EVAL_METRICS[spec.problem_type].get(spec.metric.name, "logloss"),
        "tree_method": "hist",
        "device": device,
        "eta": args.eta,
        "max_depth": args.max_depth,
        "min_child_weight": args.min_child_weight,
        "subsample": args.subsample,
        "colsample_bytree": args.colsample_bytree,
        "lambda": args.reg_lambda,
        "alpha": args.alpha,
        "gamma": args.gamma,
        "max_bin": args.max_bin,
        "seed": args.seed,
    }
    if spec.problem_type == "binary":
        params["scale_pos_weight"] = args.scale_pos_weight
    if spec.problem_type == "multiclass":
        params["num_class"] = len(spec.classes)
    if args.nthread > 0:
        params["nthread"] = args.nthread
    return params


def code_version(env: dict[str, str]) -> dict[str, str]:
    """A hash of the code that ran, and the commit the pipeline names (SLUICE_CODE_VERSION)."""
    package = Path(__file__).resolve().parent
    if package.name != "training":  # the sourcedir copy at the root: hash the package beside it
        package = package / "training"
    digest = hashlib.sha256()
    for path in sorted(package.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return {"source_sha256": digest.hexdigest()[:16], "commit": env.get("SLUICE_CODE_VERSION", "")}


def library_versions() -> dict[str, str]:
    import pandas as pd
    import pyarrow as pa

    return {
        "python": platform.python_version(),
        "xgboost": xgb.__version__,
        "numpy": np.__version__,
        "pyarrow": pa.__version__,
        "pandas": pd.__version__,
    }


def _fit(
    params: dict[str, Any],
    dtrain: xgb.DMatrix,
    dval: xgb.DMatrix,
    args: argparse.Namespace,
    run_key: str,
) -> tuple[xgb.Booster, np.ndarray, dict[str, Any]]:
    """Train with checkpoints, resuming from the newest checkpoint of this run.

    Returns the booster trimmed to the best iteration, its validation scores, and run facts.
    """
    checkpoint = Checkpoint(Path(args.checkpoint_dir), run_key, args.checkpoint_interval)
    start, why = latest_checkpoint(checkpoint.directory, run_key)
    resumed = start.num_boosted_rounds() if start is not None else 0
    print(f"checkpoint: {'resuming from ' + why if start is not None else why}", flush=True)
    callbacks = training_callbacks(params, args, checkpoint)
    stopper = next((c for c in callbacks if isinstance(c, ResumableEarlyStopping)), None)
    remaining = args.num_round - resumed
    if start is not None and stopper is not None:
        stopper.before_training(start)  # prime to see whether it had already stopped
        if stopper.exhausted:
            remaining = 0
    if remaining > 0:
        kept = ValidationScores(dval, use_best=stopper is not None)
        booster = xgb.train(
            params,
            dtrain,
            num_boost_round=remaining,
            evals=[(dval, "validation")],
            callbacks=[*callbacks, kept],
            xgb_model=start,
            verbose_eval=False,
        )
        checkpoint.save(booster)
        rounds, val_scores = kept.rounds, kept.scores
    else:
        assert start is not None
        booster, best = start, start.attr("best_iteration")
        rounds = int(best) + 1 if stopper is not None and best is not None else resumed
        val_scores = np.asarray(booster.predict(dval, iteration_range=(0, rounds)))
    if rounds < booster.num_boosted_rounds():
        booster = booster[:rounds]
    info = {
        "resumed_from_round": resumed,
        "checkpoint": why,
        "rounds": rounds,
        "best_iteration": rounds - 1,
    }
    assert val_scores is not None
    return booster, val_scores, info


def training_callbacks(
    params: dict[str, Any], args: argparse.Namespace, checkpoint: Checkpoint
) -> list[xgb.callback.TrainingCallback]:
    """The callbacks of a run (a seam for tests that simulate an interrupted job)."""
    callbacks: list[xgb.callback.TrainingCallback] = [MetricLines(), checkpoint]
    if args.early_stopping_rounds > 0:
        metric = str(params["eval_metric"])
        callbacks.append(
            ResumableEarlyStopping(
                rounds=args.early_stopping_rounds,
                metric_name=metric,
                data_name="validation",
                maximize=metric in ("auc", "aucpr"),
                save_best=False,
            )
        )
    return callbacks


def _matrix(x: np.ndarray, y: np.ndarray, schema: FeatureSchema, **kw: Any) -> xgb.DMatrix:
    return xgb.QuantileDMatrix(
        x,
        label=y,
        feature_names=schema.names,
        feature_types=schema.xgb_types,
        enable_categorical=True,
        **kw,
    )


def _print_metrics(prefix: str, values: dict[str, float]) -> None:
    print(" ".join(f"{prefix}-{k}={v:.6f};" for k, v in values.items()), flush=True)


def run(args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    t0 = time.perf_counter()
    spec = resolve_spec(args)
    schema = schema_from_spec(spec)
    columns, features = needed_columns(spec, schema)
    data = load_curated([Path(args.train)], columns, features)
    split_config = SplitConfig.from_spec(spec)
    split = assign_split(data.table, split_config)
    y, usable = encode_target(data.table, schema)
    x = encode_table(data.table, schema)
    if args.validation:
        vdata = load_curated([Path(args.validation)], columns, features)
        yv, v_usable = encode_target(vdata.table, schema)
        xv = encode_table(vdata.table, schema)[v_usable]
        yv = yv[v_usable]
        train_mask = (split != TEST) & usable
    else:
        vdata = None
        xv, yv = x[(split == VALIDATION) & usable], y[(split == VALIDATION) & usable]
        train_mask = (split == TRAIN) & usable
    test_mask = (split == TEST) & usable
    x_train, y_train = x[train_mask], y[train_mask]
    if x_train.shape[0] == 0 or xv.shape[0] == 0:
        raise DataError(
            f"not enough labelled rows: {x_train.shape[0]} for training, {xv.shape[0]} for "
            "validation (the split is by hash of the id column; add data)"
        )
    counts = {name: int(((split == i) & usable).sum()) for i, name in enumerate(SPLIT_NAMES)}
    print(f"rows: {counts}, unlabelled dropped: {int((~usable).sum())}", flush=True)

    params = xgb_params(args, spec, env)
    hps = {k: getattr(args, k) for k in HYPERPARAMETERS}
    run_key = hashlib.sha256(
        json.dumps([spec.fingerprint, data.fingerprint, hps], sort_keys=True).encode()
    ).hexdigest()[:16]
    dtrain = _matrix(x_train, y_train, schema, max_bin=args.max_bin)
    dval = _matrix(xv, yv, schema, ref=dtrain)
    t1 = time.perf_counter()
    booster, val_scores, fit_info = _fit(params, dtrain, dval, args, run_key)
    t2 = time.perf_counter()
    results = {"validation": metrics.compute(spec.problem_type, yv, val_scores)}
    if test_mask.any():
        test_scores = np.asarray(booster.inplace_predict(x[test_mask], validate_features=False))
        results["test"] = metrics.compute(spec.problem_type, y[test_mask], test_scores)
    for name, values in results.items():
        _print_metrics(name, values)
    print(f"best_iteration={fit_info['best_iteration']}; rounds={fit_info['rounds']};", flush=True)

    model_dir = Path(args.model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(model_dir / artifacts.MODEL_FILE))
    schema.save(model_dir / artifacts.SCHEMA_FILE)
    (model_dir / artifacts.SPEC_FILE).write_text(json.dumps(spec.to_document(), indent=2) + "\n")
    base = baseline.build(x_train, schema, val_scores, seed=args.seed)
    (model_dir / artifacts.BASELINE_FILE).write_text(json.dumps(base) + "\n")
    metadata = {
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),  # noqa: UP017 (py3.10 container)
        "run_key": run_key,
        # what serving answers as model_version when the endpoint sets no SLUICE_MODEL_VERSION
        "run_id": env.get("SLUICE_RUN_ID") or env.get("SAGEMAKER_JOB_NAME") or run_key,
        "dataset": spec.name,
        "spec": {"name": spec.name, "version": spec.version, "fingerprint": spec.fingerprint},
        "problem_type": spec.problem_type,
        "metric": {"name": spec.metric.name, "threshold": spec.metric.threshold},
        "data": {
            "fingerprint": data.fingerprint,
            "files": data.files,
            "manifests": data.manifests,
            "validation_channel": None if vdata is None else vdata.files,
        },
        "split": {**split_config.to_dict(), "rows": counts},
        "hyperparameters": hps,
        "xgboost_params": params,
        "seed": args.seed,
        "device": params["device"],
        "training": fit_info,
        "code": code_version(env),
        "libraries": library_versions(),
        "timings_s": {"prepare": round(t1 - t0, 3), "fit": round(t2 - t1, 3)},
    }
    (model_dir / artifacts.METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    (model_dir / artifacts.METRICS_FILE).write_text(json.dumps(results, indent=2) + "\n")
    artifacts.write_serving_code(model_dir)
    out = Path(args.output_data_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(results, indent=2) + "\n")
    return metadata


def main(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> int:
    env = dict(os.environ if environ is None else environ)
    args = parse_args(argv, env)
    try:
        run(args, env)
    except (SpecError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
