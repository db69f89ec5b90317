"""core.durable.group_commit: writes from many callers share transactions, each caller returns once
its own write is committed, and a bad write fails only its own caller."""

import asyncio
import sqlite3

import aiosqlite

from core.durable.group_commit import GroupCommit


def insert(value: int, read_back: bool = False):
    def work(db: sqlite3.Connection):
        db.execute("INSERT INTO t(v) VALUES (?)", (value,))
        if read_back:
            return db.execute("SELECT v FROM t WHERE v >= ? ORDER BY v", (value,)).fetchall()
        return None

    return work


async def test_one_bad_write_in_a_shared_transaction_fails_only_its_caller(tmp_path):
    async with aiosqlite.connect(tmp_path / "t.db", isolation_level=None) as db:
        await db.execute("CREATE TABLE t (v INTEGER CHECK (v > 0))")
        group = GroupCommit(lambda: db, asyncio.Lock())
        outcomes = await asyncio.gather(
            *(group.write(insert(v, read_back=v == 3)) for v in (1, 2, -1, 3, 4)),
            return_exceptions=True,
        )
        assert outcomes[:2] == [None, None]
        assert isinstance(outcomes[2], sqlite3.IntegrityError)
        assert outcomes[3] == [(3,)]
        assert outcomes[4] is None
        rows = await db.execute_fetchall("SELECT v FROM t ORDER BY rowid")
        assert [v for (v,) in rows] == [1, 2, 3, 4]


async def test_a_write_of_several_statements_is_all_or_nothing(tmp_path):
    path = tmp_path / "t.db"
    async with aiosqlite.connect(path, isolation_level=None) as db:
        await db.execute("CREATE TABLE t (v INTEGER CHECK (v > 0))")
        group = GroupCommit(lambda: db)

        def two_rows_then_a_bad_one(db: sqlite3.Connection) -> None:
            db.execute("INSERT INTO t(v) VALUES (10)")
            db.execute("INSERT INTO t(v) VALUES (11)")
            db.execute("INSERT INTO t(v) VALUES (-1)")

        results = await asyncio.gather(
            group.write(insert(1)), group.write(two_rows_then_a_bad_one), return_exceptions=True
        )
        assert results[0] is None and isinstance(results[1], sqlite3.IntegrityError)
        # Committed for any other reader, without the failed write's first two rows.
        with sqlite3.connect(path) as other:
            assert other.execute("SELECT v FROM t").fetchall() == [(1,)]


async def test_writes_queued_together_share_one_commit(tmp_path):
    async with aiosqlite.connect(tmp_path / "t.db", isolation_level=None) as db:
        await db.execute("CREATE TABLE t (v INTEGER)")
        commits = []
        await db.set_trace_callback(
            lambda sql: commits.append(sql) if sql.strip().upper() == "COMMIT" else None
        )
        group = GroupCommit(lambda: db)
        await asyncio.gather(*(group.write(insert(v)) for v in range(1, 51)))
        await group.wait_idle()
        assert [v for (v,) in await db.execute_fetchall("SELECT v FROM t")] == list(range(1, 51))
        # The first write goes alone; the 49 that queued meanwhile share the next commit.
        assert len(commits) <= 3, commits
