"""Training callbacks: checkpoints that a restarted job resumes from, resumable early stopping,
and metric lines that SageMaker metric definitions scrape.

Checkpoints are ``checkpoint-<rounds>.ubj`` boosters in the checkpoint folder (SageMaker syncs
``/opt/ml/checkpoints`` with the job's checkpoint S3 URI, and restores it when a managed spot job
restarts). Each carries a ``sluice_run_key`` attribute: a job resumes only from a checkpoint of the
same spec, data and hyperparameters, and otherwise starts afresh.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import numpy as np
import xgboost as xgb
from xgboost.callback import EarlyStopping, TrainingCallback

RUN_KEY_ATTR = "sluice_run_key"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)\.ubj$")


def latest_checkpoint(directory: Path, run_key: str) -> tuple[xgb.Booster | None, str]:
    """The newest checkpoint of this run, or None and why not."""
    if not directory.is_dir():
        return None, "no checkpoint folder"
    found = sorted(
        (int(m.group(1)), p)
        for p in directory.iterdir()
        if (m := _CHECKPOINT.match(p.name)) is not None
    )
    for rounds, path in reversed(found):
        try:
            booster = xgb.Booster(model_file=str(path))
        except xgb.core.XGBoostError:
            continue  # a partial write: try the one before
        if booster.attr(RUN_KEY_ATTR) != run_key:
            return (
                None,
                f"{path.name} belongs to another run (spec, data or hyperparameters differ)",
            )
        return booster, f"{path.name} ({rounds} rounds)"
    return None, "no checkpoint"


class Checkpoint(TrainingCallback):
    """Save the booster every ``interval`` rounds, atomically, keeping only the newest."""

    def __init__(self, directory: Path, run_key: str, interval: int) -> None:
        super().__init__()
        self.directory = directory
        self.run_key = run_key
        self.interval = max(1, interval)

    def after_iteration(self, model: xgb.Booster, epoch: int, evals_log: dict) -> bool:
        rounds = model.num_boosted_rounds()
        if rounds % self.interval == 0:
            self.save(model)
        return False

    def save(self, model: xgb.Booster) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        model.set_attr(**{RUN_KEY_ATTR: self.run_key})
        rounds = model.num_boosted_rounds()
        final = self.directory / f"checkpoint-{rounds}.ubj"
        partial = self.directory / f".checkpoint-{rounds}.partial.ubj"
        model.save_model(str(partial))
        os.replace(partial, final)
        for old in self.directory.glob("checkpoint-*.ubj"):
            if old != final:
                old.unlink(missing_ok=True)
        return final


class ResumableEarlyStopping(EarlyStopping):
    """XGBoost's early stopping, primed from the best score/iteration a checkpoint carries."""

    def before_training(self, model: xgb.Booster) -> xgb.Booster:
        model = super().before_training(model)
        best_score, best_iteration = model.attr("best_score"), model.attr("best_iteration")
        if self.starting_round and best_score is not None and best_iteration is not None:
            name, metric = str(self.data), str(self.metric_name)
            score = float(best_score)
            self.stopping_history = {name: {metric: [score]}}
            self.best_scores = {name: {metric: [score]}}
            self.current_rounds = self.starting_round - 1 - int(best_iteration)
        return model

    @property
    def exhausted(self) -> bool:
        return self.current_rounds >= self.rounds


class MetricLines(TrainingCallback):
    """Print ``iteration=<n>; <data>-<metric>=<value>;`` once per round (to stdout)."""

    def after_iteration(self, model: xgb.Booster, epoch: int, evals_log: dict) -> bool:
        parts = [f"iteration={model.num_boosted_rounds()};"]
        for data, metrics in evals_log.items():
            for metric, history in metrics.items():
                value = history[-1][0] if isinstance(history[-1], tuple) else history[-1]
                parts.append(f"{data}-{metric}={float(value):.6f};")
        print(" ".join(parts), file=sys.stdout, flush=True)
        return False


class ValidationScores(TrainingCallback):
    """Keep the validation predictions of the kept rounds while XGBoost still caches them
    (``xgboost.train`` drops its prediction cache when it returns)."""

    def __init__(self, dval: xgb.DMatrix, use_best: bool) -> None:
        super().__init__()
        self.dval = dval
        self.use_best = use_best
        self.rounds = 0
        self.scores: np.ndarray | None = None

    def after_training(self, model: xgb.Booster) -> xgb.Booster:
        best = model.attr("best_iteration") if self.use_best else None
        self.rounds = int(best) + 1 if best is not None else model.num_boosted_rounds()
        self.scores = np.asarray(model.predict(self.dval, iteration_range=(0, self.rounds)))
        return model
