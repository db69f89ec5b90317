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
#: How much longer than the statement timeout the client waits for an answer before it
#: takes the connection for dead (half-open: dropped by a NAT or firewall without a word,
#: where the server's statement timeout never fires and the wait would not end).
ANSWER_MARGIN_S = 2.0
#: A heartbeat older than this is "never" stale: see :meth:`Database.takeover_ttl`.
NEVER_S = 10 * 365 * 86400.0

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
    kwargs: dict[str, Any] = {"autocommit": True, "application_name": "eneca-bot"}
    if not prepared_statements:
        kwargs["prepare_threshold"] = None
    if statement_timeout_ms:
        kwargs["options"] = f"-c statement_timeout={int(statement_timeout_ms)}"
    return kwargs


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
        #: When (``time.monotonic()``) a statement last failed to reach the database.
        self.failed_at: float | None = None

    def takeover_ttl(self, node_ttl_s: float) -> float:
        """How old another node's heartbeat must be before this process takes its lanes
        and claims over: ``node_ttl_s``, except while this process cannot reach the
        database and for ``node_ttl_s`` + :data:`RECONNECT_S` after that, when it is
        :data:`NEVER_S`. The other nodes were most likely cut off too and have not beaten
        again yet; taking their claims would send replies they already sent a second time.
        A node that is really gone is taken over one grace period later."""
        if self.failed_at is not None:
            if time.monotonic() - self.failed_at < node_ttl_s + RECONNECT_S:
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
        deadline: asyncio.Timeout | None = None
        try:
            async with self.pool.connection() as conn:
                deadline = asyncio.timeout(self.answer_timeout_s)
                async with deadline:  # psycopg cancels the statement; the pool drops it
                    yield conn
        except TimeoutError as exc:
            if deadline is None or not deadline.expired():
                raise
            self.failed_at = time.monotonic()
            raise DatabaseUnavailable(
                f"PostgreSQL: no answer within {self.answer_timeout_s:g}s"
            ) from exc
        except DB_ERRORS as exc:
            self.failed_at = time.monotonic()
            text = str(exc).strip().splitlines()
            raise DatabaseUnavailable(
                f"PostgreSQL: {text[0] if text else type(exc).__name__}"
            ) from exc

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
