"""Thread ownership through the conversation store (``core.store.OwnsConversations``).

A store without those methods (a third party's) still works: owners are then kept in this
process only, with one warning, and a thread that already has turns is never claimed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from loguru import logger

from core.contract.store import ConversationInfo, ConversationStore, OwnsConversations


class Ownership:
    def __init__(self, store: ConversationStore) -> None:
        self.store = store
        self._owning: OwnsConversations | None = (
            store if isinstance(store, OwnsConversations) else None
        )
        self._local: dict[str, tuple[str, float]] = {}
        if self._owning is None:
            logger.warning(
                "the conversation store {} keeps no thread owners: web visitors' threads are "
                "bound in this process only (lost on restart)",
                type(store).__name__,
            )

    async def claim(self, conversation_id: str, owner: str) -> bool:
        if self._owning is not None:
            return await self._owning.claim(conversation_id, owner)
        current = self._local.get(conversation_id)
        if current is not None:
            return current[0] == owner
        if await self.store.history(conversation_id, limit=1):
            return False
        self._local[conversation_id] = (owner, time.time())
        return True

    async def owner(self, conversation_id: str) -> str | None:
        if self._owning is not None:
            return await self._owning.owner(conversation_id)
        current = self._local.get(conversation_id)
        return None if current is None else current[0]

    async def list_owned(
        self, owner: str, limit: int = 100, offset: int = 0
    ) -> Sequence[ConversationInfo]:
        if self._owning is not None:
            return await self._owning.list_owned(owner, limit, offset)
        mine = sorted(
            ((cid, at) for cid, (who, at) in self._local.items() if who == owner),
            key=lambda item: item[1],
            reverse=True,
        )
        return [ConversationInfo(cid, "", 0, at) for cid, at in mine[offset : offset + limit]]
