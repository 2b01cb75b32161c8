"""Fixtures for the training tests: curated sample data (the ingestion contract) and models.

Models are trained in-process through ``train.main`` with explicit paths and an environment
without GPUs; ``test_training_local.py`` covers the subprocess path through the script-mode
contract.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from training_helpers import CHURN_ROWS, CHURN_SPEC, FAST, SPECS, run_train

from datasets.spec import DatasetSpec, load_spec
from training.sample import write_curated


@pytest.fixture(scope="session")
def churn_spec() -> DatasetSpec:
    return load_spec(CHURN_SPEC)


@pytest.fixture(scope="session")
def churn_data(tmp_path_factory: pytest.TempPathFactory, churn_spec: DatasetSpec) -> Path:
    """20k curated churn rows in two nested Parquet files, plus a quarantine folder to ignore."""
    out = write_curated(churn_spec, tmp_path_factory.mktemp("churn") / "curated", CHURN_ROWS)
    (out / "quarantine").mkdir()
    (out / "quarantine" / "rejected.parquet").write_text("not parquet: must never be read")
    return out


@pytest.fixture(scope="session")
def churn_model(tmp_path_factory: pytest.TempPathFactory, churn_data: Path) -> Path:
    return run_train(CHURN_SPEC, churn_data, tmp_path_factory.mktemp("strong"), *FAST)


@pytest.fixture(scope="session")
def weak_churn_model(tmp_path_factory: pytest.TempPathFactory, churn_data: Path) -> Path:
    """Five stumps: above the spec's 0.80 threshold, clearly below churn_model."""
    hps = ["--num_round", "5", "--max_depth", "1", "--eta", "0.5", "--early_stopping_rounds", "0"]
    return run_train(CHURN_SPEC, churn_data, tmp_path_factory.mktemp("weak"), *hps)


@pytest.fixture(scope="session")
def curated_for(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, int], Path]:
    """Curated data for one of the test specs in specs/ (generic generator)."""

    def make(name: str, rows: int) -> Path:
        spec = load_spec(SPECS / f"{name}.yaml")
        return write_curated(spec, tmp_path_factory.mktemp(name) / "curated", rows, seed=7)

    return make
