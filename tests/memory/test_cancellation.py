"""A health check's timeout must never leave the writer inside a transaction (found in
review: every later append joined it and was never committed)."""

import asyncio
import sqlite3
import time

from core.contract.store import Turn
from core.durable.group_commit import run_on_thread
from plugins.memory_sqlite.store import SqliteConversationStore


async def test_a_cancelled_ping_leaves_no_transaction_open(tmp_path):
    store = SqliteConversationStore(tmp_path / "m.db")
    await store.open()
    busy = asyncio.ensure_future(run_on_thread(store.writer, lambda db: time.sleep(0.3)))
    try:
        await asyncio.wait_for(store.ping(), 0.05)  # /health waits 2 s for the ping
    except TimeoutError:
        pass
    await busy
    await asyncio.sleep(0.05)
    await store.append("c", Turn("user", "hello", "t", None, "m1", time.time(), {}))
    other = sqlite3.connect(tmp_path / "m.db")
    try:
        committed = other.execute("SELECT COUNT(*) FROM turns").fetchone()[0]
    finally:
        other.close()
    still_open = store.writer._conn.in_transaction
    await store.close()
    assert not still_open
    assert committed == 1
    assert await asyncio.wait_for(store.ping(), 1) is False  # closed: a clean False
