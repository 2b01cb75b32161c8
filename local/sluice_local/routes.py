"""``GET /_sluice/settings``: the running local cloud's settings that clients need to know.

Tests and the demo read ``time_scale`` from here to size their waits: a cloud started by
``make local-up`` runs deployment waits and alarm periods ``time_scale`` times faster than AWS.
"""

from __future__ import annotations

import threading

from localstack.http import Request, Response, route
from localstack.services.edge import ROUTER

from sluice_local.timescale import time_scale

SETTINGS_PATH = "/_sluice/settings"
_INSTALLED = threading.Event()


class _SettingsRouter:
    @route(SETTINGS_PATH, methods=["GET"])
    def settings(self, request: Request) -> Response:
        return Response.for_json({"time_scale": time_scale()})


def install() -> None:
    if not _INSTALLED.is_set():
        ROUTER.add(_SettingsRouter())
        _INSTALLED.set()
