"""A process-local :class:`ConversationStore`: the fallback when no memory plugin runs,
and the store the plugin test kit uses. Nothing survives a restart."""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Sequence
from typing import Any

from core.contract.store import ConversationInfo, Turn


class InMemoryConversationStore:
    """Turns in per-conversation deques; history is a slice of the tail."""

    def __init__(self, max_turns_per_conversation: int = 10_000) -> None:
        self._turns: dict[str, deque[Turn]] = defaultdict(
            lambda: deque(maxlen=max_turns_per_conversation)
        )
        self._channel: dict[str, str] = {}
        self._last: dict[str, float] = {}
        self._owners: dict[str, tuple[str, float]] = {}

    async def append(self, conversation_id: str, turn: Turn) -> None:
        turns = self._turns[conversation_id]
        if turn.message_id is not None and any(
            t.message_id == turn.message_id and t.role == turn.role for t in turns
        ):
            return
        turns.append(turn)
        self._channel.setdefault(conversation_id, turn.channel)
        self._last[conversation_id] = time.time()

    async def append_and_history(
        self,
        conversation_id: str,
        turn: Turn,
        limit: int | None = None,
        max_chars: int | None = None,
    ) -> list[Turn]:
        await self.append(conversation_id, turn)
        return await self.history(conversation_id, limit, max_chars)

    async def history(
        self, conversation_id: str, limit: int | None = None, max_chars: int | None = None
    ) -> list[Turn]:
        turns = list(self._turns.get(conversation_id, ()))
        if limit is not None:
            turns = turns[-limit:] if limit > 0 else []
        if max_chars is not None and turns:
            kept: list[Turn] = []
            used = 0
            for turn in reversed(turns):
                if kept and used + len(turn.text) > max_chars:
                    break
                kept.append(turn)
                used += len(turn.text)
            turns = kept[::-1]
        return turns

    async def clear(self, conversation_id: str) -> int:
        self._owners.pop(conversation_id, None)
        self._channel.pop(conversation_id, None)
        self._last.pop(conversation_id, None)
        return len(self._turns.pop(conversation_id, ()))

    async def clear_channel(self, channel: str) -> int:
        ids = [cid for cid, ch in self._channel.items() if ch == channel]
        for cid in ids:
            await self.clear(cid)
        return len(ids)

    async def list_conversations(
        self, channel: str | None = None, limit: int = 100, offset: int = 0
    ) -> Sequence[ConversationInfo]:
        infos = [
            ConversationInfo(cid, ch, len(self._turns.get(cid, ())), self._last.get(cid, 0.0))
            for cid, ch in self._channel.items()
            if channel is None or ch == channel
        ]
        infos.sort(key=lambda info: info.last_activity, reverse=True)
        return infos[offset : offset + limit]

    async def count_conversations(self, channel: str | None = None) -> int:
        return sum(1 for ch in self._channel.values() if channel is None or ch == channel)

    async def stats(self) -> dict[str, Any]:
        return {
            "backend": "memory",
            "conversations": len(self._channel),
            "turns": sum(len(t) for t in self._turns.values()),
        }

    async def ping(self) -> bool:
        return True

    # -- core.store.OwnsConversations -------------------------------------------------------

    async def claim(self, conversation_id: str, owner: str) -> bool:
        current = self._owners.get(conversation_id)
        if current is not None:
            return current[0] == owner
        if self._turns.get(conversation_id):
            return False
        self._owners[conversation_id] = (owner, time.time())
        return True

    async def owner(self, conversation_id: str) -> str | None:
        current = self._owners.get(conversation_id)
        return None if current is None else current[0]

    async def list_owned(
        self, owner: str, limit: int = 100, offset: int = 0
    ) -> Sequence[ConversationInfo]:
        infos = [
            ConversationInfo(
                cid,
                self._channel.get(cid, ""),
                len(self._turns.get(cid, ())),
                self._last.get(cid, claimed_at),
            )
            for cid, (who, claimed_at) in self._owners.items()
            if who == owner
        ]
        infos.sort(key=lambda info: info.last_activity, reverse=True)
        return infos[offset : offset + limit]
