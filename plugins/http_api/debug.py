"""``POST /api/debug``: echo what arrived (secrets masked) and log it, to wire up n8n.

Registered only with ``DEBUG_ENDPOINT=true``, and always behind an API key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web
from loguru import logger

from core import dumps, endpoint, json_response, read_json
from plugins.http_api.models import DebugEcho, DebugRequest
from plugins.http_api.service import ChatService

MASK = "***"
_SECRET_WORDS = ("token", "secret", "key", "password", "passwd", "auth", "cookie", "signature")
_LOGGED_CHARS = 4000


def is_secret_name(name: str, api_key_header: str = "X-API-Key") -> bool:
    lowered = name.lower()
    return lowered == api_key_header.lower() or any(word in lowered for word in _SECRET_WORDS)


def mask_headers(headers: Mapping[str, str], api_key_header: str) -> dict[str, str]:
    """Headers with secret values replaced; ``Authorization`` keeps its scheme."""
    masked: dict[str, str] = {}
    for key, value in headers.items():
        name = str(key)  # multidict's istr: orjson takes only plain str keys
        if name.lower() == "authorization" and " " in value:
            masked[name] = f"{value.split(' ', 1)[0]} {MASK}"
        elif is_secret_name(name, api_key_header):
            masked[name] = MASK
        else:
            masked[name] = value
    return masked


def mask_body(value: Any) -> Any:
    """The JSON body with the values of secret-looking keys replaced, at any depth."""
    if isinstance(value, dict):
        return {k: MASK if is_secret_name(k) else mask_body(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_body(item) for item in value]
    return value


class DebugRoutes:
    def __init__(self, service: ChatService) -> None:
        self._service = service

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/api/debug", self.debug)]

    @endpoint(
        "Echo the request (secrets masked) and log it; for wiring up n8n",
        request=DebugRequest,
        responses={200: DebugEcho},
        auth="admin",
        tags=("debug",),
        description="Only with DEBUG_ENDPOINT=true; always needs an API key. Any JSON body.",
    )
    async def debug(self, request: web.Request) -> web.Response:
        await self._service.authorize(request, admin=True)
        body = await read_json(request)
        header = self._service.gateway.settings.api_key_header
        echo = {
            "success": True,
            "method": request.method,
            "path": request.path,
            "query": {k: MASK if is_secret_name(k) else v for k, v in request.query.items()},
            "headers": mask_headers(request.headers, header),
            "body": mask_body(body),
        }
        logger.info("debug request: {}", dumps(echo)[:_LOGGED_CHARS])
        return json_response(echo)
