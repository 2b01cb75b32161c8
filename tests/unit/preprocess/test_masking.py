"""The masker's concurrency: same digests whoever hashes them (native code in threads, or
hashlib in forked processes), and failures surface."""

from __future__ import annotations

import hashlib
import hmac
import os
import signal
import time

import pyarrow as pa
import pytest

from lambdas.preprocess import masking
from lambdas.preprocess.masking import Masker, MaskingError

KEY = b"masking-test-key-0123456789"


def _expected(values: list[bytes | None]) -> list[str | None]:
    return [None if v is None else hmac.new(KEY, v, hashlib.sha256).hexdigest() for v in values]


@pytest.mark.parametrize("native", [True, False], ids=["native", "hashlib"])
@pytest.mark.parametrize("workers", [0, 1, 2])
def test_same_digests_with_any_number_of_workers(workers: int, native: bool) -> None:
    values: list[bytes | None] = [f"user{i}@x.io".encode() for i in range(3 * masking.CHUNK + 7)]
    values[5] = None
    values[-1] = b""
    with Masker(KEY, workers, native=native) as masker:
        assert (masker.implementation != "hashlib") is native
        pending = masker.submit({"a": pa.array(values, pa.binary()), "b": pa.array(values[:9])})
        assert masker.result(pending["a"]).to_pylist() == _expected(values)
        assert masker.result(pending["b"]).to_pylist() == _expected(values[:9])
        assert masker.mask(pa.array([], pa.string())).to_pylist() == []
        assert masker.mask_here(pa.array(["a"])).to_pylist() == _expected([b"a"])


def test_a_dead_worker_is_an_error_not_a_hang() -> None:
    values = pa.array([f"v{i}".encode() for i in range(20 * masking.CHUNK)], pa.binary())
    with Masker(KEY, 1, native=False) as masker:
        pid = masker._feeds[0].proc.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
        start = time.monotonic()
        with pytest.raises(MaskingError, match="worker failed"):
            masker.mask(values)
        assert time.monotonic() - start < 30


def test_a_failing_native_thread_is_an_error_not_a_hang(monkeypatch: pytest.MonkeyPatch) -> None:
    values = pa.array([f"v{i}".encode() for i in range(20 * masking.CHUNK)], pa.binary())
    with Masker(KEY, 2) as masker:
        assert masker._native is not None

        def broken(values: pa.Array) -> bytes:
            raise ValueError("invalid offsets in a binary array")

        monkeypatch.setattr(masker._native, "hexdigests", broken)
        start = time.monotonic()
        with pytest.raises(MaskingError, match="invalid offsets"):
            masker.mask(values)
        assert time.monotonic() - start < 30
    assert all(not w.thread.is_alive() for w in masker._feeds if isinstance(w, masking._Thread))


def test_worker_threads_stop_when_the_masker_closes() -> None:
    masker = Masker(KEY, 2)
    threads = [w.thread for w in masker._feeds if isinstance(w, masking._Thread)]
    assert len(threads) == 2 and all(t.is_alive() for t in threads)
    masker.close()
    assert not any(t.is_alive() for t in threads)
