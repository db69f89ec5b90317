"""``POST /api/n8n/chat``: the ``@n8n/chat`` widget talks to the bot directly.

The widget posts ``{"action": "sendMessage", "sessionId", "chatInput", "metadata"?}`` and
shows ``output``; ``{"action": "loadPreviousSession", "sessionId"}`` expects n8n's chat
memory format, ``{"data": [LangChain-serialised messages]}``: it shows ``kwargs.content``
and takes a message whose ``id`` contains ``HumanMessage`` for the user's.
"""

from __future__ import annotations

import re

from aiohttp import web

from core import (
    ApiError,
    ErrorResponse,
    Message,
    bind_conversation,
    endpoint,
    json_response,
    read_json,
    validate,
)
from plugins.http_api.idempotency import Produced
from plugins.http_api.models import (
    IDEMPOTENCY_KEY_DOC,
    N8nChatRequest,
    N8nChatRequestDoc,
    N8nChatResponse,
)
from plugins.http_api.n8n_stream import stream_reply, wants_stream
from plugins.http_api.service import (
    CHANNEL,
    CORS_HEADERS,
    ChatService,
    session_owner,
    thread_not_found,
)

HISTORY_LIMIT = 1000
_HUMAN = ["langchain_core", "messages", "HumanMessage"]
_AI = ["langchain_core", "messages", "AIMessage"]
#: With a public key the session id is the visitor's only proof: it must look random
#: (the widget makes a UUID v4).
_SESSION = re.compile(r"^[A-Za-z0-9_-]{16,256}$")
MIN_DISTINCT_CHARS = 10


def check_session_id(session: str) -> None:
    if not _SESSION.match(session) or len(set(session)) < MIN_DISTINCT_CHARS:
        raise ApiError(
            422,
            "weak_session_id",
            "sessionId: with a public key it must be random, like the widget's own (16 to "
            f"256 letters, digits, '-' or '_', at least {MIN_DISTINCT_CHARS} different ones)",
        )


class N8nChatRoutes:
    def __init__(self, service: ChatService) -> None:
        self._service = service

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/api/n8n/chat", self.chat)]

    @endpoint(
        "n8n chat widget (@n8n/chat): sendMessage and loadPreviousSession",
        request=N8nChatRequestDoc,
        responses={200: N8nChatResponse, 503: ErrorResponse},
        tags=("n8n",),
        description=(
            '`sendMessage` answers `{"output": reply}`, or with `Accept: text/plain` (the '
            "widget's `enableStreaming`) streams newline-delimited JSON chunks `begin`, "
            "`item`..., `end` (or `error`) as the model writes; `loadPreviousSession` answers "
            'the stored history as `{"data": [...]}` in n8n\'s chat-memory format. '
            "`sessionId` is the thread; with a public key it binds the visitor and must be "
            "random (422 `weak_session_id`)."
        ),
        headers=IDEMPOTENCY_KEY_DOC,
    )
    async def chat(self, request: web.Request) -> web.StreamResponse:
        service = self._service
        caller = await service.authorize(request)
        body = validate(N8nChatRequest, await read_json(request))
        session = body.sessionId
        owner = None
        if caller.public:
            check_session_id(session)
            owner = session_owner(session)
        with bind_conversation(request, session):
            if body.action == "loadPreviousSession":
                if caller.public and await service.ownership.owner(session) != owner:
                    if await service.gateway.store.history(session, limit=1):
                        raise thread_not_found()
                    return json_response({"data": []})
                await service.readable_thread(caller, owner, session)
                return json_response(await self._history(session))
            text = body.chatInput
            if text is None or not text.strip():
                raise ApiError(
                    422, "validation_error", "chatInput: a non-empty text is required to send"
                )
            if caller.public:
                assert owner is not None
                await service.check_public(request, caller, owner, text)
            else:
                service.check_length(text, "chatInput")
            await service.writable_thread(caller, owner, session)
            message = Message(
                session,
                CHANNEL,
                text,
                metadata=body.metadata or {},
                stream=wants_stream(request),
            )
            if message.stream:
                handle = await service.publish(message)
                return await stream_reply(request, handle, dict(request.get(CORS_HEADERS) or {}))

            async def produce() -> Produced:
                reply = await service.ask(message)
                return {"output": reply.text}, reply.success

            return await service.respond_once(request, "n8n", session, (text,), produce)

    async def _history(self, session: str) -> dict[str, object]:
        turns = await self._service.gateway.store.history(session, limit=HISTORY_LIMIT)
        return {
            "data": [
                {
                    "lc": 1,
                    "type": "constructor",
                    "id": _HUMAN if turn.role == "user" else _AI,
                    "kwargs": {"content": turn.text, "additional_kwargs": {}},
                }
                for turn in turns
                if turn.role in ("user", "assistant")
            ]
        }
