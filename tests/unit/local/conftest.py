"""Unit tests of the local cloud's pure pieces (standard library only, no LocalStack needed).

``local/`` is not installed into the project venv; its pure modules are imported from the
checkout.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

LOCAL = Path(__file__).resolve().parents[3] / "local"
if str(LOCAL) not in sys.path:
    sys.path.insert(0, str(LOCAL))


class FakeClock:
    """AWS time that passes only when something sleeps."""

    def __init__(self) -> None:
        self.t = 0.0
        self.slept: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += max(seconds, 0.0)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
