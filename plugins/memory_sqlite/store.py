"""The SQLite :class:`~core.contract.store.ConversationStore` (aiosqlite, WAL).

One writer connection takes every write, one after another (an ``asyncio.Lock`` keeps a
multi-statement transaction from interleaving with an append on the same connection). A
second, query-only connection serves reads, so reading history never waits behind a
write. An append is one ``INSERT`` (a trigger counts the turn in ``conversations`` within
the same statement), committed before ``append`` returns: then the turn survives
``kill -9``. History is the newest ``N`` turns by ``seq`` through an index, so its cost does
not grow with the conversation. :meth:`~SqliteConversationStore.append_and_history` does
the append and that read in one function on the writer's thread: one hand-off per message
instead of two. Appends that arrive while the writer is busy share its next transaction
(:mod:`core.durable.group_commit`); each still returns only once it is committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import aiosqlite
from loguru import logger

from core import ConversationInfo, GroupCommit, PluginError, Role, Turn
from plugins.memory_sqlite.schema import check_ownership, migrate

#: Conversations removed per transaction by :meth:`SqliteConversationStore.purge_idle`.
PURGE_BATCH = 500

SqlText = str | bytes

INSERT_TURN = (
    "INSERT OR IGNORE INTO turns(conversation_id, role, text, channel, user_id,"
    " message_id, created_at, stored_at, metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
SELECT_NEWEST = (
    "SELECT role, text, channel, user_id, message_id, created_at, metadata FROM turns"
    " WHERE conversation_id = ? ORDER BY seq DESC LIMIT ?"
)


def to_sql(value: str) -> SqlText:
    """``value`` as SQLite can bind it.

    Python strings may hold lone surrogates (``"\\ud83d"`` from a broken JSON client) that
    UTF-8 cannot encode; those are kept exactly as a BLOB of their surrogate-pass bytes.
    The same string always maps to the same value, so lookups by id still match.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogatepass")
    return value


def from_sql(value: SqlText) -> str:
    """The inverse of :func:`to_sql`."""
    return value.decode("utf-8", "surrogatepass") if isinstance(value, bytes) else value


def _optional_to_sql(value: str | None) -> SqlText | None:
    return None if value is None else to_sql(value)


def _optional_from_sql(value: SqlText | None) -> str | None:
    return None if value is None else from_sql(value)


class SqliteConversationStore:
    """Conversations in one SQLite file. ``open()`` before use, ``close()`` after.

    ``max_messages`` / ``max_chars`` are the window :meth:`history` returns when the caller
    gives no ``limit`` / ``max_chars`` (``None``: no bound). ``check_on_open`` runs SQLite's
    ``quick_check`` when opening (about 0.25 s per 250 MB with the file cached), so damage
    inside the file stops start-up too, not only a broken header.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        max_messages: int | None = 40,
        max_chars: int | None = None,
        busy_timeout_ms: int = 5000,
        check_on_open: bool = True,
    ) -> None:
        self.path = Path(path)
        self.check_on_open = check_on_open
        self.max_messages = max_messages
        self.max_chars = max_chars
        self.busy_timeout_ms = busy_timeout_ms
        self.schema_version = 0
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()
        self._group = GroupCommit(lambda: self.writer, self._write_lock)

    # -- lifecycle --------------------------------------------------------------------------

    async def open(self) -> None:
        """Open (creating or migrating) the file; :class:`PluginError` names it on failure.

        A file that is not a database, is corrupt, unreadable, belongs to another program
        or has a newer schema is left exactly as it is.
        """
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = await self._connect()
            await check_ownership(self._writer, self.path)
            if self.check_on_open:
                await self._refuse_damaged(self._writer)
            mode = await self._scalar(self._writer, "PRAGMA journal_mode=WAL")
            if str(mode).lower() != "wal":
                logger.warning("{}: WAL is not available here (journal mode {})", self.path, mode)
            await self._writer.execute("PRAGMA synchronous=NORMAL")
            await self._writer.execute("PRAGMA journal_size_limit=67108864")
            self.schema_version = await migrate(self._writer, self.path)
            self._reader = await self._connect()
            await self._reader.execute("PRAGMA query_only=ON")
            await self._scalar(self._reader, "SELECT COUNT(*) FROM schema_version")
        except PluginError:
            await self.close()
            raise
        except (sqlite3.Error, OSError) as exc:
            await self.close()
            raise PluginError(
                f"cannot open the conversation database {self.path}: {exc} (it was not "
                "replaced; restore or move it, or set MEMORY_SQLITE_PATH to another file)"
            ) from exc

    async def _refuse_damaged(self, db: aiosqlite.Connection) -> None:
        problems = [row[0] for row in await db.execute_fetchall("PRAGMA quick_check(5)")]
        if problems != ["ok"]:
            raise PluginError(
                f"the conversation database {self.path} is damaged ({'; '.join(problems)}); "
                "it was not replaced: restore it from a backup, try sqlite3's .recover, or "
                "move it away to start with no memory"
            )

    async def _connect(self) -> aiosqlite.Connection:
        if self.path.exists() and not self.path.is_file():
            raise PluginError(f"the conversation database {self.path} is not a regular file")
        db = aiosqlite.connect(self.path, isolation_level=None)
        try:
            await db
        except BaseException:
            # aiosqlite 0.22 stops its worker thread without waiting when connecting
            # fails; wait here, or the thread reports to a loop that may be closed by then.
            worker = getattr(db, "_thread", None)
            if worker is not None:
                await asyncio.to_thread(worker.join, 2.0)
            raise
        try:
            await db.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
        except BaseException:
            await db.close()
            raise
        return db

    async def close(self) -> None:
        """Close both connections (the writer last, so it checkpoints the WAL)."""
        if self._reader is not None:
            reader, self._reader = self._reader, None
            await reader.close()
        await self._group.wait_idle()
        if self._writer is not None:
            writer, self._writer = self._writer, None
            try:
                async with self._write_lock:
                    await writer.execute("PRAGMA optimize")
            except sqlite3.Error as exc:
                logger.warning("{}: PRAGMA optimize failed on close: {}", self.path, exc)
            finally:
                await writer.close()

    async def __aenter__(self) -> SqliteConversationStore:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def writer(self) -> aiosqlite.Connection:
        assert self._writer is not None, "SqliteConversationStore is not open"
        return self._writer

    @property
    def reader(self) -> aiosqlite.Connection:
        assert self._reader is not None, "SqliteConversationStore is not open"
        return self._reader

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """A write transaction on the writer connection, alone on it until it ends."""
        async with self._write_lock:
            db = self.writer
            try:
                # Inside the try: if we are cancelled while BEGIN waits for the writer's
                # thread, BEGIN still runs there, and the ROLLBACK queued behind it ends it.
                await db.execute("BEGIN IMMEDIATE")
                yield db
            except BaseException:
                await _rollback(db)
                raise
            await db.execute("COMMIT")

    # -- ConversationStore ------------------------------------------------------------------

    async def append(self, conversation_id: str, turn: Turn) -> None:
        """Store ``turn``; committed when this returns. A replay (same conversation, role
        and ``message_id``) stores nothing."""
        params = _turn_row(conversation_id, turn)
        await self._group.write(lambda db: db.execute(INSERT_TURN, params).rowcount)

    async def history(
        self, conversation_id: str, limit: int | None = None, max_chars: int | None = None
    ) -> list[Turn]:
        """The newest turns, oldest first. ``limit`` / ``max_chars`` default to the
        store's window (``MEMORY_MAX_MESSAGES`` / ``MEMORY_MAX_CHARS``)."""
        limit = self.max_messages if limit is None else limit
        max_chars = self.max_chars if max_chars is None else max_chars
        if limit is not None and limit <= 0:
            return []
        rows = await self._read(
            SELECT_NEWEST, (to_sql(conversation_id), -1 if limit is None else limit)
        )
        return _turns(rows, max_chars)

    async def append_and_history(
        self,
        conversation_id: str,
        turn: Turn,
        limit: int | None = None,
        max_chars: int | None = None,
    ) -> list[Turn]:
        """:meth:`append` then :meth:`history` in one hand-off to the writer's thread.

        The read runs on the writer connection right after the insert, so it sees that
        turn with no snapshot to go stale; it is returned once the insert is committed.
        """
        limit = self.max_messages if limit is None else limit
        max_chars = self.max_chars if max_chars is None else max_chars
        if limit is not None and limit <= 0:
            await self.append(conversation_id, turn)
            return []
        row = _turn_row(conversation_id, turn)
        newest = (row[0], -1 if limit is None else limit)

        def work(db: sqlite3.Connection) -> list[Any]:
            db.execute(INSERT_TURN, row)
            return db.execute(SELECT_NEWEST, newest).fetchall()

        return _turns(await self._group.write(work), max_chars)

    async def clear(self, conversation_id: str) -> int:
        """Forget one conversation; returns how many turns were removed."""
        key = to_sql(conversation_id)
        async with self._transaction() as db:
            cursor = await db.execute("DELETE FROM turns WHERE conversation_id = ?", (key,))
            removed = cursor.rowcount
            await db.execute("DELETE FROM conversations WHERE id = ?", (key,))
            await db.execute("DELETE FROM owners WHERE conversation_id = ?", (key,))
        return max(removed, 0)

    async def clear_channel(self, channel: str) -> int:
        """Forget every conversation whose first turn came from ``channel``; returns how
        many conversations were removed."""
        key = to_sql(channel)
        async with self._transaction() as db:
            for table, column in (("turns", "conversation_id"), ("owners", "conversation_id")):
                await db.execute(
                    f"DELETE FROM {table} WHERE {column} IN"
                    " (SELECT id FROM conversations WHERE channel = ?)",
                    (key,),
                )
            cursor = await db.execute("DELETE FROM conversations WHERE channel = ?", (key,))
            removed = cursor.rowcount
        return max(removed, 0)

    async def list_conversations(
        self, channel: str | None = None, limit: int = 100, offset: int = 0
    ) -> Sequence[ConversationInfo]:
        """Conversations, most recently active first."""
        where, params = _channel_filter(channel)
        rows = await self._read(
            f"SELECT id, channel, turns, last_activity FROM conversations{where}"
            " ORDER BY last_activity DESC, rowid ASC LIMIT ? OFFSET ?",
            (*params, max(limit, 0), max(offset, 0)),
        )
        return [
            ConversationInfo(from_sql(cid), from_sql(ch), turns, last)
            for cid, ch, turns, last in rows
        ]

    async def count_conversations(self, channel: str | None = None) -> int:
        where, params = _channel_filter(channel)
        [(count,)] = await self._read(f"SELECT COUNT(*) FROM conversations{where}", params)
        return int(count)

    async def stats(self) -> dict[str, Any]:
        [(conversations, turns)] = await self._read(
            "SELECT COUNT(*), COALESCE(SUM(turns), 0) FROM conversations"
        )
        return {
            "backend": "sqlite",
            "path": str(self.path),
            "schema_version": self.schema_version,
            "conversations": int(conversations),
            "turns": int(turns),
            "size_bytes": self.size_bytes(),
        }

    async def ping(self) -> bool:
        """True when the file can be read and a write lock can be taken right now."""
        try:
            await self._read("SELECT version FROM schema_version")
            async with self._write_lock:
                try:
                    await self.writer.execute("BEGIN IMMEDIATE")
                finally:  # also when a health check's timeout cancels us mid-way
                    await _rollback(self.writer)
        except (sqlite3.Error, AssertionError, ValueError) as exc:
            logger.warning("{}: ping failed: {}", self.path, exc)
            return False
        return True

    # -- core.store.OwnsConversations ---------------------------------------------------------

    async def claim(self, conversation_id: str, owner: str) -> bool:
        """Bind an unowned, empty conversation to ``owner`` in one write transaction."""
        key, who = to_sql(conversation_id), to_sql(owner)
        async with self._transaction() as db:
            async with db.execute(
                "SELECT owner FROM owners WHERE conversation_id = ?", (key,)
            ) as cursor:
                row = await cursor.fetchone()
            if row is not None:
                return bool(from_sql(row[0]) == owner)
            async with db.execute("SELECT 1 FROM conversations WHERE id = ?", (key,)) as cursor:
                if await cursor.fetchone() is not None:
                    return False
            await db.execute(
                "INSERT INTO owners(conversation_id, owner, claimed_at) VALUES (?, ?, ?)",
                (key, who, time.time()),
            )
        return True

    async def owner(self, conversation_id: str) -> str | None:
        rows = await self._read(
            "SELECT owner FROM owners WHERE conversation_id = ?", (to_sql(conversation_id),)
        )
        return from_sql(rows[0][0]) if rows else None

    async def list_owned(
        self, owner: str, limit: int = 100, offset: int = 0
    ) -> Sequence[ConversationInfo]:
        rows = await self._read(
            "SELECT o.conversation_id, COALESCE(c.channel, ''), COALESCE(c.turns, 0),"
            " COALESCE(c.last_activity, o.claimed_at) AS active"
            " FROM owners o LEFT JOIN conversations c ON c.id = o.conversation_id"
            " WHERE o.owner = ? ORDER BY active DESC, o.rowid ASC LIMIT ? OFFSET ?",
            (to_sql(owner), max(limit, 0), max(offset, 0)),
        )
        return [
            ConversationInfo(from_sql(cid), from_sql(ch), turns, last)
            for cid, ch, turns, last in rows
        ]

    # -- beyond the protocol ------------------------------------------------------------------

    async def purge_idle(self, idle_for_s: float, now: float | None = None) -> int:
        """Forget conversations with no turn for ``idle_for_s`` seconds; returns how many.

        Works in batches of :data:`PURGE_BATCH` so appends are not held up for long.
        """
        cutoff = (time.time() if now is None else now) - idle_for_s
        removed = 0
        while True:
            async with self._transaction() as db:
                async with db.execute(
                    "SELECT id FROM conversations WHERE last_activity < ?"
                    " ORDER BY last_activity LIMIT ?",
                    (cutoff, PURGE_BATCH),
                ) as cursor:
                    ids = [(row[0],) for row in await cursor.fetchall()]
                await db.executemany("DELETE FROM turns WHERE conversation_id = ?", ids)
                await db.executemany("DELETE FROM conversations WHERE id = ?", ids)
                await db.executemany("DELETE FROM owners WHERE conversation_id = ?", ids)
                if len(ids) < PURGE_BATCH:  # threads claimed long ago and never used
                    await db.execute(
                        "DELETE FROM owners WHERE claimed_at < ? AND conversation_id NOT IN"
                        " (SELECT id FROM conversations)",
                        (cutoff,),
                    )
            removed += len(ids)
            if len(ids) < PURGE_BATCH:
                return removed

    def size_bytes(self) -> int:
        """The database file plus its write-ahead log, in bytes."""
        total = 0
        for suffix in ("", "-wal"):
            try:
                total += Path(f"{self.path}{suffix}").stat().st_size
            except OSError:
                pass
        return total

    async def _read(self, query: str, params: Sequence[Any] = ()) -> list[Any]:
        """Run a query on the reader and fetch every row in one step on its thread.

        Reads from many coroutines share the reader connection; a cursor left open
        between awaits would keep its read snapshot alive, and a later query would not
        see turns committed since (the agent would miss the message it answers).
        """
        return list(await self.reader.execute_fetchall(query, params))

    @staticmethod
    async def _scalar(db: aiosqlite.Connection, query: str) -> Any:
        async with db.execute(query) as cursor:
            row = await cursor.fetchone()
        return row[0] if row else None


def _turn_row(conversation_id: str, turn: Turn) -> tuple[Any, ...]:
    """The parameters of :data:`INSERT_TURN` for ``turn``."""
    return (
        to_sql(conversation_id),
        turn.role,
        to_sql(turn.text),
        to_sql(turn.channel),
        _optional_to_sql(turn.user_id),
        _optional_to_sql(turn.message_id),
        turn.created_at,
        time.time(),
        to_sql(_metadata_json(turn.metadata)),
    )


def _turns(rows: Sequence[Any], max_chars: int | None) -> list[Turn]:
    """Rows of :data:`SELECT_NEWEST` (newest first) as turns, oldest first, within
    ``max_chars`` (always the newest turn)."""
    newest_first: list[Turn] = []
    used = 0
    for role, text, channel, user_id, message_id, created_at, metadata in rows:
        text = from_sql(text)
        if max_chars is not None and newest_first and used + len(text) > max_chars:
            break
        used += len(text)
        newest_first.append(
            Turn(
                cast(Role, role),
                text,
                from_sql(channel),
                _optional_from_sql(user_id),
                _optional_from_sql(message_id),
                created_at,
                {} if metadata == "{}" else json.loads(from_sql(metadata)),
            )
        )
    return newest_first[::-1]


def _metadata_json(metadata: Mapping[str, Any]) -> str:
    return json.dumps(dict(metadata), ensure_ascii=False, default=str)


def _channel_filter(channel: str | None) -> tuple[str, tuple[SqlText, ...]]:
    if channel is None:
        return "", ()
    return " WHERE channel = ?", (to_sql(channel),)


__all__ = ["SqliteConversationStore", "from_sql", "to_sql"]


async def _rollback(db: aiosqlite.Connection) -> None:
    """End the writer's transaction, if the BEGIN before it ran at all."""
    with contextlib.suppress(sqlite3.OperationalError):  # "no transaction is active"
        await db.execute("ROLLBACK")
