"""The immutable values that travel over the bus.

A channel turns its inbound request into a :class:`Message`; the agent answers with
:class:`Chunk` values while it streams and one final :class:`Reply`; clearing memory is a
:class:`SessionCleared`. All are frozen: a plugin cannot change what another plugin sees.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

#: Metadata key listing the ids of messages merged into this one by debouncing.
MERGED_IDS = "merged_message_ids"


#: Metadata keys starting with this are the channel's own (a provider token, say): kept
#: with the message in the inbox for delivery, never stored in conversation memory.
PRIVATE_PREFIX = "_"


def public_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """``metadata`` without the channel's private keys."""
    return {k: v for k, v in metadata.items() if not k.startswith(PRIVATE_PREFIX)}


def _frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(value or {}))


def new_id() -> str:
    """A random 32-character hex id."""
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class Message:
    """One inbound user message, as a channel received it."""

    conversation_id: str
    channel: str
    text: str
    user_id: str | None = None
    chat_id: str | None = None
    #: The provider's id for this message (TalkMe's message id, Telegram's update id).
    message_id: str | None = None
    #: Anything else the channel knows; keys starting with ``_`` are private to it.
    metadata: Mapping[str, Any] = field(default_factory=dict)
    #: The channel wants chunks while the agent generates (SSE); a hint, not a promise.
    stream: bool = False
    received_at: float = field(default_factory=time.time)
    #: The gateway's own id of this event, unique per message.
    id: str = field(default_factory=new_id)

    def __post_init__(self) -> None:
        object.__setattr__(self, "metadata", _frozen_mapping(self.metadata))


@dataclass(frozen=True, slots=True)
class ReplyError:
    """Why a reply is not the agent's own answer (a fallback was sent instead)."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Reply:
    """The agent's final answer to one :class:`Message`."""

    conversation_id: str
    channel: str
    text: str
    in_reply_to: Message
    error: ReplyError | None = None
    #: Token counts reported by the model server: ``prompt_tokens``, ``completion_tokens``.
    usage: Mapping[str, int] | None = None
    #: Things the channel should do besides sending the text, e.g. ``"handover"``.
    actions: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        object.__setattr__(self, "metadata", _frozen_mapping(self.metadata))

    @property
    def success(self) -> bool:
        return self.error is None

    @property
    def user_id(self) -> str | None:
        return self.in_reply_to.user_id

    @property
    def chat_id(self) -> str | None:
        return self.in_reply_to.chat_id


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a reply, emitted while the agent streams."""

    conversation_id: str
    message_id: str
    index: int
    text: str


@dataclass(frozen=True, slots=True)
class SessionCleared:
    """A conversation (or every conversation of a channel) was forgotten.

    ``conversation_id`` is ``None`` when a whole channel was cleared.
    """

    conversation_id: str | None
    channel: str | None = None
    cleared_at: float = field(default_factory=time.time)
