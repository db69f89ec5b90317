"""The gateway's own routes: ``GET /``, ``GET /health``, ``GET /openapi.json``."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from core.gateway import Gateway
from core.web.auth import require_api_key
from core.web.http import GATEWAY, json_response
from core.web.metrics import METRICS
from core.web.openapi import build_document, endpoint
from core.web.public_path import public_prefix


class Health(BaseModel):
    status: str
    version: str
    uptime_s: float
    plugins: dict[str, Any]


class Index(BaseModel):
    name: str
    version: str
    plugins: list[str]
    endpoints: list[dict[str, str]]


def _gateway(request: web.Request) -> Gateway:
    return request.app[GATEWAY]


@endpoint(
    "Gateway health: each component's own check",
    auth="none",
    tags=("gateway",),
    responses={200: Health, 503: Health},
)
async def health(request: web.Request) -> web.Response:
    gateway = _gateway(request)
    ok, report = await gateway.health()
    for name in gateway.plugin_names:
        if not any(key == name or key.startswith(f"{name}.") for key in report):
            report[name] = {"ok": True}
    body = {
        "status": "ok" if ok else "degraded",
        "version": gateway.version,
        "uptime_s": round(time.time() - gateway._started_at, 1),
        "plugins": report,
    }
    return json_response(body, 200 if ok else 503)


@endpoint(
    "Name, version, enabled plugins and links to the endpoints",
    auth="none",
    tags=("gateway",),
    responses={200: Index},
)
async def index(request: web.Request) -> web.Response:
    gateway = _gateway(request)
    prefix = public_prefix(request)
    links = []
    for route in request.app.router.routes():
        doc = getattr(route.handler, "__openapi__", None)
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if doc and path and route.method != "HEAD":
            links.append({"method": route.method, "path": prefix + path, "summary": doc.summary})
    return json_response(
        {
            "name": "eneca-bot",
            "version": gateway.version,
            "plugins": gateway.plugin_names,
            "endpoints": links,
        }
    )


@endpoint(
    "OpenAPI 3.1 description of every enabled endpoint",
    auth="none",
    tags=("gateway",),
    responses={200: None},
)
async def openapi(request: web.Request) -> web.Response:
    gateway = _gateway(request)
    document = build_document(request.app, "eneca-bot", gateway.version)
    document["servers"] = [{"url": public_prefix(request) or "/"}]
    return json_response(document)


@endpoint(
    "Prometheus metrics (admin: needs an API key)",
    auth="admin",
    tags=("gateway",),
    responses={200: None},
    content_type="text/plain",
)
async def metrics(request: web.Request) -> web.Response:
    gateway = _gateway(request)
    require_api_key(request, gateway.settings, admin=True)
    figures = request.app[METRICS]
    bus = gateway._bus.stats()
    figures.bus_lanes.set(bus["lanes"])
    figures.bus_in_flight.set(bus["in_flight"])
    figures.bus_queued.set(bus["queued"])
    durable = await gateway.delivery_stats()
    figures.pending_deliveries.set(durable["pending_deliveries"])
    figures.unanswered.set(durable["unanswered"])
    body = generate_latest(figures.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def core_routes() -> list[web.RouteDef]:
    from core.web.probes import livez, readyz

    return [
        web.get("/", index),
        web.get("/health", health),
        web.get("/livez", livez),
        web.get("/readyz", readyz),
        web.get("/openapi.json", openapi),
        web.get("/metrics", metrics),
    ]
