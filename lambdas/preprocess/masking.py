"""Keyed masking of PII: HMAC-SHA-256, lowercase hex, equal to ``hmac.new(key, v, sha256)``.

HMAC is the hot spot of ingestion, so three things keep it cheap (measured, see the README):
- the key's inner and outer pad states are hashed once; each value then costs two SHA-256
  compressions (``copy`` of a primed state) instead of four;
- repeated values are hashed once (``dictionary_encode``; the result is ``take``-n back);
- the values are split across forked worker processes, one per spare core, while the main
  process goes on parsing and writing. The key reaches the workers by ``fork``, never by a pipe.

Deduplication is decided on a sample: hashing a table of a million unique values costs half as
much as hashing them, so it is only paid for when the sample shows heavy repetition. Digests are
joined and hex-encoded in one C call (in the worker) and the result is built as an Arrow string
array straight from that buffer.
"""

from __future__ import annotations

import binascii
import hashlib
import multiprocessing
import os
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_BLOCK = 64
_HEX_LEN = 64
_SAMPLE = 4096
#: deduplicate when a sample holds fewer distinct values than this share
_DEDUP_BELOW = 0.5


class HmacKey:
    """A key with its primed inner/outer SHA-256 states; the key itself is not kept as text."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the PII key must be at least 16 bytes long")
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        padded = key.ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in padded))

    def __repr__(self) -> str:  # never show key material, not even its states
        return "HmacKey(<redacted>)"

    def hexdigests(self, values: Sequence[bytes]) -> bytes:
        """The 64-character hex digests of ``values``, concatenated (ASCII bytes)."""
        inner_copy, outer_copy = self._inner.copy, self._outer.copy
        out: list[bytes] = []
        append = out.append
        for value in values:
            inner = inner_copy()
            inner.update(value)
            outer = outer_copy()
            outer.update(inner.digest())
            append(outer.digest())
        return binascii.hexlify(b"".join(out))


def hex_array(hexdigests: bytes) -> pa.StringArray:
    """Concatenated 64-character hex digests as an Arrow string array."""
    n = len(hexdigests) // _HEX_LEN
    offsets = np.arange(0, (n + 1) * _HEX_LEN, _HEX_LEN, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(hexdigests))


def _worth_deduplicating(values: pa.Array) -> bool:
    n = len(values)
    if n < _SAMPLE:
        return False
    sample = values.take(np.linspace(0, n - 1, _SAMPLE, dtype=np.int64))
    return pc.count_distinct(sample).as_py() < _DEDUP_BELOW * _SAMPLE


def _as_binary(values: pa.Array) -> pa.Array:
    if pa.types.is_binary(values.type):
        return values
    if not pa.types.is_string(values.type):
        values = values.cast(pa.string())
    return values.cast(pa.binary())


def _offsets_and_data(values: pa.Array) -> tuple[bytes, memoryview]:
    """Zero-based int32 offsets and the value bytes of a null-free binary array."""
    buffers = values.buffers()
    offsets = np.frombuffer(buffers[1], dtype=np.int32)[
        values.offset : values.offset + len(values) + 1
    ]
    start, end = int(offsets[0]), int(offsets[-1])
    data = memoryview(buffers[2])[start:end] if buffers[2] is not None else memoryview(b"")
    return (offsets - start).astype(np.int32).tobytes(), data


def _values_from(offsets: bytes, data: bytes) -> list[bytes]:
    n = len(offsets) // 4 - 1
    array = pa.BinaryArray.from_buffers(
        pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )
    return array.to_pylist()


def _worker(conn: Connection, key: HmacKey) -> None:
    """Worker loop: a job is a count then (offsets, data) pairs; the hex digests go back in order.

    The whole job is read before anything is written back, so the parent can hand out every
    column of a batch before it collects; an empty count stops the worker.
    """
    while True:
        try:
            count = conn.recv_bytes()
        except EOFError:
            return
        if not count:
            return
        parts = [(conn.recv_bytes(), conn.recv_bytes()) for _ in range(int(count))]
        for offsets, data in parts:
            conn.send_bytes(key.hexdigests(_values_from(offsets, data)))


class _Pending:
    """Hashes of one array under way: what came back or which worker will send it."""

    def __init__(self, n: int, indices: pa.Array | None, nulls: pa.Array | None) -> None:
        self.n = n
        self.indices = indices  # dictionary indices when the values were deduplicated
        self.nulls = nulls
        self.parts: list[bytes | Connection] = []


class Masker:
    """Masks arrays of PII, in this process (``workers=0``) or spread over forked workers.

    ``submit`` hands a set of arrays out (each split over the workers) and returns at once;
    ``result`` waits for one of them. Collect every result of a submission before the next one:
    the pipeline does, so no pipe is written while its worker is blocked writing back.
    """

    def __init__(self, key: bytes, workers: int = 0) -> None:
        self._key = HmacKey(key)
        self._conns: list[Connection] = []
        self._procs: list[Any] = []
        if workers > 0:
            ctx = multiprocessing.get_context("fork")
            for _ in range(workers):
                parent, child = ctx.Pipe()
                proc = ctx.Process(target=_worker, args=(child, self._key), daemon=True)
                proc.start()
                child.close()
                self._conns.append(parent)
                self._procs.append(proc)

    @property
    def workers(self) -> int:
        return len(self._conns)

    def __enter__(self) -> Masker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for conn in self._conns:
            try:
                conn.send_bytes(b"")
                conn.close()
            except OSError:
                pass
        for proc in self._procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
        self._conns, self._procs = [], []

    def mask(self, values: pa.Array) -> pa.Array:
        """The masked array (nulls stay null), computed now."""
        return self.result(self.submit({"": values})[""])

    def mask_here(self, values: pa.Array) -> pa.Array:
        """The masked array, computed in this process (never touches the workers' pipes)."""
        return self.result(self.submit({"": values}, here=True)[""])

    def submit(self, arrays: dict[str, pa.Array], *, here: bool = False) -> dict[str, _Pending]:
        pending: dict[str, _Pending] = {}
        jobs: list[list[tuple[bytes, memoryview]]] = [[] for _ in self._conns]
        for name, array in arrays.items():
            values, pending[name] = self._prepare(array)
            if here or not self._conns or len(values) < 1024:
                pending[name].parts.append(self._key.hexdigests(values.to_pylist()))
                continue
            step = -(-len(values) // len(self._conns))
            for i, conn in enumerate(self._conns):
                part = values.slice(i * step, step)
                if len(part):
                    jobs[i].append(_offsets_and_data(part))
                    pending[name].parts.append(conn)
        for conn, job in zip(self._conns, jobs, strict=True):
            if job:
                conn.send_bytes(str(len(job)).encode())
                for offsets, data in job:
                    conn.send_bytes(offsets)
                    conn.send_bytes(data)
        return pending

    @staticmethod
    def _prepare(array: pa.Array) -> tuple[pa.Array, _Pending]:
        values = _as_binary(array)
        nulls = values.is_null() if values.null_count else None
        indices: pa.Array | None = None
        if _worth_deduplicating(values):
            encoded = values.dictionary_encode()
            indices, values = encoded.indices, encoded.dictionary
        elif nulls is not None:
            values = values.drop_null()
        return values, _Pending(len(array), indices, nulls)

    def result(self, pending: _Pending) -> pa.Array:
        chunks = [p if isinstance(p, bytes) else p.recv_bytes() for p in pending.parts]
        hashed = hex_array(b"".join(chunks))
        if pending.indices is not None:
            return hashed.take(pending.indices)
        if pending.nulls is not None:
            # scatter the non-null hashes back into their rows
            positions = pc.subtract(pc.cumulative_sum(pc.invert(pending.nulls).cast(pa.int64())), 1)
            return hashed.take(pc.if_else(pending.nulls, None, positions))
        return hashed


def default_workers() -> int:
    """One worker per core beyond the one the main process parses and writes on."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(cores - 1, 0)
