"""What every chat route shares: publishing a message and awaiting its reply, the
length limit, API-key checks and idempotent retries."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from core import (
    ApiError,
    Gateway,
    Message,
    Reply,
    ReplyHandle,
    client_ip,
    json_response,
    presented_key,
    require_api_key,
)
from plugins.http_api.idempotency import IdempotencyCache, Produced, check_key, fingerprint
from plugins.http_api.settings import HttpApiSettings

CHANNEL = "http_api"
#: Where the CORS middleware leaves the headers a streamed response must carry.
CORS_HEADERS = "http_api.cors_headers"
_REPLAYED = {"Idempotent-Replayed": "true"}


class ChatService:
    """Turns validated requests into bus messages; one per plugin instance."""

    def __init__(self, gateway: Gateway, settings: HttpApiSettings) -> None:
        self.gateway = gateway
        self.settings = settings
        self.idempotency = IdempotencyCache(
            settings.idempotency_ttl_s, settings.idempotency_max_keys
        )

    def authorize(self, request: web.Request, *, admin: bool = False) -> None:
        """429 when the caller's IP or key is over ``RATE_LIMIT_PER_MINUTE``; 401/403
        unless the request carries a valid key (open when no keys are set)."""
        gateway = self.gateway
        gateway.check_rate(f"ip:{client_ip(request)}")
        require_api_key(request, gateway.settings, admin=admin)
        key = presented_key(request, gateway.settings.api_key_header)
        if key is not None:
            gateway.check_rate(f"key:{hashlib.sha256(key.encode()).hexdigest()[:16]}")

    def check_length(self, text: str, field: str) -> None:
        limit = self.settings.max_message_chars
        if len(text) > limit:
            raise ApiError(413, "message_too_long", f"{field} is longer than {limit} characters")

    async def publish(self, message: Message) -> ReplyHandle:
        """Queue ``message``. When the bus cannot take it, ``BusFullError`` or
        ``BusClosedError`` goes on: the request middleware answers 503 (core.web.errors)."""
        handle = await self.gateway.publish(message)
        assert handle is not None  # only durable publishes return None
        return handle

    async def ask(self, message: Message) -> Reply:
        """Publish and wait for the reply (a fallback reply carries ``error``)."""
        handle = await self.publish(message)
        try:
            return await handle.reply()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                handle.cancel()
                raise
            raise ApiError(
                503, "cancelled", "the reply was cancelled by a shut-down", {"Retry-After": "5"}
            ) from None

    async def respond_once(
        self,
        request: web.Request,
        route: str,
        thread: str,
        digest_of: tuple[str | None, ...],
        produce: Callable[[], Awaitable[Produced]],
    ) -> web.Response:
        """Answer with ``produce()``'s body, or with the remembered body of an earlier
        request carrying the same ``Idempotency-Key`` on the same route and thread."""
        key = request.headers.get("Idempotency-Key")
        if not key:
            body, _ = await produce()
            return json_response(body)
        scope = (route, thread, check_key(key))
        digest = fingerprint(*digest_of)
        # A store shared by several processes (the postgres plugin's) keeps the keys, so
        # a retry that reaches another node is answered once too.
        shared = getattr(self.gateway.store, "idempotent", None)
        if shared is not None:
            body, replayed = await shared(scope, digest, produce, self.settings.idempotency_ttl_s)
        else:
            body, replayed = await self.idempotency.run(scope, digest, produce)
        return json_response(body, headers=_REPLAYED if replayed else None)


def error_detail(reply: Reply) -> dict[str, Any] | None:
    if reply.error is None:
        return None
    return {"code": reply.error.code, "message": reply.error.message}
