"""The job's source directory (``sourcedir.tar.gz``), in the one layout the scripts expect.

SageMaker wants the entry point at the root of the sourcedir, and the scripts import the
``training`` and ``datasets`` packages, so the sourcedir is::

    train.py  evaluate.py  inference.py   copies of training/<same name> (the entry points)
    requirements.txt                      training/requirements.txt (empty: nothing to install)
    training/*.py                         the package (minus the local runner and sample data)
    datasets/{__init__,spec,columns,features,record,drift,metrics}.py   the shared spec, checks,
                                                    features, drift bins and metrics

Training jobs use ``sagemaker_program=train.py``; processing jobs run ``evaluate.py`` from the
code input (``/opt/ml/processing/input/code``); endpoints use ``SAGEMAKER_PROGRAM=inference.py``
(the model tarball also carries its own ``code/`` folder, see ``training.artifacts``).

    python -m training.package OUT.tar.gz      writes the tarball (for the CDK asset or a demo)
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from training.artifacts import copy_datasets_modules, pack_dir

PACKAGE = Path(__file__).resolve().parent
ENTRY_POINTS = ("train.py", "evaluate.py", "inference.py")
LOCAL_ONLY = ("local.py", "sample.py", "package.py")


def build_sourcedir(dest: Path) -> Path:
    """Lay the sourcedir out in ``dest`` (created; must be empty or absent)."""
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "training").mkdir(exist_ok=True)
    for path in sorted(PACKAGE.glob("*.py")):
        if path.name not in LOCAL_ONLY:
            shutil.copy2(path, dest / "training" / path.name)
    shutil.copy2(PACKAGE / "requirements.txt", dest / "training" / "requirements.txt")
    shutil.copy2(PACKAGE / "requirements.txt", dest / "requirements.txt")
    for name in ENTRY_POINTS:
        shutil.copy2(PACKAGE / name, dest / name)
    copy_datasets_modules(dest)
    return dest


def build_sourcedir_tar(archive: Path) -> Path:
    with tempfile.TemporaryDirectory(prefix="sluice-sourcedir-") as tmp:
        return pack_dir(build_sourcedir(Path(tmp) / "src"), archive)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python -m training.package OUT.tar.gz", file=sys.stderr)
        raise SystemExit(2)
    print(build_sourcedir_tar(Path(sys.argv[1])))
