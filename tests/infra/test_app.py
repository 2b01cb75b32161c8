"""The app as a whole: stages, environment-agnostic synth, and cdk-nag."""

from __future__ import annotations

import json
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_s3 as s3

from infra.config import ConfigError, stage_config
from tests.infra.conftest import make_app, stack


def test_dev_is_the_default_stage() -> None:
    app = make_app(stage=None)
    assert {c.node.id for c in app.node.children if isinstance(c, cdk.Stack)} == {
        "sluice-dev-data",
        "sluice-dev-app",
    }


def test_prod_protects_the_stateful_stack_from_deletion(prod_app: cdk.App) -> None:
    assert stack(prod_app, "sluice-prod-data").termination_protection is True


def test_dev_stacks_are_not_termination_protected(dev_app: cdk.App) -> None:
    assert stack(dev_app, "sluice-dev-data").termination_protection is False


def test_templates_are_environment_agnostic_unless_pinned(dev_app: cdk.App) -> None:
    data = stack(dev_app, "sluice-dev-data")
    assert cdk.Token.is_unresolved(data.account)
    assert cdk.Token.is_unresolved(data.region)


def test_account_and_region_can_be_pinned_from_context() -> None:
    app = make_app("dev", account="123456789012", region="eu-west-1")
    data = stack(app, "sluice-dev-data")
    assert (data.account, data.region) == ("123456789012", "eu-west-1")


def test_stage_config_rejects_unknown_stages_and_bad_overrides() -> None:
    with pytest.raises(ConfigError, match="unknown stage 'qa'"):
        stage_config("qa")
    with pytest.raises(ConfigError, match="arm64 or x86_64"):
        stage_config("dev", {"lambda_architecture": "sparc"})
    with pytest.raises(ConfigError, match="log_retention_days must be one of 1, 3"):
        stage_config("dev", {"log_retention_days": 42})
    with pytest.raises(ConfigError, match="expected int"):
        stage_config("dev", {"preprocess_reserved_concurrency": "many"})


def test_lambda_architecture_defaults_to_arm64_and_can_match_the_host() -> None:
    assert stage_config("dev").lambda_architecture == "arm64"
    assert stage_config("dev", {"lambda_architecture": "x86_64"}).lambda_architecture == "x86_64"


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_cdk_nag_finds_nothing_unsuppressed(stage: str, tmp_path: Path) -> None:
    app = make_app(stage, outdir=tmp_path)
    app.synth()  # raises ValidationFailed on any unacknowledged AwsSolutions finding
    report = json.loads((tmp_path / "validation-report.json").read_text())
    assert all(r.get("summary", {}).get("status") != "failure" for r in report["pluginReports"])


def test_cdk_nag_really_runs_and_fails_an_insecure_resource(tmp_path: Path) -> None:
    app = make_app("dev", outdir=tmp_path)
    s3.Bucket(stack(app, "sluice-dev-app"), "Insecure")
    with pytest.raises(Exception, match=r"AwsSolutions-S(10|1)\b"):
        app.synth()
