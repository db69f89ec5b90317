"""A node of the cluster at run time: its heartbeat loop and its LISTEN connection.

The heartbeat (:mod:`plugins.postgres.nodes`) runs once a second; the listener wakes
whoever waits for a lane, the outbox and the adopting of a dead node's kept messages.
Both recover by themselves when the database comes back: the listener reconnects and
then wakes every waiter (a notification sent while it was away is lost), and every
waiter polls once a second anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

import psycopg
from loguru import logger

from plugins.postgres.db import DB_ERRORS, Database, DatabaseUnavailable
from plugins.postgres.lanes import Lanes, channel_name
from plugins.postgres.nodes import Nodes

HEARTBEAT_S = 1.0


class _Deaf(Exception):
    """The LISTEN connection stopped delivering: this node's own heartbeats, which each
    send a notification, were not heard back."""


class ClusterNode:
    """Heartbeat, reaper and wake-ups of one gateway process."""

    def __init__(
        self,
        db: Database,
        schema: str,
        node_id: str,
        node_ttl_s: float,
        *,
        on_work: Callable[[], None] = lambda: None,
        on_orphans: Callable[[], Awaitable[None]] | None = None,
        on_message: Callable[[str], Awaitable[None]] | None = None,
        on_lapse: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        self.db = db
        self.schema = schema
        self.node_id = node_id
        self.node_ttl_s = node_ttl_s
        self.nodes = Nodes(db, schema, node_id, node_ttl_s)
        self.lanes = Lanes(db, schema, node_id, node_ttl_s)
        self.channel = channel_name(schema)
        self._on_work = on_work
        self._on_orphans = on_orphans
        self._on_message = on_message
        self._on_lapse = on_lapse
        self._tasks: list[asyncio.Task[None]] = []
        #: At least three heartbeats per TTL, so one late beat does not kill a node.
        self.interval_s = min(HEARTBEAT_S, node_ttl_s / 3)
        self.live_nodes = 0
        self.last_beat_at: float | None = None
        self.beat_error: str | None = None
        self.listening = False
        self._renewed_from = 0.0
        #: LISTEN connections made so far (a new one after each loss).
        self.listens = 0
        #: Silence after which a LISTEN connection counts as deaf, while beats succeed.
        self.deaf_after_s = 3 * self.interval_s
        self._beat_ok_at = 0.0
        self._heard_at = 0.0

    async def start(self) -> None:
        """Register (the first heartbeat) before serving, then keep beating."""
        self._renewed_from = time.monotonic()
        beat = await self.nodes.beat()
        self.live_nodes = beat.live_nodes
        self.last_beat_at = time.time()
        self._tasks = [
            asyncio.create_task(self._beat_forever(), name="postgres.heartbeat"),
            asyncio.create_task(self._listen_forever(), name="postgres.listen"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.lanes.close()
        try:
            await self.nodes.leave()
        except DatabaseUnavailable as exc:
            logger.warning("cluster: could not sign off node {}: {}", self.node_id, exc)

    async def notify(self, payload: str) -> None:
        """Tell every node (this one too) something, e.g. ``cleared:...``."""
        await self.db.execute("SELECT pg_notify(%s, %s)", (self.channel, payload))

    async def _beat_forever(self) -> None:
        failing = False
        since_orphans = 0.0
        while True:
            await asyncio.sleep(self.interval_s)
            sent_at = time.monotonic()
            try:
                beat = await self.nodes.beat()
            except Exception as exc:  # whatever it is, the next beat tries again
                self.beat_error = str(exc) or type(exc).__name__
                if not failing:
                    trace = not isinstance(exc, DatabaseUnavailable)  # a bug: its traceback
                    logger.opt(exception=exc if trace else None).error(
                        "cluster: heartbeat failed ({}); retrying every second", exc
                    )
                failing = True
                continue
            if failing:
                logger.info("cluster: heartbeat works again")
                failing = False
                self.lanes.wake()
                self._on_work()
                since_orphans = self.node_ttl_s  # its own kept messages an outage lost
            self.beat_error = None
            # The monotonic clock runs on while the process is stopped (SIGSTOP, a frozen
            # VM): a gap near the TTL since the last renewal sent means other nodes may
            # have taken this node's lanes meanwhile (the database clock decides).
            lapsed = time.monotonic() - self._renewed_from
            self._renewed_from = sent_at
            if lapsed > self.node_ttl_s * 0.8:
                await self._lapse(lapsed)
            self._beat_ok_at = time.monotonic()
            # The polling fallback behind NOTIFY (lost while LISTEN reconnects): the
            # outbox looks for work once a beat (one statement when there is none).
            self._on_work()
            self.live_nodes = beat.live_nodes
            self.last_beat_at = time.time()
            since_orphans += self.interval_s
            if beat.reaped:
                logger.warning("cluster: {} node(s) stopped beating; taking over their work",
                               beat.reaped)  # fmt: skip
            if beat.reaped or since_orphans >= self.node_ttl_s:
                since_orphans = 0.0
                await self._orphans()

    async def _lapse(self, seconds: float) -> None:
        if self._on_lapse is None:
            return
        try:
            await self._on_lapse(seconds)
        except Exception as exc:  # storage trouble: the final commits are fenced anyway
            logger.warning("cluster: checking this node's lanes after a lapse failed: {}", exc)

    async def _orphans(self) -> None:
        if self._on_orphans is None:
            return
        try:
            await self._on_orphans()
        except Exception as exc:  # storage trouble: the next round tries again
            logger.warning("cluster: adopting unanswered messages failed: {}", exc)

    async def _listen_forever(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.db.dsn, **self.db.kwargs
                ) as conn:
                    await conn.execute(f'LISTEN "{self.channel}"')
                    self.listening = True
                    self.listens += 1
                    self._heard_at = time.monotonic()
                    # Anything notified while nobody listened is lost: everyone looks again.
                    self.lanes.wake()
                    self._on_work()
                    await self._listen(conn)
            except asyncio.CancelledError:
                raise
            except (*DB_ERRORS, OSError, _Deaf) as exc:
                if self.listening:
                    logger.warning("cluster: LISTEN connection lost ({}); polling meanwhile", exc)
            except Exception as exc:
                logger.opt(exception=exc).error("cluster: listener failed: {}", exc)
            self.listening = False
            await asyncio.sleep(HEARTBEAT_S)

    async def _listen(self, conn: psycopg.AsyncConnection[object]) -> None:
        """Dispatch notifications until the connection fails or goes deaf."""
        own_beat = f"beat:{self.node_id}"
        while True:
            async for note in conn.notifies(timeout=self.deaf_after_s):
                if note.payload == own_beat:
                    self._heard_at = time.monotonic()
                else:
                    await self._dispatch(note.payload)
            if self._beat_ok_at - self._heard_at > self.deaf_after_s:
                raise _Deaf("no notification for a heartbeat that went through")

    async def _dispatch(self, payload: str) -> None:
        kind, _, rest = payload.partition(":")
        if kind == "lane":
            self.lanes.wake(rest)
        elif kind == "outbox":
            if rest != self.node_id:  # this node woke its own outbox already
                self._on_work()
        elif kind == "reaped":
            self.lanes.wake()
            self._on_work()
            await self._orphans()
        elif kind == "beat":
            return  # another node's heartbeat: its own listener's business
        elif self._on_message is not None:
            try:
                await self._on_message(payload)
            except Exception as exc:
                logger.opt(exception=exc).error("cluster: handling {!r} failed: {}", kind, exc)
