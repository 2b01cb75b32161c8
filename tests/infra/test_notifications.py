from __future__ import annotations

import aws_cdk as cdk
from aws_cdk.assertions import Match, Template

from tests.infra.conftest import make_app, stack


def test_topic_is_encrypted_with_the_lake_key_and_tls_only(dev_app: cdk.App) -> None:
    app_stack = Template.from_stack(stack(dev_app, "sluice-dev-app"))
    app_stack.has_resource_properties(
        "AWS::SNS::Topic", {"KmsMasterKeyId": {"Fn::ImportValue": Match.string_like_regexp("Key")}}
    )
    app_stack.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        )
                    ]
                )
            }
        },
    )


def test_email_subscription_only_when_configured(dev_app: cdk.App) -> None:
    subscriptions = Template.from_stack(stack(dev_app, "sluice-dev-app")).find_resources(
        "AWS::SNS::Subscription", {"Properties": {"Protocol": "email"}}
    )
    assert subscriptions == {}
    app = make_app("dev", notification_email="ml-team@example.com")
    Template.from_stack(stack(app, "sluice-dev-app")).has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "ml-team@example.com"}
    )
