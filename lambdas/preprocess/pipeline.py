"""One upload in, curated Parquet + manifest + quarantine (or a rejection) out.

``process_file`` is the single entry point of ingestion. Batches flow through three steps so
that every core has work: while the PII of batch k is hashed (by the masker's workers and by
this process's main thread), a thread writes batch k-1 and another reads and checks batch k+1.
"""

from __future__ import annotations

import hashlib
import queue
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from datasets import features, names
from datasets.columns import (
    Problem,
    arrow_bools,
    arrow_ints,
    convert_column,
    output_type,
    oversized,
)
from datasets.spec import DatasetSpec
from lambdas.preprocess import __version__, sink
from lambdas.preprocess.convert import Layout, plan_layout
from lambdas.preprocess.errors import ConfigError, Rejection
from lambdas.preprocess.masking import Masker, default_workers
from lambdas.preprocess.source import Batch, Source, open_source

#: also runs on Python 3.10 (SageMaker's XGBoost image, for large objects): no datetime.UTC
UTC = timezone.utc  # noqa: UP017


@dataclass(frozen=True)
class SourceInfo:
    """Where the upload came from (recorded in the manifest; all optional for the CLI)."""

    bucket: str | None = None
    key: str | None = None
    version_id: str | None = None


@dataclass
class Outcome:
    accepted: bool
    output_dir: Path
    rows_in: int = 0
    rows_curated: int = 0
    rows_quarantined: int = 0
    manifest: dict[str, Any] | None = None
    rejection: Rejection | None = None


#: checked batches waiting to be hashed, and hashed ones waiting to be written
_AHEAD = 2
#: how long (s) the hashing thread keeps the GIL when a reading or writing thread wants it back
#: from Arrow (the default 5 ms would stall them on every call)
_SWITCH_INTERVAL = 0.0005
#: bytes read at a time for the upload's checksum
_CHECKSUM_BLOCK = 1 << 20


class _Stage(threading.Thread):
    """A thread at one end of a bounded queue; its error is raised in the main thread.

    A producer (``consumer=None``) runs ``work(put)``, and ``get`` returns its items then None;
    a consumer runs ``work(item)`` for each item ``put`` to it until None.
    """

    def __init__(
        self, work: Callable[..., None], consumer: int | None, stop: threading.Event, name: str
    ) -> None:
        super().__init__(daemon=True, name=name)
        self.work, self.consumer, self.stop = work, consumer is not None, stop
        self.items: queue.Queue[Any] = queue.Queue(maxsize=consumer or _AHEAD)
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            if self.consumer:
                while (item := self._get()) is not None:
                    if self.error is None:
                        self.work(item)
            else:
                self.work(self._put)
        except BaseException as exc:  # handed to the main thread
            self.error = exc
            if self.consumer:  # keep draining so the main thread never blocks on put
                while self._get() is not None:
                    pass
        finally:
            if not self.consumer:
                self._put(None)

    def _put(self, item: Any) -> bool:
        while not self.stop.is_set():
            try:
                self.items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _get(self) -> Any:
        while not self.stop.is_set():
            try:
                return self.items.get(timeout=0.1)
            except queue.Empty:
                continue
        return None

    def get(self) -> Any:
        """The producer's next item, None at its end; its error is raised here."""
        item = self._get()
        if item is None:
            self.join()
            self.raise_error()
        return item

    def put(self, item: Any) -> None:
        self._put(item)
        self.raise_error()

    def raise_error(self) -> None:
        if self.error is not None:
            raise self.error


@dataclass
class _Prepared:
    """A checked batch: good rows typed and ready but for their PII, which is being hashed."""

    columns: dict[str, pa.Array]
    pii: dict[str, pa.Array]
    hashing: dict[str, Any] = field(default_factory=dict)


class _Checksum(threading.Thread):
    """SHA-256 of the raw upload, computed beside the parsing (hashlib releases the GIL)."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.hexdigest = ""
        self.size = 0

    def run(self) -> None:
        digest = hashlib.sha256()
        # one buffer, read into again and again: a fresh one per read costs the kernel a page
        # fault (and a page to zero) every 4 KiB, more than the hashing; 1 MiB stays in cache
        buffer = bytearray(_CHECKSUM_BLOCK)
        view = memoryview(buffer)
        try:
            with self.path.open("rb", buffering=0) as fh:
                while size := fh.readinto(buffer):
                    digest.update(view[:size])
                    self.size += size
        except OSError:
            return
        self.hexdigest = digest.hexdigest()


#: the shared modules whose code decides what curated data holds (beside this package's own)
_SHARED = ("spec.py", "columns.py", "features.py")


def code_version() -> str:
    """The package version and a hash of the code that curates, recorded in every manifest."""
    digest = hashlib.sha256()
    shared = Path(features.__file__).parent
    for path in [*sorted(Path(__file__).parent.glob("*.py")), *(shared / n for n in _SHARED)]:
        digest.update(path.read_bytes())
    return f"{__version__}+{digest.hexdigest()[:12]}"


def process_file(
    input_path: Path,
    output_dir: Path,
    *,
    spec: DatasetSpec | None,
    pii_key: bytes | None,
    dataset: str | None = None,
    source: SourceInfo | None = None,
    workers: int | None = None,
) -> Outcome:
    """Curate one upload into ``output_dir``; a rejection is an outcome, not an exception.

    Raises ``ConfigError`` only when the pipeline cannot run at all (no PII key, unwritable
    output directory).
    """
    sink.prepare(output_dir)
    try:
        if spec is None:
            name = dataset or "?"
            raise Rejection(
                "undeclared_dataset",
                f"dataset {name!r} is not declared: there is no datasets/{name}.yaml",
                expected="an upload under the prefix of a declared dataset",
            )
        if spec.pii_columns and pii_key is None:
            raise ConfigError(f"spec {spec.name} has PII columns but no PII key was given")
        src = open_source(input_path)
        layout = plan_layout(spec, src.header)
        try:  # the workers are forked before any thread of ours starts
            masker = Masker(
                pii_key or b"\0" * 16, default_workers() if workers is None else workers
            )
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        checksum = _Checksum(input_path)
        checksum.start()
        with masker:
            run = _Run(spec, src, layout, masker, output_dir)
            run.all_batches()
        checksum.join()
        return run.finish(checksum, source or SourceInfo())
    except Rejection as rejection:
        sink.discard(output_dir)
        sink.write_json(output_dir / sink.REJECTION, {"rejected": True, **rejection.as_dict()})
        return Outcome(accepted=False, output_dir=output_dir, rejection=rejection)


class _Run:
    """The state of one file being processed."""

    def __init__(
        self, spec: DatasetSpec, src: Source, layout: Layout, masker: Masker, output_dir: Path
    ) -> None:
        self.spec, self.src, self.layout, self.masker = spec, src, layout, masker
        self.output_dir = output_dir
        self.schema = _curated_schema(spec, layout)
        self.curated = sink.CuratedWriter(output_dir, self.schema, spec.pii_columns)
        self.quarantine = sink.QuarantineWriter(output_dir)
        self.rows_in = 0
        self.rows_curated = 0

    # ---------------------------------------------------------------------------- the loop
    def all_batches(self) -> None:
        """Read and check (a thread), hash (here and in the workers), write (a thread).

        Parsing, checking and writing are Arrow calls that release the GIL, so they overlap
        with the hashing this thread does while it waits for a batch's digests. Batches stay
        in order; at most ``_AHEAD`` wait between two steps, so memory stays bounded.
        """
        stop = threading.Event()
        reader = _Stage(self._read_and_check, None, stop, name="preprocess-read")
        writer = _Stage(self._write, _AHEAD, stop, name="preprocess-write")
        previous = sys.getswitchinterval()
        sys.setswitchinterval(_SWITCH_INTERVAL)
        try:
            reader.start()
            writer.start()
            pending: list[_Prepared] = []
            while (prepared := reader.get()) is not None:
                prepared.hashing = self.masker.submit(prepared.pii)
                pending.append(prepared)
                if len(pending) > 1:  # k+1 is queued: finish k (hashing here meanwhile)
                    writer.put(self._collect(pending.pop(0)))
            for prepared in pending:
                writer.put(self._collect(prepared))
            writer.put(None)
            writer.join()
            writer.raise_error()
        finally:
            stop.set()
            reader.join()
            writer.join()
            sys.setswitchinterval(previous)
            self.curated_files = self.curated.close()
            self._malformed_records()
            self.quarantine.close()

    def _read_and_check(self, put: Callable[[Any], bool]) -> None:
        for batch in self.src.batches():
            if not put(self._check(batch)):
                return

    def _collect(self, prepared: _Prepared) -> pa.RecordBatch:
        hashed = {name: self.masker.result(h) for name, h in prepared.hashing.items()}
        arrays = [
            hashed[f.name] if f.name in hashed else prepared.columns[f.name] for f in self.schema
        ]
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    def _write(self, batch: pa.RecordBatch) -> None:
        self.curated.write(batch)
        self.rows_curated += batch.num_rows

    # --------------------------------------------------------------------------- checking
    def _check(self, batch: Batch) -> _Prepared:
        n = len(batch.lines)
        self.rows_in += n
        typed: dict[str, pa.Array] = {}
        problems: list[Problem] = []
        for col in self.layout.present:
            raw = batch.columns[col.name]
            values, found = convert_column(
                col, raw, col.name in self.layout.required, self.spec.na_values_for(col)
            )
            typed[col.name] = values
            problems.extend(found)
            too_long = oversized(col.name, raw)
            if too_long is not None:
                problems.append(too_long)
        for name in self.layout.keep_unknown:
            raw = batch.columns[name]
            typed[name] = raw if pa.types.is_string(raw.type) else raw.cast(pa.string())
            too_long = oversized(name, raw)
            if too_long is not None:
                problems.append(too_long)
        bad = np.zeros(n, dtype=bool)
        for problem in problems:
            bad |= problem.mask
        if bad.any():
            self._quarantine_rows(batch, problems, bad)
            keep = arrow_bools(~bad)
            typed = {name: values.filter(keep) for name, values in typed.items()}
        good = n - int(bad.sum())
        for name in self.layout.missing_optional:
            typed[name] = pa.nulls(good, output_type(self.spec.column(name)))
        for feat in self.spec.features:
            typed[feat.name] = features.compute(feat, typed)
        pii = {name: typed.pop(name) for name in self.spec.pii_columns if name in typed}
        return _Prepared(columns=typed, pii=pii)

    def _quarantine_rows(self, batch: Batch, problems: list[Problem], bad: np.ndarray) -> None:
        rows = np.flatnonzero(bad)
        take = arrow_ints(rows)
        raw = {name: values.take(take) for name, values in batch.columns.items()}
        pii = set(self.spec.pii_columns)
        for name in pii & raw.keys():
            raw[name] = self.masker.mask_here(raw[name])  # raw PII never leaves the raw bucket
        values = {name: array.to_pylist() for name, array in raw.items()}
        reasons: dict[int, list[str]] = {int(r): [] for r in rows}
        for problem in problems:
            for r in np.flatnonzero(problem.mask):
                reasons[int(r)].append(self._reason(problem, batch.columns[problem.column][r]))
        for i, r in enumerate(rows):
            row = {name: column[i] for name, column in values.items()}
            self.quarantine.add(int(batch.lines[r]), reasons[int(r)], row)

    def _reason(self, problem: Problem, raw: pa.Scalar) -> str:
        pii = problem.column in self.spec.pii_columns
        return f"{problem.column}: {problem.describe(raw.as_py(), show_value=not pii)}"

    def _malformed_records(self) -> None:
        for record in self.src.bad_records:
            self.rows_in += 1
            self.quarantine.add(
                record.line or None,
                [f"expected {record.expected} fields, found {record.fields}"],
                None,
            )

    # ------------------------------------------------------------------------------ result
    def finish(self, checksum: _Checksum, source: SourceInfo) -> Outcome:
        quarantined = self.quarantine.rows
        if self.rows_in == 0:
            raise Rejection(
                "no_rows",
                "the file has a header but no data rows",
                line=2,
                expected="at least one data row",
            )
        limit = self.spec.max_bad_row_fraction
        if quarantined > limit * self.rows_in:
            first = self.quarantine.examples[0] if self.quarantine.examples else {}
            raise Rejection(
                "too_many_bad_rows",
                f"{quarantined} of {self.rows_in} rows ({quarantined / self.rows_in:.1%}) are "
                f"bad, above the spec's max_bad_row_fraction {limit:.1%}; "
                f"first: line {first.get('line')}: {'; '.join(first.get('reasons', []))}",
                line=first.get("line"),
                expected=f"at most {limit:.1%} bad rows",
                details={
                    "rows": {"in": self.rows_in, "curated": 0, "quarantined": self.rows_in},
                    "bad_rows": quarantined,
                    "examples": self.quarantine.examples,
                },
            )
        assert self.rows_in == self.rows_curated + quarantined, "rows lost"
        manifest = self._manifest(checksum, source)
        sink.write_json(self.output_dir / sink.MANIFEST, manifest)
        return Outcome(
            accepted=True,
            output_dir=self.output_dir,
            rows_in=self.rows_in,
            rows_curated=self.rows_curated,
            rows_quarantined=quarantined,
            manifest=manifest,
        )

    def _manifest(self, checksum: _Checksum, source: SourceInfo) -> dict[str, Any]:
        spec, layout = self.spec, self.layout
        return {
            "dataset": spec.name,
            "source": {
                "bucket": source.bucket,
                "key": source.key,
                "version_id": source.version_id,
                # "feedback": labelled captured records the feedback function wrote back
                "origin": names.origin(source.key) if source.key else names.ORIGIN_UPLOAD,
                "format": self.src.format,
                "bytes": checksum.size,
                "sha256": checksum.hexdigest,
            },
            "rows": {
                "in": self.rows_in,
                "curated": self.rows_curated,
                "quarantined": self.quarantine.rows,
            },
            "blank_lines_skipped": self.src.blank_lines,
            "files": self.curated_files,
            "schema": {
                "hash": sink.schema_hash(self.schema),
                "columns": [{"name": f.name, "type": str(f.type)} for f in self.schema],
            },
            "spec": {"name": spec.name, "version": spec.version, "fingerprint": spec.fingerprint},
            "code_version": code_version(),
            "pii": {"columns": list(spec.pii_columns), "method": "hmac-sha256-hex"},
            "columns": {
                "missing_optional": layout.missing_optional,
                "dropped_unknown": layout.dropped_unknown,
                "kept_unknown": layout.keep_unknown,
            },
            "quarantine": (
                {
                    "path": f"{sink.QUARANTINE_DIR}/{sink.QUARANTINE_ROWS}",
                    "rows": self.quarantine.rows,
                }
                if self.quarantine.rows
                else None
            ),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }


def _curated_schema(spec: DatasetSpec, layout: Layout) -> pa.Schema:
    fields = [pa.field(c.name, output_type(c)) for c in spec.columns]
    fields += [pa.field(f.name, features.feature_type(f)) for f in spec.features]
    fields += [pa.field(name, pa.string()) for name in layout.keep_unknown]
    return pa.schema(fields)
