"""Keyed masking of PII: HMAC-SHA-256, lowercase hex, equal to ``hmac.new(key, v, sha256)``.

HMAC is the hot spot of ingestion, so these things keep it cheap (measured, see the README):
- the key's inner and outer pad states are hashed once; each value then costs two SHA-256
  compressions instead of four;
- the hashing itself is native (``native_hmac``: one ctypes call a chunk, the CPU's SHA
  instructions, no GIL held), about 0.18 µs a value instead of about 1 µs with ``hashlib``;
- repeated values are hashed once (``dictionary_encode``; the result is ``take``-n back);
- the values are cut into chunks that every core takes from one queue: worker threads (one per
  core beyond the first) and this thread, which hashes whatever is still queued while it waits
  for a result. Parsing and writing run in threads beside them and release the GIL too.

Without the native library (not built for this platform, or ``SLUICE_NATIVE_HMAC=0``) the same
queue feeds forked worker processes that hash with ``hashlib`` (the GIL would serialise
threads): each is fed and drained by two threads of this process, receives a chunk as raw
offsets + bytes and sends back raw 32-byte digests. The key reaches them by ``fork``, never by a
pipe.

Deduplication is decided on a sample: hashing a table of a million unique values costs more
than hashing them, so it is only paid for when the sample shows heavy repetition.
"""

from __future__ import annotations

import binascii
import collections
import contextlib
import hashlib
import multiprocessing
import os
import threading
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

try:
    import fcntl
except ImportError:  # not POSIX
    fcntl = None  # type: ignore[assignment]

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from datasets.columns import arrow_ints
from lambdas.preprocess.native_hmac import NativeHmac, native_hmac

_BLOCK = 64
_HEX_LEN = 64
_DIGEST_LEN = 32
_SAMPLE = 4096
#: deduplicate when a sample holds fewer distinct values than this share
_DEDUP_BELOW = 0.5
#: values per chunk of work (~10 ms of hashing): small enough to balance, large enough to ship
CHUNK = 16_384
#: chunks a worker holds at once (one being hashed, one on its way)
_IN_FLIGHT = 2
#: pipe size asked for: a chunk's digests (CHUNK * 32 bytes) and more
_PIPE_BYTES = 1 << 20


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

    def digests(self, values: Sequence[bytes]) -> bytes:
        """The raw 32-byte digests of ``values``, concatenated."""
        inner_copy, outer_copy = self._inner.copy, self._outer.copy
        out: list[bytes] = []
        append = out.append
        for value in values:
            inner = inner_copy()
            inner.update(value)
            outer = outer_copy()
            outer.update(inner.digest())
            append(outer.digest())
        return b"".join(out)

    def hexdigests(self, values: Sequence[bytes]) -> bytes:
        """The 64-character hex digests of ``values``, concatenated (ASCII bytes)."""
        return binascii.hexlify(self.digests(values))


def hex_array(hexdigests: bytes) -> pa.StringArray:
    """Concatenated 64-character hex digests as an Arrow string array."""
    n = len(hexdigests) // _HEX_LEN
    offsets = np.arange(0, (n + 1) * _HEX_LEN, _HEX_LEN, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(hexdigests))


def _worth_deduplicating(values: pa.Array) -> bool:
    n = len(values)
    if n < _SAMPLE:
        return False
    sample = values.take(arrow_ints(np.linspace(0, n - 1, _SAMPLE, dtype=np.int64)))
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


def _worker(jobs: Connection, results: Connection, key: HmacKey) -> None:
    """Worker loop: a chunk is (offsets, data); its raw digests go back, in order.

    An empty message (or a closed pipe) stops the worker.
    """
    while True:
        try:
            offsets = jobs.recv_bytes()
            if not offsets:
                return
            data = jobs.recv_bytes()
        except (EOFError, OSError):
            return
        results.send_bytes(key.digests(_values_from(offsets, data)))


def _widen(conn: Connection) -> None:
    """Grow a pipe to hold a whole chunk (Linux), so a writer rarely waits for its reader.

    The threads that read and write the pipes here need the GIL between reads; with the
    default 64 KiB a worker would stall on every result while this process hashes.
    """
    setsize = getattr(fcntl, "F_SETPIPE_SZ", None) if fcntl is not None else None
    if setsize is None:
        return
    # above /proc/sys/fs/pipe-max-size it fails: the default size works, only slower
    with contextlib.suppress(OSError):
        fcntl.fcntl(conn.fileno(), setsize, _PIPE_BYTES)


class MaskingError(RuntimeError):
    """A hashing worker died or its pipe broke: the file cannot be masked."""


class _Chunk:
    """Up to CHUNK values to hash, and their hex digests once someone has."""

    __slots__ = ("done", "error", "length", "result", "values")

    def __init__(self, values: pa.Array) -> None:
        self.values: pa.Array | None = values
        self.length = len(values)
        self.result: bytes | bytearray = b""
        self.error: BaseException | None = None
        self.done = threading.Event()

    def finish(self, result: bytes | bytearray = b"", error: BaseException | None = None) -> None:
        self.result, self.error, self.values = result, error, None
        self.done.set()


class _Pending:
    """Hashes of one array under way: its chunks, and how to put the rows back together."""

    def __init__(self, n: int, indices: pa.Array | None, nulls: pa.Array | None) -> None:
        self.n = n
        self.indices = indices  # dictionary indices when the values were deduplicated
        self.nulls = nulls
        self.chunks: list[_Chunk] = []


class _Feed:
    """One worker process and the two threads of this process that feed and drain its pipe.

    The sender takes chunks from the shared queue (at most ``_IN_FLIGHT`` at once) and writes
    them; the receiver reads the digests back. Sending and receiving never wait on each other,
    so a full pipe cannot deadlock. If the worker dies, its chunks (and every later one it
    would have taken) fail with ``MaskingError`` instead of hanging.
    """

    def __init__(self, masker: Masker, ctx: Any) -> None:
        self.masker = masker
        jobs_in, jobs_out = ctx.Pipe(duplex=False)
        results_in, results_out = ctx.Pipe(duplex=False)
        for conn in (jobs_out, results_out):
            _widen(conn)
        self.proc = ctx.Process(
            target=_worker, args=(jobs_in, results_out, masker._key), daemon=True
        )
        self.proc.start()
        jobs_in.close()
        results_out.close()
        self.jobs: Connection = jobs_out
        self.results: Connection = results_in
        self.slots = threading.Semaphore(_IN_FLIGHT)
        self.sent: collections.deque[_Chunk] = collections.deque()
        self.sent_ready = threading.Semaphore(0)
        self.broken: BaseException | None = None
        self.sender = threading.Thread(target=self._send, daemon=True, name="mask-send")
        self.receiver = threading.Thread(target=self._receive, daemon=True, name="mask-recv")

    def start(self) -> None:
        """Start the threads (after every worker is forked: a fork copies no running thread)."""
        self.sender.start()
        self.receiver.start()

    def _send(self) -> None:
        try:
            while True:
                self.slots.acquire()
                chunk = self.masker._next_chunk(block=True)
                if chunk is None or self.broken is not None:
                    if chunk is not None:
                        chunk.finish(error=self.broken)
                    break
                assert chunk.values is not None
                offsets, data = _offsets_and_data(chunk.values)
                self.sent.append(chunk)
                self.sent_ready.release()
                self.jobs.send_bytes(offsets)
                self.jobs.send_bytes(data)
        except (OSError, ValueError) as exc:
            self._fail(exc)
        finally:
            self.sent.append(_STOP)
            self.sent_ready.release()

    def _receive(self) -> None:
        while True:
            self.sent_ready.acquire()
            chunk = self.sent.popleft()
            if chunk is _STOP:
                return
            if self.broken is None:
                try:
                    result = self.results.recv_bytes()
                except (EOFError, OSError) as exc:
                    self._fail(exc)
                else:
                    if len(result) != _DIGEST_LEN * chunk.length:
                        self._fail(RuntimeError("short result"))
                    else:
                        chunk.finish(binascii.hexlify(result))
                        self.slots.release()
                        continue
            chunk.finish(error=self.broken)
            self.slots.release()

    def _fail(self, exc: BaseException) -> None:
        if self.broken is None:
            code = self.proc.exitcode
            self.broken = MaskingError(
                f"a PII hashing worker failed ({type(exc).__name__}"
                + (f", exit code {code}" if code is not None else "")
                + ")"
            )
            self.masker._wake()

    def close(self) -> None:
        """Stop the sender (the masker is closing: no chunk is left), then the worker."""
        self.slots.release()  # in case the sender waits for a free slot
        if self.sender.is_alive():
            self.sender.join(timeout=5)
        if not self.sender.is_alive():  # nobody else writes to the pipe now
            with contextlib.suppress(OSError, ValueError):
                self.jobs.send_bytes(b"")
        self.proc.join(timeout=5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(timeout=5)
        if self.receiver.is_alive():
            self.receiver.join(timeout=5)
        self.jobs.close()
        self.results.close()


class _Thread:
    """A thread that hashes queued chunks natively (the GIL is released while it does)."""

    def __init__(self, masker: Masker) -> None:
        self.masker = masker
        self.thread = threading.Thread(target=self._run, daemon=True, name="mask-native")

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        while (chunk := self.masker._next_chunk(block=True)) is not None:
            self.masker._hash_here(chunk)

    def close(self) -> None:
        """The masker is closing: the queue is empty and ``_next_chunk`` returns None."""
        self.thread.join(timeout=5)


class Masker:
    """Masks arrays of PII, in this thread (``workers=0``) or also in worker threads (native
    hashing) or forked worker processes (``hashlib``, when the native library is missing).

    ``submit`` queues a set of arrays (cut into chunks) and returns at once; ``result`` waits
    for one of them, hashing queued chunks here in the meantime. Safe to use from several
    threads; ``mask_here`` never involves the workers.
    """

    def __init__(self, key: bytes, workers: int = 0, *, native: bool = True) -> None:
        self._key = HmacKey(key)
        self._native: NativeHmac | None = native_hmac(key) if native else None
        self._queue: collections.deque[_Chunk] = collections.deque()
        self._cond = threading.Condition()
        self._closing = False
        self._feeds: list[_Feed | _Thread] = []
        if workers > 0 and self._native is not None:
            self._feeds.extend(_Thread(self) for _ in range(workers))
            for worker in self._feeds:
                worker.start()
        elif workers > 0:
            ctx = multiprocessing.get_context("fork")
            try:
                for _ in range(workers):
                    self._feeds.append(_Feed(self, ctx))
            except BaseException:
                self.close()
                raise
            for feed in self._feeds:
                feed.start()

    @property
    def workers(self) -> int:
        return len(self._feeds)

    @property
    def implementation(self) -> str:
        """How values are hashed here: the native code's instruction set, or hashlib."""
        return self._native.implementation if self._native is not None else "hashlib"

    def __enter__(self) -> Masker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._cond:
            self._closing = True
            while self._queue:  # nobody will hash these any more
                self._queue.popleft().finish(error=MaskingError("the masker was closed"))
            self._cond.notify_all()
        for feed in self._feeds:
            feed.close()
        self._feeds = []

    # ------------------------------------------------------------------------- the queue
    def _next_chunk(self, *, block: bool) -> _Chunk | None:
        with self._cond:
            while not self._queue:
                if not block or self._closing:
                    return None
                self._cond.wait()
            return self._queue.popleft()

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _hash_here(self, chunk: _Chunk) -> None:
        """Hash a chunk in this thread; an error goes to whoever reads the chunk's result."""
        assert chunk.values is not None
        try:
            if self._native is not None:
                chunk.finish(self._native.hexdigests(chunk.values))
            else:
                chunk.finish(binascii.hexlify(self._key.digests(chunk.values.to_pylist())))
        except Exception as exc:
            chunk.finish(error=exc)
        except BaseException as exc:  # an interrupt: still release the readers, then stop
            chunk.finish(error=exc)
            raise

    # ------------------------------------------------------------------------------ API
    def mask(self, values: pa.Array) -> pa.Array:
        """The masked array (nulls stay null), computed now."""
        return self.result(self.submit({"": values})[""])

    def mask_here(self, values: pa.Array) -> pa.Array:
        """The masked array, computed in this thread (never touches the workers' pipes)."""
        return self.result(self.submit({"": values}, here=True)[""])

    def submit(self, arrays: dict[str, pa.Array], *, here: bool = False) -> dict[str, _Pending]:
        pending: dict[str, _Pending] = {}
        queued: list[_Chunk] = []
        for name, array in arrays.items():
            values, pending[name] = self._prepare(array)
            if here or not self._feeds or len(values) < 1024:
                chunk = _Chunk(values)
                self._hash_here(chunk)
                pending[name].chunks.append(chunk)
                continue
            for start in range(0, len(values), CHUNK):
                chunk = _Chunk(values.slice(start, CHUNK))
                pending[name].chunks.append(chunk)
                queued.append(chunk)
        if queued:
            with self._cond:
                self._queue.extend(queued)
                self._cond.notify_all()
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
        """The masked array of one submitted array; hashes queued chunks while it waits."""
        for chunk in pending.chunks:
            while not chunk.done.is_set():
                mine = self._next_chunk(block=False)
                if mine is not None:
                    self._hash_here(mine)
                else:
                    chunk.done.wait(0.05)
            if chunk.error is not None:
                if isinstance(chunk.error, MaskingError):
                    raise chunk.error
                raise MaskingError(f"PII hashing failed: {chunk.error!r}") from chunk.error
        hashed = hex_array(b"".join(c.result for c in pending.chunks))
        if pending.indices is not None:
            return hashed.take(pending.indices)
        if pending.nulls is not None:
            # scatter the non-null hashes back into their rows
            positions = pc.subtract(pc.cumulative_sum(pc.invert(pending.nulls).cast(pa.int64())), 1)
            return hashed.take(pc.if_else(pending.nulls, None, positions))
        return hashed


_STOP = _Chunk(pa.nulls(0, pa.binary()))  # not pa.array([]): that imports pandas


def default_workers() -> int:
    """One worker per core beyond the first (this thread hashes too, between its other work)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(cores - 1, 0)
