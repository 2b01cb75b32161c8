"""``python -m lambdas.preprocess --spec datasets/<name>.yaml INPUT OUTPUT_DIR``

Exit status: 0 the file is accepted (curated Parquet, manifest.json and, when some rows were
bad, quarantine/rows.jsonl under OUTPUT_DIR); 2 the file is rejected (the reason in
OUTPUT_DIR/rejection.json and on stderr) or cannot be processed (bad spec, no PII key, unwritable
OUTPUT_DIR); 1 an internal error. Never a traceback.

The PII key (HMAC-SHA-256) comes from ``--pii-key-file FILE`` (the file's bytes, a trailing line
break removed), else from the environment variable SLUICE_PII_KEY (its UTF-8 bytes), else from
this machine's local development key: 32 random bytes created on first use in
``$XDG_CONFIG_HOME/sluice/dev-pii.key`` (``~/.config/...``; mode 0600) and reused, so local runs
join with each other. A note on stderr says when that key is used: its hashes differ from the
deployed stack's, whose key is in Secrets Manager (Lambda and the processing job use only that).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import sys
from pathlib import Path

# numpy (imported below) starts an OpenBLAS thread pool whose threads spin for a while (~0.1
# CPU-s a run) though nothing here does linear algebra; the CPUs go to the hashing instead
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from datasets.spec import DatasetSpec, SpecError, load_spec, spec_path  # noqa: E402
from lambdas.preprocess.errors import ConfigError  # noqa: E402
from lambdas.preprocess.pipeline import process_file  # noqa: E402

PII_KEY_ENV = "SLUICE_PII_KEY"


def dev_key_path() -> Path:
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "sluice" / "dev-pii.key"


def _dev_key() -> bytes:
    """This machine's development key: created once (0600), then reused."""
    path = dev_key_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(FileExistsError):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(32) + "\n")
        key = path.read_bytes().rstrip(b"\r\n")
    except OSError as exc:
        raise ConfigError(
            f"no PII key given and the local development key {path} cannot be used "
            f"({exc.strerror}): pass --pii-key-file FILE or set {PII_KEY_ENV}"
        ) from exc
    print(
        f"note: no PII key given (--pii-key-file or {PII_KEY_ENV}); masking with this machine's "
        f"development key {path}: hashes differ from the deployed stack's",
        file=sys.stderr,
    )
    return key


def _pii_key(key_file: Path | None, spec: DatasetSpec | None) -> bytes | None:
    if key_file is not None:
        try:
            return key_file.read_bytes().rstrip(b"\r\n")
        except OSError as exc:
            raise ConfigError(f"cannot read the PII key file {key_file}: {exc.strerror}") from exc
    value = os.environ.get(PII_KEY_ENV)
    if value:
        return value.encode()
    return _dev_key() if spec is not None and spec.pii_columns else None


def _spec(args: argparse.Namespace) -> tuple[DatasetSpec | None, str | None]:
    if args.spec is not None:
        return load_spec(args.spec), None
    path = spec_path(args.dataset)
    return (load_spec(path) if path else None), args.dataset


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lambdas.preprocess",
        description="Validate an upload against its dataset spec, mask PII, curate to Parquet.",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--spec", type=Path, help="the dataset spec, datasets/<name>.yaml")
    which.add_argument("--dataset", help="a dataset name, resolved to datasets/<name>.yaml")
    parser.add_argument("input", type=Path, help="CSV, CSV.gz or Parquet file")
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--pii-key-file", type=Path, help=f"else the env var {PII_KEY_ENV}")
    parser.add_argument(
        "--workers", type=int, help="hashing threads beside the main one (default: cores - 1)"
    )
    args = parser.parse_args(argv)
    try:
        spec, dataset = _spec(args)
        outcome = process_file(
            args.input,
            args.output_dir,
            spec=spec,
            dataset=dataset,
            pii_key=_pii_key(args.pii_key_file, spec),
            workers=args.workers,
        )
    except (SpecError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        print(f"internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if outcome.rejection is not None:
        print(f"rejected: {outcome.rejection}", file=sys.stderr)
        return 2
    summary = {
        "rows_in": outcome.rows_in,
        "rows_curated": outcome.rows_curated,
        "rows_quarantined": outcome.rows_quarantined,
        "output_dir": str(outcome.output_dir),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
