"""Conversation lanes across processes: leases with epochs, on rows.

A node takes a *ticket* (its place in the conversation's line) when a message arrives,
then :meth:`Lanes.acquire` waits until that ticket is the conversation's lowest live one
and the lane is free (or its holder's node is dead by the database clock), and takes the
lane with a new epoch. The answer's final write is fenced by that epoch (see
:meth:`Lanes.fence_sql`): a node paused past its lease commits nothing. Taking a lane
does not wait for the disk (:data:`~plugins.postgres.db.NO_FLUSH`): the final commit
does, and a take lost with a crash of the database only fails that fence. Wake-ups come by
``LISTEN/NOTIFY`` when a lane is released, with a poll every second behind them, since
notifications are lost while a listening connection reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from loguru import logger

from core import EnecaError
from plugins.postgres.db import NO_FLUSH, Database, DatabaseUnavailable, never_sent


class LeaseLost(Exception):
    """This node no longer holds the lane (it was paused or cut off past its lease), or
    lost its place in line: nothing of the answer was stored. A kept message is answered
    by the node that took it over; the lane handler tells a waiting client 503."""


class AheadOfItsTurn(EnecaError):
    """A kept message reached this node's local lane before an older kept message of the
    same conversation that this node also holds (taken over from a stopped node, so
    queued later): it goes to the back of the local lane, and the older one goes first."""

    def __init__(self, conversation_id: str) -> None:
        super().__init__(
            f"conversation {conversation_id}: an older kept message goes first; queued again"
        )


@dataclass(frozen=True, slots=True)
class Lease:
    """A held lane: the conversation, the ticket being answered and the epoch."""

    conversation_id: str
    ticket: int
    epoch: int
    #: The rows of the statement that took the lane, when it was a :meth:`Lanes.first_with`
    #: statement (``None`` otherwise, or when a later try took it).
    rows: list[tuple[Any, ...]] | None = None


def channel_name(schema: str) -> str:
    """The NOTIFY channel of a schema's cluster (lanes released, work queued)."""
    return f"eneca_{schema}"


class Lanes:
    """Takes and releases conversation lanes for ``node_id``."""

    #: Poll interval while waiting for a lane, behind the NOTIFY wake-ups.
    POLL_S = 1.0

    def __init__(self, db: Database, schema: str, node_id: str, node_ttl_s: float) -> None:
        self.db = db
        self.schema = schema
        self.node_id = node_id
        self.node_ttl_s = node_ttl_s
        self.channel = channel_name(schema)
        self._waiters: dict[str, set[asyncio.Event]] = {}
        #: Statements that must reach the database (a lane or ticket given up while it
        #: was away), retried in the background until they do.
        self._pending: set[asyncio.Task[None]] = set()
        s = self._s = f'"{schema}"'
        live = (
            f"SELECT id FROM {s}.nodes WHERE heartbeat_at > now() - make_interval(secs => %(ttl)s)"
        )
        # The line's head: the lowest ticket that is a kept message (answered whatever
        # happens to its node) or whose node is alive.
        head = (
            f"SELECT min(seq) FROM {s}.tickets WHERE conversation_id = %(cid)s"
            f" AND (inbox_id IS NOT NULL OR node_id IN ({live}))"
        )
        take = (
            f"INSERT INTO {s}.lanes AS l (conversation_id, holder, ticket, epoch)"
            " SELECT %(cid)s, %(me)s, t.seq, 1 FROM t WHERE t.seq = t.head"
            " ON CONFLICT (conversation_id) DO UPDATE SET holder = excluded.holder,"
            " ticket = excluded.ticket, epoch = l.epoch + 1"
            f" WHERE l.holder IS NULL OR l.holder NOT IN ({live})"
            # Its own take whose answer was lost with the connection: one node answers
            # one conversation's message at a time, so this is that same message.
            " OR (l.holder = %(me)s AND l.ticket = excluded.ticket)"
            " RETURNING epoch"
        )
        #: The first try: a kept message's ticket (the lowest of the messages answered
        #: together), or a new ticket for a message that was not kept (HTTP). A kept
        #: message whose ticket is gone was settled elsewhere: no ticket, no lane.
        self._first_ctes = (
            f"WITH kept AS (SELECT min(seq) AS seq FROM {s}.tickets"
            " WHERE inbox_id = ANY(%(ids)s::text[])),"
            f" is_kept AS (SELECT EXISTS (SELECT 1 FROM {s}.inbox"
            " WHERE id = ANY(%(ids)s::text[])) AS yes),"
            f" tk AS (INSERT INTO {s}.tickets(conversation_id, node_id, request_id)"
            " SELECT %(cid)s, %(me)s, %(rid)s WHERE NOT (SELECT yes FROM is_kept) RETURNING seq),"
            " t AS (SELECT COALESCE((SELECT seq FROM kept), (SELECT seq FROM tk)) AS seq,"
            f" LEAST(({head}), (SELECT seq FROM tk)) AS head),"
            f" taken AS ({take})"
        )
        #: The ticket, the epoch taken (``None``: not this time), whether the line's head
        #: is an older kept message of this node's (:class:`AheadOfItsTurn`), and the
        #: commit without a flush.
        self._outcome = (
            "(SELECT seq FROM t) AS seq, (SELECT epoch FROM taken) AS epoch,"
            f" (SELECT node_id = %(me)s AND inbox_id IS NOT NULL FROM {s}.tickets"
            " WHERE seq = (SELECT head FROM t) AND seq != (SELECT seq FROM t)) AS behind,"
            f" {NO_FLUSH} AS no_flush"
        )
        self._first = f"{self._first_ctes} SELECT {self._outcome}"
        #: Another try with a known ticket (``None``: the ticket is gone).
        self._try = (
            f"WITH t AS (SELECT seq, ({head}) AS head FROM {s}.tickets"
            " WHERE seq = %(seq)s),"
            f" taken AS ({take}) SELECT {self._outcome}"
        )
        #: Give the lane up without an answer (cancelled, failed...): a ticket of a message
        #: that was not kept goes; a kept message keeps its place for whoever answers it.
        self._release = (
            f"WITH gone AS (DELETE FROM {s}.tickets WHERE seq = %(seq)s AND inbox_id IS NULL),"
            f" freed AS (UPDATE {s}.lanes SET holder = NULL, ticket = NULL"
            " WHERE conversation_id = %(cid)s AND holder = %(me)s AND epoch = %(epoch)s"
            " RETURNING 1)"
            f" SELECT pg_notify('{self.channel}', 'lane:' || %(cid)s) FROM freed"
            f" WHERE {self.others_in_line('%(seq)s')}"
        )
        #: Give up a ticket of a message that was not kept, known by its number or (when
        #: the statement that took it lost its answer) by its request, and the lane if
        #: this node took it for that ticket.
        gone = (
            f"gone AS (DELETE FROM {s}.tickets WHERE conversation_id = %(cid)s AND inbox_id IS NULL"
            " AND (seq = %(seq)s OR request_id = %(rid)s) RETURNING seq),"
            f" freed AS (UPDATE {s}.lanes SET holder = NULL, ticket = NULL"
            " WHERE conversation_id = %(cid)s AND holder = %(me)s"
            " AND ticket IN (SELECT seq FROM gone) RETURNING 1)"
        )
        self._drop_ticket = (
            f"WITH {gone} SELECT pg_notify('{self.channel}', 'lane:' || %(cid)s) FROM freed"
            f" WHERE {self.others_in_line('(SELECT seq FROM gone)', many=True)}"
        )
        self._held = f"SELECT conversation_id, epoch FROM {s}.lanes WHERE holder = %(me)s"

    def others_in_line(self, own: str, many: bool = False) -> str:
        """SQL true when a ticket other than ``own`` waits in ``%(cid)s``'s line.

        A freed lane is told (``NOTIFY``) only then: every waiter holds a ticket, and
        each ``NOTIFY`` takes PostgreSQL's database-wide lock that serialises the commits
        of notifying transactions (the benchmark found commits waiting on it for 38% of
        the database's active time at 200 TalkMe webhooks a second, when every answer
        notified). A waiter whose ticket commits
        while the freeing statement runs is not seen; it finds the lane by its poll."""
        compare = f"NOT IN {own}" if many else f"!= {own}"
        return (
            f"EXISTS (SELECT 1 FROM {self._s}.tickets WHERE conversation_id = %(cid)s"
            f" AND seq {compare})"
        )

    def first_with(self, ctes: str, rows: str) -> str:
        """The first try of :meth:`acquire`, extended: ``ctes`` may use ``fresh``, and
        ``rows`` is a query whose rows come back (as the lease's ``rows``) only then.

        ``fresh`` is one row when the lane was taken and this statement's snapshot saw it
        free with the epoch it was taken over from: nobody took or freed it since the
        snapshot, so what the statement reads is not older than the last answer's final
        commit. (The take itself sees the lane as it is now: while it waits for a final
        commit's row lock and then finds the lane free, the snapshot is from before that
        commit; the answer then reads its window with a statement of its own.)"""
        s = self._s
        return (
            f"{self._first_ctes},"
            f" seen AS (SELECT holder, epoch FROM {s}.lanes WHERE conversation_id = %(cid)s),"
            " fresh AS (SELECT 1 FROM taken WHERE NOT EXISTS (SELECT 1 FROM seen"
            " WHERE holder IS NOT NULL) AND taken.epoch = COALESCE((SELECT epoch FROM seen),"
            f" 0) + 1), {ctes}"
            " SELECT o.seq, o.epoch, o.behind, o.no_flush, (SELECT count(*) FROM fresh), w.*"
            f" FROM (SELECT {self._outcome}) AS o LEFT JOIN LATERAL ({rows}) AS w"
            " ON EXISTS (SELECT 1 FROM fresh)"
        )

    def _params(self, **params: object) -> dict[str, object]:
        return {"me": self.node_id, "ttl": self.db.takeover_ttl(self.node_ttl_s), **params}

    async def acquire(
        self,
        conversation_id: str,
        message_ids: Sequence[str],
        kept: bool = False,
        first: tuple[str, dict[str, Any]] | None = None,
    ) -> Lease:
        """Wait for the lane of ``conversation_id`` in ticket order and take it.

        ``message_ids``: the message(s) being answered (several when debounced; the last
        one names the request; ``kept``: one of them is a kept message, whose ticket
        stays whatever happens). A kept message's ticket was taken when it was accepted;
        otherwise a ticket is taken now. Raises :class:`LeaseLost` when there is no
        ticket (a kept message answered by another node, or this node taken for dead and
        its place given up). Failing or cancelled, it gives a new ticket up (later, in
        the background, when the database is away meanwhile).

        ``first``: a statement made by :meth:`first_with` and its own parameters, sent as
        the first try; its rows are the lease's ``rows`` when it was ``fresh``.
        """
        event = asyncio.Event()
        waiters = self._waiters.setdefault(conversation_id, set())
        waiters.add(event)
        seq: int | None = None
        request = message_ids[-1]
        try:
            params = self._params(cid=conversation_id, ids=list(message_ids), rid=request)
            rows: list[tuple[Any, ...]] | None = None
            if first is None:
                [(seq, epoch, behind, _)] = await self.db.fetch(self._first, params)
            else:
                found = await self.db.fetch(first[0], {**params, **first[1]})
                seq, epoch, behind, _, fresh = found[0][:5]
                if fresh:  # a LEFT JOIN: one row of NULLs when there are none
                    rows = [row[5:] for row in found if row[5] is not None]
            while epoch is None:
                if seq is None:
                    raise LeaseLost(f"conversation {conversation_id}: no place in line")
                if behind:
                    raise AheadOfItsTurn(conversation_id)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.POLL_S):  # not wait_for: see Outbox._run
                        await event.wait()
                event.clear()
                [(seq, epoch, behind, _)] = await self.db.fetch(
                    self._try, self._params(cid=conversation_id, seq=seq)
                )
            return Lease(conversation_id, seq, epoch, rows)
        except AheadOfItsTurn:
            raise  # a kept message: its ticket stays
        except BaseException as exc:
            # A kept message keeps its ticket: it is answered whatever happens. A statement
            # that never left (no connection to be had) took no ticket either.
            if not kept and not (seq is None and never_sent(exc)):
                params = self._params(cid=conversation_id, seq=seq, rid=request)
                await asyncio.shield(
                    self._until_done(self._drop_ticket, params, "give up a ticket")
                )
            raise
        finally:
            waiters.discard(event)
            if not waiters:
                self._waiters.pop(conversation_id, None)

    async def release(self, lease: Lease) -> None:
        """Free the lane and drop the ticket, without an answer; wakes the next. While
        the database is away this goes on in the background until it is done: a live
        node's lane or ticket left behind would stop its conversation for good."""
        params = self._params(cid=lease.conversation_id, seq=lease.ticket, epoch=lease.epoch)
        await self._until_done(self._release, params, "free a lane")

    async def _until_done(self, sql: str, params: dict[str, Any], what: str) -> None:
        """Run ``sql`` now; when the database is away, again every :attr:`POLL_S` in a
        background task until it succeeds (the statement must be safe to repeat)."""
        try:
            await self.db.execute(sql, params)
        except DatabaseUnavailable as exc:
            logger.warning("cluster: cannot {} ({}); trying again in the background", what, exc)
            task = asyncio.create_task(self._retry(sql, params, what), name=f"postgres.{what}")
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _retry(self, sql: str, params: dict[str, Any], what: str) -> None:
        while True:
            await asyncio.sleep(self.POLL_S)
            try:
                await self.db.execute(sql, params)
            except DatabaseUnavailable:
                continue
            except Exception as exc:  # never a loop on a statement that cannot work
                logger.opt(exception=exc).error("cluster: cannot {}: {}", what, exc)
            return

    async def close(self) -> None:
        """Stop the background retries (a stopping node's lanes and tickets are freed
        when it signs off, or by the reaper)."""
        for task in list(self._pending):
            task.cancel()
        await asyncio.gather(*self._pending, return_exceptions=True)

    async def held(self) -> set[tuple[str, int]]:
        """The lanes this node holds by the database: (conversation id, epoch)."""
        rows = await self.db.fetch(self._held, self._params())
        return {(str(cid), int(epoch)) for cid, epoch in rows}

    def fence_sql(self) -> str:
        """SQL of a CTE that is one row while ``%(cid)s`` is held by ``%(me)s`` with
        ``%(epoch)s`` (locked until the statement commits), else none."""
        return (
            f"SELECT 1 AS held FROM {self._s}.lanes WHERE conversation_id = %(cid)s"
            " AND holder = %(me)s AND epoch = %(epoch)s FOR UPDATE"
        )

    def wake(self, conversation_id: str | None = None) -> None:
        """A lane was released (a notification) or the listener reconnected (``None``:
        every waiter looks again)."""
        if conversation_id is None:
            for waiters in self._waiters.values():
                for event in waiters:
                    event.set()
            return
        for event in self._waiters.get(conversation_id, ()):
            event.set()
