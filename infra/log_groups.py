"""Every CloudWatch log group the app creates: encrypted with the stage key, kept as long as the
stage says.

Give no ``log_group_name``: CloudFormation then names the group ``<stack name>-<logical id>-
<suffix>``, and both stacks' names start with the stage prefix (``sluice-<stage>-``), which is
exactly what the key policy lets CloudWatch Logs use the key for (``DataLake.log_groups_arn``,
an ``aws:logs:arn`` encryption-context condition). A fixed name must start with that prefix too,
or CloudWatch Logs cannot use the key and the deploy fails.

SageMaker's ``/aws/sagemaker/*Jobs`` and ``/aws/sagemaker/Endpoints/*`` groups are account-wide,
shared by both stages, and created by SageMaker: the app never creates them.
"""

from __future__ import annotations

from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.config import StageConfig


def encrypted_log_group(
    scope: Construct,
    id_: str,
    *,
    config: StageConfig,
    key: kms.IKey,
    log_group_name: str | None = None,
) -> logs.LogGroup:
    """A log group encrypted with ``key`` (the stage key) with the stage's retention."""
    if log_group_name is not None and not log_group_name.startswith(f"{config.prefix}-"):
        raise ValueError(
            f"log group name {log_group_name!r} must start with {config.prefix}- (the key "
            "policy lets CloudWatch Logs use the stage key for those groups only)"
        )
    return logs.LogGroup(
        scope,
        id_,
        log_group_name=log_group_name,
        encryption_key=key,
        retention=config.log_retention,
        removal_policy=config.removal_policy,
    )
