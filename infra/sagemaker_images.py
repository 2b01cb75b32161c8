"""SageMaker's prebuilt XGBoost framework image, per region, from the SageMaker SDK.

The image lives in an ECR registry whose account differs per region. Copying that table by
hand goes stale (and was wrong before); the SageMaker Python SDK ships it and resolves image
URIs offline (``sagemaker.core.image_uris``), so the table is generated from it at synth:
every region the SDK knows, with the right domain suffix (``amazonaws.com.cn`` in China).

A template stays region-agnostic: ``XgboostImage.of(scope)`` (one per stack) holds a
``CfnMapping`` region -> {uri, account}; a deploy to a region the SDK does not list fails at
``Fn::FindInMap`` (a synth pinned to such a region fails at synth).
"""

from __future__ import annotations

import functools
import json
from importlib import metadata
from pathlib import Path

import aws_cdk as cdk
from constructs import Construct

REPOSITORY = "sagemaker-xgboost"
#: SageMaker's XGBoost framework container that train.py/evaluate.py/inference.py target
VERSION = "3.0-5"
#: the container's interpreter (code bundled for the image is built for it)
PYTHON = "3.10"


CACHE_DIR = Path(__file__).resolve().parent.parent / ".cache" / "sagemaker-images"


@functools.cache
def xgboost_image_uris(version: str = VERSION) -> dict[str, str]:
    """region -> image URI of SageMaker's XGBoost framework container, for every known region.

    Importing the SDK and resolving ~40 regions takes seconds; the table is kept under
    ``.cache/`` per SDK and image version (like the Lambda bundles), so a synth pays it once.
    """
    cached = (
        CACHE_DIR / f"xgboost-{version}-sagemaker-core-{metadata.version('sagemaker-core')}.json"
    )
    if cached.is_file():
        return dict(json.loads(cached.read_text()))
    from sagemaker.core import image_uris  # 1.5-4 s to import: only when the table is not cached

    config = image_uris.config_for_framework("xgboost")
    regions = config["training"]["versions"][version]["registries"]
    table = {
        region: image_uris.retrieve("xgboost", region=region, version=version)
        for region in sorted(regions)
    }
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(table, indent=1, sort_keys=True))
    return table


class XgboostImage(Construct):
    """The image's URI and registry account for the stack's region (tokens when agnostic)."""

    def __init__(self, scope: Construct, id_: str, *, version: str = VERSION) -> None:
        super().__init__(scope, id_)
        stack = cdk.Stack.of(self)
        mapping = cdk.CfnMapping(
            self,
            "Registry",
            mapping={
                region: {"uri": uri, "account": uri.split(".", 1)[0]}
                for region, uri in xgboost_image_uris(version).items()
            },
        )
        self.uri: str = mapping.find_in_map(stack.region, "uri")
        self.account: str = mapping.find_in_map(stack.region, "account")
        self.repository_arn = (
            f"arn:{stack.partition}:ecr:{stack.region}:{self.account}:repository/{REPOSITORY}"
        )

    @classmethod
    def of(cls, scope: Construct) -> XgboostImage:
        """The stack's one instance (every job and model of a stack shares the mapping)."""
        stack = cdk.Stack.of(scope)
        found = stack.node.try_find_child("XgboostImage")
        if isinstance(found, XgboostImage):
            return found
        return cls(stack, "XgboostImage")
