"""Local time scale (``SLUICE_TIME_SCALE``): how much faster than AWS the local cloud waits.

Deployment waits (``WaitIntervalInSeconds``, ``TerminationWaitInSeconds``,
``MaximumExecutionTimeoutInSeconds``) and the evaluation periods of alarms on endpoint metrics are
AWS durations; the local cloud divides them by the scale, so a stage config that AWS accepts
(one-minute alarm periods, five-minute canaries) runs its rollouts in seconds locally. Scale 1
is real time. Nothing else is scaled: Lambda timeouts, Step Functions ``Wait`` states and job
run times are untouched.

Standard library only, so unit tests import it from the project venv.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Protocol

ENV = "SLUICE_TIME_SCALE"


def time_scale() -> float:
    """The scale set at start (``make local-up`` passes ``SLUICE_TIME_SCALE``); 1 = real time."""
    raw = os.environ.get(ENV) or "1"
    try:
        scale = float(raw)
    except ValueError:
        raise ValueError(f"{ENV}={raw!r}: expected a number > 0") from None
    if scale <= 0:
        raise ValueError(f"{ENV}={raw!r}: expected a number > 0")
    return scale


class Clock(Protocol):
    """Time in AWS seconds: what a deployment or an alarm would see on AWS."""

    def now(self) -> float:
        """AWS seconds since an arbitrary origin (monotonic)."""

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of AWS time (returns early when the clock is stopped)."""


class ScaledClock:
    """AWS time passing ``scale`` times faster than the local wall clock.

    ``stop()`` wakes every sleeper at once (a deleted endpoint ends its rollout without waiting).
    """

    def __init__(self, scale: float | None = None) -> None:
        self.scale = scale if scale is not None else time_scale()
        self._origin = time.monotonic()
        self._stopped = threading.Event()

    def now(self) -> float:
        return (time.monotonic() - self._origin) * self.scale

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopped.wait(seconds / self.scale)

    def local_seconds(self, aws_seconds: float) -> float:
        return aws_seconds / self.scale

    def stop(self) -> None:
        self._stopped.set()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()
