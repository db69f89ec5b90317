"""Group commit: turns appended while the writer thread is busy share its next transaction.

Every append used to be its own hand-off to aiosqlite's thread and its own commit (for a
turn, about five pages written to the WAL). With many conversations at once, the appends
that arrive while one hand-off runs now go together in the next one: one ``BEGIN``, the
inserts (and the history reads asked for with them), one ``COMMIT``. Each caller still
returns only after the commit that holds its turn, so nothing is acknowledged earlier
than before; turns of one conversation keep their order (the gateway appends them one
after another, and a batch keeps the order of arrival).

If a shared transaction fails, each write of it is retried alone, so one bad write fails
only its own caller.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

#: A write: the INSERT's parameters and, when the caller wants history back, the
#: parameters of the history query (run after the insert, in the same transaction).
Write = tuple[tuple[Any, ...], tuple[Any, ...] | None]

#: Runs a function of the sqlite3 connection on the writer's thread.
RunOnThread = Callable[[Callable[[sqlite3.Connection], Any]], Awaitable[Any]]


class GroupCommit:
    """Batches turn inserts for one writer connection.

    ``run`` executes a function on the writer's thread; ``lock`` is the store's write lock
    (held for each hand-off, so multi-statement transactions never interleave).
    """

    def __init__(self, run: RunOnThread, lock: asyncio.Lock, insert: str, select: str) -> None:
        self._run = run
        self._lock = lock
        self._insert = insert
        self._select = select
        self._queue: list[tuple[Write, asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def write(self, row: tuple[Any, ...], history: tuple[Any, ...] | None = None) -> Any:
        """Insert ``row``; returns the history rows (or ``None``) once committed.

        The write happens even if the caller is cancelled meanwhile (as with one
        aiosqlite call): a cancelled caller only stops waiting for it.
        """
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append(((row, history), future))
        if self._flusher is None:
            self._flusher = asyncio.ensure_future(self._flush())
        return await future

    async def wait_idle(self) -> None:
        """Until every queued write is committed or failed."""
        while self._flusher is not None:
            await asyncio.shield(self._flusher)

    async def _flush(self) -> None:
        batch: list[tuple[Write, asyncio.Future[Any]]] = []
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                writes = [write for write, _ in batch]
                try:
                    async with self._lock:
                        results = await self._run(partial(self._write_all, writes=writes))
                except Exception as exc:
                    if len(batch) == 1:
                        _settle(batch[0][1], exception=exc)
                    else:
                        await self._one_by_one(batch)
                else:
                    for (_, future), result in zip(batch, results, strict=True):
                        _settle(future, result)
                batch = []
        finally:
            self._flusher = None
            for _, future in [*batch, *self._queue]:  # only if this task was cancelled
                future.cancel()
            self._queue = []

    async def _one_by_one(self, batch: list[tuple[Write, asyncio.Future[Any]]]) -> None:
        for write, future in batch:
            try:
                async with self._lock:
                    [result] = await self._run(partial(self._write_all, writes=[write]))
            except Exception as exc:
                _settle(future, exception=exc)
            else:
                _settle(future, result)

    def _write_all(self, db: sqlite3.Connection, writes: list[Write]) -> list[Any]:
        """On the writer's thread: the writes in one transaction (autocommit for one)."""
        if len(writes) == 1:
            [(row, history)] = writes
            db.execute(self._insert, row)
            return [None if history is None else db.execute(self._select, history).fetchall()]
        db.execute("BEGIN IMMEDIATE")
        try:
            results = []
            for row, history in writes:
                db.execute(self._insert, row)
                results.append(
                    None if history is None else db.execute(self._select, history).fetchall()
                )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return results


def _settle(
    future: asyncio.Future[Any], result: Any = None, exception: BaseException | None = None
) -> None:
    """Give ``future`` its outcome unless its caller stopped waiting (cancelled)."""
    if future.done():
        return
    if exception is not None:
        future.set_exception(exception)
    else:
        future.set_result(result)
