"""The inbox and outbox in PostgreSQL: the durable backend of the postgres plugin.

The same public methods as :class:`core.durable.DurableQueue`, each one statement (one
round trip, atomic on its own). What a single process kept in memory is on rows here,
so any node can take over:

* an accepted message is claimed by the node that accepted it (``inbox.claimed_by``);
  :meth:`PostgresDurableQueue.unanswered` hands a starting node only the messages no
  live node holds, claiming them in the same statement, never another node's live work;
* the outbox row a node is delivering is claimed by it (``outbox.claimed_by``), so each
  conversation's replies go out one at a time from whichever node claimed its oldest one,
  and a dead node's claims are free again once its heartbeat is older than the node TTL.

A message is deduplicated on its provider id by a unique index in the accepting
statement itself, so two nodes receiving the same webhook keep it once.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from core import (
    MERGED_IDS,
    Message,
    PendingDelivery,
    Reply,
    message_fields,
    message_from_json,
    reply_fields,
    reply_from_json,
)
from plugins.postgres.answering import held_for
from plugins.postgres.db import Database
from plugins.postgres.ready import Ready

DEFAULT_NODE_TTL_S = 5.0
#: Whether this core's PendingDelivery carries a trace (issue 19).
_TRACED = "trace" in getattr(PendingDelivery, "__dataclass_fields__", {})


def default_node_id() -> str:
    """Host name and process id: unique per process, readable in ``nodes``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _json(value: Any) -> str:
    # ASCII escapes: PostgreSQL text holds no NUL, and lone surrogates stay exact.
    return json.dumps(value, separators=(",", ":"))


def _key(value: str | None) -> str | None:
    """An id as a text column holds it (only grouping and lookups use these columns; the
    message itself is kept exactly in its JSON)."""
    if value is None:
        return None
    if "\x00" in value:
        return _json(value)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return _json(value)
    return value


def _message_json(message: Message) -> str:
    return _json(message_fields(message))


def _reply_json(reply: Reply) -> str:
    return _json(reply_fields(reply))


class PostgresDurableQueue:
    """Inbox and outbox rows in ``schema``, claimed by ``node_id``."""

    def __init__(
        self,
        db: Database,
        schema: str,
        node_id: str | None = None,
        node_ttl_s: float = DEFAULT_NODE_TTL_S,
        kept: set[str] | None = None,
    ) -> None:
        self.db = db
        #: Ids of the kept messages this process accepted or took over and has not
        #: answered yet (shared with the cluster's lane handler).
        self.kept = kept if kept is not None else set()
        #: Receives :meth:`attach`'s callbacks (the cluster runtime sets it).
        self.on_attach: Callable[..., None] | None = None
        #: Replies already claimed for this node's outbox (see :mod:`plugins.postgres.ready`).
        self.ready = Ready()
        self.schema = schema
        self.node_id = node_id or default_node_id()
        self.node_ttl_s = node_ttl_s
        s = self._s = f'"{schema}"'
        #: A claim this node may take over: nobody's, its own, or a node not alive.
        self._free = (
            "({col} IS NULL OR {col} = %(me)s OR {col} NOT IN (SELECT id FROM"
            f" {s}.nodes WHERE heartbeat_at > now() - make_interval(secs => %(ttl)s)))"
        )

    def attach(
        self,
        requeue: Callable[[list[Message]], Awaitable[object]] | None = None,
        wake_outbox: Callable[[], None] | None = None,
        cleared: Callable[[Any], Awaitable[object]] | None = None,
    ) -> None:
        """The gateway's callbacks (see the ``durable_backend`` hook), passed on to the
        cluster runtime that takes over work, wakes the outbox and tells of clears."""
        if self.on_attach is not None:
            self.on_attach(requeue, wake_outbox, cleared)

    async def open(self) -> None:
        """Nothing to open: the plugin migrates the schema and owns the pool."""

    async def close(self) -> None:
        """Nothing to close (see :meth:`open`)."""

    def _params(self, **params: Any) -> dict[str, Any]:
        return {"me": self.node_id, "ttl": self.db.takeover_ttl(self.node_ttl_s), **params}

    async def accept(self, message: Message, trace: str | None = None) -> bool:
        """Keep ``message``; False when the provider already sent this message id.
        ``trace`` (a W3C traceparent) is kept with it for the node that answers."""
        # Known here before the statement: this node's adopting round must not take it.
        self.kept.add(message.id)
        try:
            kept = await self._accept(message, trace)
        except BaseException:
            # Kept or not is unknown when the answer was lost with the connection (the
            # channel answers 503). If it was kept, it is claimed by this node and known
            # nowhere: this node's adopting round finds it and answers it (the provider's
            # retry is then a duplicate).
            self.kept.discard(message.id)
            raise
        if not kept:
            self.kept.discard(message.id)
        return kept

    async def _accept(self, message: Message, trace: str | None) -> bool:
        s = self._s
        kept = await self.db.fetchval(
            f"WITH kept AS (INSERT INTO {s}.inbox(id, channel, conversation_id, provider_id,"
            " message, received_at, claimed_by, trace) VALUES (%(id)s, %(channel)s, %(cid)s,"
            " %(provider)s, %(message)s, %(at)s, %(me)s, %(trace)s) ON CONFLICT DO NOTHING"
            " RETURNING 1),"
            f" ticket AS (INSERT INTO {s}.tickets(conversation_id, node_id, inbox_id)"
            " SELECT %(cid)s, %(me)s, %(id)s FROM kept),"
            f" dup AS (INSERT INTO {s}.duplicates AS d SELECT %(channel)s, 1"
            " WHERE NOT EXISTS (SELECT 1 FROM kept)"
            " ON CONFLICT (channel) DO UPDATE SET count = d.count + 1)"
            " SELECT count(*) FROM kept",
            self._params(
                id=message.id,
                channel=_key(message.channel),
                cid=_key(message.conversation_id),
                provider=_key(message.message_id),
                message=_message_json(message),
                at=message.received_at,
                trace=trace,
            ),
        )
        return bool(kept)

    async def purge(self, settled_before: float) -> int:
        """Delete settled replies and their answered messages older than
        ``settled_before``; pending work is never touched."""
        s = self._s
        return int(
            await self.db.fetchval(
                f"WITH o AS (DELETE FROM {s}.outbox WHERE status != 'pending'"
                " AND created_at < %(cut)s RETURNING 1),"
                f" i AS (DELETE FROM {s}.inbox WHERE status = 'answered' AND received_at < %(cut)s"
                f" AND id NOT IN (SELECT message_id FROM {s}.outbox WHERE status = 'pending'"
                " OR created_at >= %(cut)s) RETURNING 1)"
                " SELECT (SELECT count(*) FROM o) + (SELECT count(*) FROM i)",
                {"cut": settled_before},
            )
        )

    async def unanswered(self) -> list[Message]:
        """Accepted messages with no reply that no live node holds, in arrival order;
        they are claimed by this node in the same statement."""
        return await self._claim_unanswered(self._free.format(col="claimed_by"))

    async def unanswered_traced(self) -> list[tuple[Message, str | None]]:
        """:meth:`unanswered` with each message's trace (a W3C traceparent or ``None``)."""
        return await self._claim_unanswered(self._free.format(col="claimed_by"), traced=True)

    async def adopt_orphans(self) -> list[Message]:
        """Like :meth:`unanswered`, but only messages held by no node or by a dead one,
        and this node's own that this process does not know: kept by a statement whose
        answer was lost, or dropped by a failing answer (never those its lanes hold)."""
        return await self._claim_unanswered(
            "(claimed_by IS NULL OR claimed_by NOT IN (SELECT id FROM"
            f" {self._s}.nodes WHERE heartbeat_at > now() - make_interval(secs => %(ttl)s))"
            " OR (claimed_by = %(me)s AND NOT (id = ANY(%(known)s::text[]))))",
            known=list(self.kept),
        )

    async def _claim_unanswered(self, condition: str, traced: bool = False, **params: Any) -> Any:
        s = self._s
        rows = await self.db.fetch(
            f"WITH mine AS (UPDATE {s}.inbox SET claimed_by = %(me)s WHERE status = 'pending'"
            f" AND {condition} RETURNING seq, id, conversation_id, message, trace),"
            f" moved AS (UPDATE {s}.tickets SET node_id = %(me)s WHERE inbox_id IN"
            " (SELECT id FROM mine)),"
            f" added AS (INSERT INTO {s}.tickets(conversation_id, node_id, inbox_id)"
            " SELECT conversation_id, %(me)s, id FROM mine ORDER BY seq"
            " ON CONFLICT (inbox_id) DO NOTHING)"
            " SELECT seq, message, trace FROM mine",
            self._params(**params),
        )
        found = [(message_from_json(raw), trace) for _, raw, trace in sorted(rows)]
        self.kept.update(message.id for message, _ in found)
        return found if traced else [message for message, _ in found]

    async def answer(
        self, reply: Reply, now: float | None = None, trace: str | None = None
    ) -> None:
        """Mark the message (and any merged into it) answered and queue its reply, in one
        statement."""
        now = time.time() if now is None else now
        message = reply.in_reply_to
        ids = [message.id, *message.metadata.get(MERGED_IDS, ())]
        reply_json = _reply_json(reply)  # before any SQL: a value JSON refuses raises here
        held = held_for(reply.conversation_id)
        if held is not None:
            # In a cluster lane this is the answer's final commit: the assistant's turn,
            # this, the lane freed, one statement fenced by the lane's epoch.
            held.answer = {
                "now": now,
                "ids": ids,
                "id": message.id,
                "channel": _key(reply.channel),
                "cid": _key(reply.conversation_id),
                "reply": reply_json,
                "trace": trace,
            }
            await held.handler.finish(held)
            if held.claimed is None or not self.ready.told:
                self.ready.look = True
            else:  # claimed by the final commit: the outbox needs no look for it
                item = PendingDelivery(held.claimed, reply_from_json(reply_json, message), 0, {})
                if trace is not None and _TRACED:
                    item = replace(item, trace=trace)  # type: ignore[call-arg]
                self.ready.add(item)
            return
        self.ready.look = True
        s = self._s
        await self.db.execute(
            f"WITH done AS (UPDATE {s}.inbox SET status = 'answered', answered_at = %(now)s,"
            " claimed_by = NULL WHERE id = ANY(%(ids)s::text[])),"
            f" ticket AS (DELETE FROM {s}.tickets WHERE inbox_id = ANY(%(ids)s::text[]))"
            f" INSERT INTO {s}.outbox(message_id, channel, conversation_id, reply,"
            " next_attempt_at, created_at, trace) VALUES (%(id)s, %(channel)s, %(cid)s,"
            " %(reply)s, %(now)s, %(now)s, %(trace)s) ON CONFLICT (message_id) DO NOTHING",
            {
                "now": now,
                "ids": ids,
                "id": message.id,
                "channel": _key(reply.channel),
                "cid": _key(reply.conversation_id),
                "reply": reply_json,
                "trace": trace,
            },
        )
        self.kept.difference_update(ids)

    async def schedule(
        self, now: float, busy: set[str], limit: int = 64
    ) -> tuple[list[PendingDelivery], float | None]:
        """Claim the oldest pending reply of each conversation not in ``busy`` and not
        claimed by a live node, whose attempt time has come (at most ``limit``); and
        when the next attempt after those is due (``None``: nothing pending here). One
        statement. While another node holds a conversation, the answer is at most one
        second away, so its later replies are looked at again (a polling fallback).

        In the cluster, replies this node claimed already (by the final commit or the
        last delivery record) are handed out without a statement while no other node
        may have queued work (:class:`~plugins.postgres.ready.Ready`)."""
        if not self.ready.must_look(now, busy):
            return self.ready.take(busy, limit), self.ready.next_at
        started = self.ready.begin_look()
        try:
            due, next_at = await self._look(now, busy, limit)
        except BaseException:
            self.ready.look = True
            raise
        self.ready.looked(started, due, next_at, busy)
        return due, next_at

    async def _look(
        self, now: float, busy: set[str], limit: int
    ) -> tuple[list[PendingDelivery], float | None]:
        s = self._s
        free = self._free.format(col="h.claimed_by")
        rows = await self.db.fetch(
            f"WITH heads AS (SELECT DISTINCT ON (conversation_id) seq, conversation_id,"
            f" next_attempt_at, claimed_by FROM {s}.outbox WHERE status = 'pending'"
            " ORDER BY conversation_id, seq),"
            " open_ AS (SELECT h.seq, h.next_attempt_at FROM heads h"
            f" WHERE NOT (h.conversation_id = ANY(%(busy)s::text[])) AND {free}),"
            # The claim is checked again on the row as it is when locked (another node
            # may have claimed it since this statement's snapshot): never two senders.
            f" pick AS MATERIALIZED (SELECT seq FROM {s}.outbox o WHERE seq IN (SELECT seq"
            " FROM open_ WHERE next_attempt_at <= %(now)s) AND o.status = 'pending'"
            f" AND {self._free.format(col='o.claimed_by')}"
            " ORDER BY seq LIMIT %(limit)s FOR UPDATE SKIP LOCKED),"
            f" taken AS (UPDATE {s}.outbox o SET claimed_by = %(me)s FROM pick"
            " WHERE o.seq = pick.seq AND o.status = 'pending'"
            f" AND {self._free.format(col='o.claimed_by')}"
            " RETURNING o.seq, o.reply, o.attempts, o.progress, o.message_id, o.trace)"
            " SELECT t.seq, t.reply, t.attempts, t.progress, i.message, NULL, t.trace"
            f" FROM taken t JOIN {s}.inbox i ON i.id = t.message_id"
            " UNION ALL SELECT NULL, NULL, NULL, NULL, NULL, (SELECT min(next_attempt_at)"
            " FROM open_ WHERE seq NOT IN (SELECT seq FROM taken)), NULL"
            " UNION ALL SELECT NULL, NULL, NULL, NULL, NULL, %(now)s + 1.0, NULL WHERE EXISTS"
            " (SELECT 1 FROM heads h WHERE NOT (h.conversation_id = ANY(%(busy)s::text[]))"
            f" AND NOT {free})",
            self._params(now=now, busy=[_key(c) for c in busy], limit=limit),
        )
        due: list[tuple[int, PendingDelivery]] = []
        next_at: float | None = None
        for seq, reply_json, attempts, progress, message_json, when, trace in rows:
            if seq is None:
                if when is not None:
                    next_at = when if next_at is None else min(next_at, when)
                continue
            message = message_from_json(message_json)
            reply = reply_from_json(reply_json, message)
            item = PendingDelivery(seq, reply, attempts, json.loads(progress))
            if trace is not None and _TRACED:  # core with tracing (issue 19)
                item = replace(item, trace=trace)  # type: ignore[call-arg]
            due.append((seq, item))
        due.sort(key=lambda pair: pair[0])
        return [item for _, item in due], next_at

    async def save_progress(self, seq: int, progress: dict[str, Any]) -> None:
        """Record what a channel has already sent of one reply (committed at once)."""
        await self.db.execute(
            f"UPDATE {self._s}.outbox SET progress = %s WHERE seq = %s", (_json(progress), seq)
        )

    async def mark_delivered(self, seq: int, attempts: int) -> None:
        """Record a delivery; in the cluster the same statement claims the conversation's
        next reply when it is due (the outbox's look for more, folded in)."""
        self.ready.settled(seq)
        if not self.ready.told:
            await self.db.execute(
                f"UPDATE {self._s}.outbox SET status = 'delivered', attempts = %s,"
                " delivered_at = %s, last_error = NULL, claimed_by = NULL WHERE seq = %s",
                (attempts, time.time(), seq),
            )
            return
        try:
            params = self._params(seq=seq, attempts=attempts, now=time.time())
            rows = await self.db.fetch(self._delivered_sql(), params)
        except BaseException:
            self.ready.look = True
            raise
        for next_seq, reply_json, next_attempts, progress, message_json, trace, more in rows:
            if next_seq is None:
                if more:  # a next reply not due yet, or not free: the outbox looks
                    self.ready.look = True
                continue
            message = message_from_json(message_json)
            item = PendingDelivery(
                next_seq, reply_from_json(reply_json, message), next_attempts, json.loads(progress)
            )
            if trace is not None and _TRACED:
                item = replace(item, trace=trace)  # type: ignore[call-arg]
            self.ready.add(item)

    def _delivered_sql(self) -> str:
        s = self._s
        return (
            f"WITH done AS (UPDATE {s}.outbox SET status = 'delivered', attempts = %(attempts)s,"
            " delivered_at = %(now)s, last_error = NULL, claimed_by = NULL WHERE seq = %(seq)s"
            " RETURNING conversation_id),"
            # The conversation's next reply (this statement's snapshot still sees the one
            # just delivered as pending), claimed when due and free, checked on the row.
            f" nxt AS MATERIALIZED (SELECT o.seq, o.next_attempt_at FROM {s}.outbox o"
            " WHERE o.conversation_id = (SELECT conversation_id FROM done)"
            " AND o.status = 'pending' AND o.seq != %(seq)s ORDER BY o.seq LIMIT 1),"
            f" taken AS (UPDATE {s}.outbox o SET claimed_by = %(me)s FROM nxt"
            " WHERE o.seq = nxt.seq AND nxt.next_attempt_at <= %(now)s AND o.status = 'pending'"
            f" AND {self._free.format(col='o.claimed_by')}"
            " RETURNING o.seq, o.reply, o.attempts, o.progress, o.message_id, o.trace)"
            " SELECT t.seq, t.reply, t.attempts, t.progress, i.message, t.trace,"
            f" (SELECT count(*) FROM nxt) FROM taken t JOIN {s}.inbox i ON i.id = t.message_id"
            " UNION ALL SELECT NULL, NULL, NULL, NULL, NULL, NULL, (SELECT count(*) FROM nxt)"
            " WHERE NOT EXISTS (SELECT 1 FROM taken)"
        )

    async def mark_retry(self, seq: int, attempts: int, when: float, error: str) -> None:
        self.ready.look = True  # the retry's time: the outbox's next look says when
        self.ready.settled(seq)
        await self.db.execute(
            f"UPDATE {self._s}.outbox SET attempts = %s, next_attempt_at = %s, last_error = %s,"
            " claimed_by = NULL WHERE seq = %s",
            (attempts, when, _clean(error), seq),
        )

    async def mark_failed(self, seq: int, attempts: int, error: str) -> None:
        self.ready.look = True  # its conversation's next reply is due now
        self.ready.settled(seq)
        await self.db.execute(
            f"UPDATE {self._s}.outbox SET status = 'failed', attempts = %s, last_error = %s,"
            " claimed_by = NULL WHERE seq = %s",
            (attempts, _clean(error), seq),
        )

    async def forget_channel(self, channel: str, conversation_id: str | None = None) -> None:
        """Drop undelivered replies of a cleared conversation (or channel)."""
        self.ready.forget()
        query = (
            f"UPDATE {self._s}.outbox SET status = 'dropped'"
            " WHERE status = 'pending' AND channel = %s"
        )
        params: tuple[Any, ...] = (_key(channel),)
        if conversation_id is not None:
            query += " AND conversation_id = %s"
            params += (_key(conversation_id),)
        await self.db.execute(query, params)

    async def stats(self, channel: str | None = None) -> dict[str, Any]:
        """Totals for a channel (or all): received, answered, delivered, failed, pending."""
        s = self._s
        where = "WHERE channel = %(ch)s" if channel else ""
        rows = await self.db.fetch(
            f"SELECT 'inbox', status, count(*), 0 FROM {s}.inbox {where} GROUP BY status"
            " UNION ALL SELECT 'outbox', status, count(*),"
            f" COALESCE(sum(GREATEST(attempts - 1, 0)), 0) FROM {s}.outbox {where}"
            " GROUP BY status UNION ALL SELECT 'duplicates', '', COALESCE(sum(count), 0), 0"
            f" FROM {s}.duplicates {where}",
            {"ch": _key(channel)} if channel else {},
        )
        inbox: dict[str, int] = {}
        outbox: dict[str, tuple[int, int]] = {}
        duplicates = 0
        for table, status, count, retries in rows:
            if table == "inbox":
                inbox[status] = int(count)
            elif table == "outbox":
                outbox[status] = (int(count), int(retries))
            else:
                duplicates = int(count)
        return {
            "received": sum(inbox.values()),
            "unanswered": inbox.get("pending", 0),
            "duplicates": duplicates,
            "delivered": outbox.get("delivered", (0, 0))[0],
            "failed": outbox.get("failed", (0, 0))[0],
            "pending_deliveries": outbox.get("pending", (0, 0))[0],
            "retries": sum(retries for _, retries in outbox.values()),
        }

    async def delivery_latencies(self, channel: str, limit: int = 1000) -> list[float]:
        """Seconds from webhook to delivered reply, for the most recent deliveries."""
        s = self._s
        rows = await self.db.fetch(
            f"SELECT o.delivered_at - i.received_at FROM {s}.outbox o JOIN {s}.inbox i"
            " ON i.id = o.message_id WHERE o.channel = %s AND o.status = 'delivered'"
            " ORDER BY o.seq DESC LIMIT %s",
            (_key(channel), limit),
        )
        return [float(row[0]) for row in rows]


def _clean(error: str) -> str:
    return error[:500].replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
