"""``GET /api/threads/{thread_id}/messages`` and ``DELETE /api/threads/{thread_id}``:
what a web chat needs for "reload" and "new conversation"."""

from __future__ import annotations

from aiohttp import web

from core import ApiError, ErrorResponse, bind_conversation, endpoint, json_response
from plugins.http_api.models import ThreadCleared, ThreadMessages
from plugins.http_api.service import ChatService

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_THREAD_CHARS = 256


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


class ThreadRoutes:
    def __init__(self, service: ChatService) -> None:
        self._service = service

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/threads/{thread_id}/messages", self.messages),
            web.delete("/api/threads/{thread_id}", self.clear),
        ]

    @endpoint(
        "A thread's stored messages, oldest first",
        responses={200: ThreadMessages, 422: ErrorResponse},
        tags=("threads",),
        query={
            "limit": (
                f"the newest N messages (1-{MAX_LIMIT}, default {DEFAULT_LIMIT})",
                {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
            )
        },
    )
    async def messages(self, request: web.Request) -> web.Response:
        self._service.authorize(request)
        thread = thread_of(request)
        with bind_conversation(request, thread):
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
        responses={200: ThreadCleared, 422: ErrorResponse},
        tags=("threads",),
    )
    async def clear(self, request: web.Request) -> web.Response:
        self._service.authorize(request)
        thread = thread_of(request)
        with bind_conversation(request, thread):
            removed = await self._service.gateway.clear_session(thread)
            return json_response({"success": True, "thread_id": thread, "removed": removed})
