"""Answering a message inside its conversation's lane, with one fenced final commit.

:class:`LaneHandler` wraps the gateway's handler: it takes the lane (waiting for other
nodes in ticket order), runs the answer, and then commits the answer's writes in one
statement that first checks the lane's epoch. A message takes its lane with the
statement that also stores its user turn and reads the window back, when its lane is
free and the gateway's store is the postgres store (:attr:`LaneHandler.window`): the
store then hands that window out without a statement of its own, so an HTTP turn costs
two statements and a kept TalkMe message four. While the handler runs, the postgres
store and queue do not write the assistant turn and the "answered + outbox row" at once
but leave them on the :class:`Held` lane (a context variable of the answering task);
the final statement writes them together with freeing the lane, or, when this node lost
the lane meanwhile (paused past its lease), writes nothing and raises
:class:`~plugins.postgres.lanes.LeaseLost`. No transaction is open while the model runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from loguru import logger

from core import MERGED_IDS, Message, Reply, StorageUnavailable, Turn
from plugins.postgres.db import Database, DatabaseUnavailable
from plugins.postgres.lanes import AheadOfItsTurn, Lanes, Lease, LeaseLost
from plugins.postgres.turns import (
    RETURNING,
    insert_sql,
    named_params,
    named_values,
    turn_row,
    window_sql,
)

R = TypeVar("R")


@dataclass(slots=True)
class Held:
    """The lane an answering task holds, and the writes waiting for its final commit."""

    lease: Lease
    handler: LaneHandler
    #: Parameters of the store's turn INSERT for the assistant's turn.
    turn: tuple[Any, ...] | None = None
    #: Parameters of the queue's answer (inbox rows answered, the outbox row).
    answer: dict[str, Any] | None = None
    #: The final commit ran (from the queue's answer, for a kept message).
    done: bool = False
    #: The scope the answer runs in; :meth:`LaneHandler.abandon` ends it early.
    scope: asyncio.Timeout | None = None
    #: Another node took the lane while this node was paused or cut off: the answer
    #: stops at once (its final commit would be refused anyway).
    abandoned: bool = False
    #: The outbox row the final commit queued and claimed for this node (it was its
    #: conversation's only pending reply): the outbox sends it without a look of its own.
    claimed: int | None = None
    #: The user's turn stored with the lane taken, the window's bound and the window
    #: read back (rows, newest first), for the store to hand out once.
    opened: tuple[Turn, int | None, list[tuple[Any, ...]]] | None = None


#: The lane held by the current task (``None`` outside an answer, or without cluster lanes).
HELD: contextvars.ContextVar[Held | None] = contextvars.ContextVar("eneca_pg_held", default=None)


def _unavailable(exc: LeaseLost) -> StorageUnavailable:
    """What the waiting client is told: 503 with Retry-After."""
    return StorageUnavailable(f"answer this conversation ({exc})")


def held_for(conversation_id: str) -> Held | None:
    """The current task's held lane, if it is ``conversation_id``'s."""
    held = HELD.get()
    if held is not None and held.lease.conversation_id == conversation_id:
        return held
    return None


class LaneHandler:
    """The gateway's handler, run inside a cluster lane."""

    def __init__(
        self,
        inner: Callable[[Message, Any], Awaitable[Reply]],
        db: Database,
        schema: str,
        lanes: Lanes,
        kept: set[str] | None = None,
        requeue: Callable[[list[Message]], Awaitable[object]] | None = None,
    ) -> None:
        self.inner = inner
        #: Queues kept messages again at the back of this node's lanes.
        self.requeue = requeue
        self.db = db
        self.lanes = lanes
        #: Ids of kept messages this process accepted or took over (the queue fills it):
        #: while the database is away, those wait for it; others fail at once (a 503).
        self.kept = kept if kept is not None else set()
        self.fenced = 0
        #: Answers in progress, by ticket: the lanes this node believes it holds.
        self.answering: dict[int, Held] = {}
        #: Whether the final commit claims its outbox row for this node when it is the
        #: conversation's only pending reply (the cluster runtime's queue then hands it
        #: to the outbox without a statement of its own).
        self.claims = False
        #: Whether a message takes its lane with its user turn stored
        #: and the newest ``window_limit`` turns read back (only when the gateway's store
        #: is this plugin's store: another store would store the turn again).
        self.window = False
        self.window_limit: int | None = None
        s = f'"{schema}"'
        self._s = s
        stored = insert_sql(s, f"SELECT {named_values()} WHERE EXISTS (SELECT 1 FROM fresh)")
        self._take_with_turn = lanes.first_with(
            f"added AS ({stored}{RETURNING})", window_sql(s, "%(t0)s", "%(limit)s")
        )

    async def __call__(self, message: Message, handle: Any) -> Reply:
        ids = [*message.metadata.get(MERGED_IDS, ()), message.id]
        kept = any(id_ in self.kept for id_ in ids)
        first: tuple[str, dict[str, Any]] | None = None
        turn: Turn | None = None  # the user's turn, stored with the lane taken
        if self.window:
            turn = Turn.of_message(message)
            row = turn_row(message.conversation_id, turn)
            first = (self._take_with_turn, {**named_params(row), "limit": self.window_limit})
        try:
            lease = await self._retrying(
                lambda: self.lanes.acquire(message.conversation_id, ids, kept, first),
                kept,
                "take the conversation's lane",
            )
        except LeaseLost as exc:
            self.kept.difference_update(ids)
            raise _unavailable(exc) from exc
        except AheadOfItsTurn:
            if self.requeue is not None:
                await asyncio.sleep(0.05)  # never a tight loop, whatever went wrong
                await self.requeue([message])
            raise
        except Exception:
            # Not in this node's lanes any more: the adopting round queues it again.
            self.kept.difference_update(ids)
            raise
        held = Held(lease, self)
        if turn is not None and lease.rows is not None:
            held.opened = (turn, self.window_limit, lease.rows)
        token = HELD.set(held)
        self.answering[lease.ticket] = held
        try:
            try:
                async with asyncio.timeout(None) as held.scope:
                    reply = await self.inner(message, handle)
                    if not held.done:  # not kept: the assistant's turn, and the lane freed
                        await asyncio.shield(self.finish(held))
            except TimeoutError as exc:
                if not held.abandoned:
                    raise
                raise LeaseLost(
                    f"conversation {lease.conversation_id}: another node took the lane while "
                    "this node was paused or cut off; the answer was abandoned"
                ) from exc
        except BaseException as exc:
            if not held.done:
                # No longer in this node's lanes: if it is still unanswered and this
                # node's, the adopting round queues it again.
                self.kept.difference_update(ids)
                with contextlib.suppress(Exception):  # the reaper frees it otherwise
                    await asyncio.shield(self.lanes.release(lease))
            if isinstance(exc, LeaseLost):
                raise _unavailable(exc) from exc
            if isinstance(exc, DatabaseUnavailable):
                raise StorageUnavailable("store the answer") from exc
            raise
        finally:
            HELD.reset(token)
            self.answering.pop(lease.ticket, None)
        return reply

    def abandon(self, still_held: set[tuple[str, int]]) -> int:
        """Stop every answer in progress whose lane (conversation, epoch) is not in
        ``still_held``: another node took it while this one was paused or cut off past its
        lease, so the model call in flight is hung up rather than run to its end (two model
        calls for one conversation at once). Returns how many were stopped."""
        stopped = 0
        for held in list(self.answering.values()):
            lease = held.lease
            if held.done or held.abandoned or held.scope is None:
                continue
            if (lease.conversation_id, lease.epoch) in still_held:
                continue
            held.abandoned = True
            held.scope.reschedule(asyncio.get_running_loop().time())
            stopped += 1
        return stopped

    async def finish(self, held: Held) -> None:
        """The answer's final commit (the queue calls it for a kept message, as its
        ``answer``); raises :class:`LeaseLost` when the lane was lost meanwhile."""
        if not await self.commit(held):
            self.fenced += 1
            raise LeaseLost(
                f"conversation {held.lease.conversation_id}: this node lost its lane while "
                "answering (paused past its lease); nothing was stored"
            )
        held.done = True
        if held.answer is not None:
            self.kept.difference_update(held.answer["ids"])

    async def _retrying(self, step: Callable[[], Awaitable[R]], kept: bool, what: str) -> R:
        """``step()``; while the database is away, again every second for a kept message
        (it was acknowledged: it waits, holding its place); for another message the
        client gets a 503 at once. A lane lost meanwhile shows in the step's own result
        (the epoch check)."""
        first = True
        while True:
            try:
                return await step()
            except DatabaseUnavailable as exc:
                if not kept:  # the client is told 503 with Retry-After
                    raise StorageUnavailable(f"{what} of this message") from exc
                if first:
                    logger.warning("cannot {} of a kept message ({}); retrying every second",
                                   what, exc)  # fmt: skip
                    first = False
                await asyncio.sleep(1.0)

    async def commit(self, held: Held) -> bool:
        """Write what the answer left on ``held`` and free the lane, in one statement,
        only while the lane is still held with its epoch. True when it was."""
        s = self._s
        lease = held.lease
        params: dict[str, Any] = {
            "cid": lease.conversation_id,
            "me": self.lanes.node_id,
            "epoch": lease.epoch,
            "seq": lease.ticket,
        }
        parts = [f"fence AS ({self.lanes.fence_sql()})"]
        if held.turn is not None:
            params.update(named_params(held.turn))
            source = f"SELECT {named_values()} WHERE EXISTS (SELECT 1 FROM fence)"
            parts.append(f"turn AS ({insert_sql(s, source)})")
        if held.answer is not None:
            params.update({f"a_{key}": value for key, value in held.answer.items()})
            parts.append(
                f"done AS (UPDATE {s}.inbox SET status = 'answered', answered_at = %(a_now)s,"
                " claimed_by = NULL WHERE id = ANY(%(a_ids)s::text[])"
                " AND EXISTS (SELECT 1 FROM fence)),"
                f" kept_tickets AS (DELETE FROM {s}.tickets WHERE inbox_id = ANY(%(a_ids)s::text[])"
                " AND EXISTS (SELECT 1 FROM fence)),"
                f" queued AS (INSERT INTO {s}.outbox(message_id, channel, conversation_id, reply,"
                " next_attempt_at, created_at, trace, claimed_by) SELECT %(a_id)s, %(a_channel)s,"
                " %(a_cid)s, %(a_reply)s, %(a_now)s, %(a_now)s, %(a_trace)s, CASE WHEN %(claim)s"
                f" AND NOT EXISTS (SELECT 1 FROM {s}.outbox WHERE conversation_id = %(a_cid)s"
                " AND status = 'pending') THEN %(me)s END WHERE EXISTS (SELECT 1 FROM fence)"
                " ON CONFLICT (message_id) DO NOTHING RETURNING seq, claimed_by),"
                f" outbox_woke AS (SELECT pg_notify('{self.lanes.channel}', 'outbox:' || %(me)s)"
                " FROM queued WHERE claimed_by IS NULL)"  # claimed: no other node's business
            )
        parts.append(
            f"gone AS (DELETE FROM {s}.tickets WHERE seq = %(seq)s"
            " AND EXISTS (SELECT 1 FROM fence)),"
            f" freed AS (UPDATE {s}.lanes SET holder = NULL, ticket = NULL"
            " WHERE conversation_id = %(cid)s AND holder = %(me)s AND epoch = %(epoch)s"
            " RETURNING 1),"
            f" woke AS (SELECT pg_notify('{self.lanes.channel}', 'lane:' || %(cid)s)"
            f" FROM freed WHERE {self.lanes.others_in_line('%(seq)s')})"
        )
        extra = ", NULL::bigint"
        if held.answer is not None:
            params["claim"] = self.claims
            extra = (
                " + (SELECT count(*) FROM outbox_woke) * 0,"
                " (SELECT seq FROM queued WHERE claimed_by IS NOT NULL)"
            )
        sql = (
            "WITH "
            + ", ".join(parts)
            + " SELECT (SELECT count(*) FROM fence) + (SELECT count(*) FROM woke) * 0"
            + extra
        )
        [(fence, claimed)] = await self.db.fetch(sql, params)
        held.claimed = claimed
        return bool(fence)
