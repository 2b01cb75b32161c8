"""make cost (infra/cost.py): counts from the synthesized templates, instance-hour math, the
serverless idle cost, unknown prices, and that every resource type in the templates is classified.

The templates are synthesized in process as ``cdk synth`` writes them (no bundling), once per
module, for dev, prod and dev with ``-c vpc=create``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Template

from infra import cost
from infra.config import EndpointSettings, RealTimeEndpoint, ServerlessEndpoint, stage_config
from infra.prices import PRICES_AS_OF, UnknownPriceError
from infra.rollout import declared_datasets
from tests.infra.conftest import endpoint_services, make_app

SYNTHS = {"dev": ("dev", {}), "prod": ("prod", {}), "dev-vpc": ("dev", {"vpc": "create"})}


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Directory of each synth's templates (cdk.out layout)."""
    out = {}
    for name, (stage, context) in SYNTHS.items():
        directory = tmp_path_factory.mktemp(name)
        make_app(stage, outdir=directory, **context).synth()
        out[name] = directory
    return out


def _config(name: str) -> Any:
    stage, context = SYNTHS[name]
    return stage_config(stage, context)


def _templates(synthesized: dict[str, Path], name: str) -> dict[str, dict[str, Any]]:
    return cost.load_templates(synthesized[name], _config(name))


def _resources(templates: dict[str, dict[str, Any]], type_: str) -> list[dict[str, Any]]:
    return [r for t in templates.values() for r in t["Resources"].values() if r["Type"] == type_]


def _line(lines: list[cost.Line], item: str) -> cost.Line:
    found = [line for line in lines if line.item == item]
    assert len(found) == 1, f"{item!r} in {[line.item for line in lines]}"
    return found[0]


# ------------------------------------------------------------------ classification


@pytest.mark.parametrize("name", SYNTHS)
def test_every_resource_type_in_the_templates_is_classified(
    synthesized: dict[str, Path], name: str
) -> None:
    # Given the synthesized templates of a stage
    templates = _templates(synthesized, name)
    types = {r["Type"] for t in templates.values() for r in t["Resources"].values()}
    # Then each type is priced or listed with no standing cost (classify new ones in cost.py)
    assert cost.unclassified(types) == []


def test_a_type_is_priced_or_free_never_both() -> None:
    assert set(cost.FIXED_TYPES).isdisjoint(cost.NO_STANDING_COST)


def test_an_unclassified_resource_type_fails_the_estimate_by_name(
    synthesized: dict[str, Path],
) -> None:
    # Given a template with a resource type nobody classified
    templates = _templates(synthesized, "dev")
    app = next(k for k in templates if k.endswith("-app"))
    templates[app]["Resources"]["Db"] = {"Type": "AWS::RDS::DBInstance", "Properties": {}}
    # Then the estimate refuses, naming it
    with pytest.raises(cost.UnclassifiedResourceError, match=r"AWS::RDS::DBInstance"):
        cost.estimate(_config("dev"), templates)


def test_provisioned_dynamodb_capacity_is_not_passed_off_as_pay_per_use(
    synthesized: dict[str, Path],
) -> None:
    templates = _templates(synthesized, "dev")
    table = _resources(templates, "AWS::DynamoDB::Table")[0]
    table["Properties"]["BillingMode"] = "PROVISIONED"
    with pytest.raises(cost.CostError, match="provisioned capacity"):
        cost.estimate(_config("dev"), templates)


# ------------------------------------------------------------------ counts from the templates


@pytest.mark.parametrize("name", ["dev", "prod"])
def test_alarms_keys_and_secrets_are_counted_from_the_templates(
    synthesized: dict[str, Path], name: str
) -> None:
    # Given a stage's templates
    templates = _templates(synthesized, name)
    alarms = len(_resources(templates, "AWS::CloudWatch::Alarm"))
    keys = len(_resources(templates, "AWS::KMS::Key"))
    secrets = len(_resources(templates, "AWS::SecretsManager::Secret"))
    assert alarms >= 1 and keys == 1 and secrets == 1
    # When estimated
    result = cost.estimate(_config(name), templates)
    # Then each is priced per item (all of today's alarms are one metric at 60 s)
    alarm_line = _line(result.fixed, "CloudWatch alarms")
    assert alarm_line.quantity.startswith(f"{alarms} alarms: {alarms} standard")
    assert alarm_line.usd == pytest.approx(0.10 * alarms)
    assert _line(result.fixed, "KMS keys").usd == pytest.approx(1.00 * keys)
    assert _line(result.fixed, "Secrets Manager secrets").usd == pytest.approx(0.40 * secrets)
    # and without a VPC there is no endpoint, NAT or WAF line
    items = {line.item for line in result.fixed}
    assert not items & {"VPC interface endpoints", "NAT gateways", "WAF web ACL (associated ...)"}


def test_high_resolution_and_metric_math_alarms_are_priced_by_metric() -> None:
    # Given a 10 s alarm, and a metric-math alarm over two 60 s metrics
    resources: cost.Resources = [
        ("Fast", {"Type": "AWS::CloudWatch::Alarm", "Properties": {"Period": 10}}),
        (
            "Math",
            {
                "Type": "AWS::CloudWatch::Alarm",
                "Properties": {
                    "Metrics": [
                        {"Id": "a", "MetricStat": {"Period": 60}},
                        {"Id": "b", "MetricStat": {"Period": 60}},
                        {"Id": "e", "Expression": "a/b"},
                    ]
                },
            },
        ),
    ]
    line = _line(cost._fixed_lines(resources), "CloudWatch alarms")
    assert line.usd == pytest.approx(0.30 + 2 * 0.10)


def test_dashboards_are_priced_and_the_free_three_are_said() -> None:
    resources: cost.Resources = [
        ("Board", {"Type": "AWS::CloudWatch::Dashboard", "Properties": {}})
    ]
    line = _line(cost._fixed_lines(resources), "CloudWatch dashboards")
    assert line.usd == pytest.approx(3.00)
    assert "first 3" in line.note


def test_interface_endpoints_with_a_vpc_cost_per_endpoint_per_zone_per_hour(
    synthesized: dict[str, Path],
) -> None:
    # Given dev synthesized with -c vpc=create (two zones)
    templates = _templates(synthesized, "dev-vpc")
    app = next(k for k in templates if k.endswith("-app"))
    interface = endpoint_services(Template.from_json(templates[app]), "Interface")
    gateway = endpoint_services(Template.from_json(templates[app]), "Gateway")
    assert {"secretsmanager", "sagemaker.runtime", "firehose"} <= set(interface)
    assert all(len(props["SubnetIds"]) == 2 for props in interface.values())
    # When estimated
    result = cost.estimate(_config("dev-vpc"), templates)
    # Then: endpoints x 2 zones x 730 h x $0.01; gateway endpoints free
    line = _line(result.fixed, "VPC interface endpoints")
    assert line.quantity.startswith(f"{len(interface)} x 2 AZ")
    assert line.usd == pytest.approx(len(interface) * 2 * 730 * 0.01)
    assert _line(result.fixed, "VPC gateway endpoints (S3, DynamoDB)").quantity == str(len(gateway))


def test_a_nat_gateway_and_an_associated_waf_are_priced() -> None:
    resources: cost.Resources = [
        ("Nat", {"Type": "AWS::EC2::NatGateway", "Properties": {}}),
        ("Waf", {"Type": "AWS::WAFv2::WebACLAssociation", "Properties": {}}),
    ]
    lines = cost._fixed_lines(resources)
    assert _line(lines, "NAT gateways").usd == pytest.approx(730 * 0.045)
    assert _line(lines, "WAF web ACL (associated with the API)").usd == pytest.approx(5.00)


# ------------------------------------------------------------------ endpoints and runs


def test_real_time_endpoints_cost_their_instances_all_month(
    synthesized: dict[str, Path],
) -> None:
    # Given prod: every declared dataset on 2 x ml.m5.large (autoscaling up to 6)
    result = cost.estimate(_config("prod"), _templates(synthesized, "prod"))
    datasets = declared_datasets()
    assert [line.item for line in result.endpoints] == [f"endpoint {d}" for d in datasets]
    for line in result.endpoints:
        # Then 2 instances x 730 h x $0.115, with the ceiling of 6 said
        assert line.usd == pytest.approx(2 * 730 * 0.115)
        assert line.usd == pytest.approx(167.90)
        assert "ceiling 6 instances: $503.70" in line.note


def test_a_request_rate_above_the_floor_adds_instances_up_to_the_maximum() -> None:
    settings = EndpointSettings(
        real_time=RealTimeEndpoint(
            initial_instance_count=2,
            min_instances=2,
            max_instances=4,
            target_invocations_per_instance=100,
        )
    )
    assert cost.real_time_instances(settings, per_minute=50) == (2, False)
    assert cost.real_time_instances(settings, per_minute=301) == (4, False)
    assert cost.real_time_instances(settings, per_minute=1000) == (4, True)


def test_a_serverless_endpoint_costs_nothing_idle(synthesized: dict[str, Path]) -> None:
    # Given prod with churn on serverless (no provisioned concurrency) and no requests
    config = dataclasses.replace(
        _config("prod"),
        endpoints={"churn": EndpointSettings(kind="serverless")},
    )
    usage = cost.Usage(predictions=0, datasets=("churn",))
    result = cost.estimate(config, _templates(synthesized, "prod"), usage)
    # Then its endpoint line is $0 and no request line appears
    line = _line(result.endpoints, "endpoint churn")
    assert line.usd == 0.0
    assert _line(result.usage, "Serverless endpoint requests").usd == 0.0


def test_serverless_provisioned_concurrency_is_a_standing_cost() -> None:
    settings = EndpointSettings(
        kind="serverless",
        serverless=ServerlessEndpoint(memory_mb=2048, max_concurrency=5, provisioned_concurrency=2),
    )
    expected = 2 * 2.0 * 730 * 3600 * 0.0000048
    assert cost.serverless_idle_monthly(settings) == pytest.approx(expected)


def test_serverless_requests_are_billed_by_memory_and_duration() -> None:
    settings = EndpointSettings(kind="serverless", serverless=ServerlessEndpoint(memory_mb=1024))
    usage = cost.Usage(inference_ms=100, request_kb=1)
    # 1M requests x 0.1 s x 1 GB x $0.00002, plus 2 KB a request in and out x $0.016/GB
    expected = 1e6 * 0.1 * 0.00002 + 1e6 * 2 / 1024**2 * 0.016
    assert cost.serverless_usage_monthly(settings, usage, 1e6) == pytest.approx(expected)


def test_one_run_with_and_without_spot(synthesized: dict[str, Path]) -> None:
    config = _config("dev")  # training on ml.m5.xlarge ($0.23/h), evaluation on ml.m5.large
    usage = cost.Usage(training_minutes=60, evaluation_minutes=30, spot_savings=0.7)
    run = cost.pipeline_run(config, {"churn": config.endpoint_settings("churn")}, usage)
    assert _line(run, "training, on demand").usd == pytest.approx(0.23)
    assert _line(run, "training, spot").usd == pytest.approx(0.23 * 0.3)
    assert _line(run, "evaluation (processing job)").usd == pytest.approx(0.115 / 2)
    difference = cost.run_cost(run, spot=False) - cost.run_cost(run, spot=True)
    assert difference == pytest.approx(0.23 * 0.7)


def test_unknown_instance_types_are_an_error_naming_them(synthesized: dict[str, Path]) -> None:
    # Given a stage whose training type and endpoint type have no price
    config = dataclasses.replace(
        _config("dev"),
        training_instance_type="ml.zz9.huge",
        default_endpoint=EndpointSettings(real_time=RealTimeEndpoint(instance_type="ml.qq1.tiny")),
    )
    # Then the estimate names both, and prints no zero
    with pytest.raises(UnknownPriceError) as raised:
        cost.estimate(config, _templates(synthesized, "dev"))
    assert "ml.qq1.tiny (hosting)" in str(raised.value)
    assert "ml.zz9.huge (training)" in str(raised.value)


# ------------------------------------------------------------------ templates on disk, CLI


def test_missing_templates_say_to_synthesize(tmp_path: Path) -> None:
    with pytest.raises(cost.CostError, match="make synth STAGE=prod"):
        cost.load_templates(tmp_path, stage_config("prod"))


def test_templates_older_than_the_code_are_stale(
    synthesized: dict[str, Path], tmp_path: Path
) -> None:
    source = tmp_path / "changed.py"
    source.write_text("")
    later = time.time() + 60
    os.utime(source, (later, later))
    with pytest.raises(cost.CostError, match=r"older than .*changed\.py"):
        cost.load_templates(synthesized["dev"], _config("dev"), sources=[source])


def test_templates_with_another_vpc_setting_are_refused(synthesized: dict[str, Path]) -> None:
    with pytest.raises(cost.CostError, match="with a VPC"):
        cost.load_templates(synthesized["dev-vpc"], _config("dev"))


def test_the_cli_prints_the_price_date_assumptions_and_total(
    synthesized: dict[str, Path],
) -> None:
    printed: list[str] = []
    code = cost.main(
        ["--stage", "prod", "--templates", str(synthesized["prod"]), "--predictions", "1000000"],
        out=printed.append,
    )
    text = "\n".join(printed)
    assert code == 0
    assert f"prices as of {PRICES_AS_OF}" in text
    assert "Assumptions" in text and "1,000,000 prediction requests" in text
    assert "Total a month: $" in text
    assert "Not included" in text


def test_the_cli_reports_errors_without_a_traceback(
    synthesized: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code = cost.main(["--stage", "dev", "--templates", str(synthesized["dev-vpc"])])
    assert code == 2
    assert capsys.readouterr().err.startswith("make cost: ")


def test_the_price_table_names_a_source_page_for_every_price() -> None:
    from infra.prices import PRICES

    assert all(p.source.startswith("https://aws.amazon.com/") for p in PRICES.values())
    assert json.dumps(PRICES_AS_OF) and len(PRICES_AS_OF) == 10


def test_a_rate_beyond_the_serverless_concurrency_is_said(synthesized: dict[str, Path]) -> None:
    # Given churn serverless with max_concurrency 5 and a second of model time per request
    config = dataclasses.replace(
        _config("prod"), endpoints={"churn": EndpointSettings(kind="serverless")}
    )
    busy = cost.Usage(predictions=30_000_000, inference_ms=1000, datasets=("churn",))
    # When the mean load (30M x 1 s over 730 h = 11.4 in flight) exceeds it
    result = cost.estimate(config, _templates(synthesized, "prod"), busy)
    # Then the estimate says so
    assert any("max_concurrency 5" in note for note in result.notes)
    quiet = dataclasses.replace(busy, predictions=1_000_000)
    assert not cost.estimate(config, _templates(synthesized, "prod"), quiet).notes


def test_datasets_narrow_the_endpoints_and_unknown_ones_are_refused(
    synthesized: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    templates = str(synthesized["prod"])
    printed: list[str] = []
    assert (
        cost.main(
            ["--stage", "prod", "--templates", templates, "--datasets", "none"], out=printed.append
        )
        == 0
    )
    assert "endpoint churn" not in printed[0]
    assert cost.main(["--stage", "prod", "--templates", templates, "--datasets", "nope"]) == 2
    assert "nope not declared" in capsys.readouterr().err


def test_uploads_above_the_threshold_are_priced_as_processing_jobs(
    synthesized: dict[str, Path],
) -> None:
    # Given 4 GiB uploads, above dev's 3 GiB threshold (processing on ml.m5.2xlarge, $0.461/h)
    usage = cost.Usage(uploads=30, upload_mb=4096)
    result = cost.estimate(_config("dev"), _templates(synthesized, "dev"), usage)
    # Then each is a job of 5 min start-up + a minute per GB, not a function run
    line = _line(result.usage, "Ingestion: processing jobs")
    assert line.usd == pytest.approx(30 * 9 / 60 * 0.461)
    assert not [x for x in result.usage if x.item == "Ingestion: preprocess function"]


def test_the_month_counts_runs_at_the_stages_spot_choice(synthesized: dict[str, Path]) -> None:
    templates = _templates(synthesized, "dev")
    usage = cost.Usage(training_runs=10)
    for spot in (True, False):
        config = dataclasses.replace(_config("dev"), training_spot=spot)
        result = cost.estimate(config, templates, usage)
        line = _line(result.usage, "Training pipeline runs")
        assert line.usd == pytest.approx(10 * cost.run_cost(result.per_run, spot=spot))
        assert ("(spot)" in line.quantity) is spot
