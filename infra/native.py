"""Build the native HMAC library (``lambdas/preprocess/native/hmac_sha256.c``) without Docker.

The compiler is Zig's bundled clang (the ``ziglang`` wheel from PyPI, a dev requirement), which
cross-compiles: the same machine builds the library for itself (``make native``, part of
``make install``), for the Lambda function's architecture and for the x86_64 SageMaker
Processing image when assets are bundled. Linux targets name glibc 2.17, so the library loads
on Amazon Linux 2023 (Lambda), the SageMaker images and any recent distribution.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from datasets.names import machine, native_library_file

REPO_ROOT = Path(__file__).resolve().parent.parent
#: the library's source and where the masker (``lambdas/preprocess/native_hmac.py``) loads it from
NATIVE_DIR = REPO_ROOT / "lambdas" / "preprocess" / "native"
SOURCE = NATIVE_DIR / "hmac_sha256.c"
#: machine (``uname -m``) -> Zig target
LINUX_TARGETS = {"aarch64": "aarch64-linux-gnu.2.17", "x86_64": "x86_64-linux-gnu.2.17"}
FLAGS = ("-O2", "-shared", "-fPIC", "-fvisibility=hidden", "-s", "-Wall", "-Wextra", "-Werror")


class NativeBuildError(RuntimeError):
    pass


def compiler() -> list[str]:
    """Zig's ``cc`` from this interpreter's environment."""
    try:
        import ziglang  # noqa: F401  (only to tell whether it is installed)
    except ImportError as exc:
        raise NativeBuildError(
            "building the native HMAC library needs the `ziglang` package: "
            "pip install -r requirements-dev.txt (or `make install`)"
        ) from exc
    return [sys.executable, "-m", "ziglang", "cc"]


def build(output: Path, *, target: str | None = None) -> Path:
    """Compile the library into ``output``; ``target`` is a Zig target (None: this machine)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    cmd = [*compiler(), *FLAGS, *(["-target", target] if target else []), "-o", str(output)]
    result = subprocess.run([*cmd, str(SOURCE)], check=False, capture_output=True, text=True)
    if result.returncode != 0:
        raise NativeBuildError(f"{' '.join(cmd)} failed:\n{result.stderr.strip()}")
    return output


def library_path(system: str | None = None, cpu: str | None = None) -> Path:
    return NATIVE_DIR / native_library_file(system, cpu)


def build_for_lambda(bundle: Path, cpu: str) -> Path:
    """Build the Linux library for ``cpu`` (aarch64 | x86_64) where a bundle's loader looks for
    it (the bundle mirrors the repository's layout)."""
    relative = library_path("linux", cpu).relative_to(REPO_ROOT)
    return build(bundle / relative, target=LINUX_TARGETS[cpu])


def host_target() -> str | None:
    """The generic Linux target on Linux (the very library a bundle gets), else this machine."""
    return LINUX_TARGETS.get(machine()) if sys.platform.startswith("linux") else None


def main() -> None:
    parser = argparse.ArgumentParser(description="build the native HMAC library for this machine")
    parser.parse_args()
    path = build(library_path(), target=host_target())
    print(f"built {path.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
