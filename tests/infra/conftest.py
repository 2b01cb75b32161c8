"""Synthesize the app as ``cdk synth`` would, without bundling (no pip, no network)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from app import build_app

REPO_ROOT = Path(__file__).resolve().parents[2]
CDK_CONTEXT: dict[str, Any] = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]


def make_app(stage: str | None = "dev", outdir: Path | None = None, **context: Any) -> cdk.App:
    return build_app(
        {**CDK_CONTEXT, "stage": stage, "aws:cdk:bundling-stacks": [], **context},
        outdir=str(outdir) if outdir else None,
    )


def stack(app: cdk.App, name: str) -> cdk.Stack:
    found = app.node.find_child(name)
    assert isinstance(found, cdk.Stack)
    return found


@pytest.fixture(scope="session")
def dev_app() -> cdk.App:
    return make_app("dev")


@pytest.fixture(scope="session")
def prod_app() -> cdk.App:
    return make_app("prod")


@pytest.fixture(scope="session")
def dev_data(dev_app: cdk.App) -> Template:
    return Template.from_stack(stack(dev_app, "sluice-dev-data"))


@pytest.fixture(scope="session")
def prod_data(prod_app: cdk.App) -> Template:
    return Template.from_stack(stack(prod_app, "sluice-prod-data"))


@pytest.fixture(scope="session")
def templates() -> Callable[[str], dict[str, Template]]:
    def _templates(stage: str) -> dict[str, Template]:
        app = make_app(stage)
        return {
            s.stack_name: Template.from_stack(s)
            for s in app.node.children
            if isinstance(s, cdk.Stack)
        }

    return _templates


def endpoint_services(template: Template, kind: str = "Interface") -> dict[str, dict[str, Any]]:
    """VPC endpoints of ``kind`` (Interface, Gateway) by service (``secretsmanager``, ``s3``)."""
    found = {}
    for endpoint in template.find_resources("AWS::EC2::VPCEndpoint").values():
        props = endpoint["Properties"]
        if props.get("VpcEndpointType", "Gateway") != kind:
            continue
        name = props["ServiceName"]
        last = name if isinstance(name, str) else name["Fn::Join"][1][-1]
        found[last.removeprefix("com.amazonaws.").split(".", 1)[-1].lstrip(".")] = props
    return found
