"""DynamoDB without Java: every operation served by moto (``PROVIDER_OVERRIDE_DYNAMODB=moto``).

LocalStack's own provider wraps DynamoDB Local, which downloads a JDK on first use. moto keeps
tables in memory: fine for the pipeline's small bookkeeping tables, not for capacity, TTL
expiry or streams semantics.
"""

from __future__ import annotations

from typing import Any

from localstack.aws.api import RequestContext, ServiceRequest
from localstack.aws.skeleton import DispatchTable, Skeleton
from localstack.aws.spec import load_service
from localstack.services.moto import call_moto
from localstack.services.plugins import Service


def _moto(context: RequestContext, request: ServiceRequest) -> Any:
    return call_moto(context)


def create_dynamodb_service() -> Service:
    model = load_service("dynamodb")
    table: DispatchTable = dict.fromkeys(model.operation_names, _moto)
    return Service("dynamodb", skeleton=Skeleton(model, table))
