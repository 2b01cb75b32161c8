"""Deleting the app stack leaves nothing of the pipeline running or billing.

Runs after every other test of the app (see ``conftest.LAST``): it deletes the stack they use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from datasets import names
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
    registered = {
        t["ResourceId"]
        for t in aws("application-autoscaling").describe_scalable_targets(
            ServiceNamespace="sagemaker"
        )["ScalableTargets"]
        if t["ResourceId"].startswith("endpoint/sluice-dev-")
    }
    # When the app stack is deleted (make destroy)
    cloudformation.delete_stack(StackName=APP)

    def gone() -> bool:
        stacks = cloudformation.describe_stacks()["Stacks"]
        return not any(
            s["StackName"] == APP and s["StackStatus"] != "DELETE_COMPLETE" for s in stacks
        )

    wait_for(gone, timeout=300, interval=2, what="the app stack's deletion")

    # Then no endpoint, endpoint config or model made by the pipeline is left (found as the
    # teardown finds them, by the pipeline's tags; other tests make their own, untagged)
    def ours(items: list[dict[str, Any]], name_key: str, arn_key: str) -> list[str]:
        left = []
        for item in items:
            if not item[name_key].startswith("sluice-dev-"):
                continue
            tags = {
                t["Key"]: t["Value"] for t in sagemaker.list_tags(ResourceArn=item[arn_key])["Tags"]
            }
            if tags.get(names.TAG_MANAGED_BY) == names.MANAGED_BY_PIPELINE:
                left.append(item[name_key])
        return left

    assert ours(sagemaker.list_endpoints()["Endpoints"], "EndpointName", "EndpointArn") == []
    # nor any of their autoscaling registrations (the teardown deregisters them first)
    targets = aws("application-autoscaling").describe_scalable_targets(
        ServiceNamespace="sagemaker"
    )["ScalableTargets"]
    assert [t["ResourceId"] for t in targets if t["ResourceId"] in registered] == []
    configs = sagemaker.list_endpoint_configs()["EndpointConfigs"]
    assert ours(configs, "EndpointConfigName", "EndpointConfigArn") == []
    assert ours(sagemaker.list_models()["Models"], "ModelName", "ModelArn") == []
    # and, dev not retaining data, no model package either (so the groups can go with the data)
    groups = sagemaker.list_model_package_groups()["ModelPackageGroupSummaryList"]
    for group in groups:
        name = group["ModelPackageGroupName"]
        if name.startswith("sluice-dev-"):
            packages = sagemaker.list_model_packages(ModelPackageGroupName=name)
            assert packages["ModelPackageSummaryList"] == [], name
