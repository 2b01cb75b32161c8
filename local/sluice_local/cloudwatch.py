"""Endpoint metrics into the local CloudWatch, and alarms on them and on the app's own metrics
evaluated at the local time scale.

- ``record_invocation`` publishes what SageMaker publishes per ``InvokeEndpoint`` request
  (``metrics.endpoint_invocation``) with ``PutMetricData``, batched off the request path.
- The same samples go straight into ``STORE`` (exact times, no batching delay), and so does any
  other ``PutMetricData`` to ``AWS/SageMaker`` or to a custom namespace (one not starting with
  ``AWS/``: metrics an application publishes itself, such as Sluice's ``DriftMax`` and
  ``ModelQuality``). The per-``EndpointConfigName`` series AWS adds
  during deployments is kept there only: LocalStack matches dimension sets as supersets in
  GetMetricStatistics, so publishing it would double the numbers a query on (EndpointName,
  VariantName) returns.
- Metric alarms in ``AWS/SageMaker`` and in custom namespaces are evaluated here, not by
  LocalStack's scheduler (which runs Period x EvaluationPeriods seconds after creation on the
  wall clock and skips percentile statistics): every minute of AWS time (or every period, when
  shorter) divided by ``SLUICE_TIME_SCALE``, over the complete periods of
  ``Period / SLUICE_TIME_SCALE`` local seconds, as ``alarms.evaluate`` decides, with
  ``SetAlarmState`` on a change, so history, actions (SNS) and ``DescribeAlarms`` behave as
  LocalStack's own transitions do.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from localstack.aws.connect import connect_to

from sluice_local import alarms, metrics
from sluice_local.timescale import time_scale

LOG = logging.getLogger(__name__)
NAMESPACE = metrics.SAGEMAKER_NAMESPACE
#: local seconds a complete period waits for late metric data before it is evaluated
GRACE_SECONDS = 0.4
#: service principal marking the endpoint metrics this extension publishes
PUBLISHER = "sagemaker"
#: how often the alarm list is read again (local seconds)
ALARM_LIST_SECONDS = 1.0

STORE = metrics.MetricStore()
_PUBLISHERS: dict[tuple[str, str], metrics.Publisher] = {}
_LOCK = threading.Lock()


#: (account, region) pairs with alarms evaluated here
_WATCHED: set[tuple[str, str]] = set()


def _cloudwatch(account: str, region: str) -> Any:
    return connect_to(aws_access_key_id=account, region_name=region).cloudwatch


def describe_alarms(
    account: str, region: str, names: list[str] | tuple[str, ...]
) -> list[dict[str, Any]]:
    """The metric and composite alarms among ``names`` that exist."""
    client, found = _cloudwatch(account, region), []
    for start in range(0, len(names), 100):
        response = client.describe_alarms(AlarmNames=list(names[start : start + 100]))
        found.extend(response.get("MetricAlarms", []) + response.get("CompositeAlarms", []))
    return found


def _publisher(account: str, region: str) -> metrics.Publisher:
    with _LOCK:
        publisher = _PUBLISHERS.get((account, region))
        if publisher is None:
            client = _cloudwatch(account, region)

            def put(namespace: str, data: list[dict[str, Any]]) -> None:
                # marked as SageMaker's own: STORE has these samples already
                client.request_metadata(service_principal=PUBLISHER).put_metric_data(
                    Namespace=namespace, MetricData=data
                )

            publisher = _PUBLISHERS[(account, region)] = metrics.Publisher(put)
        return publisher


def record_invocation(
    account: str, region: str, invocation: metrics.Invocation, config_name: str | None
) -> None:
    """Publish one request's endpoint metrics (never raises into the request)."""
    try:
        data = metrics.endpoint_invocation(invocation)
        _publisher(account, region).publish(NAMESPACE, data)
        STORE.add(account, region, NAMESPACE, data)
        if config_name:
            per_config = [
                {
                    **datum,
                    "Dimensions": [
                        *datum["Dimensions"],
                        {"Name": "EndpointConfigName", "Value": config_name},
                    ],
                }
                for datum in data
            ]
            STORE.add(account, region, NAMESPACE, per_config)
        _EVALUATOR.watch(account, region)
    except Exception:
        LOG.warning("endpoint metrics for %s not recorded", invocation.endpoint, exc_info=True)


# ---------------------------------------------------------------- evaluation


class _Evaluator:
    """One daemon thread evaluating the alarms ``alarms.evaluated_here`` of watched accounts."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        #: alarm ARN -> the last period boundary it was evaluated at
        self._evaluated: dict[str, float] = {}
        self._alarms: dict[tuple[str, str], tuple[float, list[dict[str, Any]]]] = {}

    def watch(self, account: str, region: str) -> None:
        with self._lock:
            _WATCHED.add((account, region))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="sluice-alarm-evaluator", daemon=True
                )
                self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            tick = 1.0
            for account, region in list(_WATCHED):
                try:
                    tick = min(tick, self._evaluate_all(account, region))
                except Exception:
                    LOG.warning("alarm evaluation in %s/%s failed", account, region, exc_info=True)
            self._stop.wait(max(tick, 0.05))

    def _alarm_list(self, account: str, region: str) -> list[dict[str, Any]]:
        read_at, listed = self._alarms.get((account, region), (0.0, []))
        if time.monotonic() - read_at < ALARM_LIST_SECONDS:
            return listed
        client = _cloudwatch(account, region)
        listed = []
        for page in client.get_paginator("describe_alarms").paginate(AlarmTypes=["MetricAlarm"]):
            listed.extend(
                a for a in page.get("MetricAlarms", []) if alarms.evaluated_here(a.get("Namespace"))
            )
        self._alarms[(account, region)] = (time.monotonic(), listed)
        return listed

    def _evaluate_all(self, account: str, region: str) -> float:
        """Evaluate the alarms whose period completed; returns how soon to look again."""
        scale = time_scale()
        tick = 1.0
        for alarm in self._alarm_list(account, region):
            try:
                alarms.check_supported(alarm)
            except alarms.UnsupportedAlarm as exc:
                LOG.debug("alarm %s not evaluated locally: %s", alarm["AlarmName"], exc)
                continue
            period = alarms.local_period(alarm, scale)
            every = alarms.local_interval(alarm, scale)
            tick = min(tick, every / 4)
            now = time.time() - GRACE_SECONDS
            boundary = (now // every) * every
            if self._evaluated.get(alarm["AlarmArn"]) == boundary:
                continue
            self._evaluated[alarm["AlarmArn"]] = boundary
            self._evaluate(account, region, alarm, now, scale, period)
        return tick

    def _evaluate(
        self,
        account: str,
        region: str,
        alarm: dict[str, Any],
        now: float,
        scale: float,
        period: float,
    ) -> None:
        since = now - period * (int(alarm["EvaluationPeriods"]) + 1)
        samples = STORE.samples(
            account, region, alarm["Namespace"], alarm["MetricName"], alarm.get("Dimensions"), since
        )
        result = alarms.evaluate(alarm, samples, now=now, scale=scale)
        current = self._current_state(account, region, alarm)
        if result.state is None or result.state == current:
            return
        _cloudwatch(account, region).set_alarm_state(
            AlarmName=alarm["AlarmName"],
            StateValue=result.state,
            StateReason=result.reason[:1023],
            StateReasonData=json.dumps(result.reason_data),
        )
        LOG.info(
            "alarm %s: %s -> %s (%s)", alarm["AlarmName"], current, result.state, result.reason
        )

    def _current_state(self, account: str, region: str, alarm: dict[str, Any]) -> str:
        """The state now (the cached list may be a second old)."""
        found = _cloudwatch(account, region).describe_alarms(AlarmNames=[alarm["AlarmName"]])
        for item in found.get("MetricAlarms", []):
            return str(item["StateValue"])
        return str(alarm.get("StateValue"))


_EVALUATOR = _Evaluator()


# ---------------------------------------------------------------- wiring into LocalStack


def install() -> None:
    """``on_infra_start``: feed ``STORE`` from PutMetricData and take the alarms on AWS/SageMaker
    and custom namespaces off LocalStack's own scheduler (before the CloudWatch provider is
    created)."""
    from localstack.services.cloudwatch import alarm_scheduler, provider_v2
    from localstack.utils.aws import arns

    provider_class = provider_v2.CloudwatchProvider
    if getattr(provider_class, "_sluice_installed", False):
        return
    original_put = provider_class.put_metric_data

    def put_metric_data(
        self: Any, context: Any, namespace: str, metric_data: Any = None, *args: Any, **kwargs: Any
    ) -> None:
        original_put(self, context, namespace, metric_data, *args, **kwargs)
        ours = (context.internal_request_params or {}).get("service_principal") == PUBLISHER
        if alarms.evaluated_here(namespace) and metric_data and not ours:
            STORE.add(context.account_id, context.region, namespace, metric_data)
            if namespace != NAMESPACE:
                _EVALUATOR.watch(context.account_id, context.region)

    scheduler_class = alarm_scheduler.AlarmScheduler
    original_schedule = scheduler_class.schedule_metric_alarm

    def schedule_metric_alarm(self: Any, alarm_arn: str) -> None:
        details = alarm_scheduler.get_metric_alarm_details_for_alarm_arn(alarm_arn)
        if details and alarms.evaluated_here(details.get("Namespace")):
            self.delete_scheduler_for_alarm(alarm_arn)
            parsed = arns.parse_arn(alarm_arn)
            _EVALUATOR.watch(parsed["account"], parsed["region"])
            return
        original_schedule(self, alarm_arn)

    provider_class.put_metric_data = put_metric_data
    scheduler_class.schedule_metric_alarm = schedule_metric_alarm
    provider_class._sluice_installed = True


def shutdown() -> None:
    _EVALUATOR.stop()
    for publisher in list(_PUBLISHERS.values()):
        publisher.close()
