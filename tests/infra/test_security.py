"""The security posture of the whole app, in every stage and with the private network on:
encrypted logs and environments, the key policy for CloudWatch Logs, concurrency, and the
scanners (checkov, cfn-lint) on the synthesized templates, with every skip explained."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_logs as logs
from aws_cdk.assertions import Template

from infra.config import STAGES
from tests.infra.conftest import REPO_ROOT, make_app, stack

CHECKOV = REPO_ROOT / ".venv-checkov" / "bin" / "checkov"
CFN_LINT = REPO_ROOT / ".venv" / "bin" / "cfn-lint"
EXISTING_VPC = {
    "vpc_id": "vpc-0123456789abcdef0",
    "subnet_ids": ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"],
    "availability_zones": ["us-east-1a", "us-east-1b"],
    "route_table_ids": ["rtb-0123456789abcdef0", "rtb-0fedcba9876543210"],
}
#: (stage, extra context): both stages, and dev with each kind of private network
VARIANTS = {
    "dev": ("dev", {}),
    "prod": ("prod", {}),
    "dev-vpc": ("dev", {"vpc": "create"}),
    "prod-existing-vpc": ("prod", {"vpc": json.dumps(EXISTING_VPC)}),
}


@pytest.fixture(scope="module", params=list(VARIANTS))
def variant(request: pytest.FixtureRequest) -> tuple[str, dict[str, Template]]:
    stage, context = VARIANTS[request.param]
    app = make_app(stage, **context)
    return stage, {
        s.stack_name: Template.from_stack(s) for s in app.node.children if isinstance(s, cdk.Stack)
    }


def _key_arn(templates: dict[str, Template], stage: str, stack_name: str) -> dict[str, Any]:
    """The stage key's ARN as ``stack_name`` refers to it: GetAtt in the data stack that holds
    the key, the data stack's export of that GetAtt in the app stack."""
    (key_id,) = templates[f"sluice-{stage}-data"].find_resources("AWS::KMS::Key")
    if stack_name == f"sluice-{stage}-data":
        return {"Fn::GetAtt": [key_id, "Arn"]}
    return {"Fn::ImportValue": f"sluice-{stage}-data:ExportsOutputFnGetAtt{key_id}Arn" + "*"}


def _is_key(value: Any, expected: dict[str, Any]) -> bool:
    if "Fn::ImportValue" in expected:
        prefix = expected["Fn::ImportValue"].rstrip("*")
        return isinstance(value, dict) and str(value.get("Fn::ImportValue", "")).startswith(prefix)
    return bool(value == expected)


def test_every_log_group_is_encrypted_with_the_stage_key_and_kept_for_the_stage(
    variant: tuple[str, dict[str, Template]],
) -> None:
    stage, templates = variant
    groups = {
        (name, gid): group
        for name, t in templates.items()
        for gid, group in t.find_resources("AWS::Logs::LogGroup").items()
    }
    assert groups, "the app creates log groups"
    for (name, gid), group in groups.items():
        props = group["Properties"]
        assert props["RetentionInDays"] == STAGES[stage].log_retention_days, gid
        assert "LogGroupName" not in props, f"{gid}: a fixed name escapes the key policy"
        assert _is_key(props["KmsKeyId"], _key_arn(templates, stage, name)), (name, gid)


def test_every_function_environment_is_encrypted_with_the_stage_key(
    variant: tuple[str, dict[str, Template]],
) -> None:
    stage, templates = variant
    functions = {
        (name, fid): f
        for name, t in templates.items()
        for fid, f in t.find_resources("AWS::Lambda::Function").items()
        if "Environment" in f["Properties"]
    }
    assert functions
    for (name, fid), function in functions.items():
        key = function["Properties"].get("KmsKeyArn")
        assert _is_key(key, _key_arn(templates, stage, name)), (fid, key)


def test_cloudwatch_logs_may_use_the_key_for_the_stages_log_groups_only(
    variant: tuple[str, dict[str, Template]],
) -> None:
    stage, templates = variant
    (key,) = templates[f"sluice-{stage}-data"].find_resources("AWS::KMS::Key").values()
    statements = [
        s
        for s in key["Properties"]["KeyPolicy"]["Statement"]
        if "logs." in json.dumps(s["Principal"])
    ]
    (logs_statement,) = statements
    assert sorted(logs_statement["Action"]) == [
        "kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey",
        "kms:ReEncryptFrom", "kms:ReEncryptTo",
    ]  # fmt: skip
    condition = logs_statement["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]
    rendered = "".join(p if isinstance(p, str) else "<>" for p in condition["Fn::Join"][1])
    assert rendered.endswith(f":log-group:sluice-{stage}-*"), rendered


def test_no_function_reserves_concurrency_unless_the_stage_opts_in(
    variant: tuple[str, dict[str, Template]],
) -> None:
    stage, templates = variant
    app_template = templates[f"sluice-{stage}-app"]
    assert not app_template.find_resources(
        "AWS::Lambda::Function", {"Properties": {"ReservedConcurrentExecutions": 1}}
    )
    for function in app_template.find_resources("AWS::Lambda::Function").values():
        assert "ReservedConcurrentExecutions" not in function["Properties"]
    (mapping,) = app_template.find_resources("AWS::Lambda::EventSourceMapping").values()
    assert mapping["Properties"]["ScalingConfig"] == {
        "MaximumConcurrency": STAGES[stage].preprocess_max_concurrency
    }


def test_reserved_concurrency_is_an_opt_in_per_stage() -> None:
    app = make_app("prod", preprocess_reserved_concurrency=5)
    template = Template.from_stack(stack(app, "sluice-prod-app"))
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {"Handler": "lambdas.preprocess.handler.handler", "ReservedConcurrentExecutions": 5},
    )


def _skips(templates: dict[str, Template]) -> list[tuple[str, str, str]]:
    found = []
    for template in templates.values():
        for rid, resource in template.to_json()["Resources"].items():
            for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
                found.append((rid, skip["id"], skip["comment"]))
    return found


def test_every_checkov_skip_has_a_reason_and_is_listed_in_the_readme(
    variant: tuple[str, dict[str, Template]],
) -> None:
    _, templates = variant
    skips = _skips(templates)
    assert skips
    security = (REPO_ROOT / "README.md").read_text().split("## Security", 1)[1].split("\n## ")[0]
    for rid, check, reason in skips:
        assert len(reason) >= 60, (rid, check, reason)
        assert re.search(rf"\b{check}\b", security), f"README Security lacks {check}"


def _scan(outdir: Path) -> tuple[list[Path], subprocess.CompletedProcess[str]]:
    templates = sorted(outdir.glob("*.template.json"))
    args = [str(CHECKOV), "--config-file", str(REPO_ROOT / ".checkov.yaml"), "--output", "json"]
    for template in templates:
        args += ["-f", str(template)]
    return templates, subprocess.run(
        args, check=False, capture_output=True, text=True, cwd=REPO_ROOT
    )


def _failed(result: subprocess.CompletedProcess[str]) -> list[str]:
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    return [
        f"{c['check_id']} {c['resource']}"
        for r in reports
        for c in r.get("results", {}).get("failed_checks", [])
    ]


needs_checkov = pytest.mark.skipif(
    not CHECKOV.exists(), reason="checkov not installed (.venv-checkov): run make install"
)


@needs_checkov
@pytest.mark.parametrize("name", ["dev-vpc", "prod-existing-vpc"])
def test_with_the_private_network_checkov_and_cfn_lint_find_nothing(
    name: str, tmp_path: Path
) -> None:
    stage, context = VARIANTS[name]
    make_app(stage, outdir=tmp_path, **context).synth()  # cdk-nag: raises on a finding
    templates, result = _scan(tmp_path)
    assert len(templates) == 2
    assert _failed(result) == [], result.stdout[-2000:]
    lint = subprocess.run(
        [str(CFN_LINT), *map(str, templates)],
        check=False,
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    assert lint.returncode == 0, lint.stdout


@needs_checkov
def test_checkov_really_scans_and_fails_an_unencrypted_log_group(tmp_path: Path) -> None:
    app = make_app("dev", outdir=tmp_path)
    logs.LogGroup(stack(app, "sluice-dev-app"), "Plain", retention=logs.RetentionDays.ONE_DAY)
    app.synth()
    _, result = _scan(tmp_path)
    assert result.returncode != 0
    assert any(f.startswith("CKV_AWS_158 AWS::Logs::LogGroup.Plain") for f in _failed(result))
