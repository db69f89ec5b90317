"""How the inbox/outbox stores a :class:`Message` and a :class:`Reply`: JSON text."""

from __future__ import annotations

import json
from typing import Any

from core.contract.events import Message, Reply, ReplyError
from core.jsonenc import dumps


def message_fields(message: Message) -> dict[str, Any]:
    """The stored fields of a message (JSON values); ``Message(**fields)`` rebuilds it."""
    return {
        "id": message.id,
        "conversation_id": message.conversation_id,
        "channel": message.channel,
        "text": message.text,
        "user_id": message.user_id,
        "chat_id": message.chat_id,
        "message_id": message.message_id,
        "metadata": dict(message.metadata),
        "received_at": message.received_at,
    }


def message_to_json(message: Message) -> str:
    return dumps(message_fields(message))


def message_from_json(raw: str) -> Message:
    return Message(**json.loads(raw))


def reply_fields(reply: Reply) -> dict[str, Any]:
    """The stored fields of a reply (JSON values); ``reply_from_json`` reads them back."""
    return {
        "text": reply.text,
        "error": None if reply.error is None else [reply.error.code, reply.error.message],
        "usage": dict(reply.usage) if reply.usage else None,
        "actions": list(reply.actions),
        "metadata": dict(reply.metadata),
        "created_at": reply.created_at,
    }


def reply_to_json(reply: Reply) -> str:
    return dumps(reply_fields(reply))


def reply_from_json(raw: str, message: Message) -> Reply:
    data = json.loads(raw)
    error = ReplyError(*data["error"]) if data["error"] else None
    return Reply(
        conversation_id=message.conversation_id,
        channel=message.channel,
        text=data["text"],
        in_reply_to=message,
        error=error,
        usage=data["usage"],
        actions=tuple(data["actions"]),
        metadata=data["metadata"],
        created_at=data["created_at"],
    )
