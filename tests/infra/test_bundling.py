"""Docker-free Lambda bundling: what goes into an asset, for which platform."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from infra import lambda_function
from infra.lambda_function import PipLocalBundling


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "lambdas" / "echo").mkdir(parents=True)
    (tmp_path / "lambdas" / "__init__.py").write_text("")
    (tmp_path / "lambdas" / "echo" / "handler.py").write_text("def handler(e, c):\n    return e\n")
    (tmp_path / "lambdas" / "echo" / "requirements.txt").write_text("six==1.16.0\n")
    (tmp_path / "lambdas" / "echo" / "__pycache__").mkdir()
    (tmp_path / "lambdas" / "echo" / "__pycache__" / "handler.cpython-311.pyc").write_bytes(b"x")
    monkeypatch.setattr(lambda_function, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(lambda_function, "CACHE_DIR", tmp_path / ".cache")
    monkeypatch.setattr(PipLocalBundling, "_interpreter", lambda self: None)
    return tmp_path


def bundling(arch: str = "arm64") -> PipLocalBundling:
    return PipLocalBundling(
        sources=["lambdas/__init__.py", "lambdas/echo"],
        requirements="lambdas/echo/requirements.txt",
        architecture=arch,
        python_version="3.13",
    )


def test_pip_targets_the_lambda_platform_with_wheels_only(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []

    def fake_run(cmd: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        target = Path(cmd[cmd.index("--target") + 1])
        (target / "six.py").write_text("# installed\n")
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(subprocess, "run", fake_run)
    out = repo / "out"
    assert bundling("arm64").try_bundle(str(out), image=None) is True

    (cmd,) = calls
    platforms = [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "--platform"]
    assert platforms == [
        "manylinux_2_34_aarch64",
        "manylinux_2_28_aarch64",
        "manylinux_2_17_aarch64",
    ]
    assert cmd[cmd.index("--python-version") + 1] == "3.13"
    assert "--only-binary=:all:" in cmd
    assert (out / "six.py").is_file()
    assert (out / "lambdas" / "echo" / "handler.py").is_file()
    assert (out / "lambdas" / "__init__.py").is_file()
    assert not (out / "lambdas" / "echo" / "__pycache__").exists()


def test_a_second_bundle_of_the_same_sources_comes_from_the_cache(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: list[list[str]] = []

    def fake_run(cmd: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        runs.append(cmd)
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(subprocess, "run", fake_run)
    bundling().try_bundle(str(repo / "a"), image=None)
    bundling().try_bundle(str(repo / "b"), image=None)
    assert len(runs) == 1
    assert (repo / "b" / "lambdas" / "echo" / "handler.py").is_file()


def test_the_asset_hash_follows_code_requirements_and_platform(repo: Path) -> None:
    before = bundling().asset_hash
    assert bundling("x86_64").asset_hash != before
    (repo / "lambdas" / "echo" / "handler.py").write_text("def handler(e, c):\n    return 1\n")
    after_code = bundling().asset_hash
    assert after_code != before
    (repo / "lambdas" / "echo" / "requirements.txt").write_text("six==1.17.0\n")
    assert bundling().asset_hash != after_code


def test_excluded_paths_never_reach_the_asset(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_run(cmd: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        target = Path(cmd[cmd.index("--target") + 1])
        for name in ("pyarrow/include/arrow.h", "pyarrow/libarrow_s3.so.2600",
                     "pyarrow/lib.so", "boto3/__init__.py", "keep/__init__.py"):  # fmt: skip
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            (target / name).write_text("x")
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(subprocess, "run", fake_run)
    bundling = PipLocalBundling(
        sources=["lambdas/__init__.py", "lambdas/echo"],
        requirements="lambdas/echo/requirements.txt",
        architecture="arm64",
        python_version="3.13",
        exclude=("pyarrow/include", "pyarrow/libarrow_s3*", "boto3"),
    )
    out = repo / "out"
    bundling.try_bundle(str(out), image=None)
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == [
        "keep/__init__.py",
        "lambdas/__init__.py",
        "lambdas/echo/handler.py",
        "lambdas/echo/requirements.txt",
        "pyarrow/lib.so",
    ]


def test_bytecode_is_compiled_for_the_runtime_when_its_python_is_here(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []

    def fake_run(cmd: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.setattr(PipLocalBundling, "_interpreter", lambda self: "/opt/python3.13")
    bundling().try_bundle(str(repo / "out"), image=None)
    compile_cmd = calls[-1]
    assert compile_cmd[:3] == ["/opt/python3.13", "-m", "compileall"]
    assert compile_cmd[compile_cmd.index("--invalidation-mode") + 1] == "unchecked-hash"


@pytest.mark.parametrize(
    ("arch", "machine", "elf_machine"), [("arm64", "aarch64", 183), ("x86_64", "x86_64", 62)]
)
def test_native_code_is_built_for_the_function_architecture_not_copied_from_here(
    repo: Path, monkeypatch: pytest.MonkeyPatch, arch: str, machine: str, elf_machine: int
) -> None:
    real_run = subprocess.run

    def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        if "ziglang" in cmd:  # the compiler really runs; pip does not
            return real_run(cmd, **kwargs)
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(subprocess, "run", run)
    host_build = repo / "lambdas" / "echo" / "native" / "libhmac_sha256-linux-x86_64.so"
    host_build.parent.mkdir()
    host_build.write_bytes(b"\x7fELF host build")

    def bundling(native: bool) -> PipLocalBundling:
        return PipLocalBundling(
            sources=["lambdas/__init__.py", "lambdas/echo"],
            requirements=None,
            architecture=arch,
            python_version="3.13",
            native=native,
        )

    before = bundling(native=True).asset_hash
    host_build.write_bytes(b"\x7fELF another host build")
    assert bundling(native=True).asset_hash == before  # host builds are not inputs
    assert bundling(native=False).asset_hash != before

    out = repo / "out"
    bundling(native=True).try_bundle(str(out), image=None)
    (library,) = out.rglob("*.so")  # the host build was not copied
    assert library.relative_to(out).as_posix() == (
        f"lambdas/preprocess/native/libhmac_sha256-linux-{machine}.so"
    )
    header = library.read_bytes()[:20]
    assert header[:4] == b"\x7fELF"
    assert int.from_bytes(header[18:20], "little") == elf_machine
