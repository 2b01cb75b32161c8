"""Ingestion of one S3 object: download, curate, upload the results, announce them.

Knows S3, Secrets Manager and EventBridge (clients are passed in, so tests use moto), not
Lambda. Layout of what it writes (``<upload>`` = the object key below the dataset prefix):

    s3://<curated>/<dataset>/<upload>/<version>/part-*.parquet, manifest.json
    s3://<quarantine>/<dataset>/rows/<upload>/<version>/rows.jsonl      quarantined rows
    s3://<quarantine>/<dataset>/rejected/<upload>/<version>/<file>       a rejected file's copy
    s3://<quarantine>/<dataset>/rejected/<upload>/<version>/rejection.json   and why

The raw object itself stays where it was uploaded: nothing is ever lost.

An object too large for the function is not processed here: ``LargeObjectRouter`` starts a
SageMaker Processing job that runs this same ``Ingestion`` on it (``job.py``), so outputs,
manifest and events are the same whichever path an object takes.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from datasets import names
from datasets.spec import SPECS_DIR, load_spec, spec_path
from lambdas.preprocess.settings import ProcessingSettings, Settings

DETAIL_CURATED = names.DATASET_CURATED
DETAIL_REJECTED = names.FILE_REJECTED
#: the job's paths inside the container (SageMaker Processing's conventions)
JOB_CODE_DIR = "/opt/ml/processing/input/code"
JOB_WORK_DIR = "/opt/ml/processing/work"
JOB_SUMMARY_DIR = "/opt/ml/processing/output/summary"
#: first bytes of the compressed inputs ingestion accepts: gzip, Parquet
COMPRESSED_MAGIC = (b"\x1f\x8b", b"PAR1")


@dataclass(frozen=True)
class ObjectRef:
    bucket: str
    key: str
    version_id: str | None = None

    @property
    def dataset(self) -> str:
        return self.key.split("/", 1)[0] if "/" in self.key else ""

    @property
    def upload(self) -> str:
        return self.key.split("/", 1)[1] if "/" in self.key else self.key

    @property
    def version(self) -> str:
        return self.version_id or "unversioned"

    def as_dict(self) -> dict[str, Any]:
        return {"bucket": self.bucket, "key": self.key, "version_id": self.version_id}


class Ingestion:
    """Curates objects of the raw bucket; the PII key is fetched once and kept in memory."""

    def __init__(
        self,
        settings: Settings,
        *,
        s3: Any,
        secrets: Any,
        events: Any,
        specs_dir: Path = SPECS_DIR,
    ) -> None:
        self.settings = settings
        self.s3, self.secrets, self.events = s3, secrets, events
        self.specs_dir = specs_dir
        self._pii_key: bytes | None = None

    def pii_key(self) -> bytes:
        if self._pii_key is None:
            secret = self.secrets.get_secret_value(SecretId=self.settings.pii_secret_arn)
            self._pii_key = secret["SecretString"].encode()
        return self._pii_key

    def ingest(self, ref: ObjectRef) -> dict[str, Any]:
        """Process one object version; returns the summary that the event also carries."""
        from lambdas.preprocess.pipeline import SourceInfo, process_file  # pyarrow: lazily

        started = time.monotonic()
        path = spec_path(ref.dataset, self.specs_dir)
        spec = load_spec(path) if path else None
        with tempfile.TemporaryDirectory(dir=self.settings.work_dir) as tmp:
            local = Path(tmp) / (PurePosixPath(ref.key).name or "upload")
            extra = {"VersionId": ref.version_id} if ref.version_id else None
            self.s3.download_file(ref.bucket, ref.key, str(local), ExtraArgs=extra)
            outcome = process_file(
                local,
                Path(tmp) / "out",
                spec=spec,
                dataset=ref.dataset,
                pii_key=self.pii_key() if spec and spec.pii_columns else None,
                source=SourceInfo(ref.bucket, ref.key, ref.version_id),
                workers=self.settings.workers,
            )
            if outcome.accepted:
                summary = self._publish_curated(ref, outcome.output_dir, outcome.manifest or {})
            else:
                summary = self._publish_rejected(ref, outcome.output_dir)
        summary["seconds"] = round(time.monotonic() - started, 3)
        return summary

    # ---------------------------------------------------------------------------- outputs
    def _publish_curated(
        self, ref: ObjectRef, out: Path, manifest: dict[str, Any]
    ) -> dict[str, Any]:
        prefix = f"{ref.dataset}/{ref.upload}/{ref.version}"
        for part in sorted(out.glob("part-*.parquet")):
            self.s3.upload_file(str(part), self.settings.curated_bucket, f"{prefix}/{part.name}")
        rows_file = out / "quarantine" / "rows.jsonl"
        quarantine_uri = None
        if rows_file.exists():
            qkey = f"{ref.dataset}/rows/{ref.upload}/{ref.version}/rows.jsonl"
            self.s3.upload_file(str(rows_file), self.settings.quarantine_bucket, qkey)
            quarantine_uri = f"s3://{self.settings.quarantine_bucket}/{qkey}"
            manifest["quarantine"] = {**(manifest.get("quarantine") or {}), "uri": quarantine_uri}
        manifest_key = f"{prefix}/manifest.json"  # last: its presence means "complete"
        self.s3.put_object(
            Bucket=self.settings.curated_bucket,
            Key=manifest_key,
            Body=json.dumps(manifest, indent=2, default=str).encode(),
            ContentType="application/json",
        )
        summary = {
            "status": "curated",
            "dataset": ref.dataset,
            # the training pipeline starts a run for uploads only: feedback joins the next run
            "origin": names.origin(ref.key),
            "source": ref.as_dict(),
            "curated_prefix": f"s3://{self.settings.curated_bucket}/{prefix}/",
            "manifest": f"s3://{self.settings.curated_bucket}/{manifest_key}",
            "quarantine": quarantine_uri,
            "rows": manifest.get("rows", {}),
            "spec_version": manifest.get("spec", {}).get("version"),
        }
        self._emit(DETAIL_CURATED, summary)
        return summary

    def _publish_rejected(self, ref: ObjectRef, out: Path) -> dict[str, Any]:
        rejection = json.loads((out / "rejection.json").read_text())
        name = PurePosixPath(ref.key).name or "upload"
        dataset = ref.dataset or "_undeclared"
        prefix = f"{dataset}/rejected/{ref.upload}/{ref.version}"
        source: dict[str, str] = {"Bucket": ref.bucket, "Key": ref.key}
        if ref.version_id:
            source["VersionId"] = ref.version_id
        self.s3.copy(source, self.settings.quarantine_bucket, f"{prefix}/{name}")
        self.s3.put_object(
            Bucket=self.settings.quarantine_bucket,
            Key=f"{prefix}/rejection.json",
            Body=json.dumps({"source": ref.as_dict(), **rejection}, indent=2).encode(),
            ContentType="application/json",
        )
        summary = {
            "status": "rejected",
            "dataset": ref.dataset,
            "source": ref.as_dict(),
            "reason": rejection,
            "quarantine": f"s3://{self.settings.quarantine_bucket}/{prefix}/",
        }
        self._emit(DETAIL_REJECTED, summary)
        return summary

    def _emit(self, detail_type: str, detail: dict[str, Any]) -> None:
        response = self.events.put_events(
            Entries=[
                {
                    "Source": self.settings.event_source,
                    "DetailType": detail_type,
                    "Detail": json.dumps(detail, default=str),
                    "EventBusName": self.settings.event_bus,
                }
            ]
        )
        if response.get("FailedEntryCount"):
            raise RuntimeError(f"EventBridge refused the {detail_type} event: {response}")


# -------------------------------------------------------------------------- large objects
#: runs of one object version's job: the first, then reruns after a failure, on redelivery
MAX_JOB_ATTEMPTS = names.MAX_INGEST_JOB_ATTEMPTS
#: a job that ended like this is started again (under the next attempt's name) on redelivery
RETRIED_STATUSES = ("Failed", "Stopped")


def job_name(prefix: str, ref: ObjectRef, attempt: int = 1) -> str:
    """One job name per object version and attempt: a redelivery finds the job instead of
    starting another, and a rerun after a failure gets a name of its own (``-r2``, ``-r3``).

    SageMaker names allow 63 characters of ``[a-zA-Z0-9-]``; the hash fills what the prefix and
    an attempt suffix leave.
    """
    head = names.ingest_job_prefix(prefix)
    digest = hashlib.sha256(f"{ref.bucket}\n{ref.key}\n{ref.version}".encode()).hexdigest()
    base = head + digest[: max(8, min(40, 63 - len(head) - 3))]
    return base if attempt == 1 else f"{base}-r{attempt}"


class LargeObjectRouter:
    """Sends objects too large for the function to a SageMaker Processing job (``job.py``)."""

    def __init__(
        self, settings: Settings, processing: ProcessingSettings, *, s3: Any, sagemaker: Any
    ) -> None:
        self.settings, self.processing = settings, processing
        self.s3, self.sagemaker = s3, sagemaker

    def too_large(self, ref: ObjectRef, size: int) -> bool:
        """Above the threshold; compressed inputs (told apart by their first bytes, as ingestion
        does) hold ``compressed_expansion`` times their size in CSV, so theirs is lower."""
        threshold = self.processing.threshold_bytes
        if size > threshold:
            return True
        if size <= threshold / self.processing.compressed_expansion:
            return False
        extra = {"VersionId": ref.version_id} if ref.version_id else {}
        head = self.s3.get_object(Bucket=ref.bucket, Key=ref.key, Range="bytes=0-3", **extra)
        return bool(head["Body"].read().startswith(COMPRESSED_MAGIC))

    def route(self, ref: ObjectRef, size: int) -> dict[str, Any]:
        """Start the object's job unless it exists already; returns the "routed" summary.

        When the latest job of this object version failed or was stopped, a redelivery (a
        backfill over the prefix, or a redriven message) starts it again under the next
        attempt's name, up to ``MAX_JOB_ATTEMPTS`` runs in all.
        """
        attempt, already = self._latest(ref)
        if (
            already is not None
            and already["ProcessingJobStatus"] in RETRIED_STATUSES
            and attempt < MAX_JOB_ATTEMPTS
        ):
            attempt, already = attempt + 1, None
        name = job_name(self.processing.job_prefix, ref, attempt)
        if already is None:
            try:
                arn = self.sagemaker.create_processing_job(**self.job_request(name, ref))[
                    "ProcessingJobArn"
                ]
                status = "InProgress"
            except self.sagemaker.exceptions.ResourceInUse:  # a concurrent delivery won
                already = self._describe(name)
        if already is not None:
            arn, status = already["ProcessingJobArn"], already["ProcessingJobStatus"]
        summary = {
            "status": "routed",
            "dataset": ref.dataset,
            "source": ref.as_dict(),
            "size": size,
            "threshold_bytes": self.processing.threshold_bytes,
            "job_name": name,
            "job_arn": arn,
            "job_status": status,
            "job_attempt": attempt,
            "already_routed": already is not None,
        }
        if already is not None and status in RETRIED_STATUSES:
            summary["failure_reason"] = already.get("FailureReason", "")
            summary["attempts_exhausted"] = True
        return summary

    def _latest(self, ref: ObjectRef) -> tuple[int, dict[str, Any] | None]:
        """The latest attempt of this object version's job and its description (None: none)."""
        latest: tuple[int, dict[str, Any] | None] = (1, None)
        for attempt in range(1, MAX_JOB_ATTEMPTS + 1):
            found = self._describe(job_name(self.processing.job_prefix, ref, attempt))
            if found is None:
                break
            latest = (attempt, found)
        return latest

    def _describe(self, name: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self.sagemaker.describe_processing_job(ProcessingJobName=name)
        except self.sagemaker.exceptions.ClientError as exc:
            # SageMaker answers an unknown job name with a ValidationException
            if exc.response.get("Error", {}).get("Code") in (
                "ValidationException",
                "ResourceNotFound",
            ):
                return None
            raise
        return found

    @staticmethod
    def _network(p: ProcessingSettings) -> dict[str, Any]:
        """Network isolation stays off: the job reads S3 and Secrets Manager and puts
        EventBridge events itself. In the stage's private network it runs in its subnets
        (AWS reached through VPC endpoints), with traffic between instances encrypted."""
        network: dict[str, Any] = {"EnableNetworkIsolation": False}
        if p.subnet_ids:
            network["EnableInterContainerTrafficEncryption"] = True
            network["VpcConfig"] = {
                "SecurityGroupIds": list(p.security_group_ids),
                "Subnets": list(p.subnet_ids),
            }
        return network

    def job_request(self, name: str, ref: ObjectRef) -> dict[str, Any]:
        """CreateProcessingJob: this package, run on the object, in the XGBoost image."""
        p = self.processing
        archive = PurePosixPath(p.code_uri).name
        arguments = ["--bucket", ref.bucket, "--key", ref.key]
        if ref.version_id:
            arguments += ["--version-id", ref.version_id]
        environment = {
            "CURATED_BUCKET": self.settings.curated_bucket,
            "QUARANTINE_BUCKET": self.settings.quarantine_bucket,
            "PII_SECRET_ARN": self.settings.pii_secret_arn,
            "EVENT_BUS_NAME": self.settings.event_bus,
            "WORK_DIR": JOB_WORK_DIR,
            "SUMMARY_DIR": JOB_SUMMARY_DIR,
            "EXIT_MESSAGE_FILE": "/opt/ml/output/message",
            # the code arrives as the CDK asset's zip; job.py unpacks it and runs from the copy
            "PYTHONPATH": f"{JOB_CODE_DIR}/{archive}",
            "PYTHONUNBUFFERED": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
        }
        region = getattr(getattr(self.sagemaker, "meta", None), "region_name", None)
        if region:
            environment["AWS_DEFAULT_REGION"] = environment["AWS_REGION"] = region
        return {
            "ProcessingJobName": name,
            "RoleArn": p.role_arn,
            "AppSpecification": {
                "ImageUri": p.image_uri,
                "ContainerEntrypoint": ["python3", "-m", "lambdas.preprocess.job"],
                "ContainerArguments": arguments,
            },
            "ProcessingInputs": [
                {
                    "InputName": "code",
                    "S3Input": {
                        "S3Uri": p.code_uri,
                        "LocalPath": JOB_CODE_DIR,
                        "S3DataType": "S3Prefix",
                        "S3InputMode": "File",
                        "S3DataDistributionType": "FullyReplicated",
                    },
                }
            ],
            "ProcessingOutputConfig": {
                "Outputs": [
                    {
                        "OutputName": "summary",
                        "S3Output": {
                            "S3Uri": f"{p.summary_uri.rstrip('/')}/{name}",
                            "LocalPath": JOB_SUMMARY_DIR,
                            "S3UploadMode": "EndOfJob",
                        },
                    }
                ],
                "KmsKeyId": p.kms_key_arn,
            },
            "ProcessingResources": {
                "ClusterConfig": {
                    "InstanceCount": 1,
                    "InstanceType": p.instance_type,
                    "VolumeSizeInGB": p.volume_gb,
                    "VolumeKmsKeyId": p.kms_key_arn,
                }
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": p.max_runtime_seconds},
            "Environment": environment,
            "NetworkConfig": self._network(p),
        }
