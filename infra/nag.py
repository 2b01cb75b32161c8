"""Scanner suppressions: cdk-nag acknowledgments and checkov skips, each with its reason.

Our own constructs carry theirs beside the resource they concern (``acknowledge_findings``,
``checkov_skip``). The singletons below are created by aws-cdk-lib at stack level (their code,
roles and settings are not configurable), so they are acknowledged and skipped here, by
construct id, after the stack is composed.

checkov reads skips from the resource's template metadata (``Metadata.checkov.skip``: a list of
``{"id", "comment"}``); there is no global skip list (``make lint``).
"""

from __future__ import annotations

from collections.abc import Iterable

import aws_cdk as cdk
from constructs import Construct, IConstruct

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


#: checkov checks of CDK's own Lambda functions (custom-resource providers), with reasons
_FRAMEWORK_FUNCTION_SKIPS: list[tuple[str, str]] = [
    (
        "CKV_AWS_116",
        "CDK framework custom-resource handler, invoked synchronously by CloudFormation only "
        "during deploys; a failure fails the deploy, so there is nothing for a DLQ to hold.",
    ),
    (
        "CKV_AWS_117",
        "CDK framework custom-resource handler: it only calls the S3 API during deploys and "
        "touches no data-path traffic; aws-cdk-lib offers no VPC setting for it.",
    ),
    (
        "CKV_AWS_115",
        "CDK framework custom-resource handler, run once per deploy by CloudFormation; a "
        "reservation would only take from the account's concurrency (a new account may have "
        "10 in all, and a reservation then fails the deploy).",
    ),
    (
        "CKV_AWS_173",
        "CDK framework custom-resource handler: its environment holds no secret (resource "
        "names at most), and aws-cdk-lib offers no key setting for it.",
    ),
]


def checkov_skip(construct: IConstruct, check_id: str, reason: str) -> None:
    """Skip checkov's ``check_id`` on ``construct``'s CloudFormation resource, with ``reason``.

    ``construct`` is a CfnResource or an L2 construct whose ``default_child`` is one. The skip
    lands in the resource's template metadata, where checkov reads it and where a reviewer
    sees it beside the resource. Skipping the same check twice keeps the first reason.
    """
    resource = construct if isinstance(construct, cdk.CfnResource) else construct.node.default_child
    if not isinstance(resource, cdk.CfnResource):
        raise TypeError(f"{construct.node.path} has no CloudFormation resource to annotate")
    if len(reason.strip()) < 20:
        raise ValueError(f"checkov skip {check_id} on {construct.node.path}: give a real reason")
    current = resource.get_metadata("checkov") or {}
    skips = list(current.get("skip", []))
    if all(skip["id"] != check_id for skip in skips):
        skips.append({"id": check_id, "comment": reason})
    resource.add_metadata("checkov", {**current, "skip": skips})


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
    """cdk-nag acknowledgments and checkov skips for what aws-cdk-lib creates at stack level.

    Every Lambda function directly under the stack is a framework singleton (ours live inside
    component constructs): CDK's custom-resource providers (S3 auto-delete, bucket
    notifications, and whichever later components bring).
    """
    for child in stack.node.children:
        for prefix, rules in FRAMEWORK_SINGLETONS.items():
            if child.node.id.startswith(prefix):
                cdk.Validations.of(child).acknowledge(
                    *(cdk.Acknowledgment(id=rule, reason=reason) for rule, reason in rules)
                )
        for construct in [child, *child.node.children]:
            if (
                isinstance(construct, cdk.CfnResource)
                and construct.cfn_resource_type == "AWS::Lambda::Function"
            ):
                for check_id, reason in _FRAMEWORK_FUNCTION_SKIPS:
                    checkov_skip(construct, check_id, reason)
