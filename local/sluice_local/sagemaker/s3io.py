"""Moving job inputs and outputs between the local S3 and a job's folders."""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from localstack.aws.connect import connect_to


def s3_client(account_id: str, region: str) -> Any:
    return connect_to(aws_access_key_id=account_id, region_name=region).s3


def split_uri(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"not an S3 URI: {uri!r}")
    return parsed.netloc, parsed.path.lstrip("/")


def download_prefix(s3: Any, uri: str, target: Path) -> int:
    """Download every object under ``uri`` (an S3Prefix) into ``target``; returns the count."""
    bucket, prefix = split_uri(uri)
    target.mkdir(parents=True, exist_ok=True)
    count = 0
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            key: str = item["Key"]
            if key.endswith("/"):
                continue
            relative = _relative_key(key, prefix)
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, key, str(destination))
            count += 1
    return count


def download_manifest(s3: Any, uri: str, target: Path) -> int:
    """``S3DataType: ManifestFile``: the manifest (JSON: ``[{"prefix": "s3://b/p/"}, "rel/key",
    ...]``) names the objects; each lands at its key relative to the prefix."""
    import json

    bucket, key = split_uri(uri)
    entries = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    if not entries or not isinstance(entries[0], dict) or "prefix" not in entries[0]:
        raise ValueError(f'{uri}: a manifest file starts with {{"prefix": "s3://..."}}')
    prefix_bucket, prefix = split_uri(entries[0]["prefix"])
    target.mkdir(parents=True, exist_ok=True)
    for relative in entries[1:]:
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(prefix_bucket, prefix + relative, str(destination))
    return len(entries) - 1


def download(s3: Any, uri: str, target: Path, data_type: str) -> int:
    """An S3Prefix or a ManifestFile input; other types do not run locally."""
    if data_type == "ManifestFile":
        return download_manifest(s3, uri, target)
    if data_type != "S3Prefix":
        raise ValueError(f"S3DataType {data_type} does not run locally (S3Prefix, ManifestFile)")
    return download_prefix(s3, uri, target)


def _relative_key(key: str, prefix: str) -> str:
    """Where an object under an S3Prefix lands in its channel folder."""
    if key == prefix:
        return Path(key).name
    directory = prefix if prefix.endswith("/") else prefix + "/"
    if key.startswith(directory):
        return key[len(directory) :]
    parent = prefix.rsplit("/", 1)[0] + "/" if "/" in prefix else ""
    return key[len(parent) :]


def download_file(s3: Any, uri: str, target: Path) -> None:
    bucket, key = split_uri(uri)
    target.parent.mkdir(parents=True, exist_ok=True)
    s3.download_file(bucket, key, str(target))


def upload_dir(s3: Any, source: Path, uri: str) -> int:
    bucket, prefix = split_uri(uri)
    count = 0
    for path in sorted(source.rglob("*")):
        if path.is_file():
            key = "/".join(
                part for part in (prefix.rstrip("/"), path.relative_to(source).as_posix()) if part
            )
            s3.upload_file(str(path), bucket, key)
            count += 1
    return count


def upload_file(s3: Any, source: Path, uri: str) -> None:
    bucket, key = split_uri(uri)
    s3.upload_file(str(source), bucket, key)


def pack(source: Path, archive: Path) -> None:
    """``tar czf archive -C source .`` — the layout of SageMaker's model.tar.gz."""
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(source.iterdir()):
            tar.add(path, arcname=path.name)


def unpack(archive: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:*") as tar:
        tar.extractall(target, filter="data")
