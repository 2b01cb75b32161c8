"""What a run trains on: every curated upload of the dataset (or those of the last N days).

Ingestion writes ``s3://<curated>/<dataset>/<upload>/<version>/{part-*.parquet, manifest.json}``
and the manifest last, so a manifest means a complete upload. The list grows with every upload,
so it is written to S3, never passed around: ``inputs.json`` (per upload: manifest key, source
version, rows, files, schema hash) and ``manifest.json`` in SageMaker's ``ManifestFile`` format
(the objects the jobs download). The run keeps the URIs, the hash and the counts.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True)
class RunInputs:
    list_uri: str
    manifest_uri: str
    sha256: str
    uploads: int
    rows: int
    files: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "list": self.list_uri,
            "manifest": self.manifest_uri,
            "sha256": self.sha256,
            "uploads": self.uploads,
            "rows": self.rows,
            "files": self.files,
        }


def curated_manifests(
    s3: Any, bucket: str, dataset: str, *, window_days: int | None, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Manifest objects of the dataset (key, LastModified), oldest first, within the window."""
    since = None
    if window_days:
        since = (now or datetime.now(UTC)) - timedelta(days=window_days)
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{dataset}/"):
        for obj in page.get("Contents", []):
            if not obj["Key"].endswith(f"/{MANIFEST_NAME}"):
                continue
            if since is not None and obj["LastModified"] < since:
                continue
            found.append({"key": obj["Key"], "modified": obj["LastModified"]})
    found.sort(key=lambda o: (o["modified"], o["key"]))
    return found


def _entry(s3: Any, bucket: str, key: str) -> dict[str, Any]:
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    folder = key.rsplit("/", 1)[0]
    source = manifest.get("source") or {}
    return {
        "manifest": key,
        "source_key": source.get("key"),
        "source_version": source.get("version_id"),
        "rows": int((manifest.get("rows") or {}).get("curated", 0)),
        "schema_hash": (manifest.get("schema") or {}).get("hash"),
        "spec_version": (manifest.get("spec") or {}).get("version"),
        "files": [f"{folder}/{f['path']}" for f in manifest.get("files") or []],
    }


def write_run_inputs(
    s3: Any,
    *,
    curated_bucket: str,
    dataset: str,
    window_days: int | None,
    artifacts_bucket: str,
    run_prefix: str,
) -> RunInputs:
    """List the dataset's uploads, write ``inputs.json`` and the SageMaker manifest."""
    manifests = curated_manifests(s3, curated_bucket, dataset, window_days=window_days)
    with ThreadPoolExecutor(max_workers=16) as pool:
        entries = list(pool.map(lambda m: _entry(s3, curated_bucket, m["key"]), manifests))
    base = f"{dataset}/"
    # SageMaker ManifestFile: a prefix, then keys relative to it (kept as folders in the job)
    objects = [key.removeprefix(base) for e in entries for key in (*e["files"], e["manifest"])]
    sage_manifest = [{"prefix": f"s3://{curated_bucket}/{base}"}, *objects]
    listing = {
        "format": "sluice-run-inputs/1",
        "dataset": dataset,
        "bucket": curated_bucket,
        "window_days": window_days,
        "uploads": entries,
    }
    body = json.dumps(listing, indent=1, sort_keys=True).encode()
    digest = hashlib.sha256(body).hexdigest()
    list_key, manifest_key = f"{run_prefix}inputs/inputs.json", f"{run_prefix}inputs/manifest.json"
    s3.put_object(Bucket=artifacts_bucket, Key=list_key, Body=body, ContentType="application/json")
    s3.put_object(
        Bucket=artifacts_bucket,
        Key=manifest_key,
        Body=json.dumps(sage_manifest).encode(),
        ContentType="application/json",
    )
    return RunInputs(
        list_uri=f"s3://{artifacts_bucket}/{list_key}",
        manifest_uri=f"s3://{artifacts_bucket}/{manifest_key}",
        sha256=digest,
        uploads=len(entries),
        rows=sum(e["rows"] for e in entries),
        files=sum(len(e["files"]) for e in entries),
    )
