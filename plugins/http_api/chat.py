"""``POST /api/chat`` (one JSON reply) and ``POST /api/chat/stream`` (Server-Sent Events)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from aiohttp_sse import EventSourceResponse
from loguru import logger

from core import (
    REQUEST_ID,
    VISITOR_HEADER,
    ErrorResponse,
    Message,
    ReplyHandle,
    Visitor,
    api_error,
    bind_conversation,
    dumps,
    endpoint,
    read_json,
    validate,
)
from plugins.http_api.idempotency import Produced
from plugins.http_api.models import (
    IDEMPOTENCY_KEY_DOC,
    VISITOR_TOKEN_DOC,
    ChatRequest,
    ChatResponse,
    StreamItem,
)
from plugins.http_api.service import CHANNEL, CORS_HEADERS, ChatService, error_detail


class ChatRoutes:
    """The two chat endpoints."""

    def __init__(self, service: ChatService) -> None:
        self._service = service

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/api/chat", self.chat), web.post("/api/chat/stream", self.stream)]

    async def _read(self, request: web.Request) -> tuple[ChatRequest, str, Visitor | None]:
        """The validated body, its thread and, for a public key, the visitor."""
        service = self._service
        caller = await service.authorize(request)
        body = validate(ChatRequest, await read_json(request))
        visitor = await service.admit(request, caller, body.message, "message")
        owner = visitor.owner if visitor is not None else None
        thread = await service.writable_thread(caller, owner, body.thread_id or body.chat_id)
        return body, thread, visitor

    @staticmethod
    def _message(body: ChatRequest, thread: str, *, stream: bool = False) -> Message:
        return Message(
            thread,
            CHANNEL,
            body.message,
            user_id=body.user_id,
            chat_id=body.chat_id,
            metadata=body.metadata or {},
            stream=stream,
        )

    @endpoint(
        "Send a message and get the agent's reply",
        request=ChatRequest,
        responses={200: ChatResponse, 503: ErrorResponse},
        tags=("chat",),
        description=(
            "The conversation is `thread_id`, else `chat_id`, else a new id returned in "
            "`thread_id`. Send `Idempotency-Key` to make retries safe: the same key on the "
            "same thread answers the first reply again instead of asking twice."
        ),
        headers={**IDEMPOTENCY_KEY_DOC, **VISITOR_TOKEN_DOC},
    )
    async def chat(self, request: web.Request) -> web.Response:
        body, thread, visitor = await self._read(request)
        given = body.thread_id or body.chat_id

        with bind_conversation(request, thread):

            async def produce() -> Produced:
                reply = await self._service.ask(self._message(body, thread))
                answer = {
                    "response": reply.text,
                    "thread_id": thread,
                    "user_id": body.user_id,
                    "chat_id": body.chat_id,
                    "success": reply.success,
                    "error": error_detail(reply),
                }
                if visitor is not None:
                    answer["visitor_token"] = visitor.token
                return answer, reply.success

            response = await self._service.respond_once(
                request, "chat", given or "", (body.message, body.user_id), produce
            )
            if visitor is not None:
                response.headers[VISITOR_HEADER] = visitor.token
            return response

    @endpoint(
        "Send a message and stream the reply as Server-Sent Events",
        request=ChatRequest,
        responses={200: StreamItem, 503: ErrorResponse},
        tags=("chat",),
        content_type="text/event-stream",
        description=(
            "`data:` lines carry JSON events: `metadata` (the thread), `chunk` per piece of "
            "text, then `done` with the whole reply, or `error`. A comment line pings "
            "every `STREAM_PING_S` seconds; closing the connection cancels the reply. "
            "Errors before the stream starts are ordinary JSON errors."
        ),
        headers=VISITOR_TOKEN_DOC,
    )
    async def stream(self, request: web.Request) -> web.StreamResponse:
        body, thread, visitor = await self._read(request)
        with bind_conversation(request, thread):
            handle = await self._service.publish(self._message(body, thread, stream=True))
            headers = dict(request.get(CORS_HEADERS) or {})
            if visitor is not None:
                headers[VISITOR_HEADER] = visitor.token
            response = EventSourceResponse(
                # X-Accel-Buffering: nginx (and proxies that honour it) passes each event
                # on at once instead of buffering the response.
                headers={**headers, "X-Accel-Buffering": "no"},
                ping_interval=self._service.settings.stream_ping_s,
                allow_all_methods=True,
            )
            watcher: asyncio.Task[None] | None = None
            try:
                await response.prepare(request)
                watcher = asyncio.create_task(_cancel_when_gone(response, handle))
                metadata = {
                    "type": "metadata",
                    "thread_id": thread,
                    "user_id": body.user_id,
                    "chat_id": body.chat_id,
                }
                if visitor is not None:
                    metadata["visitor_token"] = visitor.token
                await response.send(dumps(metadata))
                async for delta in handle.chunks():
                    await response.send(dumps({"type": "chunk", "content": delta}))
                final = await _final_event(handle, thread, request.get(REQUEST_ID, ""))
                if final is not None:
                    await response.send(dumps(final))
            except (ConnectionResetError, TimeoutError):
                handle.cancel()
                logger.info("stream client went away: reply on thread {} cancelled", thread)
            except BaseException:
                handle.cancel()
                raise
            finally:
                if watcher is not None:
                    watcher.cancel()
                if response.prepared:
                    response.stop_streaming()
            return response


async def _cancel_when_gone(response: EventSourceResponse, handle: ReplyHandle) -> None:
    """The ping task ends when a ping cannot be written: the client left between chunks."""
    await response.wait()
    if not handle.done():
        handle.cancel()
        logger.info("stream client went away (ping failed): reply cancelled")


async def _final_event(handle: ReplyHandle, thread: str, request_id: str) -> dict[str, Any] | None:
    try:
        reply = await handle.reply()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        if handle.cancelled:  # the client left: nobody to tell
            return None
        return {"type": "error", "code": "cancelled", "message": "the reply was cancelled"}
    except Exception as exc:  # the bus has logged it with the request id in context
        error = api_error(exc)
        if error is not None:  # an expected failure (storage unavailable...): say which
            return {"type": "error", "code": error.code, "message": error.message}
        return {
            "type": "error",
            "code": "internal_error",
            "message": f"unexpected error; request id {request_id}",
            "request_id": request_id,
        }
    if reply.error is not None:
        return {
            "type": "error",
            "code": reply.error.code,
            "message": reply.error.message,
            "response": reply.text,
            "thread_id": thread,
        }
    event: dict[str, Any] = {"type": "done", "response": reply.text, "thread_id": thread}
    if reply.usage:
        event["usage"] = dict(reply.usage)
    return event
