"""Batch HMAC-SHA-256 in native code (``native/hmac_sha256.c``), loaded with ctypes.

One call hashes a whole chunk of an Arrow binary array and writes the hex digests; ctypes
releases the GIL for it, so threads hash side by side with parsing and writing. The library is
built for this machine by ``make install`` and for the function's architecture when the Lambda
asset is bundled (``infra/native.py``). Without it, masking falls back to ``hashlib`` in Python
(correct, several times slower) and says so once in the log; ``SLUICE_NATIVE_HMAC=0`` forces
that fallback.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from datasets import names

if TYPE_CHECKING:  # infra/native.py imports this module when synthesizing: no pyarrow there
    import pyarrow as pa

LIBRARY_DIR = Path(__file__).resolve().parent / "native"
_HEX_LEN = 64
IMPLEMENTATIONS = {0: "portable C", 1: "x86 SHA-NI", 2: "Armv8 SHA2"}

logger = logging.getLogger(__name__)


def library_path(system: str | None = None, cpu: str | None = None) -> Path:
    """Where the library for an OS (``linux``, ``darwin``) and CPU lives: one file per pair."""
    return LIBRARY_DIR / names.native_library_file(system, cpu)


@functools.cache
def load() -> ctypes.CDLL | None:
    """The library for this machine, or None (not built, disabled, or not loadable)."""
    if os.environ.get("SLUICE_NATIVE_HMAC", "1") == "0":
        return None
    path = library_path()
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as exc:
        logger.warning(
            "native HMAC library unavailable (%s); PII is masked in pure Python, several times "
            "slower. Build it with `make native`.",
            exc,
        )
        return None
    lib.sluice_hmac_impl.argtypes = [ctypes.c_int]
    lib.sluice_hmac_impl.restype = ctypes.c_int
    lib.sluice_hmac_prime.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p]
    lib.sluice_hmac_prime.restype = None
    lib.sluice_hmac_hex.argtypes = [
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_int64,
        ctypes.c_int,
        ctypes.c_void_p,
    ]
    lib.sluice_hmac_hex.restype = ctypes.c_int
    return lib


class NativeHmac:
    """A key's primed inner/outer SHA-256 states (the key itself is not kept) and the hasher.

    ``portable=True`` uses the portable C code even where the CPU has SHA instructions (tests
    compare both against Python's ``hmac``).
    """

    def __init__(self, lib: ctypes.CDLL, key: bytes, *, portable: bool = False) -> None:
        self._lib = lib
        self._portable = int(portable)
        self._states = (ctypes.c_uint32 * 16)()
        lib.sluice_hmac_prime(key, len(key), self._states)

    def __repr__(self) -> str:  # never show key material, not even its states
        return f"NativeHmac({self.implementation}, <redacted>)"

    @property
    def implementation(self) -> str:
        return IMPLEMENTATIONS.get(self._lib.sluice_hmac_impl(self._portable), "unknown")

    def hexdigests(self, values: pa.Array) -> bytes | bytearray:
        """The 64-character hex digests of a null-free ``binary`` array, concatenated."""
        import pyarrow as pa

        if not pa.types.is_binary(values.type) or values.null_count:
            raise TypeError("expected a null-free binary array")
        n = len(values)
        if n == 0:
            return b""
        out = bytearray(n * _HEX_LEN)  # written in place and returned as is: no copy
        _, offsets, data = values.buffers()
        # offsets are absolute into the data buffer: a slice only moves the first offset
        offsets_address = offsets.address + 4 * values.offset
        data_address = data.address if data is not None else 0
        if self._lib.sluice_hmac_hex(
            self._states,
            offsets_address,
            data_address,
            n,
            self._portable,
            (ctypes.c_char * len(out)).from_buffer(out),
        ):
            raise ValueError("invalid offsets in a binary array")
        return out


def native_hmac(key: bytes, *, portable: bool = False) -> NativeHmac | None:
    """A native hasher for ``key`` when the library is here, else None."""
    lib = load()
    return None if lib is None else NativeHmac(lib, key, portable=portable)
