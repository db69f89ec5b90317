"""What every chat route shares: publishing a message and awaiting its reply, the
length limit, API-key checks and idempotent retries."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from core import (
    ApiError,
    Caller,
    Gateway,
    KeyKind,
    Message,
    Ownership,
    Reply,
    ReplyHandle,
    Visitor,
    client_ip,
    json_response,
    require_api_key,
)
from plugins.http_api.idempotency import IdempotencyCache, Produced, check_key, fingerprint
from plugins.http_api.settings import HttpApiSettings

CHANNEL = "http_api"
#: Where the CORS middleware leaves the headers a streamed response must carry.
CORS_HEADERS = "http_api.cors_headers"
_REPLAYED = {"Idempotent-Replayed": "true"}


#: Most threads remembered as this channel's (oldest forgotten first).
KNOWN_THREADS_MAX = 10_000


class ChatService:
    """Turns validated requests into bus messages; one per plugin instance."""

    def __init__(self, gateway: Gateway, settings: HttpApiSettings) -> None:
        self.gateway = gateway
        self.settings = settings
        #: Threads already seen to hold this channel's turns (a conversation never changes
        #: channel): an API key's next message to one skips the store read. Forgotten when
        #: the thread is cleared.
        self._http_threads: OrderedDict[str, None] = OrderedDict()
        self.idempotency = IdempotencyCache(
            settings.idempotency_ttl_s, settings.idempotency_max_keys
        )

    async def authorize(self, request: web.Request, *, admin: bool = False) -> Caller:
        """429 when the caller's IP or key is over ``RATE_LIMIT_PER_MINUTE``; 401/403
        unless the request carries a valid key of a kind the route takes (open when no
        keys are set). Returns who is calling."""
        gateway = self.gateway
        await gateway.check_rate(f"ip:{client_ip(request)}")
        caller = require_api_key(request, gateway.settings, admin=admin)
        if caller.key_id:
            await gateway.check_rate(f"key:{caller.key_id}")
        return caller

    async def admit(
        self, request: web.Request, caller: Caller, text: str, field: str
    ) -> Visitor | None:
        """Check a message before it is sent: its length and, for a public key, the
        visitor (a new one when the request names none) and the public limits."""
        if not caller.public:
            self.check_length(text, field)
            return None
        access = self.gateway.access
        visitor = access.visitor(request, issue=True)
        assert visitor is not None
        await access.limits.check_message(visitor.id, client_ip(request), text)
        return visitor

    async def check_public(self, request: web.Request, caller: Caller, key: str, text: str) -> None:
        """The public limits for a caller identified by ``key`` (no visitor token)."""
        if caller.public:
            ip = client_ip(request)
            await self.gateway.access.limits.check_message(key, ip, text)

    @property
    def ownership(self) -> Ownership:
        return self.gateway.access.ownership(self.gateway.store)

    async def writable_thread(self, caller: Caller, owner: str | None, given: str | None) -> str:
        """The thread a message goes to: ``given`` or a new one. A public caller's thread
        is bound to ``owner`` (a thread someone else owns is "not found"); an API key
        may only use the HTTP channel's threads."""
        thread = given or uuid.uuid4().hex
        if caller.public:
            if owner is None or not await self.ownership.claim(thread, owner):
                raise thread_not_found()
        elif given and not caller.admin:
            await self._http_channel_only(thread, writing=True)
        return thread

    async def readable_thread(self, caller: Caller, owner: str | None, thread: str) -> None:
        """404 unless ``caller`` may see ``thread``: its own (public), the HTTP channel's
        (API key, open mode) or any (admin)."""
        if caller.public:
            if owner is None or await self.ownership.owner(thread) != owner:
                raise thread_not_found()
        elif caller.kind in (KeyKind.API, KeyKind.OPEN):
            await self._http_channel_only(thread)

    async def _http_channel_only(self, thread: str, *, writing: bool = False) -> None:
        if thread in self._http_threads:
            self._http_threads.move_to_end(thread)
            return
        turns = await self.gateway.store.history(thread, limit=1)
        if turns and turns[-1].channel != CHANNEL:
            raise thread_not_found()
        # An empty thread written to now becomes this channel's. Ids shaped like another
        # channel's (``talkme:<id>``) are checked every time: that channel may write later.
        if (turns or writing) and ":" not in thread:
            self._http_threads[thread] = None
            if len(self._http_threads) > KNOWN_THREADS_MAX:
                self._http_threads.popitem(last=False)

    def forget_thread(self, thread: str | None) -> None:
        """A cleared thread (``None``: every thread) must be checked again."""
        if thread is None:
            self._http_threads.clear()
        else:
            self._http_threads.pop(thread, None)

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


def thread_not_found() -> ApiError:
    """The same answer for a thread that does not exist and one the caller may not see."""
    return ApiError(404, "thread_not_found", "no such thread")


def session_owner(session_id: str) -> str:
    """The owner of an ``@n8n/chat`` session used with a public key: knowing the (random)
    session id is what binds a visitor to it."""
    return "session:" + hashlib.sha256(session_id.encode()).hexdigest()[:32]


def error_detail(reply: Reply) -> dict[str, Any] | None:
    if reply.error is None:
        return None
    return {"code": reply.error.code, "message": reply.error.message}
