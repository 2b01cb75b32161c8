"""Deleting the app stack leaves nothing of the pipeline running or billing.

Runs after every other test of the app (see ``conftest.LAST``): it deletes the stack they use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.helpers import wait_for

pytestmark = pytest.mark.integration
APP = "sluice-dev-app"


def test_deleting_the_app_stack_removes_the_endpoints_configs_and_models_runs_made(
    aws: Callable[[str], Any], app_outputs: dict[str, dict[str, str]]
) -> None:
    sagemaker, cloudformation = aws("sagemaker"), aws("cloudformation")
    made = [
        e
        for e in sagemaker.list_endpoints()["Endpoints"]
        if e["EndpointName"].startswith("sluice-dev-")
    ]
    if not made:
        pytest.skip("no pipeline run deployed a model in this session")
    # When the app stack is deleted (make destroy)
    cloudformation.delete_stack(StackName=APP)

    def gone() -> bool:
        stacks = cloudformation.describe_stacks()["Stacks"]
        return not any(
            s["StackName"] == APP and s["StackStatus"] != "DELETE_COMPLETE" for s in stacks
        )

    wait_for(gone, timeout=300, interval=2, what="the app stack's deletion")

    # Then no endpoint, endpoint config or model made by the pipeline is left (other tests'
    # own resources, named otherwise, are not the pipeline's)
    def ours(items: list[dict[str, Any]], key: str) -> list[str]:
        return [i[key] for i in items if i[key].startswith("sluice-dev-")]

    assert ours(sagemaker.list_endpoints()["Endpoints"], "EndpointName") == []
    assert ours(sagemaker.list_endpoint_configs()["EndpointConfigs"], "EndpointConfigName") == []
    assert ours(sagemaker.list_models()["Models"], "ModelName") == []
    # and, dev not retaining data, no model package either (so the groups can go with the data)
    groups = sagemaker.list_model_package_groups()["ModelPackageGroupSummaryList"]
    for name in ours(groups, "ModelPackageGroupName"):
        assert (
            sagemaker.list_model_packages(ModelPackageGroupName=name)["ModelPackageSummaryList"]
            == []
        ), name
