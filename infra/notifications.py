"""Where Sluice tells people things: one encrypted SNS topic per stage.

The training pipeline publishes its outcome (promoted, rejected, failed) here and the alarms of
monitoring will too. Subscribe an email address with ``-c notification_email=you@example.com``
or add any other subscription to the exported topic.
"""

from __future__ import annotations

from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from constructs import Construct

from infra.config import StageConfig


class Notifications(Construct):
    def __init__(self, scope: Construct, id_: str, *, config: StageConfig, key: kms.IKey) -> None:
        super().__init__(scope, id_)
        self.topic = sns.Topic(
            self,
            "Topic",
            display_name=f"Sluice {config.stage}",
            master_key=key,
            enforce_ssl=True,
        )
        # CloudWatch alarms may use the key to publish here (DataLake's key policy)
        if config.notification_email:
            self.topic.add_subscription(subs.EmailSubscription(config.notification_email))
