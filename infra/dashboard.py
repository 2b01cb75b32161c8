"""The stage's CloudWatch dashboard, ``<prefix>-overview``: one page from upload to prediction.

Rows, top to bottom: the alarms' states; ingestion (uploads processed, rows in, curated and
quarantined, files rejected, the queue and its dead letters); the training pipeline (runs
started, succeeded, failed, timed out, how long they take; the deploy steps); the prediction
API (requests, 4xx, 5xx, latency); then per dataset: its endpoint (invocations, model latency,
4xx and 5xx), drift per feature with the largest and the threshold, model quality with its
threshold and the labelled samples, and the feedback files' labels. Every widget names its
metrics (namespace, name, dimensions): no search expressions, so the page shows what the
alarms watch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw
from constructs import Construct

from datasets import names
from datasets.spec import DatasetSpec
from infra.config import StageConfig

WIDTH = 24
HEIGHT = 6


def _metric(
    namespace: str,
    name: str,
    dimensions: Mapping[str, str],
    *,
    statistic: str = "Sum",
    label: str | None = None,
    period: Duration | None = None,
) -> cw.Metric:
    return cw.Metric(
        namespace=namespace,
        metric_name=name,
        dimensions_map=dict(dimensions),
        statistic=statistic,
        label=label or name,
        period=period or Duration.minutes(5),
    )


def _graph(
    title: str, left: Sequence[cw.IMetric], *, width: int = 8, **kw: object
) -> cw.GraphWidget:
    return cw.GraphWidget(title=title, left=list(left), width=width, height=HEIGHT, **kw)  # type: ignore[arg-type]


def overview(
    scope: Construct,
    *,
    config: StageConfig,
    specs: Mapping[str, DatasetSpec],
    ingestion_function: str,
    ingestion_queue: str,
    ingestion_dead_letters: str,
    training_machine: str,
    deploy_machine: str,
    api_name: str,
    api_stage: str,
    alarms: Sequence[cw.IAlarm],
) -> cw.Dashboard:
    s = config.monitoring
    dashboard = cw.Dashboard(
        scope,
        "Dashboard",
        dashboard_name=f"{config.prefix}-overview",
        default_interval=Duration.days(1),
    )
    dashboard.add_widgets(
        cw.TextWidget(
            markdown=f"# Sluice {config.stage}\nAlarms, then ingestion, the training pipeline, "
            "the prediction API, and each dataset: endpoint, drift, model quality. README "
            '"Monitoring" says what each alarm means and what to do.',
            width=WIDTH,
            height=2,
        )
    )
    dashboard.add_widgets(
        cw.AlarmStatusWidget(title="Alarms", alarms=list(alarms), width=WIDTH, height=HEIGHT)
    )

    # ------------------------------------------------------------------ ingestion
    preprocess = {"service": "preprocess"}
    function = {"FunctionName": ingestion_function}
    dashboard.add_widgets(
        _graph(
            "Ingestion: uploads processed",
            [
                _metric("AWS/Lambda", "Invocations", function, label="uploads processed"),
                _metric("AWS/Lambda", "Errors", function, label="failed attempts"),
                _metric(names.METRICS_NAMESPACE, "FilesRejected", preprocess),
                _metric(names.METRICS_NAMESPACE, "FilesSkipped", preprocess),
            ],
        ),
        _graph(
            "Ingestion: rows",
            [
                _metric(names.METRICS_NAMESPACE, "RowsIn", preprocess),
                _metric(names.METRICS_NAMESPACE, "RowsCurated", preprocess),
                _metric(names.METRICS_NAMESPACE, "RowsQuarantined", preprocess),
            ],
        ),
        _graph(
            "Ingestion: queue and dead letters",
            [
                _metric(
                    "AWS/SQS",
                    "ApproximateNumberOfMessagesVisible",
                    {"QueueName": ingestion_queue},
                    statistic="Maximum",
                    label="waiting",
                ),
                _metric(
                    "AWS/SQS",
                    "ApproximateNumberOfMessagesVisible",
                    {"QueueName": ingestion_dead_letters},
                    statistic="Maximum",
                    label="dead letters",
                ),
                _metric(
                    "AWS/SQS",
                    "ApproximateAgeOfOldestMessage",
                    {"QueueName": ingestion_queue},
                    statistic="Maximum",
                    label="oldest (s)",
                ),
            ],
        ),
    )

    # ------------------------------------------------------------------ pipeline
    training = {"StateMachineArn": training_machine}
    deploy = {"StateMachineArn": deploy_machine}
    dashboard.add_widgets(
        _graph(
            "Training pipeline: runs and outcomes",
            [
                _metric("AWS/States", name, training, label=label)
                for name, label in (
                    ("ExecutionsStarted", "started"),
                    ("ExecutionsSucceeded", "ended (deployed, rejected, skipped, queued)"),
                    ("ExecutionsFailed", "failed"),
                    ("ExecutionsTimedOut", "timed out"),
                    ("ExecutionsAborted", "stopped"),
                )
            ],
        ),
        _graph(
            "Training pipeline: run duration (ms)",
            [
                _metric(
                    "AWS/States", "ExecutionTime", training, statistic="Average", label="average"
                ),
                _metric("AWS/States", "ExecutionTime", training, statistic="p90", label="p90"),
                _metric(
                    "AWS/States", "ExecutionTime", training, statistic="Maximum", label="longest"
                ),
            ],
        ),
        _graph(
            "Deploy steps",
            [
                _metric("AWS/States", "ExecutionsSucceeded", deploy, label="deployed"),
                _metric("AWS/States", "ExecutionsFailed", deploy, label="failed"),
                _metric(
                    "AWS/States",
                    "ExecutionTime",
                    deploy,
                    statistic="Average",
                    label="duration (ms)",
                ),
            ],
        ),
    )

    # ------------------------------------------------------------------ API
    api = {"ApiName": api_name, "Stage": api_stage}
    dashboard.add_widgets(
        _graph(
            "Prediction API: requests and errors",
            [
                _metric("AWS/ApiGateway", "Count", api, label="requests"),
                _metric("AWS/ApiGateway", "4XXError", api, label="4xx"),
                _metric("AWS/ApiGateway", "5XXError", api, label="5xx"),
            ],
            width=12,
        ),
        _graph(
            "Prediction API: latency (ms)",
            [
                _metric("AWS/ApiGateway", "Latency", api, statistic="p50", label="p50"),
                _metric("AWS/ApiGateway", "Latency", api, statistic="p99", label="p99"),
                _metric(
                    "AWS/ApiGateway",
                    "IntegrationLatency",
                    api,
                    statistic="p99",
                    label="integration p99",
                ),
            ],
            width=12,
            left_annotations=[
                cw.HorizontalAnnotation(value=s.api_latency_p99_ms, label="alarm (p99)")
            ],
        ),
    )

    # ------------------------------------------------------------------ datasets
    for dataset, spec in specs.items():
        dashboard.add_widgets(cw.TextWidget(markdown=f"## {dataset}", width=WIDTH, height=1))
        endpoint = {
            "EndpointName": names.endpoint_name(config.prefix, dataset),
            "VariantName": names.VARIANT_NAME,
        }
        dims = {"Stage": config.stage, "Dataset": dataset}
        features = [f.name for f in spec.model_features()]
        period = Duration.seconds(s.model_alarm_period_seconds)
        dashboard.add_widgets(
            _graph(
                f"{dataset}: endpoint invocations and errors",
                [
                    _metric("AWS/SageMaker", "Invocations", endpoint),
                    _metric("AWS/SageMaker", "Invocation4XXErrors", endpoint, label="4xx"),
                    _metric("AWS/SageMaker", "Invocation5XXErrors", endpoint, label="5xx"),
                ],
                width=6,
            ),
            _graph(
                f"{dataset}: model latency (µs)",
                [
                    _metric(
                        "AWS/SageMaker", "ModelLatency", endpoint, statistic="p50", label="p50"
                    ),
                    _metric(
                        "AWS/SageMaker", "ModelLatency", endpoint, statistic="p99", label="p99"
                    ),
                ],
                width=6,
            ),
            _graph(
                f"{dataset}: drift per feature (PSI)",
                [
                    _metric(
                        names.METRICS_NAMESPACE,
                        names.DRIFT_MAX_METRIC,
                        dims,
                        statistic="Maximum",
                        label="largest",
                        period=period,
                    ),
                    *(
                        _metric(
                            names.METRICS_NAMESPACE,
                            names.FEATURE_DRIFT_METRIC,
                            {**dims, "Feature": name},
                            statistic="Maximum",
                            label=name,
                            period=period,
                        )
                        for name in features
                    ),
                    _metric(
                        names.METRICS_NAMESPACE,
                        names.PREDICTION_DRIFT_METRIC,
                        dims,
                        statistic="Maximum",
                        label="model scores",
                        period=period,
                    ),
                ],
                width=6,
                left_annotations=[
                    cw.HorizontalAnnotation(value=s.drift_threshold, label="drift alarm")
                ],
            ),
            _graph(
                f"{dataset}: model quality ({spec.metric.name}) on labelled traffic",
                [
                    _metric(
                        names.METRICS_NAMESPACE,
                        names.MODEL_QUALITY_METRIC,
                        {**dims, "Metric": spec.metric.name},
                        statistic="Average",
                        label=spec.metric.name,
                        period=period,
                    ),
                ],
                right=[
                    _metric(
                        names.METRICS_NAMESPACE,
                        names.LABELLED_SAMPLES_METRIC,
                        dims,
                        statistic="Maximum",
                        label="labelled samples",
                        period=period,
                    ),
                    *(
                        _metric(names.METRICS_NAMESPACE, name, dims, label=name)
                        for name in names.FEEDBACK_METRICS
                    ),
                ],
                width=6,
                left_annotations=[
                    cw.HorizontalAnnotation(value=spec.metric.threshold, label="spec threshold")
                ],
            ),
        )
    return dashboard
