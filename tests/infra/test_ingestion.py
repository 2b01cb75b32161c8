"""The ingestion construct in a stack of its own: rule, queues, function, least privilege."""

from __future__ import annotations

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Match, Template

from infra.config import STAGES
from infra.data_lake import DataLake
from infra.ingestion import FUNCTION_TIMEOUT, MAX_RECEIVES, Ingestion
from infra.notifications import Notifications
from tests.infra.conftest import CDK_CONTEXT


@pytest.fixture(scope="module")
def template() -> Template:
    app = cdk.App(context={**CDK_CONTEXT, "aws:cdk:bundling-stacks": []})
    stack = cdk.Stack(app, "IngestionTest")
    lake = DataLake(stack, "Lake", config=STAGES["dev"])
    alerts = Notifications(stack, "Notifications", config=STAGES["dev"], key=lake.key).topic
    Ingestion(stack, "Ingestion", config=STAGES["dev"], lake=lake, alerts=alerts)
    return Template.from_stack(stack)


def test_rule_sends_object_created_in_the_raw_bucket_to_the_queue(template: Template) -> None:
    template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": {
                "source": ["aws.s3"],
                "detail-type": ["Object Created"],
                "detail": {"bucket": {"name": [Match.any_value()]}},
            },
            "Targets": [Match.object_like({"Arn": {"Fn::GetAtt": [Match.any_value(), "Arn"]}})],
        },
    )


def test_queue_is_kms_encrypted_with_dlq_and_visibility_above_timeout(template: Template) -> None:
    template.has_resource_properties(
        "AWS::SQS::Queue",
        {
            "KmsMasterKeyId": Match.any_value(),
            "VisibilityTimeout": FUNCTION_TIMEOUT.to_seconds() * 6,
            "RedrivePolicy": {"deadLetterTargetArn": Match.any_value(), "maxReceiveCount": 3},
        },
    )


def test_function_is_arm64_capped_by_its_event_source_with_partial_failures(
    template: Template,
) -> None:
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": "lambdas.preprocess.handler.handler",
            "Architectures": ["arm64"],
            # no reservation by default: a new account's limit of 10 would fail the deploy
            "ReservedConcurrentExecutions": Match.absent(),
            "Timeout": FUNCTION_TIMEOUT.to_seconds(),
        },
    )
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "BatchSize": 1,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "ScalingConfig": {"MaximumConcurrency": STAGES["dev"].preprocess_max_concurrency},
        },
    )


def test_idempotency_table_and_secret_are_encrypted_with_the_lake_key(template: Template) -> None:
    template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {"SSESpecification": {"SSEEnabled": True, "SSEType": "KMS"}},
    )
    template.has_resource_properties("AWS::SecretsManager::Secret", {"KmsKeyId": Match.any_value()})


def test_function_may_put_events_only_on_the_default_bus(template: Template) -> None:
    template.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Action": "events:PutEvents",
                                "Resource": {
                                    "Fn::Join": ["", Match.array_with([":event-bus/default"])]
                                },
                            }
                        )
                    ]
                )
            }
        },
    )


def test_function_cannot_delete_objects(template: Template) -> None:
    for policy in template.find_resources("AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"]
            actions = actions if isinstance(actions, list) else [actions]
            assert not any(a.startswith("s3:Delete") for a in actions), statement


def _role_statements(template: Template, role_id: str) -> list[dict]:
    return [
        statement
        for policy in template.find_resources("AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _function_role(template: Template) -> str:
    [function] = template.find_resources(
        "AWS::Lambda::Function", {"Properties": {"Handler": "lambdas.preprocess.handler.handler"}}
    ).values()
    return str(function["Properties"]["Role"]["Fn::GetAtt"][0])


def _statements(template: Template) -> list[dict]:
    """The statements of the ingestion function's policies (not the lake's own handlers)."""
    return [
        s
        for s in _role_statements(template, _function_role(template))
        if not str(s["Action"]).startswith(("['sagemaker:", "iam:"))  # tested in test_large_objects
    ]


def test_no_policy_grants_a_wildcard_action(template: Template) -> None:
    for statement in _statements(template):
        actions = statement["Action"]
        for action in actions if isinstance(actions, list) else [actions]:
            assert "*" not in action, statement


def test_object_access_is_read_raw_and_write_curated_or_quarantine_only(
    template: Template,
) -> None:
    buckets = {
        logical_id.removeprefix("Lake").rstrip("0123456789ABCDEF"): logical_id
        for logical_id in template.find_resources("AWS::S3::Bucket")
    }
    s3_statements = {
        tuple(sorted(s["Action"] if isinstance(s["Action"], list) else [s["Action"]])): s
        for s in _statements(template)
        if "s3:" in str(s["Action"])
    }
    assert set(s3_statements) == {("s3:GetObject", "s3:GetObjectVersion"), ("s3:PutObject",)}
    read = s3_statements[("s3:GetObject", "s3:GetObjectVersion")]["Resource"]
    assert buckets["Raw"] in str(read) and buckets["Curated"] not in str(read)
    write = str(s3_statements[("s3:PutObject",)]["Resource"])
    assert buckets["Curated"] in write and buckets["Quarantine"] in write
    assert buckets["Raw"] not in write


def test_the_key_is_usable_only_through_the_data_services(template: Template) -> None:
    kms = [s for s in _statements(template) if "kms:" in str(s["Action"])]
    unconditioned = [s for s in kms if "Condition" not in s]
    # the SQS event source may decrypt messages; nothing else uses the key outside a service
    assert [s["Action"] for s in unconditioned] == ["kms:Decrypt"]
    via = [s for s in kms if "kms:ViaService" in str(s.get("Condition"))]
    others = [s for s in kms if "Condition" in s and s not in via]
    # the function's environment: Decrypt only under the context Lambda sets (its own ARN)
    assert [(s["Action"], list(s["Condition"]["StringEquals"])) for s in others] == [
        ("kms:Decrypt", ["kms:EncryptionContext:aws:lambda:FunctionArn"])
    ]
    (kms_statement,) = via
    services = kms_statement["Condition"]["StringEquals"]["kms:ViaService"]
    rendered = [str(s) for s in services]
    for service in ("s3", "dynamodb", "secretsmanager", "sqs"):
        assert any(f"'{service}." in r for r in rendered), service


def test_a_dead_letter_raises_an_alarm_on_the_notifications_topic(template: Template) -> None:
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "MetricName": "ApproximateNumberOfMessagesVisible",
            "Namespace": "AWS/SQS",
            "Dimensions": [{"Name": "QueueName", "Value": {"Fn::GetAtt": [
                Match.string_like_regexp("DeadLetters"), "QueueName"]}}],
            "Threshold": 1,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "notBreaching",
            "AlarmActions": [{"Ref": Match.string_like_regexp("NotificationsTopic")}],
            "AlarmDescription": Match.string_like_regexp(f"failed {MAX_RECEIVES} times"),
        },
    )  # fmt: skip


def test_a_failed_or_stopped_ingestion_job_is_announced_on_the_topic(template: Template) -> None:
    rules = template.find_resources(
        "AWS::Events::Rule",
        {"Properties": {"EventPattern": {"source": ["aws.sagemaker"]}}},
    )
    (rule,) = rules.values()
    props = rule["Properties"]
    assert props["EventPattern"] == {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Processing Job State Change"],
        "detail": {
            "ProcessingJobStatus": ["Failed", "Stopped"],
            "ProcessingJobName": [{"prefix": f"{STAGES['dev'].prefix}-ingest-"}],
        },
    }
    (target,) = props["Targets"]
    assert "NotificationsTopic" in target["Arn"]["Ref"]
    transformer = target["InputTransformer"]
    assert set(transformer["InputPathsMap"].values()) == {
        "$.detail.ProcessingJobName", "$.detail.ProcessingJobStatus", "$.detail.FailureReason"
    }  # fmt: skip
    # published through a role that may publish to that topic only
    role = target["RoleArn"]["Fn::GetAtt"][0]
    (policy,) = template.find_resources(
        "AWS::IAM::Policy", {"Properties": {"Roles": [{"Ref": role}]}}
    ).values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert {"Action": "sns:Publish", "Effect": "Allow", "Resource": target["Arn"]} in statements


def test_no_unconditioned_eventbridge_statement_in_the_key_policy(template: Template) -> None:
    """EventBridge may use the lake key only for rules of this account (confused deputy)."""
    (key,) = template.find_resources("AWS::KMS::Key").values()
    for statement in key["Properties"]["KeyPolicy"]["Statement"]:
        principal = statement.get("Principal", {}).get("Service", [])
        if "events.amazonaws.com" in (principal if isinstance(principal, list) else [principal]):
            assert statement["Condition"] == {
                "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
            }
