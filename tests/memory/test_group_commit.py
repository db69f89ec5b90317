"""Appends from many conversations at once share transactions, yet each returns only once
its own turn is committed, and one bad write fails only its caller."""

import asyncio
import sqlite3

from core.contract.store import Turn
from plugins.memory_sqlite.store import SqliteConversationStore


def committed_texts(path, conversation_id: str) -> list[str]:
    """What another process would read from the file right now."""
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT text FROM turns WHERE conversation_id = ? ORDER BY seq", (conversation_id,)
        ).fetchall()
    return [text for (text,) in rows]


async def test_each_append_is_committed_when_it_returns(tmp_path):
    path = tmp_path / "m.db"
    async with SqliteConversationStore(path, max_messages=None) as store:

        async def user(n: int) -> None:
            for i in range(10):
                await store.append(f"c{n}", Turn("user", f"{n}-{i}", "test"))
                # Already in the file for any other reader.
                assert committed_texts(path, f"c{n}")[-1] == f"{n}-{i}"
                window = await store.append_and_history(f"c{n}", Turn("assistant", f"a{i}"))
                assert [t.text for t in window][-2:] == [f"{n}-{i}", f"a{i}"]

        await asyncio.gather(*(user(n) for n in range(20)))
        for n in range(20):
            assert len(committed_texts(path, f"c{n}")) == 20


async def test_a_cancelled_caller_still_gets_its_turn_stored(tmp_path):
    path = tmp_path / "m.db"
    async with SqliteConversationStore(path, max_messages=None) as store:
        tasks = [
            asyncio.ensure_future(store.append("c1", Turn("user", f"t{i}", "test")))
            for i in range(5)
        ]
        await asyncio.sleep(0)
        tasks[2].cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert committed_texts(path, "c1") == ["t0", "t1", "t2", "t3", "t4"]
