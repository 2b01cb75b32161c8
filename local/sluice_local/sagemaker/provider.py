"""The ``sagemaker`` and ``sagemaker-runtime`` services: moto for bookkeeping, real runs on top.

Every operation goes to moto (LocalStack's moto-ext) except the ones that must do real work:
jobs run their scripts (``jobs.py``), endpoints start workers (``endpoints.py``), UpdateEndpoint
and the Stop calls (missing in moto) are implemented here, and InvokeEndpoint answers with the
model's own prediction.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from localstack.aws.api import CommonServiceException, RequestContext, ServiceRequest
from localstack.aws.skeleton import DispatchTable, Skeleton
from localstack.aws.spec import load_service
from localstack.services.moto import call_moto
from localstack.services.plugins import Service, ServiceLifecycleHook
from moto.sagemaker.models import sagemaker_backends

from sluice_local import autoscaling, cloudwatch, faults
from sluice_local.metrics import Invocation
from sluice_local.sagemaker import blue_green, endpoints, jobs, registry
from sluice_local.sagemaker.deployment import DeploymentConfigError

Handler = Callable[[RequestContext, ServiceRequest], Any]


class ValidationError(CommonServiceException):
    def __init__(self, message: str) -> None:
        super().__init__("ValidationException", message, status_code=400)


class ModelError(CommonServiceException):
    """InvokeEndpoint's error for a container that did not answer 200 (HTTP 424 on AWS).

    AWS adds the container's status and body (``OriginalStatusCode``, ``OriginalMessage``) and
    the log stream of the instance that answered (``LogStreamArn``): members of the service's
    ``ModelError`` shape, which the serializer writes from these attributes.
    """

    def __init__(
        self,
        message: str,
        *,
        original_status: int | None = None,
        original_message: str | None = None,
        log_stream_arn: str | None = None,
    ) -> None:
        super().__init__("ModelError", message, status_code=424, sender_fault=True)
        self.OriginalStatusCode = original_status
        self.OriginalMessage = original_message
        self.LogStreamArn = log_stream_arn


def _backend(context: RequestContext) -> Any:
    return sagemaker_backends[context.account_id][context.region]


def _thread(target: Callable[..., None], *args: Any, name: str) -> None:
    threading.Thread(target=target, args=args, name=name, daemon=True).start()


def _moto(context: RequestContext, request: ServiceRequest) -> Any:
    return call_moto(context)


# ---------------------------------------------------------------- jobs


def create_training_job(context: RequestContext, request: ServiceRequest) -> Any:
    response = call_moto(context)
    record = _backend(context).training_jobs[request["TrainingJobName"]]
    stamp = jobs.now()
    # moto marks the job Completed at once and invents metric definitions: undo both
    record.algorithm_specification = copy.deepcopy(request["AlgorithmSpecification"])
    record.training_job_status = "InProgress"
    record.secondary_status = "Starting"
    record.secondary_status_transitions = [
        {
            "Status": "Starting",
            "StartTime": stamp,
            "StatusMessage": "Launching requested ML instances",
        }
    ]
    record.model_artifacts = None
    record.training_start_time = None
    record.training_end_time = None
    record.final_metric_data_list = None
    record.failure_reason = None
    _thread(
        jobs.run_training_job,
        record,
        dict(request),
        context.account_id,
        context.region,
        name=f"training-{request['TrainingJobName']}",
    )
    return response


def create_processing_job(context: RequestContext, request: ServiceRequest) -> Any:
    response = call_moto(context)
    record = _backend(context).processing_jobs[request["ProcessingJobName"]]
    record.processing_job_status = "InProgress"
    record.processing_end_time = None
    record.failure_reason = None
    record.environment = request.get("Environment")
    _thread(
        jobs.run_processing_job,
        record,
        dict(request),
        context.account_id,
        context.region,
        name=f"processing-{request['ProcessingJobName']}",
    )
    return response


def create_transform_job(context: RequestContext, request: ServiceRequest) -> Any:
    """moto records the job (Completed at once, no output); the job really runs instead."""
    backend = _backend(context)
    if request["ModelName"] not in backend._models:
        raise ValidationError(f'Could not find model "{request["ModelName"]}".')
    response = call_moto(context)
    record = backend.transform_jobs[request["TransformJobName"]]
    record.transform_job_status = "InProgress"
    record.transform_start_time = None
    record.transform_end_time = None
    record.failure_reason = ""
    _thread(
        jobs.run_transform_job,
        record,
        dict(request),
        context.account_id,
        context.region,
        name=f"transform-{request['TransformJobName']}",
    )
    return response


def _stop(kind: str, records: dict[str, Any], name: str, status_attr: str) -> dict[str, Any]:
    record = records.get(name)
    if record is None:
        raise ValidationError(f"Requested resource not found: {kind} {name}")
    running = jobs.RUNNING.get(name)
    if getattr(record, status_attr) != "InProgress" or running is None:
        raise ValidationError(f"The {kind} {name} is not in InProgress state")
    setattr(record, status_attr, "Stopping")
    running.stop()
    return {}


def stop_training_job(context: RequestContext, request: ServiceRequest) -> Any:
    records = _backend(context).training_jobs
    return _stop("training job", records, request["TrainingJobName"], "training_job_status")


def stop_processing_job(context: RequestContext, request: ServiceRequest) -> Any:
    records = _backend(context).processing_jobs
    return _stop("processing job", records, request["ProcessingJobName"], "processing_job_status")


def stop_transform_job(context: RequestContext, request: ServiceRequest) -> Any:
    records = _backend(context).transform_jobs
    return _stop("transform job", records, request["TransformJobName"], "transform_job_status")


# ---------------------------------------------------------------- endpoints


def create_endpoint(context: RequestContext, request: ServiceRequest) -> Any:
    response = call_moto(context)
    record = _backend(context).endpoints[request["EndpointName"]]
    record.endpoint_status = "Creating"
    # kept for a later UpdateEndpoint with RetainDeploymentConfig (no effect on the create)
    record.last_deployment_config = request.get("DeploymentConfig")
    _thread(
        endpoints.deploy,
        record,
        context.account_id,
        context.region,
        request["EndpointConfigName"],
        name=f"endpoint-{request['EndpointName']}",
    )
    return response


def update_endpoint(context: RequestContext, request: ServiceRequest) -> Any:
    """A blue/green deployment, with deployment guardrails when a DeploymentConfig says so."""
    backend = _backend(context)
    name, config_name = request["EndpointName"], request["EndpointConfigName"]
    record = backend.endpoints.get(name)
    arn = f"arn:aws:sagemaker:{context.region}:{context.account_id}:endpoint/{name.lower()}"
    if record is None:
        raise ValidationError(f'Could not find endpoint "{arn}".')
    if config_name not in backend.endpoint_configs:
        raise ValidationError(f'Could not find endpoint configuration "{config_name}".')
    if record.endpoint_status == "Failed":
        raise ValidationError(f'Cannot update failed endpoint "{arn}".')
    if record.endpoint_status != "InService":
        raise ValidationError(f'Cannot update in-progress endpoint "{arn}".')
    try:
        update = blue_green.prepare(
            record,
            backend.describe_endpoint_config(record.endpoint_config_name),
            backend.describe_endpoint_config(config_name),
            dict(request),
            existing_alarms=lambda names: _existing_alarms(context, names),
            scaled_variants=autoscaling.scaled_variants(context.account_id, context.region, name),
        )
    except DeploymentConfigError as exc:
        raise ValidationError(str(exc)) from None
    record.endpoint_status = "Updating"
    record.failure_reason = None
    record.last_modified_time = jobs.now()
    _thread(
        blue_green.run,
        record,
        context.account_id,
        context.region,
        update,
        name=f"endpoint-update-{name}",
    )
    return {"EndpointArn": record.arn}


def _existing_alarms(context: RequestContext, names: Sequence[str]) -> set[str]:
    found = cloudwatch.describe_alarms(context.account_id, context.region, tuple(names))
    return {alarm["AlarmName"] for alarm in found}


def update_endpoint_weights_and_capacities(context: RequestContext, request: ServiceRequest) -> Any:
    """As moto, but only on an InService endpoint, and the weights take effect on the workers
    (instance counts are recorded: one worker stands for all of a variant's instances)."""
    name = request["EndpointName"]
    record = _backend(context).endpoints.get(name)
    if record is not None and record.endpoint_status != "InService":
        arn = f"arn:aws:sagemaker:{context.region}:{context.account_id}:endpoint/{name.lower()}"
        raise ValidationError(f'Cannot update in-progress endpoint "{arn}".')
    response = call_moto(context)
    live = endpoints.live(context.account_id, context.region, name)
    for wanted in request.get("DesiredWeightsAndCapacities") or []:
        for variant in live.variants if live is not None else []:
            if variant.name != wanted["VariantName"]:
                continue
            if wanted.get("DesiredWeight") is not None:
                variant.weight = float(wanted["DesiredWeight"])
            if wanted.get("DesiredInstanceCount") is not None:
                variant.instances = int(wanted["DesiredInstanceCount"])
    return response


def delete_endpoint(context: RequestContext, request: ServiceRequest) -> Any:
    response = call_moto(context)
    endpoints.undeploy(context.account_id, context.region, request["EndpointName"])
    autoscaling.endpoint_deleted(context.account_id, context.region, request["EndpointName"])
    return response


SAGEMAKER_OVERRIDES: dict[str, Handler] = {
    "CreateTrainingJob": create_training_job,
    "StopTrainingJob": stop_training_job,
    "CreateProcessingJob": create_processing_job,
    "StopProcessingJob": stop_processing_job,
    "CreateTransformJob": create_transform_job,
    "StopTransformJob": stop_transform_job,
    "CreateEndpoint": create_endpoint,
    "UpdateEndpoint": update_endpoint,
    "UpdateEndpointWeightsAndCapacities": update_endpoint_weights_and_capacities,
    "DeleteEndpoint": delete_endpoint,
    "CreateModelPackage": registry.create_model_package,
    "UpdateModelPackage": registry.update_model_package,
    "DeleteModelPackage": registry.delete_model_package,
}


# ---------------------------------------------------------------- runtime


def invoke_endpoint(context: RequestContext, request: ServiceRequest) -> Any:
    name = request["EndpointName"]
    live = endpoints.live(context.account_id, context.region, name)
    if live is None:
        raise ValidationError(f"Endpoint {name} of account {context.account_id} not found.")
    raw = request["Body"]
    body: bytes = raw.read() if hasattr(raw, "read") else bytes(raw or b"")
    content_type = request.get("ContentType") or "application/json"
    started = time.perf_counter()
    try:
        answer = endpoints.invoke(
            live, body, content_type, request.get("Accept"), request.get("TargetVariant")
        )
    except KeyError as exc:
        raise ValidationError(f"Target variant {exc} not found for endpoint {name}.") from None
    except OSError as exc:
        _metrics(context, name, live.variants[0], None, None, started)
        raise ModelError(f"Could not reach the model container: {exc}") from None
    _metrics(context, name, answer.served_by, answer.status, answer.model_seconds, started)
    if answer.status != 200:
        raise _model_error(context, name, answer)
    endpoints.capture(context.account_id, context.region, name, live, answer, body, content_type)
    return {
        "Body": answer.body,
        "ContentType": answer.content_type,
        "InvokedProductionVariant": answer.variant,
    }


def _model_error(context: RequestContext, name: str, answer: endpoints.Answer) -> ModelError:
    """What AWS answers when the container did: its status and body, and where its log is."""
    region, account = context.region, context.account_id
    group = f"/aws/sagemaker/Endpoints/{name}"
    body = answer.body.decode(errors="replace")
    kind = "client" if answer.status < 500 else "server"
    return ModelError(
        f'Received {kind} error ({answer.status}) from primary with message "{body}". See '
        f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
        f"#logEventViewer:group={group} in account {account} for more information.",
        original_status=answer.status,
        original_message=body,
        log_stream_arn=(
            f"arn:aws:logs:{region}:{account}:log-group:{group}:log-stream:"
            f"{answer.variant}/{endpoints.INSTANCE_ID}"
        ),
    )


def _metrics(
    context: RequestContext,
    endpoint: str,
    variant: endpoints.Variant | None,
    status: int | None,
    model_seconds: float | None,
    started: float,
) -> None:
    """The endpoint's CloudWatch metrics for this request (``cloudwatch.record_invocation``)."""
    if variant is None:
        return
    total = time.perf_counter() - started
    invocation = Invocation(
        endpoint=endpoint,
        variant=variant.name,
        status=status,
        model_seconds=model_seconds,
        overhead_seconds=max(total - (model_seconds or 0.0), 0.0),
        instances=variant.instances or 1,
        at=time.time(),
    )
    cloudwatch.record_invocation(
        context.account_id, context.region, invocation, variant.config_name
    )


class _Lifecycle(ServiceLifecycleHook):
    def on_before_stop(self) -> None:
        endpoints.stop_all()
        for running in list(jobs.RUNNING.values()):
            running.stop()


class Throttled(CommonServiceException):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message, status_code=400, sender_fault=True)


def _with_faults(service: str, operation: str, handler: Handler) -> Handler:
    """A fault armed for this operation (``faults.py``) fails the call as AWS would."""

    def handle(context: RequestContext, request: ServiceRequest) -> Any:
        fault = faults.take(service, operation, json.dumps(request, default=str))
        if fault is not None:
            raise Throttled(fault.code, fault.message)
        return handler(context, request)

    return handle


def _dispatch(service: str, overrides: dict[str, Handler]) -> DispatchTable:
    model = load_service(service)
    table: dict[str, Handler] = dict.fromkeys(model.operation_names, _moto)
    table.update(overrides)
    return {name: _with_faults(service, name, handler) for name, handler in table.items()}


def create_sagemaker_service() -> Service:
    return Service(
        "sagemaker",
        skeleton=Skeleton(load_service("sagemaker"), _dispatch("sagemaker", SAGEMAKER_OVERRIDES)),
        lifecycle_hook=_Lifecycle(),
    )


def create_runtime_service() -> Service:
    overrides: dict[str, Handler] = {"InvokeEndpoint": invoke_endpoint}
    return Service(
        "sagemaker-runtime",
        skeleton=Skeleton(
            load_service("sagemaker-runtime"), _dispatch("sagemaker-runtime", overrides)
        ),
        lifecycle_hook=_Lifecycle(),
    )
