"""The model directory (``SM_MODEL_DIR``, packed by SageMaker into ``model.tar.gz``).

Layout::

    model.ubj        the XGBoost booster (UBJSON), trimmed to the best iteration
    schema.json      the feature schema: inputs in order, dtypes, categories (the encoding)
    baseline.json    per-feature statistics and histograms of the training split (drift)
    metadata.json    the run: data manifests, spec version/fingerprint, code version, split,
                     hyperparameters, XGBoost params, library versions, seed, device
    metrics.json     validation and test metrics
    spec.json        the dataset spec the model was trained on (``DatasetSpec.to_document``): the
                     record shape serving checks requests against
    code/            inference.py + the training and datasets modules it imports (serving with
                     SAGEMAKER_SUBMIT_DIRECTORY=/opt/ml/model/code, e.g. under network isolation)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

from datasets.spec import DatasetSpec, parse_spec
from training.schema import FeatureSchema

MODEL_FILE = "model.ubj"
SCHEMA_FILE = "schema.json"
BASELINE_FILE = "baseline.json"
METADATA_FILE = "metadata.json"
METRICS_FILE = "metrics.json"
SPEC_FILE = "spec.json"
CODE_DIR = "code"
#: what inference needs, copied into model/code/training/
SERVING_MODULES = ("__init__.py", "schema.py", "artifacts.py", "inference.py")
#: the shared dataset modules (spec, record checks, features, drift bins, metrics): in
#: model/code/datasets/ and the job's sourcedir
DATASETS_MODULES = (
    "__init__.py", "spec.py", "columns.py", "features.py", "record.py", "drift.py", "metrics.py",
)  # fmt: skip
DATASETS = Path(__file__).resolve().parent.parent / "datasets"


@dataclass
class LoadedModel:
    booster: xgb.Booster
    schema: FeatureSchema
    metadata: dict[str, Any]
    directory: Path
    #: the spec the model was trained on (None for a model saved before specs were kept)
    spec: DatasetSpec | None = None

    def scores(self, x: np.ndarray) -> np.ndarray:
        """Positive-class probability (binary), (n, k) probabilities, or regression values."""
        return np.asarray(self.booster.inplace_predict(x, validate_features=False))


def gpu_available(environ: dict[str, str] | None = None) -> bool:
    """SageMaker says how many GPUs the instance has; elsewhere ask nvidia-smi."""
    env = os.environ if environ is None else environ
    if "SM_NUM_GPUS" in env:
        try:
            return int(env["SM_NUM_GPUS"]) > 0
        except ValueError:
            return False
    smi = shutil.which("nvidia-smi")
    if not smi:
        return False
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


def load_model_dir(directory: Path, *, device: str | None = None) -> LoadedModel:
    booster = xgb.Booster(model_file=str(directory / MODEL_FILE))
    booster.set_param({"device": device or ("cuda" if gpu_available() else "cpu")})
    metadata_path = directory / METADATA_FILE
    metadata = json.loads(metadata_path.read_text()) if metadata_path.is_file() else {}
    spec_path = directory / SPEC_FILE
    spec = (
        parse_spec(json.loads(spec_path.read_text()), source=str(spec_path))
        if spec_path.is_file()
        else None
    )
    schema = FeatureSchema.load(directory / SCHEMA_FILE)
    return LoadedModel(booster, schema, metadata, directory, spec)


def _safe_members(tar: tarfile.TarFile, dest: Path) -> list[tarfile.TarInfo]:
    root = dest.resolve()
    members = []
    for member in tar.getmembers():
        target = (dest / member.name).resolve()
        if root not in (target, *target.parents) or member.issym() or member.islnk():
            raise ValueError(f"unsafe path in model archive: {member.name}")
        members.append(member)
    return members


def extract_model(source: Path, dest: Path | None = None) -> Path:
    """A model directory from ``model.tar.gz``, a folder holding one, or a model folder."""
    if source.is_dir():
        if (source / MODEL_FILE).is_file():
            return source
        archives = sorted(source.glob("*.tar.gz"))
        if not archives:
            raise FileNotFoundError(f"{source}: neither {MODEL_FILE} nor a model.tar.gz")
        source = archives[0]
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no such model archive")
    out = dest or Path(tempfile.mkdtemp(prefix="sluice-model-"))
    out.mkdir(parents=True, exist_ok=True)
    with tarfile.open(source, "r:gz") as tar:
        tar.extractall(out, members=_safe_members(tar, out))  # noqa: S202 (members checked)
    if not (out / MODEL_FILE).is_file():
        raise FileNotFoundError(f"{source}: the archive holds no {MODEL_FILE}")
    return out


def pack_dir(directory: Path, archive: Path) -> Path:
    """Pack a folder's contents at the archive root, the way SageMaker packs /opt/ml/model."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(directory.rglob("*")):
            if "__pycache__" not in path.parts:
                tar.add(path, arcname=str(path.relative_to(directory)), recursive=False)
    return archive


def copy_datasets_modules(dest: Path) -> None:
    """The shared ``datasets`` modules (no specs, no generator) into ``dest/datasets``."""
    (dest / "datasets").mkdir(parents=True, exist_ok=True)
    for name in DATASETS_MODULES:
        shutil.copy2(DATASETS / name, dest / "datasets" / name)


def write_serving_code(model_dir: Path) -> None:
    """Copy inference.py and the modules it imports into ``model_dir/code``."""
    package = Path(__file__).resolve().parent
    code = model_dir / CODE_DIR
    (code / "training").mkdir(parents=True, exist_ok=True)
    for name in SERVING_MODULES:
        shutil.copy2(package / name, code / "training" / name)
    copy_datasets_modules(code)
    shutil.copy2(package / "inference.py", code / "inference.py")
    shutil.copy2(package / "requirements.txt", code / "requirements.txt")
