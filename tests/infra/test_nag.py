"""The checkov skip helper: a skip lands in the resource's metadata, with its reason."""

from __future__ import annotations

import aws_cdk as cdk
import pytest
from aws_cdk import aws_sqs as sqs
from aws_cdk.assertions import Template

from infra.nag import checkov_skip

REASON = "A reason a reviewer can check against the resource it sits beside."


def _queue() -> tuple[cdk.Stack, sqs.Queue]:
    stack = cdk.Stack(cdk.App(), "S")
    return stack, sqs.Queue(stack, "Q")


def test_a_skip_sits_in_the_resources_metadata_beside_other_metadata() -> None:
    stack, queue = _queue()
    cfn = queue.node.default_child
    assert isinstance(cfn, cdk.CfnResource)
    cfn.add_metadata("other", {"kept": True})
    checkov_skip(queue, "CKV_AWS_27", REASON)
    checkov_skip(queue, "CKV_AWS_27", "A second reason for the same check is not added.")
    checkov_skip(cfn, "CKV_AWS_1", REASON)
    (resource,) = Template.from_stack(stack).find_resources("AWS::SQS::Queue").values()
    assert resource["Metadata"]["other"] == {"kept": True}
    assert resource["Metadata"]["checkov"] == {
        "skip": [{"id": "CKV_AWS_27", "comment": REASON}, {"id": "CKV_AWS_1", "comment": REASON}]
    }


def test_a_skip_needs_a_real_reason_and_a_resource() -> None:
    stack, queue = _queue()
    with pytest.raises(ValueError, match="give a real reason"):
        checkov_skip(queue, "CKV_AWS_27", "n/a")
    with pytest.raises(TypeError, match="no CloudFormation resource"):
        checkov_skip(stack, "CKV_AWS_27", REASON)
