"""Batch Transform, run for real: the model's inference code over every input record.

What CreateTransformJob does on AWS, for the options Sluice uses and their neighbours:

- the model (``ModelName``) is served by the same worker an endpoint uses (``model_fn`` once,
  then ``input_fn``/``predict_fn``/``output_fn``), with the job's ``Environment`` added;
- inputs: every object under ``S3DataSource.S3Uri`` (``S3Prefix``; or the keys a
  ``ManifestFile`` lists), gunzipped with ``CompressionType: Gzip``;
- ``SplitType: Line`` cuts each object into records (``None``: the object is one record);
- ``DataProcessing.InputFilter`` (JSONPath; for CSV an index/slice list such as ``$[1:]``)
  selects what of each record the model gets;
- ``BatchStrategy: MultiRecord`` sends as many records per request as fit ``MaxPayloadInMB``
  (joined by newlines), ``SingleRecord`` one per request; ``ContentType``/``Accept`` as given;
- ``AssembleWith: Line`` cuts the answer into one line per record, ``JoinSource: Input`` puts
  each beside its input record (CSV: the input's fields, then the output's; JSON: the input
  object with ``SageMakerOutput``), ``OutputFilter`` selects the columns kept;
- each input object ``<key>`` gives ``<S3OutputPath>/<key relative to the input prefix>.out``,
  with SSE-KMS when ``TransformOutput.KmsKeyId`` is set.

A request the model refuses fails the job (AWS retries a failed mini-batch and then fails the
job with "See job logs"; here the FailureReason carries the status and the first line of the
model's answer). Records are sent one mini-batch at a time (``MaxConcurrentTransforms`` is not
parallelised); one instance.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from sluice_local import settings
from sluice_local.sagemaker import endpoints, s3io
from sluice_local.sagemaker.jobs import JobFailed, RunningJob

INVOKE_TIMEOUT_SECONDS = 600.0
_INDEXES = re.compile(r"^\$\[(.*)\]$")


# ------------------------------------------------------------------------------ JSONPath
def _index_list(expression: str) -> list[int | slice] | None:
    """``$[1:]``, ``$[0,-1]``, ``$[0,5:]``: what a CSV filter selects; None for ``$``."""
    expression = expression.strip()
    if expression in ("", "$"):
        return None
    found = _INDEXES.match(expression)
    if not found:
        raise JobFailed(f"ClientError: filter {expression!r} is not supported for CSV")
    items: list[int | slice] = []
    for raw in found.group(1).split(","):
        part = raw.strip()
        if ":" in part:
            start, _, stop = part.partition(":")
            items.append(slice(int(start) if start else None, int(stop) if stop else None))
        else:
            items.append(int(part))
    return items


def _select_fields(fields: list[str], indexes: list[int | slice] | None) -> list[str]:
    if indexes is None:
        return fields
    out: list[str] = []
    for index in indexes:
        if isinstance(index, slice):
            out.extend(fields[index])
        else:
            out.append(fields[index])
    return out


def _csv_fields(line: str) -> list[str]:
    return next(csv.reader([line])) if line else []


def _csv_line(fields: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(fields)
    return out.getvalue()


def _json_select(document: Any, expression: str) -> Any:
    """``$``, ``$.a.b``, ``$['a','b']``, ``$.a[0]``: what JSON filters select."""
    expression = expression.strip()
    if expression in ("", "$"):
        return document
    bracket = re.fullmatch(r"\$\[((?:'[^']*'\s*,?\s*)+)\]", expression)
    if bracket:
        keys = re.findall(r"'([^']*)'", bracket.group(1))
        return {k: document[k] for k in keys if isinstance(document, dict) and k in document}
    current = document
    for part in re.findall(r"\.([A-Za-z_][\w-]*)|\[(-?\d+)\]", expression[1:]):
        name, index = part
        current = current[name] if name else current[int(index)]
    return current


class Filters:
    """The job's DataProcessing, for one content type."""

    def __init__(self, processing: dict[str, Any], content_type: str) -> None:
        self.csv = content_type.split(";", maxsplit=1)[0].strip().lower() == "text/csv"
        self.input = processing.get("InputFilter") or "$"
        self.output = processing.get("OutputFilter") or "$"
        self.join = (processing.get("JoinSource") or "None") == "Input"
        if self.csv:
            self._input_indexes = _index_list(self.input)
            self._output_indexes = _index_list(self.output)

    def filter_input(self, record: str) -> str:
        if self.csv:
            return _csv_line(_select_fields(_csv_fields(record), self._input_indexes))
        if self.input == "$":
            return record
        return json.dumps(_json_select(json.loads(record), self.input))

    def assemble(self, record: str, output: str) -> str:
        if self.csv:
            fields = _csv_fields(output)
            if self.join:
                fields = _csv_fields(record) + fields
            return _csv_line(_select_fields(fields, self._output_indexes))
        answer: Any = json.loads(output) if output.strip() else None
        if self.join:
            document = json.loads(record)
            if not isinstance(document, dict):
                raise JobFailed("ClientError: JoinSource Input needs JSON objects as records")
            answer = {**document, "SageMakerOutput": answer}
        return json.dumps(_json_select(answer, self.output))


# ------------------------------------------------------------------------------ the job
def _inputs(s3: Any, source: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(bucket, key, output-relative name) of every input object."""
    uri = source["S3Uri"]
    kind = source.get("S3DataType") or "S3Prefix"
    bucket, prefix = s3io.split_uri(uri)
    if kind == "ManifestFile":
        manifest = json.loads(s3.get_object(Bucket=bucket, Key=prefix)["Body"].read())
        base = manifest[0]["prefix"]
        base_bucket, base_key = s3io.split_uri(base)
        return [(base_bucket, base_key + k, k) for k in manifest[1:]]
    if kind != "S3Prefix":
        raise JobFailed(f"ClientError: S3DataType {kind} is not supported locally")
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [item["Key"] for item in page.get("Contents", []) if not item["Key"].endswith("/")]
    if not keys:
        raise JobFailed(
            f'ClientError: No S3 objects found under S3 URL "{uri}" given in input data source'
        )
    folder = prefix.rsplit("/", 1)[0] + "/" if "/" in prefix else ""
    return [(bucket, key, key[len(folder) :]) for key in sorted(keys)]


def _records(data: bytes, split: str) -> list[str]:
    text = data.decode("utf-8")
    if split == "None":
        return [text]
    if split != "Line":
        raise JobFailed(f"ClientError: SplitType {split} is not supported locally")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def _batches(records: list[str], strategy: str, max_bytes: int) -> list[tuple[int, int]]:
    """(start, end) of each mini-batch."""
    if strategy == "SingleRecord":
        return [(i, i + 1) for i in range(len(records))]
    batches: list[tuple[int, int]] = []
    start, size = 0, 0
    for i, record in enumerate(records):
        length = len(record.encode()) + 1
        if length > max_bytes:
            raise JobFailed(
                f"ClientError: record {i + 1} is larger than MaxPayloadInMB ({max_bytes} bytes)"
            )
        if size + length > max_bytes and i > start:
            batches.append((start, i))
            start, size = i, 0
        size += length
    if start < len(records):
        batches.append((start, len(records)))
    return batches


def _invoke(variant: endpoints.Variant, body: bytes, content_type: str, accept: str) -> str:
    request = urllib.request.Request(
        f"http://127.0.0.1:{variant.port}/invocations",
        data=body,
        method="POST",
        headers={"Content-Type": content_type, "Accept": accept},
    )
    try:
        with urllib.request.urlopen(request, timeout=INVOKE_TIMEOUT_SECONDS) as response:  # noqa: S310
            return str(response.read().decode("utf-8"))
    except urllib.error.HTTPError as error:
        detail = error.read().decode("utf-8", errors="replace").strip().splitlines()[:1]
        raise JobFailed(
            f"ClientError: the model answered {error.code} to a mini-batch: "
            f"{detail[0][:800] if detail else ''} (see /aws/sagemaker/TransformJobs)"
        ) from None


def run(job: RunningJob, request: dict[str, Any], account: str, region: str) -> None:
    name = request["TransformJobName"]
    clients = endpoints._clients(account, region)
    s3 = clients.s3
    source = request["TransformInput"]["DataSource"]["S3DataSource"]
    content_type = request["TransformInput"].get("ContentType") or "application/octet-stream"
    split = request["TransformInput"].get("SplitType") or "None"
    compression = request["TransformInput"].get("CompressionType") or "None"
    output = request["TransformOutput"]
    accept = output.get("Accept") or content_type
    assemble = output.get("AssembleWith") or "None"
    strategy = request.get("BatchStrategy") or (
        "MultiRecord" if split != "None" else "SingleRecord"
    )
    max_bytes = int(request.get("MaxPayloadInMB") or 6) * 1024 * 1024
    filters = Filters(request.get("DataProcessing") or {}, content_type)
    if filters.join and assemble != "Line" and split != "None":
        raise JobFailed("ClientError: JoinSource Input needs AssembleWith Line")
    extra = (
        {"SSEKMSKeyId": output["KmsKeyId"], "ServerSideEncryption": "aws:kms"}
        if output.get("KmsKeyId")
        else {}
    )
    inputs = _inputs(s3, source)

    workdir = settings.state_dir() / "sagemaker" / "transform" / name
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    try:
        variant = endpoints._start_variant(
            account,
            region,
            name,
            {"ModelName": request["ModelName"], "VariantName": "transform"},
            workdir,
            environment=request.get("Environment") or {},
        )
    except endpoints.DeployFailed as exc:
        raise JobFailed(f"ClientError: {exc}") from None
    try:
        for bucket, key, relative in inputs:
            if job.stop_requested.is_set():
                raise JobFailed("Stopped by StopTransformJob", status="Stopped")
            data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            if compression == "Gzip":
                data = gzip.decompress(data)
            records = _records(data, split)
            results = _transform_object(variant, records, filters, strategy, max_bytes,
                                        content_type, accept, assemble, job)  # fmt: skip
            out_bucket, out_prefix = s3io.split_uri(output["S3OutputPath"].rstrip("/") + "/")
            s3.put_object(
                Bucket=out_bucket, Key=f"{out_prefix}{relative}.out", Body=results, **extra
            )
    finally:
        variant.stop()
        _publish(account, region, name, variant.log_path)


def _transform_object(
    variant: endpoints.Variant,
    records: list[str],
    filters: Filters,
    strategy: str,
    max_bytes: int,
    content_type: str,
    accept: str,
    assemble: str,
    job: RunningJob,
) -> bytes:
    sent = [filters.filter_input(record) for record in records]
    pieces: list[str] = []
    for start, end in _batches(sent, strategy, max_bytes):
        if job.stop_requested.is_set():
            raise JobFailed("Stopped by StopTransformJob", status="Stopped")
        body = "\n".join(sent[start:end]) + ("\n" if end - start > 1 else "")
        answer = _invoke(variant, body.encode(), content_type, accept)
        if assemble == "Line":
            lines = answer.split("\n")
            if lines and lines[-1] == "":
                lines.pop()
            if len(lines) != end - start:
                raise JobFailed(
                    f"ClientError: the model answered {len(lines)} lines for a mini-batch of "
                    f"{end - start} records; AssembleWith Line needs one line per record"
                )
            pieces += [filters.assemble(records[start + i], line) for i, line in enumerate(lines)]
        else:
            pieces.append(answer)
    if assemble == "Line":
        return "".join(piece + "\n" for piece in pieces).encode()
    return "".join(pieces).encode()


def _publish(account: str, region: str, name: str, log_path: Path) -> None:
    from sluice_local.sagemaker.jobs import _publish_logs

    _publish_logs(account, region, "/aws/sagemaker/TransformJobs", f"{name}/transform", log_path)
