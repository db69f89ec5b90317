"""Which parts of a split reply Telegram has confirmed, kept in ``DATA_DIR/telegram.db``.

The core outbox retries a whole reply; a reply sent as several messages must not repeat
the parts that already arrived, also after a restart. Rows go when the reply is delivered
or its conversation is cleared.
"""

from __future__ import annotations

import time
from pathlib import Path

import aiosqlite

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sent_parts (
    message_id TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL,
    parts INTEGER NOT NULL,
    updated_at REAL NOT NULL
);
"""


class SentParts:
    """Confirmed parts per replied-to message (the gateway's ``Message.id``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None

    @property
    def db(self) -> aiosqlite.Connection:
        assert self._db is not None, "SentParts is not open"
        return self._db

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self.path, isolation_level=None)
        await self.db.execute("PRAGMA journal_mode=WAL")
        await self.db.executescript(_SCHEMA)

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def get(self, message_id: str) -> int:
        async with self.db.execute(
            "SELECT parts FROM sent_parts WHERE message_id = ?", (message_id,)
        ) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def save(self, message_id: str, conversation_id: str, parts: int) -> None:
        await self.db.execute(
            "INSERT INTO sent_parts VALUES (?, ?, ?, ?) ON CONFLICT(message_id)"
            " DO UPDATE SET parts = excluded.parts, updated_at = excluded.updated_at",
            (message_id, conversation_id, parts, time.time()),
        )

    async def done(self, message_id: str) -> None:
        await self.db.execute("DELETE FROM sent_parts WHERE message_id = ?", (message_id,))

    async def forget(self, conversation_id: str | None) -> None:
        """Drop the progress of a cleared conversation (``None``: every conversation)."""
        if conversation_id is None:
            await self.db.execute("DELETE FROM sent_parts")
        else:
            await self.db.execute(
                "DELETE FROM sent_parts WHERE conversation_id = ?", (conversation_id,)
            )
