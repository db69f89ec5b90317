"""Schema 3 of the inbox/outbox: each row keeps the trace context its later work continues
(the answer after a restart, every delivery attempt). Databases of older gateways are
migrated in place, their pending work kept."""

import sqlite3
import time

from core.contract.events import Message, Reply
from core.durable.sqlite import SCHEMA_VERSION, DurableQueue

WEBHOOK = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
ANSWER = "00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01"

#: The tables as gateways with schema 2 created them (no trace columns).
SCHEMA_2 = """
CREATE TABLE inbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, channel TEXT NOT NULL,
    conversation_id TEXT NOT NULL, provider_id TEXT, message TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending', received_at REAL NOT NULL, answered_at REAL
);
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT NOT NULL UNIQUE,
    channel TEXT NOT NULL, conversation_id TEXT NOT NULL, reply TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL, last_error TEXT, created_at REAL NOT NULL,
    delivered_at REAL, progress TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE duplicates (channel TEXT PRIMARY KEY, count INTEGER NOT NULL);
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version VALUES (2);
"""


async def test_rows_keep_the_trace_their_later_work_continues(tmp_path):
    queue = DurableQueue(tmp_path / "gateway.db")
    await queue.open()
    try:
        message = Message("c1", "fake", "hi", message_id="p1")
        assert await queue.accept(message, WEBHOOK)
        assert await queue.unanswered_traced() == [(message, WEBHOOK)]
        await queue.answer(Reply("c1", "fake", "hello", message), trace=ANSWER)
        due, _ = await queue.schedule(time.time() + 1, set())
        assert [(item.reply.text, item.trace) for item in due] == [("hello", ANSWER)]
    finally:
        await queue.close()


async def test_a_schema_2_database_is_migrated_with_its_pending_work(tmp_path):
    path = tmp_path / "gateway.db"
    queue = DurableQueue(path)
    await queue.open()
    kept = Message("c1", "fake", "kept before the upgrade", message_id="p1")
    await queue.accept(kept)
    await queue.close()
    # Make it the database an older gateway left: schema 2, no trace columns.
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT id, channel, conversation_id, provider_id, message,"
                          " received_at FROM inbox").fetchall()  # fmt: skip
    path.unlink()
    with sqlite3.connect(path) as db:
        db.executescript(SCHEMA_2)
        db.executemany(
            "INSERT INTO inbox(id, channel, conversation_id, provider_id, message, received_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
    queue = DurableQueue(path)
    await queue.open()
    try:
        assert await queue.unanswered_traced() == [(kept, None)]
        later = Message("c2", "fake", "after", message_id="p2")
        assert await queue.accept(later, WEBHOOK)
        assert (await queue.unanswered_traced())[-1] == (later, WEBHOOK)
    finally:
        await queue.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    assert SCHEMA_VERSION == 3
