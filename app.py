#!/usr/bin/env python3
"""CDK entry point: pick the stage config from context, build the stacks, apply cdk-nag.

cdk synth -c stage=prod
"""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from infra.config import OVERRIDABLE, stage_config
from infra.stacks import build_stage


def build_app(context: dict[str, Any] | None = None, outdir: str | None = None) -> cdk.App:
    app = cdk.App(context=context, outdir=outdir)
    overrides = {key: app.node.try_get_context(key) for key in OVERRIDABLE}
    config = stage_config(str(app.node.try_get_context("stage") or "dev"), overrides)
    build_stage(app, config)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app


if __name__ == "__main__":
    build_app().synth()
