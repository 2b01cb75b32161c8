"""Blue/green endpoint deployments with deployment guardrails, as SageMaker documents them.

``plan()`` turns an ``UpdateEndpoint`` request's ``DeploymentConfig`` and the new (green) fleet's
capacity into traffic steps, validating what SageMaker validates:

- ALL_AT_ONCE: all traffic to green, then the final baking period (``TerminationWaitInSeconds``);
- CANARY: ``CanarySize`` of green (``INSTANCE_COUNT`` or ``CAPACITY_PERCENT``, at most 50% of the
  green fleet's capacity) gets its share of the traffic for ``WaitIntervalInSeconds``, then all
  traffic, then the final baking period;
- LINEAR: steps of ``LinearStepSize`` (10-50% of green), ``WaitIntervalInSeconds`` each, then the
  final baking period;
- no ``BlueGreenUpdatePolicy``: all at once with no baking (what SageMaker does by default).

A fleet's share of the traffic is the share of its capacity that is active: a canary of 1 of 4
instances answers a quarter of the requests. Serverless variants have no instances; only
``CAPACITY_PERCENT`` applies to them, as the share of requests (a local interpretation).

``Rollout.run()`` walks the steps on a ``Clock`` in AWS seconds, checking the
``AutoRollbackConfiguration`` alarms every ``poll`` seconds while traffic is on green (every baking
period): an alarm in ALARM, or ``MaximumExecutionTimeoutInSeconds`` passing, ends it with a
rollback. What to do with the fleets is the caller's (``endpoints.py``): the runner only says
which share to route and when it is over.

Standard library only, so unit tests import it from the project venv.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sluice_local.timescale import Clock

MAX_WAIT_SECONDS = 3600
MIN_TIMEOUT_SECONDS, MAX_TIMEOUT_SECONDS = 600, 28800
MAX_ALARMS = 10
TRAFFIC_TYPES = ("ALL_AT_ONCE", "CANARY", "LINEAR")
SIZE_TYPES = ("INSTANCE_COUNT", "CAPACITY_PERCENT")
#: how often (AWS seconds) the alarms are read during a baking period
POLL_SECONDS = 5.0


class DeploymentConfigError(ValueError):
    """The request is one SageMaker would refuse (a ValidationException)."""


@dataclass(frozen=True)
class Step:
    #: share of the endpoint's requests the new fleet answers during this step
    share: float
    #: how long the step bakes (AWS seconds) with the alarms watched
    bake_seconds: float
    #: the last step: all traffic on green, baking before the old fleet is terminated
    final: bool = False


@dataclass(frozen=True)
class Plan:
    mode: str
    steps: tuple[Step, ...]
    alarms: tuple[str, ...] = ()
    timeout_seconds: float = MAX_TIMEOUT_SECONDS

    @property
    def guarded(self) -> bool:
        """Whether anything is watched (baking with alarms); unguarded plans switch at once."""
        return bool(self.alarms) and any(step.bake_seconds > 0 for step in self.steps)


def plan(deployment_config: Mapping[str, Any] | None, capacity: int | None) -> Plan:
    """The steps of a deployment; ``capacity`` is the green fleet's instance count, None when
    serverless. Raises ``DeploymentConfigError`` for what SageMaker rejects."""
    config = deployment_config or {}
    alarms = _alarms(config.get("AutoRollbackConfiguration"))
    blue_green = config.get("BlueGreenUpdatePolicy")
    if config.get("RollingUpdatePolicy"):
        if blue_green:
            raise DeploymentConfigError(
                "Only one update policy may be given: BlueGreenUpdatePolicy or RollingUpdatePolicy."
            )
        raise DeploymentConfigError(
            "RollingUpdatePolicy is not emulated by the local cloud; use BlueGreenUpdatePolicy."
        )
    if not blue_green:
        return Plan("ALL_AT_ONCE", (Step(1.0, 0.0, final=True),), alarms)
    routing = blue_green.get("TrafficRoutingConfiguration")
    if not routing:
        raise DeploymentConfigError(
            "BlueGreenUpdatePolicy.TrafficRoutingConfiguration is required."
        )
    mode = routing.get("Type")
    if mode not in TRAFFIC_TYPES:
        raise DeploymentConfigError(
            f"TrafficRoutingConfiguration.Type {mode!r} is not one of {', '.join(TRAFFIC_TYPES)}."
        )
    wait = _seconds(
        routing.get("WaitIntervalInSeconds", 0), "WaitIntervalInSeconds", 0, MAX_WAIT_SECONDS
    )
    termination = _seconds(
        blue_green.get("TerminationWaitInSeconds", 0),
        "TerminationWaitInSeconds",
        0,
        MAX_WAIT_SECONDS,
    )
    timeout = _seconds(
        blue_green.get("MaximumExecutionTimeoutInSeconds", MAX_TIMEOUT_SECONDS),
        "MaximumExecutionTimeoutInSeconds",
        MIN_TIMEOUT_SECONDS,
        MAX_TIMEOUT_SECONDS,
    )
    final = Step(1.0, termination, final=True)
    if mode == "ALL_AT_ONCE":
        return Plan(mode, (final,), alarms, timeout)
    if mode == "CANARY":
        share = _share(routing.get("CanarySize"), "CanarySize", capacity, low=0.0, high=0.5)
        return Plan(mode, (Step(share, wait), final), alarms, timeout)
    step = _share(routing.get("LinearStepSize"), "LinearStepSize", capacity, low=0.1, high=0.5)
    count = math.ceil(1 / step - 1e-9)
    shares = [min(1.0, step * (i + 1)) for i in range(count)]
    # the last step is the full shift, followed by the final baking period only
    steps = [*(Step(share, wait) for share in shares[:-1]), final]
    return Plan(mode, tuple(steps), alarms, timeout)


def _alarms(rollback: Mapping[str, Any] | None) -> tuple[str, ...]:
    if not rollback:
        return ()
    alarms = rollback.get("Alarms") or []
    if not 1 <= len(alarms) <= MAX_ALARMS:
        raise DeploymentConfigError(
            f"AutoRollbackConfiguration.Alarms must name between 1 and {MAX_ALARMS} alarms."
        )
    return tuple(alarm["AlarmName"] for alarm in alarms)


def _seconds(value: Any, name: str, low: int, high: int) -> float:
    number = int(value)
    if not low <= number <= high:
        raise DeploymentConfigError(f"{name} must be between {low} and {high}, got {number}.")
    return float(number)


def _share(
    size: Mapping[str, Any] | None, name: str, capacity: int | None, *, low: float, high: float
) -> float:
    """Share of the green fleet a step activates, validated against SageMaker's bounds."""
    if not size:
        raise DeploymentConfigError(
            f"TrafficRoutingConfiguration.{name} is required for this Type."
        )
    kind, value = size.get("Type"), int(size.get("Value", 0))
    if kind not in SIZE_TYPES:
        raise DeploymentConfigError(f"{name}.Type {kind!r} is not one of {', '.join(SIZE_TYPES)}.")
    if value < 1:
        raise DeploymentConfigError(f"{name}.Value must be at least 1.")
    bounds = f"between {low:.0%} and {high:.0%}" if low else f"at most {high:.0%}"
    if capacity is None:
        if kind == "INSTANCE_COUNT":
            raise DeploymentConfigError(
                f"{name}.Type INSTANCE_COUNT does not apply to serverless variants."
            )
        share = value / 100
    elif kind == "INSTANCE_COUNT":
        share = value / capacity
    else:
        instances = math.floor(capacity * value / 100)
        if instances < 1:
            raise DeploymentConfigError(
                f"{name} of {value}% of {capacity} instance(s) is less than one instance."
            )
        share = instances / capacity
    if not low - 1e-9 <= share <= high + 1e-9:
        of = f"{capacity} instance(s)" if capacity is not None else "the capacity"
        raise DeploymentConfigError(
            f"{name} {value} {kind} must be {bounds} of the new fleet's capacity ({of})."
        )
    return share


def to_green(share: float, draw: Callable[[], float]) -> bool:
    """Whether one request goes to the new fleet: with probability ``share`` (``draw`` is a
    uniform [0, 1) source, ``random.random`` in the endpoint)."""
    return share > 0 and draw() < share


# ---------------------------------------------------------------- running a plan


@dataclass
class Outcome:
    succeeded: bool
    #: the alarm that tripped, or None (success, timeout, cancelled)
    alarm: str | None = None
    reason: str | None = None
    #: AWS seconds from the start of the traffic shift to the end
    elapsed: float = 0.0


@dataclass
class Rollout:
    """Walks a ``Plan``. ``shift(share, step)`` routes ``share`` of the requests to the new fleet;
    ``alarms_in_alarm(names)`` returns the names among ``names`` whose state is ALARM;
    ``cancelled()`` ends it early (the endpoint was deleted)."""

    plan: Plan
    clock: Clock
    shift: Callable[[float, Step], None]
    alarms_in_alarm: Callable[[Sequence[str]], list[str]]
    cancelled: Callable[[], bool] = field(default=lambda: False)
    poll_seconds: float = POLL_SECONDS

    def run(self, started: float | None = None) -> Outcome:
        """``started``: when the update began (AWS seconds on ``clock``), for the timeout."""
        start = self.clock.now() if started is None else started
        deadline = start + self.plan.timeout_seconds
        for step in self.plan.steps:
            self.shift(step.share, step)
            outcome = self._bake(step, start, deadline)
            if outcome is not None:
                return outcome
        return Outcome(True, elapsed=self.clock.now() - start)

    def _bake(self, step: Step, start: float, deadline: float) -> Outcome | None:
        until = self.clock.now() + step.bake_seconds
        while True:
            if self.cancelled():
                return Outcome(
                    False, reason="the endpoint was deleted", elapsed=self.clock.now() - start
                )
            tripped = self.alarms_in_alarm(self.plan.alarms) if self.plan.alarms else []
            if tripped:
                return Outcome(
                    False,
                    alarm=tripped[0],
                    reason=f"CloudWatch alarm(s) {', '.join(tripped)} in ALARM state",
                    elapsed=self.clock.now() - start,
                )
            now = self.clock.now()
            if now >= deadline:
                return Outcome(
                    False,
                    reason=(
                        "the deployment exceeded MaximumExecutionTimeoutInSeconds "
                        f"({self.plan.timeout_seconds:.0f})"
                    ),
                    elapsed=now - start,
                )
            if now >= until:
                return None
            self.clock.sleep(min(self.poll_seconds, until - now, deadline - now))
