"""The native HMAC-SHA-256 (lambdas/preprocess/native): equal to Python's ``hmac``, byte for byte,
for every length that changes the padding, every kind of key, each implementation, and on Arm."""

from __future__ import annotations

import hashlib
import hmac
import os
import random
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from infra import native
from lambdas.preprocess import native_hmac

HERE = Path(__file__).resolve().parent
#: 0..299 crosses every padding case (55/56/63/64 bytes, one to five blocks); then long values
LENGTHS = [*range(300), 1000, 4095, 4096, 70_000]
KEYS = [b"k" * 16, os.urandom(32), os.urandom(63), os.urandom(64), os.urandom(65), os.urandom(200)]


def _values(seed: int = 0) -> list[bytes]:
    rnd = random.Random(seed)
    return [rnd.randbytes(n) for n in LENGTHS]


def _expected(key: bytes, values: list[bytes]) -> bytes:
    return b"".join(hmac.new(key, v, hashlib.sha256).hexdigest().encode() for v in values)


@pytest.fixture
def lib() -> Iterator[object]:
    native_hmac.load.cache_clear()
    loaded = native_hmac.load()
    if loaded is None and sys.platform.startswith("linux"):
        pytest.fail(f"{native_hmac.library_path()} is not built: run `make native`")
    if loaded is None:
        pytest.skip("the native library is built for Linux by make install")
    yield loaded
    native_hmac.load.cache_clear()


@pytest.mark.parametrize("portable", [False, True], ids=["best", "portable"])
@pytest.mark.parametrize("key", KEYS, ids=[f"key{len(k)}" for k in KEYS])
def test_equal_to_python_hmac(lib: object, key: bytes, portable: bool) -> None:
    values = _values()
    hasher = native_hmac.native_hmac(key, portable=portable)
    assert hasher is not None
    assert hasher.hexdigests(pa.array(values, pa.binary())) == _expected(key, values)


def test_the_best_implementation_is_the_cpus_sha_instructions_when_it_has_them(lib: object) -> None:
    hasher = native_hmac.native_hmac(KEYS[0])
    assert hasher is not None
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    if " sha_ni" in flags:
        assert hasher.implementation == "x86 SHA-NI"
    elif " sha2" in flags:
        assert hasher.implementation == "Armv8 SHA2"
    assert native_hmac.native_hmac(KEYS[0], portable=True).implementation == "portable C"  # type: ignore[union-attr]


def test_a_slice_hashes_its_own_values(lib: object) -> None:
    values = _values(1)
    array = pa.array(values, pa.binary())
    hasher = native_hmac.native_hmac(KEYS[1])
    assert hasher is not None
    assert hasher.hexdigests(array.slice(17, 40)) == _expected(KEYS[1], values[17:57])
    assert hasher.hexdigests(array.slice(3, 0)) == b""
    assert hasher.hexdigests(pa.array([b"", b""], pa.binary())) == _expected(KEYS[1], [b"", b""])


def test_what_it_cannot_hash_is_an_error(lib: object) -> None:
    hasher = native_hmac.native_hmac(KEYS[0])
    assert hasher is not None
    with pytest.raises(TypeError):
        hasher.hexdigests(pa.array([b"a", None], pa.binary()))
    with pytest.raises(TypeError):
        hasher.hexdigests(pa.array(["a"], pa.string()))
    bad = pa.BinaryArray.from_buffers(
        pa.binary(), 2, [None, pa.py_buffer(struct.pack("<3i", 0, 5, 2)), pa.py_buffer(b"abcde")]
    )
    with pytest.raises(ValueError, match="invalid offsets"):
        hasher.hexdigests(bad)


def test_no_key_material_in_its_repr(lib: object) -> None:
    key = b"super-secret-pii-key-0123"
    hasher = native_hmac.native_hmac(key)
    assert "super-secret" not in repr(hasher)
    assert "redacted" in repr(hasher)


def test_it_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLUICE_NATIVE_HMAC", "0")
    native_hmac.load.cache_clear()
    try:
        assert native_hmac.load() is None
        assert native_hmac.native_hmac(KEYS[0]) is None
    finally:
        native_hmac.load.cache_clear()


def test_library_names_follow_the_os_and_cpu() -> None:
    assert native_hmac.library_path("linux", "arm64").name == "libhmac_sha256-linux-aarch64.so"
    assert native_hmac.library_path("linux2", "AMD64").name == "libhmac_sha256-linux-x86_64.so"
    assert native_hmac.library_path("darwin", "arm64").name == "libhmac_sha256-darwin-aarch64.so"


@pytest.mark.skipif(shutil.which("qemu-aarch64") is None, reason="needs qemu-user (qemu-aarch64)")
def test_on_arm_with_and_without_its_sha2_instructions(tmp_path: Path) -> None:
    """Lambda's default architecture is arm64 (Graviton): run the Arm build under qemu-user."""
    exe = tmp_path / "hmac_cli"
    subprocess.run(
        [*native.compiler(), "-O2", "-static", "-target", "aarch64-linux-musl", "-o", str(exe),
         str(HERE / "native" / "hmac_cli.c"), str(native.SOURCE)],
        check=True,
    )  # fmt: skip
    values, key = _values(2), KEYS[4]
    offsets = [0]
    for v in values:
        offsets.append(offsets[-1] + len(v))
    stdin = b"".join(
        [struct.pack("<I", len(key)), key, struct.pack("<I", len(values)),
         struct.pack(f"<{len(offsets)}i", *offsets), *values]
    )  # fmt: skip
    expected = _expected(key, values)
    # Neoverse N1 is Graviton2's core: it has the SHA2 instructions Lambda's arm64 uses
    cmd = ["qemu-aarch64", "-cpu", "neoverse-n1", str(exe)]
    run = subprocess.run(cmd, input=stdin, capture_output=True, check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout[:1] == b"2"  # Armv8 SHA2 chosen
    assert run.stdout[1 : 1 + len(expected)] == expected, "Armv8 SHA2 implementation"
    assert run.stdout[1 + len(expected) :] == expected, "portable C on Arm"
