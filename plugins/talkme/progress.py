"""Which parts of a reply TalkMe already confirmed, so a retried delivery resumes there.

One reply may be several ``customBot/send`` calls plus a ``customBot/finish``. If the
third part fails, the outbox retries the whole reply; this table (``DATA_DIR/talkme.db``)
remembers how many characters of the reply were confirmed and whether ``finish`` was, so
nothing the API confirmed is sent again, also after a restart.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from core.errors import PluginError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS delivery_progress (
    message_id TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL,
    sent_chars INTEGER NOT NULL DEFAULT 0,
    finished INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS delivery_progress_conversation
    ON delivery_progress(conversation_id);
"""

#: Progress rows older than this are dropped at start-up (their replies are long settled).
KEEP_S = 7 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Progress:
    """How far the delivery of one reply got."""

    sent_chars: int = 0
    finished: bool = False


class DeliveryProgress:
    """The progress table behind one aiosqlite connection."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None

    @property
    def db(self) -> aiosqlite.Connection:
        assert self._db is not None, "DeliveryProgress is not open"
        return self._db

    async def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = await aiosqlite.connect(self.path, isolation_level=None)
            await self.db.execute("PRAGMA journal_mode=WAL")
            await self.db.execute("PRAGMA synchronous=NORMAL")
            await self.db.execute("PRAGMA busy_timeout=5000")
            await self.db.executescript(_SCHEMA)
            await self.db.execute(
                "DELETE FROM delivery_progress WHERE updated_at < ?", (time.time() - KEEP_S,)
            )
        except (sqlite3.Error, OSError) as exc:
            await self.close()
            raise PluginError(f"talkme: cannot open {self.path}: {exc}") from exc

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def get(self, message_id: str) -> Progress:
        async with self.db.execute(
            "SELECT sent_chars, finished FROM delivery_progress WHERE message_id = ?",
            (message_id,),
        ) as cursor:
            row = await cursor.fetchone()
        return Progress() if row is None else Progress(row[0], bool(row[1]))

    async def save(self, message_id: str, conversation_id: str, progress: Progress) -> None:
        await self.db.execute(
            "INSERT INTO delivery_progress(message_id, conversation_id, sent_chars, finished,"
            " updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT(message_id) DO UPDATE SET"
            " sent_chars = excluded.sent_chars, finished = excluded.finished,"
            " updated_at = excluded.updated_at",
            (message_id, conversation_id, progress.sent_chars, int(progress.finished), time.time()),
        )

    async def forget(self, conversation_id: str | None = None) -> None:
        """Drop the rows of one conversation (or all): its pending replies were dropped."""
        if conversation_id is None:
            await self.db.execute("DELETE FROM delivery_progress")
        else:
            await self.db.execute(
                "DELETE FROM delivery_progress WHERE conversation_id = ?", (conversation_id,)
            )
