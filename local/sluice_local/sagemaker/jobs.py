"""Training and processing jobs that really run: the job's script in the local "image".

The project venv (``SLUICE_SAGEMAKER_PYTHON``) stands in for the framework container. A job
gets an ``/opt/ml``-like tree under ``<state>/sagemaker/<kind>/<job>/``, its inputs from S3, the
script-mode environment, and its outputs uploaded back. The moto record of the job is updated
in place so Describe/List show the real lifecycle: InProgress, then Completed, Failed or Stopped.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from localstack.aws.connect import connect_to

from sluice_local import settings
from sluice_local.sagemaker import s3io
from sluice_local.sagemaker.script_mode import (
    MlLayout,
    cpu_count,
    failure_reason,
    module_name,
    rewrite_opt_ml,
    split_hyperparameters,
    to_cli_args,
    training_environment,
)

LOG = logging.getLogger(__name__)
_SLOTS = settings.Slots(settings.job_concurrency)
_MOTO_TIME = "%Y-%m-%d %H:%M:%S"


def now() -> str:
    return datetime.now().strftime(_MOTO_TIME)


class JobFailed(Exception):
    """The job ended unsuccessfully; ``reason`` becomes its FailureReason."""

    def __init__(self, reason: str, status: str = "Failed") -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass
class RunningJob:
    """A job being run; ``stop()`` is StopTrainingJob/StopProcessingJob."""

    name: str
    stop_requested: threading.Event = field(default_factory=threading.Event)
    process: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        self.stop_requested.set()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()


RUNNING: dict[str, RunningJob] = {}


def _job_dir(kind: str, name: str) -> Path:
    path = settings.state_dir() / "sagemaker" / kind / name
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def _run_script(
    job: RunningJob,
    command: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    region: str,
    log_path: Path,
    max_runtime: float | None,
) -> tuple[int, bool]:
    """Run the user's code; returns (exit code, stopped) and leaves its output in ``log_path``.

    On AWS a job's container gets its role's credentials and its region from the platform;
    here it gets the local cloud's endpoint and dummy credentials (never real ones), like the
    Lambda runner gives handlers, so code that calls AWS from inside a job works unchanged.
    """
    base_env = {
        "PATH": f"{Path(settings.job_python()).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(cwd),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "AWS_ENDPOINT_URL": settings.gateway_url(),
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
    }
    with log_path.open("wb") as log:
        job.process = subprocess.Popen(
            command,
            cwd=cwd,
            env={**base_env, **env},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            code = job.process.wait(timeout=max_runtime)
        except subprocess.TimeoutExpired:
            job.process.kill()
            job.process.wait()
            raise JobFailed("MaxRuntimeInSeconds exceeded", status="Stopped") from None
    return code, job.stop_requested.is_set()


def _tail(path: Path, lines: int = 40) -> str:
    text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


def _error_tail(path: Path) -> str:
    """The exception line(s) of a Python traceback, else the last lines of output."""
    text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
    if "Traceback (most recent call last)" in text:
        text = text.rsplit("Traceback (most recent call last)", 1)[1]
        body = [line for line in text.splitlines() if line and not line.startswith(" ")]
        return "\n".join(body[-1:])
    return "\n".join(text.splitlines()[-3:])


def _publish_logs(account: str, region: str, group: str, stream: str, log_path: Path) -> None:
    """Job output to CloudWatch Logs, as SageMaker does (best effort)."""
    try:
        logs = connect_to(aws_access_key_id=account, region_name=region).logs
        with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
            logs.create_log_group(logGroupName=group)
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
        timestamp = int(time.time() * 1000)
        lines = (
            log_path.read_text(encoding="utf-8", errors="replace") or "(no output)"
        ).splitlines()
        events = [{"timestamp": timestamp, "message": line or " "} for line in lines[-5000:]]
        for start in range(0, len(events), 1000):
            logs.put_log_events(
                logGroupName=group, logStreamName=stream, logEvents=events[start : start + 1000]
            )
    except Exception:  # logs are a convenience; the job's outcome does not depend on them
        LOG.debug("could not publish logs of %s", stream, exc_info=True)


def _metrics(definitions: list[dict[str, str]], log_path: Path) -> list[dict[str, Any]]:
    """FinalMetricDataList from the job's MetricDefinitions, scraped from its output."""
    text = log_path.read_text(encoding="utf-8", errors="replace") if log_path.exists() else ""
    found = []
    for definition in definitions or []:
        matches = re.findall(definition["Regex"], text)
        if matches:
            value = matches[-1][0] if isinstance(matches[-1], tuple) else matches[-1]
            try:
                found.append(
                    {"MetricName": definition["Name"], "Value": float(value), "Timestamp": now()}
                )
            except ValueError:
                continue
    return found


# ---------------------------------------------------------------- training


def run_training_job(record: Any, request: dict[str, Any], account: str, region: str) -> None:
    """Run in a thread; updates the moto ``FakeTrainingJob`` ``record`` as it goes."""
    name = request["TrainingJobName"]
    job = RUNNING.setdefault(name, RunningJob(name))
    try:
        with _SLOTS:
            if job.stop_requested.is_set():
                raise JobFailed("Stopped before it started", status="Stopped")
            record.training_start_time = now()
            _transition(record, "Downloading", "Downloading input data")
            artifacts = _train(job, record, request, account, region)
        record.model_artifacts = {"S3ModelArtifacts": artifacts}
        _finish(record, "Completed", None)
    except JobFailed as failed:
        _finish(record, failed.status, failed.reason)
    except Exception as exc:
        LOG.exception("training job %s could not run", name)
        _finish(record, "Failed", f"ClientError: {exc}"[:1024])
    finally:
        RUNNING.pop(name, None)


def _transition(record: Any, status: str, message: str) -> None:
    stamp = now()
    transitions = record.secondary_status_transitions
    if transitions and "EndTime" not in transitions[-1]:
        transitions[-1]["EndTime"] = stamp
    transitions.append({"Status": status, "StartTime": stamp, "StatusMessage": message})
    record.secondary_status = status
    record.last_modified_time = stamp


def _finish(record: Any, status: str, reason: str | None) -> None:
    secondary = {"Completed": "Completed", "Failed": "Failed", "Stopped": "Stopped"}[status]
    if reason and reason.startswith("MaxRuntime"):
        secondary = "MaxRuntimeExceeded"
    _transition(record, secondary, reason or "Training job completed")
    record.secondary_status_transitions[-1]["EndTime"] = record.last_modified_time
    record.training_end_time = record.last_modified_time
    record.failure_reason = reason
    record.training_job_status = status


def _train(job: RunningJob, record: Any, request: dict[str, Any], account: str, region: str) -> str:
    name = request["TrainingJobName"]
    layout = MlLayout(_job_dir("training", name) / "opt_ml")
    layout.create()
    s3 = s3io.s3_client(account, region)
    user_hps, framework = split_hyperparameters(request.get("HyperParameters") or {})
    program = framework.get("sagemaker_program")
    submit = framework.get("sagemaker_submit_directory")
    if not program or not submit:
        raise JobFailed(
            "ClientError: only script mode runs locally: set the sagemaker_program and "
            "sagemaker_submit_directory hyperparameters"
        )

    channels, input_config = [], {}
    for channel in request.get("InputDataConfig") or []:
        channel_name = channel["ChannelName"]
        source = channel["DataSource"].get("S3DataSource")
        if source is None:
            raise JobFailed(
                f"ClientError: channel {channel_name}: only S3 data sources run locally"
            )
        data_type = source.get("S3DataType", "S3Prefix")
        if data_type not in ("S3Prefix", "ManifestFile"):
            raise JobFailed(
                f"ClientError: channel {channel_name}: only S3Prefix and ManifestFile run locally"
            )
        if s3io.download(s3, source["S3Uri"], layout.channel(channel_name), data_type) == 0:
            raise JobFailed(
                f'ClientError: No S3 objects found under S3 URL "{source["S3Uri"]}" given in '
                f"input data source. Please ensure that the bucket exists in the selected region "
                f"({region}), that objects exist under that S3 prefix, and that the role "
                f'"{request.get("RoleArn")}" has "s3:ListBucket" permissions on bucket '
                f'"{s3io.split_uri(source["S3Uri"])[0]}".'
            )
        channels.append(channel_name)
        input_config[channel_name] = {
            "ContentType": channel.get("ContentType"),
            "RecordWrapperType": channel.get("RecordWrapperType", "None"),
            "S3DistributionType": source.get("S3DataDistributionType", "FullyReplicated"),
            "TrainingInputMode": channel.get("InputMode")
            or request["AlgorithmSpecification"].get("TrainingInputMode", "File"),
        }
        input_config[channel_name] = {k: v for k, v in input_config[channel_name].items() if v}

    checkpoint = request.get("CheckpointConfig") or {}
    if checkpoint.get("S3Uri"):
        s3io.download_prefix(s3, checkpoint["S3Uri"], layout.checkpoints)

    tarball = layout.root.parent / "sourcedir.tar.gz"
    s3io.download_file(s3, str(submit), tarball)
    s3io.unpack(tarball, layout.code)
    resource_config = {
        "current_host": "algo-1",
        "hosts": ["algo-1"],
        "network_interface_name": "eth0",
    }
    files = {
        "hyperparameters.json": request.get("HyperParameters") or {},
        "inputdataconfig.json": input_config,
        "resourceconfig.json": resource_config,
    }
    if checkpoint:
        files["checkpointconfig.json"] = {"LocalPath": str(layout.checkpoints), **checkpoint}
    for file_name, content in files.items():
        (layout.input_config / file_name).write_text(json.dumps(content), encoding="utf-8")

    env = training_environment(
        layout=layout,
        job_name=name,
        region=region,
        hyperparameters=user_hps,
        channels=channels,
        program=str(program),
        submit_directory=str(submit),
        num_cpus=cpu_count(),
        input_data_config=input_config,
        resource_config=resource_config,
    )
    env["PYTHONPATH"] = str(layout.code)
    env.update({k: str(v) for k, v in (request.get("Environment") or {}).items()})
    command = [settings.job_python(), "-m", module_name(str(program)), *to_cli_args(user_hps)]
    _transition(record, "Training", "Training image download completed. Training in progress.")
    log_path = layout.root.parent / "output.log"
    max_runtime = (request.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds")
    started = time.monotonic()
    try:
        code, stopped = _run_script(
            job,
            command,
            cwd=layout.code,
            env=env,
            region=region,
            log_path=log_path,
            max_runtime=max_runtime,
        )
    finally:
        record.training_time_in_seconds = int(time.monotonic() - started) + 1
        record.billable_time_in_seconds = record.training_time_in_seconds
        _publish_logs(
            account,
            region,
            "/aws/sagemaker/TrainingJobs",
            f"{name}/algo-1-{int(time.time())}",
            log_path,
        )
        record.final_metric_data_list = _metrics(
            request["AlgorithmSpecification"].get("MetricDefinitions") or [], log_path
        )
    if stopped:
        raise JobFailed("Stopped by StopTrainingJob", status="Stopped")
    if code != 0:
        written = layout.output / "failure"
        if written.exists() and written.read_text(encoding="utf-8").strip():
            reason = "AlgorithmError: " + written.read_text(encoding="utf-8").strip()
        else:
            reason = failure_reason(command, code, _error_tail(log_path))
            written.write_text(reason, encoding="utf-8")
        raise JobFailed(reason[:1024])
    (layout.output / "success").write_text("", encoding="utf-8")

    _transition(record, "Uploading", "Uploading generated training model")
    output_path = request["OutputDataConfig"]["S3OutputPath"].rstrip("/")
    model_tar = layout.root.parent / "model.tar.gz"
    s3io.pack(layout.model, model_tar)
    artifacts = f"{output_path}/{name}/output/model.tar.gz"
    s3io.upload_file(s3, model_tar, artifacts)
    if any(layout.output_data.iterdir()):
        output_tar = layout.root.parent / "output.tar.gz"
        s3io.pack(layout.output_data, output_tar)
        s3io.upload_file(s3, output_tar, f"{output_path}/{name}/output/output.tar.gz")
    if checkpoint.get("S3Uri"):
        s3io.upload_dir(s3, layout.checkpoints, checkpoint["S3Uri"])
    return artifacts


# ---------------------------------------------------------------- processing


def run_processing_job(record: Any, request: dict[str, Any], account: str, region: str) -> None:
    name = request["ProcessingJobName"]
    job = RUNNING.setdefault(name, RunningJob(name))
    try:
        with _SLOTS:
            if job.stop_requested.is_set():
                raise JobFailed("Stopped before it started", status="Stopped")
            record.processing_start_time = now()
            exit_message = _process(job, request, account, region)
        record.exit_message = exit_message
        _finish_processing(record, "Completed", None)
    except JobFailed as failed:
        _finish_processing(record, failed.status, failed.reason)
    except Exception as exc:
        LOG.exception("processing job %s could not run", name)
        _finish_processing(record, "Failed", f"ClientError: {exc}"[:1024])
    finally:
        RUNNING.pop(name, None)


def _finish_processing(record: Any, status: str, reason: str | None) -> None:
    record.processing_end_time = record.last_modified_time = now()
    record.failure_reason = reason
    record.processing_job_status = status


def _process(job: RunningJob, request: dict[str, Any], account: str, region: str) -> str | None:
    name = request["ProcessingJobName"]
    root = _job_dir("processing", name) / "opt_ml"
    (root / "output").mkdir(parents=True)
    (root / "config").mkdir(parents=True)
    s3 = s3io.s3_client(account, region)
    for item in request.get("ProcessingInputs") or []:
        source = item.get("S3Input")
        if source is None:
            raise JobFailed(
                f"ClientError: input {item.get('InputName')}: only S3Input runs locally"
            )
        target = Path(rewrite_opt_ml(source["LocalPath"], root))
        data_type = source.get("S3DataType", "S3Prefix")
        if data_type not in ("S3Prefix", "ManifestFile"):
            raise JobFailed(
                f"ClientError: input {item.get('InputName')}: only S3Prefix and ManifestFile "
                "run locally"
            )
        s3io.download(s3, source["S3Uri"], target, data_type)
    outputs = (request.get("ProcessingOutputConfig") or {}).get("Outputs") or []
    for item in outputs:
        Path(rewrite_opt_ml(item["S3Output"]["LocalPath"], root)).mkdir(parents=True, exist_ok=True)
    (root / "config" / "processingjobconfig.json").write_text(json.dumps(request, default=str))
    (root / "config" / "resourceconfig.json").write_text(
        json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]})
    )

    app = request["AppSpecification"]
    entrypoint = list(app.get("ContainerEntrypoint") or [])
    if not entrypoint:
        raise JobFailed("ClientError: a local processing job needs ContainerEntrypoint")
    if Path(entrypoint[0]).name.startswith("python"):
        entrypoint[0] = settings.job_python()
    command = [
        rewrite_opt_ml(part, root)
        for part in entrypoint + list(app.get("ContainerArguments") or [])
    ]
    env = {k: rewrite_opt_ml(str(v), root) for k, v in (request.get("Environment") or {}).items()}
    env.setdefault("SLUICE_OPT_ML", str(root))
    log_path = root.parent / "output.log"
    max_runtime = (request.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds")
    try:
        code, stopped = _run_script(
            job,
            command,
            cwd=root,
            env=env,
            region=region,
            log_path=log_path,
            max_runtime=max_runtime,
        )
    finally:
        _publish_logs(
            account,
            region,
            "/aws/sagemaker/ProcessingJobs",
            f"{name}/algo-1-{int(time.time())}",
            log_path,
        )
    message_file = root / "output" / "message"
    message = message_file.read_text(encoding="utf-8")[:1024] if message_file.exists() else None
    if stopped:
        raise JobFailed("Stopped by StopProcessingJob", status="Stopped")
    if code != 0:
        detail = message or _error_tail(log_path)
        raise JobFailed(f"AlgorithmError: {detail}, exit code: {code}"[:1024])
    for item in outputs:
        s3io.upload_dir(
            s3, Path(rewrite_opt_ml(item["S3Output"]["LocalPath"], root)), item["S3Output"]["S3Uri"]
        )
    return message


# ---------------------------------------------------------------- batch transform


def run_transform_job(record: Any, request: dict[str, Any], account: str, region: str) -> None:
    """Run in a thread: CreateTransformJob the AWS way, over the model's own inference code."""
    name = request["TransformJobName"]
    job = RUNNING.setdefault(name, RunningJob(name))
    try:
        with _SLOTS:
            if job.stop_requested.is_set():
                raise JobFailed("Stopped before it started", status="Stopped")
            record.transform_start_time = now()
            from sluice_local.sagemaker import transform  # the endpoint worker comes with it

            transform.run(job, request, account, region)
        _finish_transform(record, "Completed", None)
    except JobFailed as failed:
        _finish_transform(record, failed.status, failed.reason)
    except Exception as exc:
        LOG.exception("transform job %s could not run", name)
        _finish_transform(record, "Failed", f"ClientError: {exc}"[:1024])
    finally:
        RUNNING.pop(name, None)


def _finish_transform(record: Any, status: str, reason: str | None) -> None:
    record.transform_end_time = record.last_modified_time = now()
    record.failure_reason = reason or ""
    record.transform_job_status = status
