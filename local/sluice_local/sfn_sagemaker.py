"""Step Functions' optimised SageMaker integration, including ``.sync`` for jobs.

LocalStack lists ``sagemaker`` as unsupported (only ``.waitForTaskToken``). This task class
forwards every ``arn:aws:states:::sagemaker:<action>`` call to the SageMaker API and, for
``createTrainingJob``/``createProcessingJob``/``createTransformJob`` with ``.sync``, polls the
job's Describe call until it ends: Completed returns the Describe output (as on AWS), Failed or
Stopped fails the task with ``States.TaskFailed`` and the Describe output (FailureReason
included) as the cause. API errors surface as ``SageMaker.AmazonSageMakerException``.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from typing import Any, Final

from botocore.exceptions import ClientError
from localstack.aws.api.stepfunctions import HistoryEventType, TaskFailedEventDetails
from localstack.services.stepfunctions.asl.component.common.error_name.custom_error_name import (
    CustomErrorName,
)
from localstack.services.stepfunctions.asl.component.common.error_name.failure_event import (
    FailureEvent,
    FailureEventException,
)
from localstack.services.stepfunctions.asl.component.common.error_name.states_error_name import (
    StatesErrorName,
)
from localstack.services.stepfunctions.asl.component.common.error_name.states_error_name_type import (  # noqa: E501
    StatesErrorNameType,
)
from localstack.services.stepfunctions.asl.component.state.state_execution.state_task import (
    state_task_factory,
)
from localstack.services.stepfunctions.asl.component.state.state_execution.state_task.credentials import (  # noqa: E501
    StateCredentials,
)
from localstack.services.stepfunctions.asl.component.state.state_execution.state_task.service.resource import (  # noqa: E501
    ResourceCondition,
    ResourceRuntimePart,
)
from localstack.services.stepfunctions.asl.component.state.state_execution.state_task.service.state_task_service import (  # noqa: E501
    StateTaskService,
)
from localstack.services.stepfunctions.asl.component.state.state_execution.state_task.service.state_task_service_callback import (  # noqa: E501
    StateTaskServiceCallback,
)
from localstack.services.stepfunctions.asl.eval.environment import Environment
from localstack.services.stepfunctions.asl.eval.event.event_detail import EventDetails
from localstack.services.stepfunctions.asl.utils.boto_client import boto_client_for
from localstack.services.stepfunctions.asl.utils.encoding import to_json_str

LOG = logging.getLogger(__name__)

_PATTERNS: Final[set[ResourceCondition]] = {
    ResourceCondition.WaitForTaskToken,
    ResourceCondition.Sync,
}

#: create action (lower case) -> (describe method, name parameter, status key)
SYNC_JOBS: Final[dict[str, tuple[str, str, str]]] = {
    "createtrainingjob": ("describe_training_job", "TrainingJobName", "TrainingJobStatus"),
    "createprocessingjob": ("describe_processing_job", "ProcessingJobName", "ProcessingJobStatus"),
    "createtransformjob": ("describe_transform_job", "TransformJobName", "TransformJobStatus"),
}
_FAILED_STATES: Final[set[str]] = {"Failed", "Stopped"}


def _json_ready(value: Any) -> Any:
    """Describe output as Step Functions returns it: timestamps as epoch milliseconds."""
    if isinstance(value, datetime.datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, dict):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_ready(item) for item in value]
    return value


class StateTaskServiceSageMaker(StateTaskServiceCallback):
    def __init__(self) -> None:
        super().__init__(supported_integration_patterns=_PATTERNS)

    def _get_supported_parameters(self) -> set[str] | None:
        """The API's own request members; None (an invalid resource) for unknown actions."""
        try:
            operation = self._get_boto_operation_model("sagemaker", self.resource.api_action)
        except RuntimeError:
            return None
        shape = operation.input_shape
        return set(shape.members) if shape is not None else set()

    def _normalise_response(self, response: Any, *args: Any, **kwargs: Any) -> None:
        """Keep SageMaker's own casing (the generic one turns VolumeSizeInGB into ...Gb)."""

    def _sagemaker(self, region: str, credentials: StateCredentials) -> Any:
        return boto_client_for(service="sagemaker", region=region, state_credentials=credentials)

    def _eval_service_task(
        self,
        env: Environment,
        resource_runtime_part: ResourceRuntimePart,
        normalised_parameters: dict,
        state_credentials: StateCredentials,
    ) -> None:
        client = self._sagemaker(resource_runtime_part.region, state_credentials)
        response = getattr(client, self._get_boto_service_action())(**normalised_parameters)
        response.pop("ResponseMetadata", None)
        env.stack.append(_json_ready(response))

    def _build_sync_resolver(
        self,
        env: Environment,
        resource_runtime_part: ResourceRuntimePart,
        normalised_parameters: dict,
        state_credentials: StateCredentials,
    ) -> Callable[[], Any | None]:
        action = self.resource.api_action.lower()
        if action not in SYNC_JOBS:
            raise ValueError(f"sagemaker:{self.resource.api_action}.sync is not supported")
        describe, name_key, status_key = SYNC_JOBS[action]
        client = self._sagemaker(resource_runtime_part.region, state_credentials)
        env.stack.pop()  # the Create response; the Describe output replaces it
        job_name = normalised_parameters[name_key]

        def resolve() -> dict | None:
            job = getattr(client, describe)(**{name_key: job_name})
            job.pop("ResponseMetadata", None)
            status = job.get(status_key)
            if status == "Completed":
                return _json_ready(job)
            if status in _FAILED_STATES:
                raise FailureEventException(self._job_failed(env, _json_ready(job)))
            return None

        return resolve

    def _job_failed(self, env: Environment, job: dict) -> FailureEvent:
        error = StatesErrorNameType.StatesTaskFailed.to_name()
        return FailureEvent(
            env=env,
            error_name=StatesErrorName(typ=StatesErrorNameType.StatesTaskFailed),
            event_type=HistoryEventType.TaskFailed,
            event_details=EventDetails(
                taskFailedEventDetails=TaskFailedEventDetails(
                    resource=self._get_sfn_resource(),
                    resourceType=self._get_sfn_resource_type(),
                    error=error,
                    cause=to_json_str(job),
                )
            ),
        )

    def _from_error(self, env: Environment, ex: Exception) -> FailureEvent:
        if isinstance(ex, ClientError):
            error = "SageMaker.AmazonSageMakerException"
            details = ex.response.get("Error", {})
            meta = ex.response.get("ResponseMetadata", {})
            cause = (
                f"{details.get('Message', '')} (Service: AmazonSageMaker; "
                f"Status Code: {meta.get('HTTPStatusCode', 400)}; "
                f"Error Code: {details.get('Code', 'ValidationException')}; "
                f"Request ID: {meta.get('RequestId', '')}; Proxy: null)"
            )
            return FailureEvent(
                env=env,
                error_name=CustomErrorName(error),
                event_type=HistoryEventType.TaskFailed,
                event_details=EventDetails(
                    taskFailedEventDetails=TaskFailedEventDetails(
                        error=error,
                        cause=cause,
                        resource=self._get_sfn_resource(),
                        resourceType=self._get_sfn_resource_type(),
                    )
                ),
            )
        return super()._from_error(env=env, ex=ex)


def install() -> None:
    """Route ``sagemaker`` tasks to this class (the factory binds the function at import)."""
    original = state_task_factory.state_task_service_for
    if getattr(original, "sluice_patched", False):
        return

    def state_task_service_for(service_name: str) -> StateTaskService:
        if service_name == "sagemaker":
            return StateTaskServiceSageMaker()
        return original(service_name)

    state_task_service_for.sluice_patched = True  # type: ignore[attr-defined]
    state_task_factory.state_task_service_for = state_task_service_for
    LOG.debug("Step Functions: sagemaker tasks (incl. .sync) served by sluice_local")
