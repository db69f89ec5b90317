"""``GET /livez`` and ``GET /readyz``: the probes a supervisor or load balancer polls.

``/livez`` says the process serves HTTP and checks nothing else, so it stays cheap and never
fails because a dependency does (restarting the process would not fix a dependency).
``/readyz`` says whether this gateway should get traffic: it is running (not starting, not
shutting down), its storage takes writes, and every component's check passes (the store,
each plugin's ``health_check``, so a cluster plugin's membership too). A 503 names what fails.
``/health`` is the detailed report for people and stays as it is.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from core.web.http import GATEWAY, error_body, json_response
from core.web.openapi import endpoint


class Live(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    failing: list[str]
    checks: dict[str, Any]


@endpoint(
    "Liveness: the process serves HTTP (checks nothing else)",
    auth="none",
    tags=("gateway",),
    responses={200: Live},
)
async def livez(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


def _writable(directory: str) -> bool:
    # access(2) reports EROFS for a read-only file system, and a missing or foreign folder.
    return os.access(directory, os.W_OK | os.X_OK)


@endpoint(
    "Readiness: running, storage writable, every component's check passing (503 names the "
    "failing parts)",
    auth="none",
    tags=("gateway",),
    responses={200: Ready, 503: Ready},
)
async def readyz(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    checks: dict[str, Any] = {"running": {"ok": gateway._running}}
    data_dir = str(gateway.settings.data_dir)
    checks["data_dir"] = {"ok": await asyncio.to_thread(_writable, data_dir)}
    if gateway._running:
        _, report = await gateway.health()
        checks.update(report)
    failing = [name for name, check in checks.items() if not check.get("ok", False)]
    if not failing:
        return json_response({"status": "ready", "failing": [], "checks": checks})
    body = {
        **error_body("not_ready", f"not ready: {', '.join(failing)}"),
        "status": "not_ready",
        "failing": failing,
        "checks": checks,
    }
    return json_response(body, 503)
