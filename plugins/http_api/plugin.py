"""The plugin object: settings, routes, CORS, the open-mode warning, health."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web
from loguru import logger

from core import Check, Gateway, SessionCleared, hookimpl
from plugins.http_api.chat import ChatRoutes
from plugins.http_api.cors import cors_middleware
from plugins.http_api.debug import DebugRoutes
from plugins.http_api.examples import DEFAULT_EXAMPLES_DIR, ExampleRoutes
from plugins.http_api.n8n import N8nChatRoutes
from plugins.http_api.service import ChatService
from plugins.http_api.settings import HttpApiSettings
from plugins.http_api.threads import ThreadRoutes
from plugins.http_api.widget import WidgetRoutes


class HttpApiPlugin:
    """The JSON/SSE API that n8n and web front ends call."""

    def __init__(self, examples_dir: Path | None = None) -> None:
        self._examples_dir = examples_dir or DEFAULT_EXAMPLES_DIR
        self._service: ChatService | None = None

    def _service_for(self, gateway: Gateway) -> ChatService:
        if self._service is None:
            self._service = ChatService(gateway, gateway.settings_for(HttpApiSettings))
        return self._service

    @hookimpl
    def settings_model(self) -> type[HttpApiSettings]:
        return HttpApiSettings

    @hookimpl
    def register_routes(self, gateway: Gateway) -> list[web.RouteDef]:
        service = self._service_for(gateway)
        routes = [
            *ChatRoutes(service).routes(),
            *ThreadRoutes(service).routes(),
            *N8nChatRoutes(service).routes(),
            *WidgetRoutes().routes(),
        ]
        if service.settings.debug_endpoint:
            routes += DebugRoutes(service).routes()
        if service.settings.serve_examples:
            routes += ExampleRoutes(self._examples_dir).routes()
        return routes

    @hookimpl
    def register_middlewares(self, gateway: Gateway) -> list[Any]:
        origins = gateway.access.settings.public_origins
        if not origins:
            return []  # no browser origin allowed: nothing to add to every request
        return [cors_middleware(origins, gateway.settings.api_key_header)]

    @hookimpl
    async def lifespan(self, gateway: Gateway) -> AsyncIterator[None]:
        service = self._service_for(gateway)
        if service.settings.debug_endpoint:
            logger.info("DEBUG_ENDPOINT is on: POST /api/debug echoes requests (with a key)")
        yield
        service.idempotency.clear()

    @hookimpl
    def session_cleared(self, gateway: Gateway, event: SessionCleared) -> None:
        if self._service is not None:
            self._service.forget_thread(event.conversation_id)
            if event.conversation_id is not None:
                self._service.idempotency.forget_thread(event.conversation_id)

    @hookimpl
    def health_check(self, gateway: Gateway) -> Check:
        service = self._service_for(gateway)
        return Check(
            "http_api",
            True,
            {
                "auth": "keys" if gateway.access.keys.configured else "open",
                "public_origins": len(gateway.access.settings.public_origins),
                "idempotency_keys": len(service.idempotency),
            },
        )
