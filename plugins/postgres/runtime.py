"""What the postgres plugin runs in cluster mode, between start-up and shut-down.

One :class:`ClusterRuntime` per gateway process: the durable queue on rows, the lane
handler that wraps the gateway's answering in cross-process lanes, and the node's
heartbeat/listener (:class:`~plugins.postgres.cluster.ClusterNode`). The gateway attaches
its callbacks (:meth:`ClusterRuntime.attach`): messages taken over from a dead node are
queued again through ``requeue``, NOTIFY wakes the outbox through ``wake_outbox``, and a
session cleared on another node is told to this node's plugins through ``cleared``.
"""

from __future__ import annotations

import contextvars
import json
from collections.abc import Awaitable, Callable
from typing import Any

from loguru import logger

from core import Message, SessionCleared
from plugins.postgres.answering import LaneHandler
from plugins.postgres.cluster import ClusterNode
from plugins.postgres.db import Database
from plugins.postgres.queue import PostgresDurableQueue

Requeue = Callable[[list[Message]], Awaitable[object]]
Cleared = Callable[[SessionCleared], Awaitable[object]]

#: Set while this node tells its plugins about a session another node cleared, so that
#: the plugin's own ``session_cleared`` does not send it around again.
_FROM_CLUSTER: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "eneca_pg_from_cluster", default=False
)


class ClusterRuntime:
    def __init__(self, db: Database, schema: str, node_id: str, node_ttl_s: float) -> None:
        self.db = db
        self.schema = schema
        self.node_id = node_id
        self.kept: set[str] = set()
        self.queue = PostgresDurableQueue(
            db, schema, node_id=node_id, node_ttl_s=node_ttl_s, kept=self.kept
        )
        self.queue.on_attach = self.attach
        # The node tells the queue of work queued elsewhere (NOTIFY, the heartbeat's
        # poll): replies this node claimed itself go to the outbox without a look.
        self.queue.ready.told = True
        self.node = ClusterNode(
            db,
            schema,
            node_id,
            node_ttl_s,
            on_work=self._wake_outbox,
            on_orphans=self._adopt,
            on_message=self._on_message,
            on_lapse=self._abandon_lost,
        )
        self._requeue: Requeue | None = None
        self._wake: Callable[[], None] | None = None
        self._cleared: Cleared | None = None
        self.handlers: list[LaneHandler] = []

    async def start(self) -> None:
        await self.node.start()

    async def stop(self) -> None:
        await self.node.stop()

    def lane_handler(
        self,
        handler: Callable[[Message, Any], Awaitable[Any]],
        window: tuple[bool, int | None] = (False, None),
    ) -> LaneHandler:
        """The gateway's handler inside cluster lanes; ``window``: whether an HTTP
        message's lane is taken with its user turn stored and how many turns are read
        back (the gateway's store is this plugin's, with that bound)."""
        wrapped = LaneHandler(
            handler, self.db, self.schema, self.node.lanes, self.kept, self._requeue_later
        )
        wrapped.claims = True
        wrapped.window, wrapped.window_limit = window
        self.handlers.append(wrapped)
        return wrapped

    def attach(
        self,
        requeue: Requeue | None = None,
        wake_outbox: Callable[[], None] | None = None,
        cleared: Cleared | None = None,
    ) -> None:
        self._requeue = requeue
        self._wake = wake_outbox
        self._cleared = cleared

    async def _requeue_later(self, messages: list[Message]) -> None:
        if self._requeue is not None:
            await self._requeue(messages)

    def _wake_outbox(self) -> None:
        self.queue.ready.forget()  # work may have been queued elsewhere: look
        if self._wake is not None:
            self._wake()

    async def _adopt(self) -> None:
        if self._requeue is None:
            return
        orphans = await self.queue.adopt_orphans()
        if orphans:
            logger.warning(
                "cluster: answering {} kept message(s) of node(s) that stopped", len(orphans)
            )
            await self._requeue(orphans)

    async def _abandon_lost(self, seconds: float) -> None:
        """This node went ``seconds`` without renewing its leases: stop the answers whose
        lanes other nodes took meanwhile."""
        if not any(handler.answering for handler in self.handlers):
            return
        still_held = await self.node.lanes.held()
        stopped = sum(handler.abandon(still_held) for handler in self.handlers)
        if stopped:
            logger.warning(
                "cluster: this node did not renew its leases for {:.1f}s (paused or cut off);"
                " {} answer(s) whose lanes other nodes took were abandoned",
                seconds,
                stopped,
            )

    async def broadcast_cleared(self, event: SessionCleared) -> None:
        """Tell the other nodes (their channels' local state) that a session was cleared."""
        if _FROM_CLUSTER.get():
            return
        payload = json.dumps(
            {"node": self.node_id, "cid": event.conversation_id, "channel": event.channel}
        )
        await self.node.notify("cleared:" + payload)

    async def _on_message(self, payload: str) -> None:
        kind, _, rest = payload.partition(":")
        if kind != "cleared" or self._cleared is None:
            return
        data = json.loads(rest)
        self.queue.ready.forget()  # replies of the cleared session were dropped
        if data.get("node") == self.node_id:
            return
        token = _FROM_CLUSTER.set(True)
        try:
            await self._cleared(SessionCleared(data.get("cid"), data.get("channel")))
        finally:
            _FROM_CLUSTER.reset(token)
