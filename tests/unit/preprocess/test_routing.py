"""Objects too large for the function go to a SageMaker Processing job that runs job.py."""

from __future__ import annotations

import dataclasses
import gzip
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from lambdas.preprocess.handler import App, handler
from lambdas.preprocess.service import (
    JOB_CODE_DIR,
    MAX_JOB_ATTEMPTS,
    LargeObjectRouter,
    ObjectRef,
    job_name,
)
from lambdas.preprocess.settings import ProcessingSettings, Settings, SettingsError
from tests.unit.preprocess.fakes import REGION, Context, World, sqs_event
from tests.unit.preprocess.helpers import csv_text, good_rows

THRESHOLD = 6_000
PROCESSING = ProcessingSettings(
    threshold_bytes=THRESHOLD,
    role_arn="arn:aws:iam::123456789012:role/job",
    image_uri="683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:3.0-5",
    code_uri="s3://assets/abc123.zip",
    kms_key_arn="arn:aws:kms:eu-west-1:123456789012:key/k",
    job_prefix="sluice-dev",
    summary_uri="s3://artifacts/ingestion-jobs",
)


@pytest.fixture
def routed(world: World) -> Iterator[World]:
    """The handler's world, with routing on (a tiny threshold) and moto's SageMaker."""
    settings = dataclasses.replace(world.app.ingestion.settings, processing=PROCESSING)
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    world.app = App(
        settings,
        s3=world.s3,
        secrets=world.app.ingestion.secrets,
        events=world.recorded,
        dynamodb=boto3.client("dynamodb", region_name=REGION),
        sagemaker=sagemaker,
    )
    world.sagemaker = sagemaker  # type: ignore[attr-defined]
    world.requests = []  # type: ignore[attr-defined]
    # moto keeps only part of a job's record: capture the request as the client sends it
    sagemaker.meta.events.register(
        "provide-client-params.sagemaker.CreateProcessingJob",
        lambda params, **_: world.requests.append(params),  # type: ignore[attr-defined]
    )
    yield world


def sized_event(key: str, version: str, size: int) -> dict[str, Any]:
    event = sqs_event((key, version))
    body = event["Records"][0]["body"].replace('"version-id"', f'"size": {size}, "version-id"')
    event["Records"][0]["body"] = body
    return event


def jobs(routed: World) -> list[dict[str, Any]]:
    sagemaker = routed.sagemaker  # type: ignore[attr-defined]
    return [
        sagemaker.describe_processing_job(ProcessingJobName=j["ProcessingJobName"])
        for j in sagemaker.list_processing_jobs()["ProcessingJobSummaries"]
    ]


def big_csv(rows: int = 80) -> str:
    text = csv_text(good_rows(rows))
    assert len(text.encode()) > THRESHOLD
    return text


def test_object_above_the_threshold_starts_a_job_instead_of_being_processed(
    routed: World,
) -> None:
    body = big_csv()
    version = routed.upload("churn/big.csv", body)
    result = handler(sized_event("churn/big.csv", version, len(body)), Context(), app=routed.app)
    assert result == {"batchItemFailures": []}
    [job] = jobs(routed)
    assert job["ProcessingJobName"] == job_name(
        "sluice-dev", ObjectRef("raw", "churn/big.csv", version)
    )
    assert routed.s3.list_objects_v2(Bucket="curated")["KeyCount"] == 0  # not processed here
    assert routed.events() == []  # the job announces the outcome, not the function


def test_object_at_the_threshold_is_processed_by_the_function(routed: World) -> None:
    body = csv_text(good_rows(3))
    version = routed.upload("churn/small.csv", body)
    handler(sized_event("churn/small.csv", version, len(body)), Context(), app=routed.app)
    assert jobs(routed) == []
    [event] = routed.events()
    assert event["detail-type"] == "DatasetCurated"


def test_compressed_object_is_routed_at_a_quarter_of_the_threshold(routed: World) -> None:
    body = gzip.compress(big_csv(400).encode(), compresslevel=1)
    assert THRESHOLD / PROCESSING.compressed_expansion < len(body) <= THRESHOLD
    version = routed.upload("churn/big.csv.gz", body)
    handler(sized_event("churn/big.csv.gz", version, len(body)), Context(), app=routed.app)
    assert len(jobs(routed)) == 1


def test_plain_csv_of_the_same_size_is_not_routed(routed: World) -> None:
    body = big_csv(400)[: THRESHOLD - 100]
    body = body[: body.rindex("\n") + 1]
    version = routed.upload("churn/mid.csv", body)
    handler(sized_event("churn/mid.csv", version, len(body)), Context(), app=routed.app)
    assert jobs(routed) == []


def test_job_request_runs_job_py_on_the_object_in_the_xgboost_image(routed: World) -> None:
    body = big_csv()
    version = routed.upload("churn/big.csv", body)
    handler(sized_event("churn/big.csv", version, len(body)), Context(), app=routed.app)
    [job] = routed.requests  # type: ignore[attr-defined]
    app_spec = job["AppSpecification"]
    assert app_spec["ImageUri"] == PROCESSING.image_uri
    assert app_spec["ContainerEntrypoint"] == ["python3", "-m", "lambdas.preprocess.job"]
    assert app_spec["ContainerArguments"] == [
        "--bucket", "raw", "--key", "churn/big.csv", "--version-id", version,
    ]  # fmt: skip
    [code] = job["ProcessingInputs"]
    assert code["S3Input"]["S3Uri"] == PROCESSING.code_uri
    assert code["S3Input"]["LocalPath"] == JOB_CODE_DIR
    assert job["RoleArn"] == PROCESSING.role_arn
    env = job["Environment"]
    assert env["PYTHONPATH"] == f"{JOB_CODE_DIR}/abc123.zip"
    assert (env["CURATED_BUCKET"], env["QUARANTINE_BUCKET"]) == ("curated", "quarantine")
    assert env["PII_SECRET_ARN"] == routed.app.ingestion.settings.pii_secret_arn
    assert env["AWS_REGION"] == REGION
    assert "IDEMPOTENCY_TABLE" not in env
    cluster = job["ProcessingResources"]["ClusterConfig"]
    assert cluster["VolumeKmsKeyId"] == PROCESSING.kms_key_arn
    assert job["ProcessingOutputConfig"]["KmsKeyId"] == PROCESSING.kms_key_arn
    assert job["NetworkConfig"]["EnableNetworkIsolation"] is False


def test_second_delivery_finds_the_job_instead_of_starting_another(routed: World) -> None:
    router, ref, size = _big_upload(routed)
    first = router.route(ref, size)
    again = router.route(ref, size)
    assert (first["status"], first["already_routed"]) == ("routed", False)
    assert (again["status"], again["already_routed"]) == ("routed", True)
    assert again["job_arn"] == first["job_arn"]
    assert len(jobs(routed)) == 1


def test_job_name_is_deterministic_per_object_version_and_valid_for_sagemaker() -> None:
    ref = ObjectRef("raw", "churn/2026/a very long key/" + "x" * 500 + ".csv", "v1")
    name = job_name("sluice-prod", ref)
    assert name == job_name("sluice-prod", ref)
    assert name != job_name("sluice-prod", ObjectRef(ref.bucket, ref.key, "v2"))
    assert name.startswith("sluice-prod-ingest-") and len(name) <= 63
    assert all(c.isalnum() or c == "-" for c in name)
    for prefix in ("sluice-prod", "sluice-" + "s" * 30):  # stage names are short, but still
        names = [job_name(prefix, ref, attempt) for attempt in (1, 2, MAX_JOB_ATTEMPTS)]
        assert len(set(names)) == 3 and all(len(n) <= 63 for n in names)
    assert job_name("sluice-prod", ref, 2) == name + "-r2"


def _big_upload(routed: World) -> tuple[LargeObjectRouter, ObjectRef, int]:
    """An upload above the threshold, and the router that routes it."""
    body = big_csv()
    ref = ObjectRef("raw", "churn/big.csv", routed.upload("churn/big.csv", body))
    router = routed.app.router
    assert router is not None
    return router, ref, len(body)


def _with_status(routed: World, monkeypatch: pytest.MonkeyPatch, status: dict[str, str]) -> None:
    """moto completes jobs at once: make chosen jobs end as a real failed job would."""
    router = routed.app.router
    assert router is not None
    describe = router._describe

    def described(name: str) -> dict[str, Any] | None:
        found = describe(name)
        if found is not None and name in status:
            found = {**found, "ProcessingJobStatus": status[name], "FailureReason": "OOM"}
        return found

    monkeypatch.setattr(router, "_describe", described)


def test_a_redelivery_reruns_a_failed_job_under_the_next_attempts_name(
    routed: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    router, ref, size = _big_upload(routed)
    first = router.route(ref, size)
    _with_status(routed, monkeypatch, {first["job_name"]: "Failed"})
    second = router.route(ref, size)
    assert second["job_name"] == job_name("sluice-dev", ref, 2)
    assert (second["job_attempt"], second["already_routed"]) == (2, False)
    # the rerun is the same job: same arguments, code, image, role and resources
    first_request, second_request = routed.requests  # type: ignore[attr-defined]
    for part in ("AppSpecification", "ProcessingInputs", "Environment", "RoleArn",
                 "ProcessingResources", "StoppingCondition"):  # fmt: skip
        assert first_request[part] == second_request[part], part
    # while the rerun lives (or after it succeeded), a redelivery finds it
    third = router.route(ref, size)
    assert (third["job_name"], third["already_routed"]) == (second["job_name"], True)
    assert len(jobs(routed)) == 2


def test_after_the_last_attempt_failed_a_redelivery_reports_it_and_starts_nothing(
    routed: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    router, ref, size = _big_upload(routed)
    names = [job_name("sluice-dev", ref, a) for a in range(1, MAX_JOB_ATTEMPTS + 1)]
    _with_status(routed, monkeypatch, dict.fromkeys(names, "Failed"))
    attempts = [router.route(ref, size)["job_attempt"] for _ in range(MAX_JOB_ATTEMPTS)]
    assert attempts == list(range(1, MAX_JOB_ATTEMPTS + 1))
    last = router.route(ref, size)
    assert last["job_name"] == names[-1] and last["already_routed"] is True
    assert last["attempts_exhausted"] is True and last["failure_reason"] == "OOM"
    assert len(jobs(routed)) == MAX_JOB_ATTEMPTS


def test_routing_settings_come_from_the_environment_all_or_nothing() -> None:
    base = {
        "CURATED_BUCKET": "c",
        "QUARANTINE_BUCKET": "q",
        "PII_SECRET_ARN": "s",
        "IDEMPOTENCY_TABLE": "t",
    }
    assert Settings.from_env(base).processing is None
    with pytest.raises(SettingsError, match="PROCESSING_ROLE_ARN"):
        Settings.from_env({**base, "LARGE_OBJECT_BYTES": "10"})
    full = {
        **base,
        "LARGE_OBJECT_BYTES": "10",
        "PROCESSING_ROLE_ARN": "r",
        "PROCESSING_IMAGE_URI": "i",
        "PROCESSING_CODE_URI": "s3://a/b.zip",
        "PROCESSING_KMS_KEY_ARN": "k",
        "PROCESSING_JOB_PREFIX": "p",
        "PROCESSING_SUMMARY_URI": "s3://a/jobs",
        "PROCESSING_INSTANCE_TYPE": "ml.m5.xlarge",
    }
    processing = Settings.from_env(full).processing
    assert processing is not None
    assert (processing.threshold_bytes, processing.instance_type) == (10, "ml.m5.xlarge")
    # the job itself never routes and needs no idempotency table
    job = Settings.from_env({k: v for k, v in full.items() if k != "IDEMPOTENCY_TABLE"}, job=True)
    assert job.processing is None


def test_without_a_private_network_the_job_uses_sagemakers_own() -> None:
    assert LargeObjectRouter._network(PROCESSING) == {"EnableNetworkIsolation": False}


def test_in_the_private_network_the_job_runs_in_its_subnets_with_encrypted_traffic() -> None:
    network = dataclasses.replace(
        PROCESSING, subnet_ids=("subnet-a", "subnet-b"), security_group_ids=("sg-1",)
    )
    assert LargeObjectRouter._network(network) == {
        # the job calls S3, Secrets Manager and EventBridge itself (through the VPC endpoints)
        "EnableNetworkIsolation": False,
        "EnableInterContainerTrafficEncryption": True,
        "VpcConfig": {"SecurityGroupIds": ["sg-1"], "Subnets": ["subnet-a", "subnet-b"]},
    }


def test_network_settings_come_from_the_environment_together() -> None:
    full = {
        "CURATED_BUCKET": "c",
        "QUARANTINE_BUCKET": "q",
        "PII_SECRET_ARN": "s",
        "IDEMPOTENCY_TABLE": "t",
        "LARGE_OBJECT_BYTES": "10",
        "PROCESSING_ROLE_ARN": "r",
        "PROCESSING_IMAGE_URI": "i",
        "PROCESSING_CODE_URI": "s3://a/b.zip",
        "PROCESSING_KMS_KEY_ARN": "k",
        "PROCESSING_JOB_PREFIX": "p",
        "PROCESSING_SUMMARY_URI": "s3://a/jobs",
        "PROCESSING_SUBNET_IDS": "subnet-a,subnet-b",
        "PROCESSING_SECURITY_GROUP_IDS": "sg-1",
    }
    processing = Settings.from_env(full).processing
    assert processing is not None
    assert (processing.subnet_ids, processing.security_group_ids) == (
        ("subnet-a", "subnet-b"),
        ("sg-1",),
    )
    with pytest.raises(SettingsError, match="go together"):
        Settings.from_env({k: v for k, v in full.items() if k != "PROCESSING_SECURITY_GROUP_IDS"})
