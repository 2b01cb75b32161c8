"""Fixtures of the monitoring tests: a small trained churn model, captured traffic, moto."""

import os

os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "SluiceTest")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "monitoring")
os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")

from collections.abc import Iterator
from pathlib import Path

import pytest
from moto import mock_aws

from datasets.spec import load_spec, spec_path
from tests.unit.monitoring.fakes import World, make_world
from training import train
from training.sample import write_curated


@pytest.fixture(scope="session")
def churn_model_tar(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A churn model trained in-process on 4,000 curated rows (a few rounds), packed."""
    import tarfile

    work = tmp_path_factory.mktemp("model")
    spec = load_spec(spec_path("churn"))  # type: ignore[arg-type]
    data = write_curated(spec, work / "curated", 4000, seed=3)
    model_dir = work / "model"
    argv = [
        "--num_round", "10", "--max_depth", "3", "--early_stopping_rounds", "0",
        "--spec", str(spec_path("churn")), "--train", str(data), "--model_dir", str(model_dir),
        "--output_data_dir", str(work / "out"), "--checkpoint_dir", str(work / "ckpt"),
    ]  # fmt: skip
    assert train.main(argv, environ={"SM_NUM_GPUS": "0"}) == 0
    archive = work / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(Path(model_dir).iterdir()):
            tar.add(path, arcname=path.name)
    return archive.read_bytes()


@pytest.fixture
def world(churn_model_tar: bytes) -> Iterator[World]:
    with mock_aws():
        yield make_world(churn_model_tar)
