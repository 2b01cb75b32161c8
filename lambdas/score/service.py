"""Batch scoring of one uploaded file: prepare it for Batch Transform, then assemble the result.

``s3://<raw>/<dataset>/_score/<name>`` (CSV, gzip CSV or Parquet, the dataset's record shape)
→ ``s3://<artifacts>/<dataset>/predictions/<name>/``:

    predictions.csv        one row per scored input row, in order, with a header: the id
                           column (when the file has it) and the API's prediction fields
    manifest.json          source, rows in/scored/rejected, model, transform job
    rejected_rows.jsonl    rows that do not match the spec: line and reasons (no values)
    error.json             instead of the above when the file cannot be scored, and why

**prepare** validates the file against the spec with ingestion's own code (the reader that
tracks lines, the column checks), as ingestion does: bad rows are reported, a file with more
than the spec's ``max_bad_row_fraction`` of them is rejected. Good rows become a headerless CSV
(Batch Transform splits by line; only its first mini-batch would see a header): the line number,
then the record in ``datasets.scoring.scoring_columns`` order (the order inference reads a
headerless row in: no PII, no target), and the CreateTransformJob request for the model serving
the dataset: line split, MultiRecord, ``InputFilter`` dropping the line, ``JoinSource: Input``
and an ``OutputFilter`` keeping the line and the id beside the prediction. **finish** turns the
transform's ``.out`` file into ``predictions.csv``, or writes ``error.json`` when the job failed.

Knows S3 and SageMaker (clients passed in), not Lambda or Step Functions.
"""

from __future__ import annotations

import csv
import hashlib
import json
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from datasets import names
from datasets.scoring import scoring_columns
from datasets.spec import SPECS_DIR, DatasetSpec, load_spec, spec_path
from lambdas.score.settings import Settings

PREDICTION_FIELDS = {
    "binary": ["label", "probability"],
    "multiclass": ["label"],
    "regression": ["value"],
}
#: rows of rejected_rows.jsonl kept in the manifest as examples
EXAMPLES = 5


class Rejected(Exception):
    """The file cannot be scored; ``as_dict`` is its error report."""

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code, self.message, self.details = code, message, details

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.details}


@dataclass(frozen=True)
class Source:
    bucket: str
    key: str
    version_id: str | None = None

    @property
    def dataset(self) -> str:
        return self.key.split("/", 1)[0]

    @property
    def name(self) -> str:
        """What follows ``<dataset>/_score/``."""
        return self.key.split("/", 2)[2] if self.key.count("/") >= 2 else ""

    def as_dict(self) -> dict[str, Any]:
        return {"bucket": self.bucket, "key": self.key, "version_id": self.version_id}


class Scoring:
    def __init__(
        self, settings: Settings, *, s3: Any, sagemaker: Any, specs_dir: Path = SPECS_DIR
    ) -> None:
        self.settings, self.s3, self.sagemaker, self.specs_dir = settings, s3, sagemaker, specs_dir

    # ------------------------------------------------------------------------------ paths
    def output_prefix(self, source: Source) -> str:
        return names.predictions_prefix(source.dataset, source.name)

    def job_name(self, source: Source) -> str:
        digest = hashlib.sha256(
            f"{source.bucket}/{source.key}/{source.version_id}/{datetime.now(UTC).isoformat()}"
            .encode()
        ).hexdigest()  # fmt: skip
        return f"{names.score_job_prefix(self.settings.prefix)}{digest[:20]}"

    def _uri(self, key: str) -> str:
        return f"s3://{self.settings.artifacts_bucket}/{key}"

    # ---------------------------------------------------------------------------- prepare
    def prepare(self, source: Source) -> dict[str, Any]:
        """Validate and convert the file; the transform job's request, or an error report."""
        out = self.output_prefix(source)
        self._clear(out)
        try:
            if names.reserved_prefix(source.key) != names.SCORE_PREFIX or not source.name:
                raise Rejected("not_a_scoring_file", "files to score go under <dataset>/_score/")
            spec = self._spec(source.dataset)
            model = self._serving_model(source.dataset)
            job = self.job_name(source)
            work = f"{source.dataset}/scoring/{job}/"
            prepared = self._convert(source, spec, work)
        except Rejected as rejected:
            report = self._report(source, rejected)
            return {"status": "rejected", "source": source.as_dict(), "report": report,
                    "error": rejected.as_dict()}  # fmt: skip
        keys = ["line"] + (["id"] if prepared["has_id"] else [])
        predicted = PREDICTION_FIELDS[spec.problem_type]
        # the joined row is: line, the record's fields, the model's answer
        kept = [0] + ([1 + prepared["columns"].index(spec.id_column)] if prepared["has_id"] else [])
        return {
            "status": "ready",
            "source": source.as_dict(),
            "dataset": source.dataset,
            "name": source.name,
            "output_prefix": out,
            "work_prefix": work,
            "id_column": spec.id_column if prepared["has_id"] else None,
            "key_columns": keys,
            "prediction_fields": predicted,
            "rows": prepared["rows"],
            "model": model,
            "transform": {
                "TransformJobName": job,
                "ModelName": model["name"],
                "BatchStrategy": "MultiRecord",
                "MaxPayloadInMB": self.settings.max_payload_mb,
                "MaxConcurrentTransforms": 1,
                "TransformInput": {
                    "DataSource": {
                        "S3DataSource": {
                            "S3DataType": "S3Prefix",
                            "S3Uri": self._uri(f"{work}input/"),
                        }
                    },
                    "ContentType": "text/csv",
                    "SplitType": "Line",
                    "CompressionType": "None",
                },
                "TransformOutput": {
                    "S3OutputPath": self._uri(f"{work}output/"),
                    "Accept": "text/csv",
                    "AssembleWith": "Line",
                    "KmsKeyId": self.settings.kms_key_arn,
                },
                "TransformResources": {
                    "InstanceType": self.settings.instance_type,
                    "InstanceCount": 1,
                    "VolumeKmsKeyId": self.settings.kms_key_arn,
                },
                "DataProcessing": {
                    # the model gets the record; the line rides along, and the id is kept
                    "InputFilter": "$[1:]",
                    "JoinSource": "Input",
                    "OutputFilter": _output_filter(kept, len(predicted)),
                },
                "Environment": {"SLUICE_SCORING_COLUMNS": ",".join(prepared["columns"])},
            },
        }

    def _spec(self, dataset: str) -> DatasetSpec:
        path = spec_path(dataset, self.specs_dir) if names.DATASET_NAME.match(dataset) else None
        if path is None:
            raise Rejected("undeclared_dataset", f"dataset {dataset!r} is not declared")
        return load_spec(path)

    def _serving_model(self, dataset: str) -> dict[str, Any]:
        """The model behind the dataset's endpoint (its AllTraffic variant)."""
        endpoint = names.endpoint_name(self.settings.prefix, dataset)
        try:
            described = self.sagemaker.describe_endpoint(EndpointName=endpoint)
            config = self.sagemaker.describe_endpoint_config(
                EndpointConfigName=described["EndpointConfigName"]
            )
        except self.sagemaker.exceptions.ClientError as exc:
            raise Rejected(
                "no_model",
                f"no model serves dataset {dataset!r} yet: upload the file again once one is "
                "deployed",
                endpoint=endpoint,
            ) from exc
        variants = config.get("ProductionVariants") or []
        variant = next((v for v in variants if v["VariantName"] == names.VARIANT_NAME), None)
        variant = variant or (variants[0] if variants else None)
        if variant is None:
            raise Rejected("no_model", f"endpoint {endpoint} has no production variant")
        model = self.sagemaker.describe_model(ModelName=variant["ModelName"])
        self._check_network(dataset, model, endpoint)
        container = model.get("PrimaryContainer") or (model.get("Containers") or [{}])[0]
        version = (container.get("Environment") or {}).get("SLUICE_MODEL_VERSION")
        return {"name": variant["ModelName"], "version": version, "endpoint": endpoint}

    def _check_network(self, dataset: str, model: dict[str, Any], endpoint: str) -> None:
        """With a private network, the transform job must run in it: it takes its network from
        the model (CreateTransformJob has no VpcConfig), so refuse a model outside the stage's
        subnets (one deployed before the network was turned on)."""
        if not self.settings.private_subnets:
            return
        subnets = (model.get("VpcConfig") or {}).get("Subnets") or []
        if not subnets or not set(subnets) <= set(self.settings.private_subnets):
            raise Rejected(
                "model_outside_network",
                f"the model serving dataset {dataset!r} ({model['ModelName']}) does not run in "
                "the stage's private subnets, and a transform job runs where its model does: "
                "deploy the dataset's model again, then upload the file again",
                endpoint=endpoint,
            )

    def _convert(self, source: Source, spec: DatasetSpec, work: str) -> dict[str, Any]:
        """Validate the file as ingestion does and write the headerless scoring CSV."""
        from lambdas.preprocess.errors import Rejection

        out = names.predictions_prefix(source.dataset, source.name)
        with tempfile.TemporaryDirectory(dir=self.settings.work_dir) as tmp:
            local = Path(tmp) / (PurePosixPath(source.key).name or "upload")
            extra = {"VersionId": source.version_id} if source.version_id else None
            self.s3.download_file(source.bucket, source.key, str(local), ExtraArgs=extra)
            preparation = _Preparation(spec, Path(tmp))
            try:
                preparation.run(local)
            except Rejection as exc:
                details = {k: v for k, v in exc.as_dict().items() if k not in ("code", "message")}
                raise Rejected(exc.code, str(exc), **details) from exc
            rows = preparation.rows
            if preparation.rejected:
                report = f"{out}rejected_rows.jsonl"
                self.s3.upload_file(
                    str(preparation.rejected_path), self.settings.artifacts_bucket, report
                )
            if rows["in"] == 0:
                raise Rejected("no_rows", "the file has a header but no data rows", rows=rows)
            limit = spec.max_bad_row_fraction
            if rows["rejected"] > limit * rows["in"] or rows["scored"] == 0:
                raise Rejected(
                    "too_many_bad_rows",
                    f"{rows['rejected']} of {rows['in']} rows "
                    f"({rows['rejected'] / rows['in']:.1%}) do not match the spec, above its "
                    f"max_bad_row_fraction {limit:.1%}; each is listed in rejected_rows.jsonl",
                    rows=rows,
                    examples=preparation.examples,
                )
            self.s3.upload_file(str(preparation.prepared_path), self.settings.artifacts_bucket,
                                f"{work}input/{source.dataset}.csv")  # fmt: skip
        return {"rows": rows, "has_id": preparation.has_id, "columns": preparation.columns}

    # ----------------------------------------------------------------------------- finish
    def finish(self, prepared: dict[str, Any], failure: dict[str, Any] | None) -> dict[str, Any]:
        """``predictions.csv`` and ``manifest.json`` from the transform's output, or the job's
        failure as ``error.json``."""
        source = Source(**prepared["source"])
        job = prepared["transform"]["TransformJobName"]
        try:
            if failure is not None:
                raise Rejected("transform_failed", self._failure_reason(job, failure), job=job)
            written = self._assemble(prepared)
        except Rejected as rejected:
            report = self._report(source, rejected)
            return {"status": "failed", "report": report, "error": rejected.as_dict()}
        finally:
            self._clear(prepared["work_prefix"])
        return {"status": "scored", **written}

    def _failure_reason(self, job: str, failure: dict[str, Any]) -> str:
        try:
            described = self.sagemaker.describe_transform_job(TransformJobName=job)
            reason = described.get("FailureReason")
        except self.sagemaker.exceptions.ClientError:
            reason = None
        if not reason:
            try:
                reason = json.loads(failure.get("Cause") or "{}").get("FailureReason")
            except (TypeError, ValueError):
                reason = None
        return f"the transform job {job} failed: {reason or failure.get('Error', 'unknown')}"

    def _assemble(self, prepared: dict[str, Any]) -> dict[str, Any]:
        bucket = self.settings.artifacts_bucket
        work, out = prepared["work_prefix"], prepared["output_prefix"]
        output_key = f"{work}output/{prepared['dataset']}.csv.out"
        keys, fields = prepared["key_columns"], prepared["prediction_fields"]
        header = ([prepared["id_column"]] if "id" in keys else []) + fields
        scored = 0
        with tempfile.TemporaryDirectory(dir=self.settings.work_dir) as tmp:
            local, result = Path(tmp) / "out.csv", Path(tmp) / "predictions.csv"
            try:
                self.s3.download_file(bucket, output_key, str(local))
            except self.s3.exceptions.ClientError as exc:
                raise Rejected("no_output", "the transform job wrote no output") from exc
            with local.open(newline="", encoding="utf-8") as f, \
                    result.open("w", newline="", encoding="utf-8") as o:  # fmt: skip
                writer = csv.writer(o, lineterminator="\n")
                writer.writerow(header)
                previous = 0
                for row in csv.reader(f):
                    if not row:
                        continue
                    if len(row) != len(keys) + len(fields) or int(row[0]) <= previous:
                        raise Rejected(
                            "malformed_output",
                            f"the model's answer for line {row[0] if row else '?'} does not "
                            f"have the fields {', '.join(fields)}",
                        )
                    previous = int(row[0])
                    writer.writerow(row[1:])
                    scored += 1
            if scored != prepared["rows"]["scored"]:
                raise Rejected(
                    "missing_output",
                    f"the transform job answered {scored} of {prepared['rows']['scored']} rows",
                )
            self.s3.upload_file(str(result), bucket, f"{out}predictions.csv")
        manifest = {
            "dataset": prepared["dataset"],
            "source": prepared["source"],
            "rows": prepared["rows"],
            "columns": header,
            "model": prepared["model"],
            "transform_job": prepared["transform"]["TransformJobName"],
            "files": {
                "predictions": self._uri(f"{out}predictions.csv"),
                "rejected_rows": self._uri(f"{out}rejected_rows.jsonl")
                if prepared["rows"]["rejected"]
                else None,
            },
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        self._put_json(f"{out}manifest.json", manifest)
        return {"predictions": self._uri(f"{out}predictions.csv"), "rows": prepared["rows"]}

    # ----------------------------------------------------------------------------- helpers
    def _report(self, source: Source, rejected: Rejected) -> str:
        key = f"{self.output_prefix(source)}error.json"
        if not source.name:
            key = f"{source.dataset}/predictions/error.json"
        self._put_json(
            key,
            {
                "error": rejected.as_dict(),
                "source": source.as_dict(),
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            },
        )
        return self._uri(key)

    def _put_json(self, key: str, document: dict[str, Any]) -> None:
        self.s3.put_object(
            Bucket=self.settings.artifacts_bucket,
            Key=key,
            Body=(json.dumps(document, indent=2, default=str) + "\n").encode(),
            ContentType="application/json",
        )

    def _clear(self, prefix: str) -> None:
        """Results of an earlier upload under the same name go before new ones arrive."""
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.settings.artifacts_bucket, Prefix=prefix):
            objects = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if objects:
                self.s3.delete_objects(
                    Bucket=self.settings.artifacts_bucket, Delete={"Objects": objects}
                )


class _Preparation:
    """One file through ingestion's reader and column checks, into the scoring CSV: good rows
    (line, id, then the scoring columns as the file holds them) and rejected rows (line and
    reasons, never values of PII columns)."""

    def __init__(self, spec: DatasetSpec, tmp: Path) -> None:
        self.spec = spec
        self.columns = scoring_columns(spec)
        self.prepared_path = tmp / "input.csv"
        self.rejected_path = tmp / "rejected_rows.jsonl"
        self.scored = self.rejected = self.rows_in = 0
        self.examples: list[dict[str, Any]] = []
        self.has_id = False

    @property
    def rows(self) -> dict[str, int]:
        return {"in": self.rows_in, "scored": self.scored, "rejected": self.rejected}

    def run(self, local: Path) -> None:
        from lambdas.preprocess.convert import plan_layout
        from lambdas.preprocess.source import open_source

        spec = self.spec
        src = open_source(local)
        layout = plan_layout(_scoring_spec(spec), [h for h in src.header
                                                     if h != spec.target_column])  # fmt: skip
        self.has_id = bool(spec.id_column) and any(c.name == spec.id_column for c in layout.present)
        with self.prepared_path.open("w", newline="", encoding="utf-8") as out, \
                self.rejected_path.open("w", encoding="utf-8") as bad:  # fmt: skip
            writer = csv.writer(out, lineterminator="\n")
            for batch in src.batches():
                self._batch(batch, layout, writer, bad)
            for record in src.bad_records:
                self.rows_in += 1
                reason = f"expected {record.expected} fields, found {record.fields}"
                self._reject(bad, {"line": record.line or None, "reasons": [reason]})

    def _batch(self, batch: Any, layout: Any, writer: Any, bad: Any) -> None:
        import pyarrow as pa

        from datasets.columns import convert_column, oversized, shorten

        spec, n = self.spec, len(batch.lines)
        self.rows_in += n
        problems: list[Any] = []
        text: dict[str, list[Any]] = {}
        for col in layout.present:
            raw = batch.columns[col.name]
            _, found = convert_column(
                col, raw, col.name in layout.required, spec.na_values_for(col)
            )
            problems += found
            too_long = oversized(col.name, raw)
            if too_long is not None:
                problems.append(too_long)
            if col.name in self.columns:
                values = raw if pa.types.is_string(raw.type) else raw.cast(pa.string())
                text[col.name] = values.to_pylist()
        reasons: dict[int, list[str]] = {}
        for problem in problems:
            for row in problem.mask.nonzero()[0]:
                value = batch.columns[problem.column][int(row)].as_py()
                reasons.setdefault(int(row), []).append(_reason(problem, spec, value, shorten))
        for row in range(n):
            line = int(batch.lines[row])
            if row in reasons:
                self._reject(bad, {"line": line, "reasons": reasons[row]})
                continue
            record: list[Any] = [line]
            record += [_text(text[c][row]) if c in text else "" for c in self.columns]
            writer.writerow(record)
            self.scored += 1

    def _reject(self, bad: Any, item: dict[str, Any]) -> None:
        self.rejected += 1
        bad.write(json.dumps(item) + "\n")
        if len(self.examples) < EXAMPLES:
            self.examples.append(item)


def _scoring_spec(spec: DatasetSpec) -> DatasetSpec:
    """The spec as a file to score sees it: no target column (absent, or ignored), and the id
    and PII columns optional, as in a prediction request."""
    import dataclasses

    optional = {spec.id_column, *spec.pii_columns}
    return dataclasses.replace(
        spec,
        columns=tuple(
            dataclasses.replace(c, required=False, optional=True) if c.name in optional else c
            for c in spec.columns
            if c.name != spec.target_column
        ),
    )


def _output_filter(kept: list[int], predicted: int) -> str:
    """``$[0,1,-2,-1]``: the kept input columns in front, the model's answer at the end."""
    fields = [*map(str, kept), *(str(-i) for i in range(predicted, 0, -1))]
    return f"$[{','.join(fields)}]"


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _reason(problem: Any, spec: DatasetSpec, value: Any, shorten: Any) -> str:
    """Like ingestion's quarantine reasons; never a PII value."""
    if not problem.expected:
        return f"{problem.column}: missing required value"
    if problem.column in spec.pii_columns:
        return f"{problem.column}: expected {problem.expected}"
    return f"{problem.column}: expected {problem.expected}, got {shorten(value)}"
