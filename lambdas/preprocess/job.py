"""The SageMaker Processing job that ingests an object too large for the function.

``python3 -m lambdas.preprocess.job --bucket B --key K [--version-id V]`` builds the same
``service.Ingestion`` the function uses, from the same environment variables (``Settings``), and
calls ``ingest()``: curated Parquet, manifest, quarantine and the DatasetCurated/FileRejected
events are exactly what the function would have written. It runs in SageMaker's XGBoost 3.0-5
framework image (Python 3.10 with pyarrow, numpy and boto3); PyYAML comes with the code.

The code arrives as the CDK asset's zip under ``/opt/ml/processing/input/code`` and the job
starts with that zip on ``PYTHONPATH``. Ingestion reads specs and hashes its own source files
(the manifest's code version), which needs real files, so the job first unpacks the zip into its
work directory and runs again from there. Exit 0: the object was curated or rejected (both are
outcomes); 1: it could not be processed (the reason is in ``$EXIT_MESSAGE_FILE``, set to
``/opt/ml/output/message``, which SageMaker shows as the job's exit message, and in its log).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import zipfile
from pathlib import Path
from typing import Any

LOG = logging.getLogger("sluice.preprocess.job")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m lambdas.preprocess.job", description=__doc__)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--version-id", default=None)
    return parser.parse_args(argv)


def _archive() -> Path | None:
    """The zip this package was imported from, if it was (zipimport), else None."""
    here = Path(__file__)
    for parent in here.parents:
        if parent.suffix == ".zip" and parent.is_file():
            return parent
    return None


def _run_unpacked(archive: Path, argv: list[str]) -> None:
    """Unpack the code zip into the work directory and run this module again from the copy."""
    target = Path(os.environ.get("WORK_DIR", ".")) / "code"
    target.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(target)
    env = {**os.environ, "PYTHONPATH": str(target)}
    LOG.info("running from %s", target)
    # the same interpreter and arguments, only PYTHONPATH changed: no shell involved
    os.execve(sys.executable, [sys.executable, "-m", "lambdas.preprocess.job", *argv], env)  # noqa: S606


def run(args: argparse.Namespace, *, clients: dict[str, Any] | None = None) -> dict[str, Any]:
    """Ingest one object version exactly as the function does; returns the summary."""
    from lambdas.preprocess.service import Ingestion, ObjectRef
    from lambdas.preprocess.settings import Settings

    settings = Settings.from_env(job=True)
    Path(settings.work_dir).mkdir(parents=True, exist_ok=True)
    if clients is None:
        import boto3

        clients = {name: boto3.client(name) for name in ("s3", "secretsmanager", "events")}
    ingestion = Ingestion(
        settings, s3=clients["s3"], secrets=clients["secretsmanager"], events=clients["events"]
    )
    summary = ingestion.ingest(ObjectRef(args.bucket, args.key, args.version_id))
    summary_dir = os.environ.get("SUMMARY_DIR")
    if summary_dir:
        Path(summary_dir).mkdir(parents=True, exist_ok=True)
        (Path(summary_dir) / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    archive = _archive()
    if archive is not None:
        _run_unpacked(archive, argv)  # does not return
    try:
        summary = run(args)
    except Exception as exc:  # the job's one place that turns a failure into its exit message
        LOG.exception("could not ingest s3://%s/%s", args.bucket, args.key)
        message_file = os.environ.get("EXIT_MESSAGE_FILE")
        if message_file:
            Path(message_file).parent.mkdir(parents=True, exist_ok=True)
            Path(message_file).write_text(f"{type(exc).__name__}: {exc}"[:1024])
        return 1
    LOG.info("%s", json.dumps({"message": "object processed", "summary": summary}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
