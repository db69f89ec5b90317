"""``POST /api/n8n/chat``: the ``@n8n/chat`` widget talks to the bot directly.

The widget posts ``{"action": "sendMessage", "sessionId", "chatInput", "metadata"?}`` and
shows ``output``; ``{"action": "loadPreviousSession", "sessionId"}`` expects n8n's chat
memory format, ``{"data": [LangChain-serialised messages]}``: it shows ``kwargs.content``
and takes a message whose ``id`` contains ``HumanMessage`` for the user's.
"""

from __future__ import annotations

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
from plugins.http_api.models import N8nChatRequest, N8nChatRequestDoc, N8nChatResponse
from plugins.http_api.service import CHANNEL, ChatService

HISTORY_LIMIT = 1000
_HUMAN = ["langchain_core", "messages", "HumanMessage"]
_AI = ["langchain_core", "messages", "AIMessage"]


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
            '`sendMessage` answers `{"output": reply}`; `loadPreviousSession` answers the '
            'stored history as `{"data": [...]}` in n8n\'s chat-memory format. '
            "`sessionId` is the thread."
        ),
    )
    async def chat(self, request: web.Request) -> web.Response:
        service = self._service
        service.authorize(request)
        body = validate(N8nChatRequest, await read_json(request))
        with bind_conversation(request, body.sessionId):
            if body.action == "loadPreviousSession":
                return json_response(await self._history(body.sessionId))
            text = body.chatInput
            if text is None or not text.strip():
                raise ApiError(
                    422, "validation_error", "chatInput: a non-empty text is required to send"
                )
            service.check_length(text, "chatInput")
            message = Message(body.sessionId, CHANNEL, text, metadata=body.metadata or {})

            async def produce() -> Produced:
                reply = await service.ask(message)
                return {"output": reply.text}, reply.success

            return await service.respond_once(request, "n8n", body.sessionId, (text,), produce)

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
