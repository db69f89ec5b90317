"""The conversation store: what a memory plugin provides through ``conversation_store``.

The gateway appends the user turn before the agent runs and the assistant turn after a
successful reply, and hands the agent the recent window. A store only stores.

A store may also offer :class:`AppendsWithHistory`: the user turn's append and the read
of the window as one call, which the gateway then uses on every message (for SQLite, one
hand-off to the database thread instead of two). Stores without it keep working.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, Protocol, runtime_checkable

from core.contract.events import Message, public_metadata

Role = Literal["user", "assistant", "system", "tool"]


@dataclass(frozen=True, slots=True)
class Turn:
    """One stored message of a conversation."""

    role: Role
    text: str
    channel: str = ""
    user_id: str | None = None
    message_id: str | None = None
    created_at: float = field(default_factory=time.time)
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))

    @classmethod
    def of_message(cls, message: Message) -> Turn:
        """The user's turn the gateway stores for ``message`` before the agent runs (the
        channel's private metadata left out). A store that writes it ahead (in the same
        round trip as other work) writes exactly this."""
        return cls(
            "user",
            message.text,
            message.channel,
            message.user_id,
            message.message_id or message.id,
            message.received_at,
            public_metadata(message.metadata),
        )


@dataclass(frozen=True, slots=True)
class ConversationInfo:
    """A conversation as listed by :meth:`ConversationStore.list_conversations`."""

    conversation_id: str
    channel: str
    turns: int
    last_activity: float


@runtime_checkable
class ConversationStore(Protocol):
    """Memory per conversation. Implementations must be safe under concurrent calls."""

    async def append(self, conversation_id: str, turn: Turn) -> None:
        """Store one turn at the end of the conversation, in O(1) of its length.

        Appending a turn whose ``message_id`` and ``role`` already exist in the
        conversation stores nothing (a replayed message is not remembered twice).
        """

    async def history(
        self, conversation_id: str, limit: int | None = None, max_chars: int | None = None
    ) -> list[Turn]:
        """The most recent turns, oldest first: at most ``limit`` turns and, when given,
        at most ``max_chars`` characters of text (always at least the newest turn)."""

    async def clear(self, conversation_id: str) -> int:
        """Forget one conversation; returns how many turns were removed."""

    async def clear_channel(self, channel: str) -> int:
        """Forget every conversation of a channel; returns how many were removed."""

    async def list_conversations(
        self, channel: str | None = None, limit: int = 100, offset: int = 0
    ) -> Sequence[ConversationInfo]:
        """Conversations, most recently active first."""

    async def count_conversations(self, channel: str | None = None) -> int:
        """How many conversations are stored."""

    async def stats(self) -> dict[str, Any]:
        """Figures for health and stats endpoints (turns, conversations, size...)."""

    async def ping(self) -> bool:
        """True when the store can be read and written right now."""


@runtime_checkable
class AppendsWithHistory(Protocol):
    """Optional fast path of a :class:`ConversationStore` (not part of that protocol)."""

    async def append_and_history(
        self,
        conversation_id: str,
        turn: Turn,
        limit: int | None = None,
        max_chars: int | None = None,
    ) -> list[Turn]:
        """``append(conversation_id, turn)`` then ``history(conversation_id, limit,
        max_chars)``, with the same results: the turn is stored (committed, for a
        persistent store) before this returns, and the history includes it."""


@runtime_checkable
class OwnsConversations(Protocol):
    """Optional part of a :class:`ConversationStore`: which visitor owns a conversation.

    The HTTP API binds a web visitor's threads to it, so another visitor cannot read or
    write them. Kept in the store because it must survive restarts and be shared by every
    node of a cluster. ``clear``, ``clear_channel`` and purges drop the owner with the
    conversation.
    """

    async def claim(self, conversation_id: str, owner: str) -> bool:
        """Atomically bind a conversation with no owner and no turns to ``owner``.

        True when the conversation is now (or already was) ``owner``'s; False when it has
        another owner, or already has turns without one (it belongs to someone else).
        """

    async def owner(self, conversation_id: str) -> str | None:
        """The owner of a conversation, or None."""

    async def list_owned(
        self, owner: str, limit: int = 100, offset: int = 0
    ) -> Sequence[ConversationInfo]:
        """``owner``'s conversations, most recently active first; one claimed but still
        empty is listed with no turns, its ``last_activity`` the time it was claimed."""


@runtime_checkable
class SharesIdempotency(Protocol):
    """Optional capability of a store shared by several processes (not part of
    :class:`ConversationStore`): ``Idempotency-Key`` answers kept where every process
    sees them. Channels use it instead of their in-process cache when the store has it."""

    async def idempotent(
        self,
        scope: tuple[str, str, str],
        digest: bytes,
        produce: Callable[[], Awaitable[tuple[dict[str, Any], bool]]],
        ttl_s: float,
    ) -> tuple[dict[str, Any], bool]:
        """The answer for ``scope`` (route, thread, key): the remembered body (``True``)
        or ``produce()``'s (run once however many processes get the key at once; kept
        ``ttl_s`` seconds when ``produce`` says it may be reused). A different request
        (``digest``) under the same key raises a 422 ``idempotency_key_reused``."""
