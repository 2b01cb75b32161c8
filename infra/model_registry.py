"""What the training pipeline keeps: the model registry groups and the run ledger.

Stateful, so it lives in the stage's data stack (RETAIN and termination protection in prod):
- one ``AWS::SageMaker::ModelPackageGroup`` per declared dataset (``datasets/*.yaml``), named
  ``sluice-<stage>-<dataset>`` (``datasets/names.py``); every run registers its challenger there;
- the run ledger, a DynamoDB table of runs (partition ``dataset``, sort ``run_id``; ids sort by
  start time), encrypted with the lake key, with point-in-time recovery.
"""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from datasets import names
from infra.config import StageConfig

DATASETS_DIR = Path(__file__).resolve().parent.parent / "datasets"


def declared_datasets(directory: Path = DATASETS_DIR) -> list[str]:
    """Every dataset with a spec (``datasets/<name>.yaml``), sorted."""
    found = sorted(
        p.stem for pattern in ("*.yaml", "*.yml") for p in directory.glob(pattern) if p.is_file()
    )
    for name in found:
        if not names.DATASET_NAME.match(name):
            raise ValueError(f"datasets/{name}.yaml: {name!r} is not a valid dataset name")
    return found


class ModelRegistry(Construct):
    def __init__(self, scope: Construct, id_: str, *, config: StageConfig, key: kms.IKey) -> None:
        super().__init__(scope, id_)
        self.datasets = declared_datasets()
        self.groups: dict[str, sagemaker.CfnModelPackageGroup] = {}
        for dataset in self.datasets:
            group = sagemaker.CfnModelPackageGroup(
                self,
                f"Group-{dataset}",
                model_package_group_name=names.model_package_group_name(config.prefix, dataset),
                model_package_group_description=(
                    f"Sluice {config.stage}: models trained on the {dataset} dataset"
                ),
                tags=[
                    cdk.CfnTag(key=names.TAG_STAGE, value=config.stage),
                    cdk.CfnTag(key=names.TAG_DATASET, value=dataset),
                ],
            )
            group.apply_removal_policy(config.removal_policy)
            self.groups[dataset] = group
        self.ledger = dynamodb.Table(
            self,
            "RunLedger",
            partition_key=dynamodb.Attribute(name="dataset", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="run_id", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            removal_policy=config.removal_policy,
        )

    @property
    def group_names(self) -> list[str]:
        return [g.model_package_group_name for g in self.groups.values()]
