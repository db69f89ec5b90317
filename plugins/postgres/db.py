"""One connection pool, and every statement sent through it counted.

Each method here is one statement, sent as one round trip on an autocommit connection:
a write that must be atomic is written as one statement (data-modifying CTEs), so no
transaction is ever left open between two awaits (or across a model call), and no
session state is relied on (PgBouncer in transaction mode hands each statement to any
server connection). :attr:`Database.round_trips` counts the statements sent, which the
tests use to keep the per-message cost in check.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

#: How long the pool keeps retrying one lost connection (1 s, then 2 s apart) before it
#: gives that attempt up; the next statement then starts a new attempt at once. psycopg's
#: default doubles the wait without limit: after a 60 s outage the next try could be a
#: minute away, with every request answered 503 meanwhile.
RECONNECT_S = 2.0
#: Longest wait for a new connection to the server (libpq's ``connect_timeout``).
CONNECT_TIMEOUT_S = 5
#: How much longer than the statement timeout the client waits for an answer before it
#: takes the connection for dead (half-open: dropped by a NAT or firewall without a word,
#: where the server's statement timeout never fires and the wait would not end).
ANSWER_MARGIN_S = 2.0
#: A statement still waiting this long (for a connection or an answer) means trouble
#: reaching the database, as a failed one does: see :meth:`Database.takeover_ttl`.
STALLED_S = 1.0
#: A heartbeat older than this is "never" stale: see :meth:`Database.takeover_ttl`.
NEVER_S = 10 * 365 * 86400.0

#: A select-list item that lets its statement's own transaction commit without waiting
#: for the disk (``synchronous_commit`` off for that transaction only: no session state,
#: so it is safe behind PgBouncer). Only for writes nothing is acknowledged on, each
#: followed by a commit that waits: the lane taken and the user's turn stored before an
#: answer, whose fenced final commit then flushes them with it (the write-ahead log is
#: flushed in order). A crash of the database before that commit can lose them; the
#: answer then fails its fence, and nothing acknowledged depended on them.
NO_FLUSH = "set_config('synchronous_commit', 'off', true)"

#: What a broken, unreachable or read-only database raises inside psycopg (a fail-over
#: can reach a standby first: its writes fail until the promoted server is reached).
DB_ERRORS: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,
    psycopg.InterfaceError,
    psycopg.errors.ReadOnlySqlTransaction,
    PoolTimeout,
)


class DatabaseUnavailable(ConnectionError):
    """The database cannot be reached or did not answer in time.

    A :class:`ConnectionError` (an ``OSError``): the gateway treats it like any failing
    storage, a 503 ``storage_unavailable`` with ``Retry-After`` and a degraded /health,
    until a write succeeds again.
    """


def never_sent(exc: BaseException) -> bool:
    """True when ``exc`` is a :class:`DatabaseUnavailable` for a statement that never
    reached the server (no connection could be had), so it changed nothing."""
    return isinstance(exc, DatabaseUnavailable) and isinstance(exc.__cause__, PoolTimeout)


def connect_kwargs(statement_timeout_ms: int, prepared_statements: bool) -> dict[str, Any]:
    """Connection arguments shared by the pool and the listening connection."""
    kwargs: dict[str, Any] = {
        "autocommit": True,
        "application_name": "eneca-bot",
        # A connect to a host that drops every packet otherwise waits for the operating
        # system's TCP time-out (minutes), holding one of the pool's places meanwhile.
        "connect_timeout": CONNECT_TIMEOUT_S,
    }
    if not prepared_statements:
        kwargs["prepare_threshold"] = None
    if statement_timeout_ms:
        kwargs["options"] = f"-c statement_timeout={int(statement_timeout_ms)}"
    return kwargs


def _hang_up(conn: psycopg.AsyncConnection[Any], silent: list[bool]) -> None:
    """No answer in time: shut the connection's socket down, so the statement waiting on
    it fails at once (psycopg's own cancelling would wait for the silent socket again,
    up to 10 s more) and the pool replaces the connection."""
    silent.append(True)
    with contextlib.suppress(OSError, psycopg.Error):
        with socket.socket(fileno=os.dup(conn.pgconn.socket)) as sock:
            sock.shutdown(socket.SHUT_RDWR)


class Database:
    """A psycopg pool of autocommit connections, with statement helpers."""

    def __init__(
        self,
        dsn: str,
        *,
        pool_size: int = 10,
        statement_timeout_ms: int = 5000,
        prepared_statements: bool = True,
        connect_timeout_s: float = 5.0,
    ) -> None:
        self.dsn = dsn
        self.kwargs = connect_kwargs(statement_timeout_ms, prepared_statements)
        #: Longest wait for a statement's answer (``None``: no statement timeout, no limit).
        self.answer_timeout_s = (
            statement_timeout_ms / 1000 + ANSWER_MARGIN_S if statement_timeout_ms else None
        )
        self.pool = AsyncConnectionPool(
            dsn,
            min_size=1,
            max_size=max(pool_size, 2),
            kwargs=self.kwargs,
            open=False,
            timeout=connect_timeout_s,
            reconnect_timeout=RECONNECT_S,
            name="eneca-bot",
        )
        #: Statements sent (one round trip each).
        self.round_trips = 0
        #: When (``time.monotonic()``) a statement last failed to reach the database, or
        #: began a wait of more than :data:`STALLED_S` for it.
        self.failed_at: float | None = None
        #: When the database answered again after that: the first statement that worked.
        self.back_at: float | None = None
        self._drained_at = 0.0
        #: Statements on their way, and since when (``time.monotonic()``).
        self._waiting: dict[object, float] = {}

    def takeover_ttl(self, node_ttl_s: float) -> float:
        """How old another node's heartbeat must be before this process takes its lanes
        and claims over: ``node_ttl_s``, except while this process cannot reach the
        database (a statement failed, or has waited :data:`STALLED_S` already: on a
        connection that went silent nothing fails for a while) and for ``node_ttl_s`` +
        :data:`RECONNECT_S` after that, when it is :data:`NEVER_S`. The other nodes were
        most likely cut off too and have not beaten again yet; taking their claims would
        send replies they already sent a second time. A node that is really gone is
        taken over one grace period later.

        The grace counts from the database's return (:attr:`back_at`), not from the
        failure: in an outage longer than the grace, the statements waiting for a
        connection all along work again at once, before the other nodes, whose pools
        reconnect on their own schedule, have beaten again."""
        now = time.monotonic()
        if self._waiting and now - min(self._waiting.values()) > STALLED_S:
            return NEVER_S
        if self.failed_at is not None:
            back = self.back_at if self.back_at is not None else now
            if back < self.failed_at or now - back < node_ttl_s + RECONNECT_S:
                return NEVER_S
        return node_ttl_s

    async def open(self, wait_s: float = 10.0) -> None:
        """Open the pool and wait for a first connection (raises when there is none)."""
        await self.pool.open(wait=True, timeout=wait_s)

    async def close(self) -> None:
        await self.pool.close()

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        self.round_trips += 1
        conn: psycopg.AsyncConnection[Any] | None = None
        silent: list[bool] = []
        timer: asyncio.TimerHandle | None = None
        token = object()
        self._waiting[token] = time.monotonic()
        try:
            async with self.pool.connection() as conn:
                if self.answer_timeout_s is not None:
                    timer = asyncio.get_running_loop().call_later(
                        self.answer_timeout_s, _hang_up, conn, silent
                    )
                try:
                    yield conn
                finally:  # before the connection goes back to the pool
                    if timer is not None:
                        timer.cancel()
        except DB_ERRORS as exc:
            self.failed_at = time.monotonic()
            if conn is not None and conn.broken:
                await self._drain(conn)
            text = str(exc).strip().splitlines()
            reason = text[0] if text else type(exc).__name__
            if silent:
                reason = f"no answer within {self.answer_timeout_s:g}s"
            raise DatabaseUnavailable(f"PostgreSQL: {reason}") from exc
        else:
            self._answered(self._waiting[token])
        finally:
            del self._waiting[token]

    def _answered(self, sent_at: float) -> None:
        """A statement sent at ``sent_at`` worked: the end of any trouble before it."""
        now = time.monotonic()
        if now - sent_at > STALLED_S:  # it waited as long as a failing one would
            self.failed_at = sent_at
        if self.failed_at is not None and (self.back_at is None or self.back_at < self.failed_at):
            self.back_at = now

    async def _drain(self, failed: psycopg.AsyncConnection[Any] | None) -> None:
        """A connection died: the idle ones, made as long ago, most likely did too (each
        would fail one more request after the server is back). They are replaced; a
        connection made after the last drain is not drained again for an older one."""
        made = getattr(failed, "_created_at", None)  # psycopg_pool's own time stamp
        if made is not None and made < self._drained_at:
            return
        self._drained_at = time.monotonic()
        with contextlib.suppress(Exception):
            await self.pool.drain()

    async def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> int:
        """Run one statement; returns how many rows it changed."""
        async with self._connection() as conn:
            cursor = await conn.execute(sql, params)
            return cursor.rowcount

    async def fetch(
        self, sql: str, params: Sequence[Any] | dict[str, Any] = ()
    ) -> list[tuple[Any, ...]]:
        """Every row of one statement."""
        async with self._connection() as conn:
            cursor = await conn.execute(sql, params)
            return await cursor.fetchall()

    async def fetchval(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        """The first column of the first row (``None`` without rows)."""
        rows = await self.fetch(sql, params)
        return rows[0][0] if rows else None
