"""`make local-down` leaves no process and no port behind (runs last: it ends the cloud)."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from tests.integration.helpers import PORT, healthy

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
STATE = ROOT / ".local"


def _processes_of_this_cloud() -> list[str]:
    """Processes whose command line points into this checkout's local cloud."""
    markers = (str(ROOT / ".venv-local"), "serve_worker.py", "lambda_python.py", "lambda_node.js")
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if any(marker in cmdline for marker in markers) and str(ROOT) in cmdline:
            found.append(f"{proc.name}: {cmdline}")
    return found


def _port_open() -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", PORT)) == 0


def test_local_down_leaves_nothing_behind(local_cloud):
    # Given a running local cloud that has run functions, jobs and endpoints
    assert healthy()
    pid = int((STATE / "localstack.pid").read_text())
    # When it is stopped
    subprocess.run(["make", "-s", "local-down"], cwd=ROOT, check=True, timeout=120)
    # Then no process, no listener and no state is left
    assert not Path(f"/proc/{pid}").exists()
    assert _processes_of_this_cloud() == []
    assert not _port_open()
    assert not STATE.exists()
