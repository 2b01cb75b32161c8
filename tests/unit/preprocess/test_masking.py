"""The masker's concurrency: same digests whoever hashes them, and failures surface."""

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


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_same_digests_with_any_number_of_workers(workers: int) -> None:
    values: list[bytes | None] = [f"user{i}@x.io".encode() for i in range(3 * masking.CHUNK + 7)]
    values[5] = None
    values[-1] = b""
    with Masker(KEY, workers) as masker:
        pending = masker.submit({"a": pa.array(values, pa.binary()), "b": pa.array(values[:9])})
        assert masker.result(pending["a"]).to_pylist() == _expected(values)
        assert masker.result(pending["b"]).to_pylist() == _expected(values[:9])
        assert masker.mask(pa.array([], pa.string())).to_pylist() == []
        assert masker.mask_here(pa.array(["a"])).to_pylist() == _expected([b"a"])


def test_a_dead_worker_is_an_error_not_a_hang() -> None:
    values = pa.array([f"v{i}".encode() for i in range(20 * masking.CHUNK)], pa.binary())
    with Masker(KEY, 1) as masker:
        pid = masker._feeds[0].proc.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
        start = time.monotonic()
        with pytest.raises(MaskingError, match="worker failed"):
            masker.mask(values)
        assert time.monotonic() - start < 30
