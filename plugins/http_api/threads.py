"""``GET /api/threads`` (the caller's threads), ``GET /api/threads/{thread_id}/messages``
and ``DELETE /api/threads/{thread_id}``: what a web chat needs for "reload" and "new
conversation".

A public key sees only its visitor's threads (``X-Visitor-Token``), an API key the HTTP
channel's, an admin key any; a thread the caller may not see is "not found", exactly like
one that does not exist.
"""

from __future__ import annotations

from aiohttp import web

from core import ApiError, Caller, ErrorResponse, bind_conversation, endpoint, json_response
from plugins.http_api.models import (
    VISITOR_TOKEN_DOC,
    ThreadCleared,
    ThreadList,
    ThreadMessages,
)
from plugins.http_api.service import CHANNEL, ChatService

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_THREAD_CHARS = 256
MAX_OFFSET = 10_000_000


def thread_of(request: web.Request) -> str:
    thread = request.match_info["thread_id"]
    if len(thread) > MAX_THREAD_CHARS:
        raise ApiError(422, "validation_error", f"thread_id: at most {MAX_THREAD_CHARS} characters")
    return thread


def limit_of(request: web.Request) -> int:
    raw = request.query.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise ApiError(422, "validation_error", f"limit: must be an integer from 1 to {MAX_LIMIT}")
    return limit


def offset_of(request: web.Request) -> int:
    raw = request.query.get("offset", "0")
    if not raw.isascii() or not raw.isdigit() or int(raw) > MAX_OFFSET:
        raise ApiError(
            422, "validation_error", f"offset: must be a whole number from 0 to {MAX_OFFSET}"
        )
    return int(raw)


class ThreadRoutes:
    def __init__(self, service: ChatService) -> None:
        self._service = service

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/threads", self.list_threads),
            web.get("/api/threads/{thread_id}/messages", self.messages),
            web.delete("/api/threads/{thread_id}", self.clear),
        ]

    def _owner(self, request: web.Request, caller: Caller) -> str | None:
        if not caller.public:
            return None
        visitor = self._service.gateway.access.visitor(request, issue=False)
        return visitor.owner if visitor is not None else None

    @endpoint(
        "The caller's threads, most recently active first",
        responses={200: ThreadList, 422: ErrorResponse},
        tags=("threads",),
        description=(
            "A public key: the visitor's own threads (X-Visitor-Token; none without it). "
            "An API key: the HTTP channel's threads. An admin key: every channel's."
        ),
        query={
            "limit": (
                f"at most N threads (1-{MAX_LIMIT}, default {DEFAULT_LIMIT})",
                {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
            ),
            "offset": (
                f"skip the first N (0-{MAX_OFFSET})",
                {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
            ),
        },
        headers=VISITOR_TOKEN_DOC,
    )
    async def list_threads(self, request: web.Request) -> web.Response:
        service = self._service
        caller = await service.authorize(request)
        owner = self._owner(request, caller)
        limit, offset = limit_of(request), offset_of(request)
        if caller.public:
            infos = await service.ownership.list_owned(owner, limit, offset) if owner else []
        else:
            channel = None if caller.admin else CHANNEL
            infos = await service.gateway.store.list_conversations(channel, limit, offset)
        return json_response(
            {
                "success": True,
                "threads": [
                    {
                        "thread_id": info.conversation_id,
                        "channel": info.channel or CHANNEL,
                        "turns": info.turns,
                        "last_activity": info.last_activity,
                    }
                    for info in infos
                ],
                "limit": limit,
                "offset": offset,
            }
        )

    @endpoint(
        "A thread's stored messages, oldest first",
        responses={200: ThreadMessages, 404: ErrorResponse, 422: ErrorResponse},
        tags=("threads",),
        query={
            "limit": (
                f"the newest N messages (1-{MAX_LIMIT}, default {DEFAULT_LIMIT})",
                {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
            )
        },
        headers=VISITOR_TOKEN_DOC,
    )
    async def messages(self, request: web.Request) -> web.Response:
        caller = await self._service.authorize(request)
        thread = thread_of(request)
        with bind_conversation(request, thread):
            await self._service.readable_thread(caller, self._owner(request, caller), thread)
            turns = await self._service.gateway.store.history(thread, limit=limit_of(request))
            return json_response(
                {
                    "success": True,
                    "thread_id": thread,
                    "messages": [
                        {
                            "role": turn.role,
                            "content": turn.text,
                            "created_at": turn.created_at,
                            "channel": turn.channel,
                            "user_id": turn.user_id,
                        }
                        for turn in turns
                    ],
                }
            )

    @endpoint(
        "Forget a thread (fires session_cleared)",
        responses={200: ThreadCleared, 404: ErrorResponse, 422: ErrorResponse},
        tags=("threads",),
        headers=VISITOR_TOKEN_DOC,
    )
    async def clear(self, request: web.Request) -> web.Response:
        caller = await self._service.authorize(request)
        thread = thread_of(request)
        with bind_conversation(request, thread):
            await self._service.readable_thread(caller, self._owner(request, caller), thread)
            removed = await self._service.gateway.clear_session(thread)
            return json_response({"success": True, "thread_id": thread, "removed": removed})
