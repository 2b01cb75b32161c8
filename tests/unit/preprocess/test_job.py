"""job.py: the processing job runs the same ingestion as the function, end to end on moto."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from lambdas.preprocess import job
from tests.unit.preprocess.fakes import REGION, RecordedEvents, make_lake
from tests.unit.preprocess.helpers import csv_text, good_rows

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    with mock_aws():
        s3, secrets, arn = make_lake()
        # the job's Environment, as the router sets it (no idempotency table, no routing)
        for name, value in {
            "CURATED_BUCKET": "curated",
            "QUARANTINE_BUCKET": "quarantine",
            "PII_SECRET_ARN": arn,
            "WORK_DIR": str(tmp_path / "work"),
            "SUMMARY_DIR": str(tmp_path / "summary"),
            "PII_WORKERS": "0",
        }.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("IDEMPOTENCY_TABLE", raising=False)
        yield {"s3": s3, "secretsmanager": secrets, "events": RecordedEvents()}


def test_job_curates_the_object_like_the_function(aws: dict[str, Any], tmp_path: Path) -> None:
    s3 = aws["s3"]
    version = s3.put_object(Bucket="raw", Key="churn/big.csv", Body=csv_text(good_rows(30)))[
        "VersionId"
    ]
    args = job.parse_args(["--bucket", "raw", "--key", "churn/big.csv", "--version-id", version])
    summary = job.run(args, clients=aws)
    prefix = f"churn/big.csv/{version}/"
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="curated")["Contents"])
    assert keys == [prefix + "manifest.json", prefix + "part-00000.parquet"]
    manifest = json.loads(
        s3.get_object(Bucket="curated", Key=prefix + "manifest.json")["Body"].read()
    )
    assert manifest["rows"] == {"in": 30, "curated": 30, "quarantined": 0}
    assert manifest["source"]["version_id"] == version
    [entry] = aws["events"].entries
    assert entry["DetailType"] == "DatasetCurated"
    assert summary["status"] == "curated"
    # the summary output SageMaker uploads at the end of the job
    assert json.loads((tmp_path / "summary" / "summary.json").read_text()) == summary


def test_job_rejects_a_bad_file_into_quarantine(aws: dict[str, Any]) -> None:
    version = aws["s3"].put_object(Bucket="raw", Key="churn/empty.csv", Body=b"")["VersionId"]
    args = job.parse_args(["--bucket", "raw", "--key", "churn/empty.csv", "--version-id", version])
    assert job.run(args, clients=aws)["status"] == "rejected"
    [entry] = aws["events"].entries
    assert entry["DetailType"] == "FileRejected"


def test_job_runs_from_the_code_zip_and_reports_a_failure_as_its_exit_message(
    tmp_path: Path,
) -> None:
    """The asset arrives as a zip on PYTHONPATH: the job unpacks it and runs from the copy."""
    archive = tmp_path / "code" / "0123abcd.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as zf:
        for top in ("lambdas", "datasets"):
            for path in sorted((REPO_ROOT / top).rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    zf.write(path, path.relative_to(REPO_ROOT))
    message = tmp_path / "output" / "message"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(archive),
        "WORK_DIR": str(tmp_path / "work"),
        "EXIT_MESSAGE_FILE": str(message),
        "AWS_DEFAULT_REGION": REGION,
    }  # no CURATED_BUCKET: the run fails after the unpack, with a clear message
    result = subprocess.run(
        [sys.executable, "-m", "lambdas.preprocess.job", "--bucket", "raw", "--key", "churn/x.csv"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert (tmp_path / "work" / "code" / "lambdas" / "preprocess" / "job.py").is_file()
    assert (tmp_path / "work" / "code" / "datasets" / "churn.yaml").is_file()
    assert message.read_text().startswith("SettingsError: missing environment variable(s): CURATED")
    assert "Traceback" in result.stderr  # the log keeps the details
