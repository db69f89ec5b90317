"""Group commit: SQLite writes that arrive while the writer is busy share its next commit.

A write is a function of the ``sqlite3`` connection, run on the aiosqlite connection's
own thread. The writes queued while one hand-off runs go together in the next one: one
``BEGIN IMMEDIATE``, every function in order of arrival, one ``COMMIT``. A caller returns
only after the commit that holds its write, so nothing is acknowledged earlier than with
a commit each. If a shared transaction fails it is rolled back and each write is tried
again alone, so one bad write fails only its own caller.

Used by the core's inbox/outbox and by memory_sqlite; a storage plugin may use it too.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from functools import partial
from typing import Any, TypeVar

import aiosqlite

T = TypeVar("T")

#: A write: runs on the connection's thread, inside a transaction it must not end.
Work = Callable[[sqlite3.Connection], Any]


async def run_on_thread(db: aiosqlite.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    """``work(connection)`` on ``db``'s own thread, queued after its pending calls: one
    hand-off for what would be several ``await db.execute(...)``."""
    return await db._execute(lambda: work(db._conn))  # type: ignore[no-any-return]


class GroupCommit:
    """Batches writes for one connection (opened with ``isolation_level=None``).

    ``connection`` returns the open connection; ``lock``, when given, is held for each
    hand-off so that the owner's own multi-statement transactions never interleave.
    """

    def __init__(
        self,
        connection: Callable[[], aiosqlite.Connection],
        lock: asyncio.Lock | None = None,
    ) -> None:
        self._connection = connection
        self._lock = lock
        self._queue: list[tuple[Work, asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` in a committed transaction; returns what it returned.

        The write happens even if the caller is cancelled meanwhile (as with one
        aiosqlite call): a cancelled caller only stops waiting for it.
        """
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((work, future))
        if self._flusher is None:
            self._flusher = asyncio.ensure_future(self._flush())
        return await future

    async def wait_idle(self) -> None:
        """Until every queued write is committed or failed."""
        while self._flusher is not None:
            await asyncio.shield(self._flusher)

    def _held(self) -> AbstractAsyncContextManager[Any]:
        return self._lock if self._lock is not None else nullcontext()

    async def _flush(self) -> None:
        batch: list[tuple[Work, asyncio.Future[Any]]] = []
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                try:
                    async with self._held():
                        results = await run_on_thread(
                            self._connection(), partial(_in_one_transaction, works=batch)
                        )
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

    async def _one_by_one(self, batch: list[tuple[Work, asyncio.Future[Any]]]) -> None:
        for item in batch:
            try:
                async with self._held():
                    [result] = await run_on_thread(
                        self._connection(), partial(_in_one_transaction, works=[item])
                    )
            except Exception as exc:
                _settle(item[1], exception=exc)
            else:
                _settle(item[1], result)


def _in_one_transaction(
    db: sqlite3.Connection, works: list[tuple[Work, asyncio.Future[Any]]]
) -> list[Any]:
    """On the connection's thread: every work, then one commit (or a full rollback)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        results = [work(db) for work, _ in works]
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:  # a failed COMMIT may have ended it already
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
