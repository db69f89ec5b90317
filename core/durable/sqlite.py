"""Inbox and outbox for asynchronous channels, in SQLite (``DATA_DIR/gateway.db``).

A channel that answers its provider's webhook before the agent runs publishes with
``durable=True``: the message is written to the inbox (deduplicated on the provider's
message id) before ``publish`` returns, so the 200 it sends means "kept". When the reply
exists it moves to the outbox in the same transaction; the outbox delivers it through the
``deliver_reply`` hook, in order per conversation, with retries. After a crash the
unanswered inbox rows are answered and the undelivered outbox rows are delivered.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from core.contract.errors import PluginError
from core.contract.events import MERGED_IDS, Message, Reply
from core.durable.codec import message_from_json, message_to_json, reply_from_json, reply_to_json
from core.durable.group_commit import GroupCommit, run_on_thread
from core.jsonenc import dumps

#: 2: delivery progress on outbox rows; 3: each row's trace context (``trace``).
SCHEMA_VERSION = 3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS inbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    channel TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    provider_id TEXT,
    message TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    received_at REAL NOT NULL,
    answered_at REAL,
    trace TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS inbox_provider
    ON inbox(channel, provider_id) WHERE provider_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS inbox_pending ON inbox(status, seq);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL UNIQUE,
    channel TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    reply TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error TEXT,
    created_at REAL NOT NULL,
    delivered_at REAL,
    progress TEXT NOT NULL DEFAULT '{}',
    trace TEXT
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox(status, conversation_id, seq);
CREATE TABLE IF NOT EXISTS duplicates (channel TEXT PRIMARY KEY, count INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class PendingDelivery:
    """An outbox row due for an attempt."""

    seq: int
    reply: Reply
    attempts: int
    progress: dict[str, Any]
    #: The ``traceparent`` of the answer that queued it: its attempts continue that trace.
    trace: str | None = None


#: Outbox rows (``o``) of conversations not in the JSON array bound here.
_NOT_BUSY = "o.conversation_id NOT IN (SELECT value FROM json_each(?))"
#: Outbox rows (``o``) that are their conversation's oldest pending reply.
_HEAD_OF_CONVERSATION = (
    "o.seq = (SELECT MIN(seq) FROM outbox WHERE conversation_id = o.conversation_id"
    " AND status = 'pending')"
)


#: The conversations' oldest pending replies whose time has come, busy ones left out.
_DUE = (
    "SELECT o.conversation_id, o.seq, o.reply, o.attempts, o.progress, i.message, o.trace"
    " FROM outbox o"
    " JOIN inbox i ON i.id = o.message_id"
    " WHERE o.status = 'pending' AND o.next_attempt_at <= ?"
    f" AND {_NOT_BUSY} AND {_HEAD_OF_CONVERSATION} ORDER BY o.seq LIMIT ?"
)


def _next_due_at(db: sqlite3.Connection, busy: str) -> float | None:
    """The earliest attempt time of a conversation's oldest pending reply, the
    conversations in the JSON array ``busy`` left out."""
    # Only each conversation's oldest pending reply can be attempted: a later row that is
    # "due" behind a head waiting for its retry must not wake the loop.
    [(when,)] = db.execute(
        "SELECT MIN(o.next_attempt_at) FROM outbox o WHERE o.status = 'pending'"
        f" AND {_NOT_BUSY} AND {_HEAD_OF_CONVERSATION}",
        (busy,),
    ).fetchall()
    return when  # type: ignore[no-any-return]


class DurableQueue:
    """The inbox and outbox tables behind one aiosqlite connection."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        #: Every write goes through it: each is one function in a shared transaction, so
        #: no two writers' statements can interleave or share a rollback.
        self._group = GroupCommit(lambda: self.db)

    @property
    def db(self) -> aiosqlite.Connection:
        assert self._db is not None, "DurableQueue is not open"
        return self._db

    async def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = aiosqlite.connect(self.path, isolation_level=None)
            try:
                self._db = await connection
            except BaseException:
                # aiosqlite stops its thread without waiting when connecting fails; wait,
                # or the thread reports to a closed event loop (a traceback at exit).
                worker = getattr(connection, "_thread", None)
                if worker is not None:
                    await asyncio.to_thread(worker.join, 2.0)
                raise
            problems = [row[0] for row in await self.db.execute_fetchall("PRAGMA quick_check(5)")]
            if problems != ["ok"]:  # stop rather than lose or resend what it holds
                raise sqlite3.DatabaseError(
                    f"it is damaged ({'; '.join(problems)}); it was not replaced: restore it, "
                    "or move it away to start with an empty inbox and outbox"
                )
            await self.db.execute("PRAGMA journal_mode=WAL")
            await self.db.execute("PRAGMA synchronous=NORMAL")
            await self.db.execute("PRAGMA busy_timeout=5000")
            await self.db.executescript(_SCHEMA)
            async with self.db.execute("SELECT version FROM schema_version") as cursor:
                row = await cursor.fetchone()
            if row is None:
                await self.db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
            elif row[0] < SCHEMA_VERSION:
                await self._migrate(row[0])
            elif row[0] > SCHEMA_VERSION:
                raise PluginError(
                    f"{self.path} has schema version {row[0]}, newer than this gateway's "
                    f"{SCHEMA_VERSION}; upgrade eneca-bot or use another DATA_DIR"
                )
        except (sqlite3.DatabaseError, OSError) as exc:
            await self.close()
            raise PluginError(f"cannot open the inbox/outbox database {self.path}: {exc}") from exc
        except BaseException:  # a newer schema: close, or the open thread keeps us alive
            await self.close()
            raise

    async def _migrate(self, version: int) -> None:
        """Bring a database of an older gateway up to :data:`SCHEMA_VERSION`, step by step,
        in one transaction (a crash half-way leaves the old version, tried again)."""
        steps = []
        if version < 2:  # each reply's delivery progress on its outbox row
            steps.append("ALTER TABLE outbox ADD COLUMN progress TEXT NOT NULL DEFAULT '{}'")
        if version < 3:  # the trace context a message's answer and deliveries continue
            steps += [
                "ALTER TABLE inbox ADD COLUMN trace TEXT",
                "ALTER TABLE outbox ADD COLUMN trace TEXT",
            ]
        await self.db.execute("BEGIN IMMEDIATE")
        try:
            for step in steps:
                await self.db.execute(step)
            await self.db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
            await self.db.execute("COMMIT")
        except BaseException:
            await self.db.execute("ROLLBACK")
            raise

    async def close(self) -> None:
        if self._db is not None:
            await self._group.wait_idle()
            await self._db.close()
            self._db = None

    async def accept(self, message: Message, trace: str | None = None) -> bool:
        """Keep ``message`` (with ``trace``, the ``traceparent`` its answer continues);
        False when the provider already sent this message id."""
        row = (
            message.id,
            message.channel,
            message.conversation_id,
            message.message_id,
            message_to_json(message),
            message.received_at,
            trace,
        )

        def work(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "INSERT OR IGNORE INTO inbox(id, channel, conversation_id, provider_id,"
                " message, received_at, trace) VALUES (?, ?, ?, ?, ?, ?, ?)",
                row,
            )
            if cursor.rowcount == 1:
                return True
            db.execute(
                "INSERT INTO duplicates VALUES (?, 1) ON CONFLICT(channel) DO UPDATE"
                " SET count = count + 1",
                (message.channel,),
            )
            return False

        return await self._group.write(work)

    async def purge(self, settled_before: float) -> int:
        """Delete delivered, failed and dropped replies and their answered messages older
        than ``settled_before``; pending work is never touched. A provider id whose row is
        gone is no longer recognised as a duplicate."""

        def work(db: sqlite3.Connection) -> int:
            outbox = db.execute(
                "DELETE FROM outbox WHERE status != 'pending' AND created_at < ?",
                (settled_before,),
            )
            inbox = db.execute(
                "DELETE FROM inbox WHERE status = 'answered' AND received_at < ?"
                " AND id NOT IN (SELECT message_id FROM outbox)",
                (settled_before,),
            )
            return outbox.rowcount + inbox.rowcount

        return await self._group.write(work)

    async def unanswered(self) -> list[Message]:
        """Accepted messages with no reply yet, in arrival order."""
        return [message for message, _ in await self.unanswered_traced()]

    async def unanswered_traced(self) -> list[tuple[Message, str | None]]:
        """Accepted messages with no reply yet, in arrival order, each with its trace."""
        rows = await self._read(
            "SELECT message, trace FROM inbox WHERE status = 'pending' ORDER BY seq"
        )
        return [(message_from_json(row[0]), row[1]) for row in rows]

    async def answer(
        self, reply: Reply, now: float | None = None, trace: str | None = None
    ) -> None:
        """Mark the message (and any merged into it) answered and queue its reply (with
        ``trace``, the ``traceparent`` its deliveries continue), atomically."""
        now = time.time() if now is None else now
        message = reply.in_reply_to
        ids = [message.id, *message.metadata.get(MERGED_IDS, ())]
        row = (
            message.id,
            reply.channel,
            reply.conversation_id,
            reply_to_json(reply),
            now,
            now,
            trace,
        )

        def work(db: sqlite3.Connection) -> None:
            db.executemany(
                "UPDATE inbox SET status = 'answered', answered_at = ? WHERE id = ?",
                [(now, message_id) for message_id in ids],
            )
            db.execute(
                "INSERT OR IGNORE INTO outbox(message_id, channel, conversation_id, reply,"
                " next_attempt_at, created_at, trace) VALUES (?, ?, ?, ?, ?, ?, ?)",
                row,
            )

        await self._group.write(work)

    async def _write_one(self, sql: str, params: tuple[Any, ...]) -> None:
        """One statement, committed (with whatever other writes are waiting)."""
        await self._group.write(lambda db: db.execute(sql, params).rowcount)

    async def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """Every row of one query, in one hand-off to the connection's thread."""
        return await run_on_thread(self.db, lambda db: db.execute(sql, params).fetchall())

    async def schedule(
        self, now: float, busy: set[str], limit: int = 64
    ) -> tuple[list[PendingDelivery], float | None]:
        """The oldest pending reply of each conversation not in ``busy`` whose attempt
        time has come (at most ``limit``), and when the next attempt after those is due
        (``None``: nothing pending), in one hand-off to the database's thread. The query
        leaves the busy ones out: with hundreds of deliveries in flight, reading and
        decoding their rows on every wake cost more than delivering."""

        def work(db: sqlite3.Connection) -> tuple[list[Any], float | None]:
            rows = db.execute(_DUE, (now, json.dumps(list(busy)), limit)).fetchall()
            taken = busy | {row[0] for row in rows}
            return rows, _next_due_at(db, json.dumps(list(taken)))

        rows, next_at = await run_on_thread(self.db, work)
        result = []
        for _, seq, reply_json, attempts, progress, message_json, trace in rows:
            message = message_from_json(message_json)
            result.append(
                PendingDelivery(
                    seq,
                    reply_from_json(reply_json, message),
                    attempts,
                    json.loads(progress),
                    trace,
                )
            )
        return result, next_at

    async def save_progress(self, seq: int, progress: dict[str, Any]) -> None:
        """Record what a channel has already sent of one reply (committed at once)."""
        await self._write_one(
            "UPDATE outbox SET progress = ? WHERE seq = ?",
            (dumps(progress), seq),
        )

    async def mark_delivered(self, seq: int, attempts: int) -> None:
        await self._write_one(
            "UPDATE outbox SET status = 'delivered', attempts = ?, delivered_at = ?,"
            " last_error = NULL WHERE seq = ?",
            (attempts, time.time(), seq),
        )

    async def mark_retry(self, seq: int, attempts: int, when: float, error: str) -> None:
        await self._write_one(
            "UPDATE outbox SET attempts = ?, next_attempt_at = ?, last_error = ? WHERE seq = ?",
            (attempts, when, error[:500], seq),
        )

    async def mark_failed(self, seq: int, attempts: int, error: str) -> None:
        await self._write_one(
            "UPDATE outbox SET status = 'failed', attempts = ?, last_error = ? WHERE seq = ?",
            (attempts, error[:500], seq),
        )

    async def forget_channel(self, channel: str, conversation_id: str | None = None) -> None:
        """Drop undelivered replies of a cleared conversation (or channel)."""
        query = "UPDATE outbox SET status = 'dropped' WHERE status = 'pending' AND channel = ?"
        params: tuple[Any, ...] = (channel,)
        if conversation_id is not None:
            query += " AND conversation_id = ?"
            params += (conversation_id,)
        await self._write_one(query, params)

    async def stats(self, channel: str | None = None) -> dict[str, Any]:
        """Totals for a channel (or all): received, answered, delivered, failed, pending."""
        where, params = ("WHERE channel = ?", (channel,)) if channel else ("", ())
        figures: dict[str, Any] = {}
        inbox = dict(
            await self._read(f"SELECT status, COUNT(*) FROM inbox {where} GROUP BY status", params)
        )
        outbox = {
            row[0]: (row[1], row[2])
            for row in await self._read(
                f"SELECT status, COUNT(*), COALESCE(SUM(MAX(attempts - 1, 0)), 0) FROM outbox"
                f" {where} GROUP BY status",
                params,
            )
        }
        [row] = await self._read(f"SELECT COALESCE(SUM(count), 0) FROM duplicates {where}", params)
        figures["received"] = sum(inbox.values())
        figures["unanswered"] = inbox.get("pending", 0)
        figures["duplicates"] = row[0]
        figures["delivered"] = outbox.get("delivered", (0, 0))[0]
        figures["failed"] = outbox.get("failed", (0, 0))[0]
        figures["pending_deliveries"] = outbox.get("pending", (0, 0))[0]
        figures["retries"] = sum(retries for _, retries in outbox.values())
        return figures

    async def delivery_latencies(self, channel: str, limit: int = 1000) -> list[float]:
        """Seconds from webhook to delivered reply, for the most recent deliveries."""
        rows = await self._read(
            "SELECT o.delivered_at - i.received_at FROM outbox o JOIN inbox i"
            " ON i.id = o.message_id WHERE o.channel = ? AND o.status = 'delivered'"
            " ORDER BY o.seq DESC LIMIT ?",
            (channel, limit),
        )
        return [row[0] for row in rows]
