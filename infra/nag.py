"""cdk-nag acknowledgments for constructs that the CDK framework owns, not us.

Our own constructs carry their acknowledgments beside the resource they concern. The singletons
below are created by aws-cdk-lib at stack level (their code and roles are not configurable), so
they are acknowledged here, by construct id, after the stack is composed.
"""

from __future__ import annotations

from collections.abc import Iterable

import aws_cdk as cdk
from constructs import Construct

_BASIC_EXECUTION = (
    "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
    "AWSLambdaBasicExecutionRole]"
)

#: construct-id prefix of a framework singleton → (rule, reason)
FRAMEWORK_SINGLETONS: dict[str, list[tuple[str, str]]] = {
    "BucketNotificationsHandler": [
        (
            _BASIC_EXECUTION,
            "CDK's bucket-notifications handler (framework singleton) logs through the AWS "
            "managed basic execution policy; it only writes its own CloudWatch logs.",
        ),
    ],
}


def acknowledge_findings(
    construct: Construct, findings: Iterable[str | None], *, reason: str
) -> None:
    """Acknowledge exact cdk-nag finding ids on ``construct``, one reason for all.

    ``None`` entries are skipped: ``DataLake.objects_arn`` returns no id where a statement
    needs no acknowledgment (inside the lake's own stack).
    """
    cdk.Validations.of(construct).acknowledge(
        *(cdk.Acknowledgment(id=finding, reason=reason) for finding in findings if finding)
    )


def acknowledge_framework_singletons(stack: cdk.Stack) -> None:
    for child in stack.node.children:
        for prefix, rules in FRAMEWORK_SINGLETONS.items():
            if child.node.id.startswith(prefix):
                cdk.Validations.of(child).acknowledge(
                    *(cdk.Acknowledgment(id=rule, reason=reason) for rule, reason in rules)
                )
