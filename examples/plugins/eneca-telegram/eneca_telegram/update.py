"""Telegram ``Update`` objects: the few fields the channel reads, and the message they
become on the gateway's bus."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core import Message

#: ``Message.channel`` of everything this plugin publishes and delivers.
CHANNEL = "telegram"


class Chat(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: int
    type: str = "private"


class User(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: int
    is_bot: bool = False
    first_name: str = ""
    username: str | None = None
    language_code: str | None = None


class TelegramMessage(BaseModel):
    """A Telegram ``Message``; only text messages are answered."""

    model_config = ConfigDict(extra="ignore")

    message_id: int
    chat: Chat
    date: int = 0
    from_: User | None = Field(None, alias="from")
    text: str | None = None
    message_thread_id: int | None = None


class Update(BaseModel):
    """What Telegram posts to the webhook. Any kind of update other than ``message``
    (edits, channel posts, callbacks...) is acknowledged and ignored."""

    model_config = ConfigDict(extra="allow")

    update_id: int
    message: TelegramMessage | None = None


class WebhookAck(BaseModel):
    """The webhook's answer. Telegram only looks at the status (200 = taken)."""

    ok: bool = True
    #: Why the update was not queued for the agent (``"not a text message"``...).
    ignored: str | None = None
    #: True when this ``update_id`` was already taken: Telegram redelivered it.
    duplicate: bool = False


def ignored_because(update: Update) -> str | None:
    """Why this update gets no answer, or ``None`` when it is a text message to answer."""
    if update.message is None:
        kinds = sorted(k for k in (update.model_extra or {}) if k != "update_id")
        return f"not a message update ({', '.join(kinds) or 'empty'})"
    if not update.message.text or not update.message.text.strip():
        return "not a text message"
    if update.message.from_ is not None and update.message.from_.is_bot:
        return "sent by a bot"
    return None


def to_message(update: Update) -> Message:
    """The bus message of a text update. ``update_id`` is the provider message id, so
    a redelivered update is recognised by the gateway's inbox and answered once."""
    tg = update.message
    assert tg is not None and tg.text is not None
    sender = tg.from_
    metadata: dict[str, Any] = {"telegram_message_id": tg.message_id, "chat_type": tg.chat.type}
    if tg.message_thread_id is not None:
        metadata["message_thread_id"] = tg.message_thread_id
    if sender is not None:
        metadata["username"] = sender.username
        metadata["language_code"] = sender.language_code
    return Message(
        conversation_id=f"{CHANNEL}:{tg.chat.id}",
        channel=CHANNEL,
        text=tg.text,
        user_id=str(sender.id) if sender is not None else None,
        chat_id=str(tg.chat.id),
        message_id=str(update.update_id),
        metadata=metadata,
    )
