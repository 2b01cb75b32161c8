"""Batch scoring's two steps against moto: preparing a file for Batch Transform, assembling."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lambdas.score.handler import BadEvent, handler
from lambdas.score.service import Scoring
from tests.unit.score.fakes import KEY_ARN, World, csv_file, deploy, row

SCORING_COLUMNS = [
    "customer_id", "signup_ts", "last_active_ts", "plan", "region", "monthly_charges",
    "tenure_months", "support_calls",
]  # fmt: skip


def prepared_rows(world: World, prepared: dict[str, Any]) -> list[list[str]]:
    uri = prepared["transform"]["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]
    prefix = uri.split("/", 3)[3]
    (key,) = world.keys(prefix)
    return list(csv.reader(io.StringIO(world.text(key))))


# ---------------------------------------------------------------------------- prepare
def test_a_good_file_becomes_headerless_rows_and_a_transform_request(world: World) -> None:
    # Given a model serving churn and a file of three rows (id, PII and target included)
    model = deploy(world)
    source = world.upload("churn/_score/march.csv", csv_file([row(1), row(2), row(3)]))
    # When it is prepared
    prepared = world.scoring.prepare(source)
    # Then the rows are written without header, PII or target: the line, then the record
    assert prepared["status"] == "ready"
    assert prepared["rows"] == {"in": 3, "scored": 3, "rejected": 0}
    rows = prepared_rows(world, prepared)
    assert rows[0] == [
        "2", "C1", "2024-03-05T10:15:00Z", "2025-01-20T08:00:00Z", "standard", "eu", "11.5",
        "1", "1",
    ]  # fmt: skip
    assert [r[0] for r in rows] == ["2", "3", "4"]
    assert not any("example.com" in cell or "+1-555" in cell for r in rows for cell in r)
    # and the transform job: the served model, line split, the key columns joined back
    transform = prepared["transform"]
    assert transform["ModelName"] == model
    assert transform["TransformJobName"].startswith("sluice-test-score-")
    assert len(transform["TransformJobName"]) <= 63
    assert transform["BatchStrategy"] == "MultiRecord"
    assert transform["TransformInput"]["SplitType"] == "Line"
    assert transform["TransformInput"]["ContentType"] == "text/csv"
    assert transform["TransformOutput"] == {
        "S3OutputPath": f"s3://artifacts/{prepared['work_prefix']}output/",
        "Accept": "text/csv",
        "AssembleWith": "Line",
        "KmsKeyId": KEY_ARN,
    }
    assert transform["DataProcessing"] == {
        "InputFilter": "$[1:]",
        "JoinSource": "Input",
        "OutputFilter": "$[0,1,-2,-1]",  # the line, the id (first of the record), the answer
    }
    assert transform["Environment"] == {"SLUICE_SCORING_COLUMNS": ",".join(SCORING_COLUMNS)}
    assert prepared["model"] == {
        "name": model, "version": "4", "endpoint": "sluice-test-churn"
    }  # fmt: skip
    assert world.keys("churn/predictions/") == []


def test_a_file_without_the_id_column_keeps_only_the_line(world: World) -> None:
    deploy(world)
    header = [h for h in csv_file([row(1)]).decode().splitlines()[0].split(",")]
    header.remove("customer_id")
    prepared = world.scoring.prepare(
        world.upload("churn/_score/x.csv", csv_file([row(1)], header=header))
    )
    assert prepared["key_columns"] == ["line"]
    assert prepared["id_column"] is None
    assert prepared["transform"]["DataProcessing"]["InputFilter"] == "$[1:]"
    assert prepared["transform"]["DataProcessing"]["OutputFilter"] == "$[0,-2,-1]"
    assert prepared_rows(world, prepared)[0][:2] == ["2", ""]  # the line; no id value


def test_parquet_files_are_scored_too(world: World) -> None:
    deploy(world)
    table = pa.table({
        "customer_id": ["C7"], "signup_ts": ["2024-03-05T10:15:00Z"],
        "last_active_ts": [None], "plan": ["basic"], "region": ["us"],
        "monthly_charges": [12.5], "tenure_months": [3], "support_calls": [0],
    })  # fmt: skip
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    prepared = world.scoring.prepare(world.upload("churn/_score/p.parquet", buffer.getvalue()))
    assert prepared["status"] == "ready", prepared
    assert prepared_rows(world, prepared) == [
        ["1", "C7", "2024-03-05T10:15:00Z", "", "basic", "us", "12.5", "3", "0"]
    ]  # line, then the record: the id, ..., an absent last_active_ts empty


def test_bad_rows_are_reported_with_line_and_reason_and_never_pii(world: World) -> None:
    deploy(world)
    rows = [row(i) for i in range(40)]
    rows[5] = row(5, plan="gold")
    rows[9] = row(9, tenure_months="ten", email="secret@example.com")
    prepared = world.scoring.prepare(world.upload("churn/_score/b.csv", csv_file(rows)))
    assert prepared["status"] == "ready"
    assert prepared["rows"] == {"in": 40, "scored": 38, "rejected": 2}
    report = [json.loads(x) for x in world.text("churn/predictions/b.csv/rejected_rows.jsonl")
              .splitlines()]  # fmt: skip
    assert report == [
        {"line": 7, "reasons": ["plan: expected one of basic, standard, premium, got 'gold'"]},
        {"line": 11, "reasons": ["tenure_months: expected an integer, got 'ten'"]},
    ]
    assert "secret@example.com" not in json.dumps(report)
    assert len(prepared_rows(world, prepared)) == 38


@pytest.mark.parametrize(
    ("key", "body", "code"),
    [
        ("churn/_score/many-bad.csv", csv_file([row(i, plan="gold") for i in range(10)]),
         "too_many_bad_rows"),
        ("churn/_score/binary.csv", b"\x00\x01\x02garbage", "binary_file"),
        ("churn/_score/empty.csv", b"", "empty_file"),
        ("churn/_score/no-plan.csv", b"customer_id,region\nC1,eu\n", "missing_columns"),
        ("churn/_score/header-only.csv", csv_file([]), "no_rows"),
        ("sales/_score/x.csv", csv_file([row(1)]), "undeclared_dataset"),
    ],
)  # fmt: skip
def test_a_file_that_cannot_be_scored_gets_an_error_report(
    world: World, key: str, body: bytes, code: str
) -> None:
    deploy(world)
    prepared = world.scoring.prepare(world.upload(key, body))
    assert prepared["status"] == "rejected"
    dataset, name = key.split("/", 1)[0], key.split("/", 2)[2]
    report = world.json(f"{dataset}/predictions/{name}/error.json")
    assert report["error"]["code"] == code
    assert report["error"]["message"]
    assert report["source"]["key"] == key
    assert prepared["report"] == f"s3://artifacts/{dataset}/predictions/{name}/error.json"


def test_before_any_model_is_deployed_the_report_says_so(world: World) -> None:
    prepared = world.scoring.prepare(world.upload("churn/_score/early.csv", csv_file([row(1)])))
    assert prepared["status"] == "rejected"
    error = world.json("churn/predictions/early.csv/error.json")["error"]
    assert error["code"] == "no_model"
    assert error["message"] == (
        "no model serves dataset 'churn' yet: upload the file again once one is deployed"
    )


def _in_private_network(world: World) -> Scoring:
    settings = replace(world.scoring.settings, private_subnets=("subnet-a", "subnet-b"))
    return Scoring(settings, s3=world.s3, sagemaker=world.sagemaker)


def test_with_a_private_network_a_model_outside_it_is_refused(world: World) -> None:
    # Given a stage with private subnets and a model serving churn deployed without them
    deploy(world)
    # When a file is prepared for scoring
    prepared = _in_private_network(world).prepare(
        world.upload("churn/_score/outside.csv", csv_file([row(1)]))
    )
    # Then no transform job is asked for (it would run where the model does: outside)
    assert prepared["status"] == "rejected"
    error = world.json("churn/predictions/outside.csv/error.json")["error"]
    assert error["code"] == "model_outside_network"
    assert "private subnets" in error["message"]


def test_with_a_private_network_a_model_in_its_subnets_is_used(world: World) -> None:
    deploy(world, vpc={"Subnets": ["subnet-b"], "SecurityGroupIds": ["sg-models"]})
    prepared = _in_private_network(world).prepare(
        world.upload("churn/_score/inside.csv", csv_file([row(1)]))
    )
    assert prepared["status"] == "ready"
    assert "VpcConfig" not in prepared["transform"]  # the job takes the model's network


def test_results_of_an_earlier_upload_of_the_same_name_are_cleared(world: World) -> None:
    world.scoring.prepare(world.upload("churn/_score/again.csv", csv_file([row(1)])))
    assert world.keys("churn/predictions/again.csv/") == ["churn/predictions/again.csv/error.json"]
    deploy(world)
    world.scoring.prepare(world.upload("churn/_score/again.csv", csv_file([row(1)])))
    assert world.keys("churn/predictions/again.csv/") == []


# ------------------------------------------------------------------------------ finish
def _ready(world: World, rows: int = 3) -> dict[str, Any]:
    deploy(world)
    return world.scoring.prepare(
        world.upload("churn/_score/march.csv", csv_file([row(i) for i in range(rows)]))
    )


def _transform_output(world: World, prepared: dict[str, Any], lines: list[str]) -> None:
    key = f"{prepared['work_prefix']}output/churn.csv.out"
    world.s3.put_object(Bucket="artifacts", Key=key, Body=("\n".join(lines) + "\n").encode())


def test_the_transform_output_becomes_predictions_with_a_header_in_order(world: World) -> None:
    prepared = _ready(world)
    _transform_output(world, prepared, ["2,C0,0,0.12", "3,C1,1,0.81", "4,C2,0,0.3"])
    result = world.scoring.finish(prepared, None)
    assert result["status"] == "scored"
    assert world.text("churn/predictions/march.csv/predictions.csv") == (
        "customer_id,label,probability\nC0,0,0.12\nC1,1,0.81\nC2,0,0.3\n"
    )
    manifest = world.json("churn/predictions/march.csv/manifest.json")
    assert manifest["rows"] == {"in": 3, "scored": 3, "rejected": 0}
    assert manifest["model"]["version"] == "4"
    assert manifest["columns"] == ["customer_id", "label", "probability"]
    assert world.keys(prepared["work_prefix"]) == []  # the work files are gone


def test_a_failed_transform_job_becomes_an_error_report(world: World) -> None:
    prepared = _ready(world)
    failure = {
        "Error": "States.TaskFailed",
        "Cause": json.dumps({"FailureReason": "AlgorithmError: the model answered 500"}),
    }
    result = world.scoring.finish(prepared, failure)
    assert result["status"] == "failed"
    error = world.json("churn/predictions/march.csv/error.json")["error"]
    assert error["code"] == "transform_failed"
    assert "AlgorithmError: the model answered 500" in error["message"]
    assert "predictions.csv" not in " ".join(world.keys("churn/predictions/"))


def test_output_that_does_not_cover_every_row_is_an_error(world: World) -> None:
    prepared = _ready(world)
    _transform_output(world, prepared, ["2,C0,0,0.12"])
    result = world.scoring.finish(prepared, None)
    assert result["status"] == "failed"
    assert world.json("churn/predictions/march.csv/error.json")["error"]["code"] == (
        "missing_output"
    )


# ----------------------------------------------------------------------------- handler
class Context:
    function_name = "score"
    memory_limit_in_mb = 3008
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:score"
    aws_request_id = "r"


def test_handler_runs_the_step_it_is_asked_for(world: World) -> None:
    deploy(world)
    source = world.upload("churn/_score/h.csv", csv_file([row(1)]))
    event = {
        "step": "prepare",
        "event": {
            "detail": {
                "bucket": {"name": "raw"},
                "object": {"key": source.key, "version-id": source.version_id},
            }
        },
    }
    prepared = handler(event, Context(), scoring=world.scoring)
    assert prepared["status"] == "ready"
    _transform_output(world, prepared, ["2,C1,1,0.9"])
    finished = handler({"step": "finish", "prepared": prepared}, Context(), scoring=world.scoring)
    assert finished["status"] == "scored"
    with pytest.raises(BadEvent):
        handler({"step": "dance"}, Context(), scoring=world.scoring)


@pytest.mark.parametrize("dataset", ["churn", "wine"])
def test_the_scoring_order_is_the_order_inference_reads_headerless_rows_in(dataset: str) -> None:
    from datasets.record import RecordShape
    from datasets.scoring import scoring_columns
    from datasets.spec import SPECS_DIR, load_spec

    spec = load_spec(SPECS_DIR / f"{dataset}.yaml")
    assert tuple(scoring_columns(spec)) == RecordShape(spec).csv_order
