"""Node heartbeats and the reaper, one statement per second per node.

Each node's heartbeat is its lease renewal: every lane it holds (``lanes.holder``) and
every claim it made (inbox, outbox, tickets) is valid while its ``nodes.heartbeat_at`` is
younger than the node TTL, by the database clock. The same statement reaps nodes whose
heartbeat is older than the TTL: their HTTP tickets are dropped (those requests died
with them), their kept messages' tickets are handed to no node (any live node adopts
them, keeping their place in line), their lanes and claims are freed, and the other
nodes are woken.

Every start of a process is a node of its own (:func:`incarnation`): a process restarted
under the same ``CLUSTER_NODE_ID`` must not take the rows of its last run (lanes, tickets,
claims, running idempotency keys) for its own, since it knows nothing of that work; as
another node, it lets the reaper free and hand that work on like any stopped node's.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from plugins.postgres.db import Database
from plugins.postgres.lanes import channel_name


def incarnation(name: str) -> str:
    """The node id of this start: the configured ``name``, ``#`` and a random token."""
    return f"{name}#{secrets.token_hex(4)}"


@dataclass(frozen=True, slots=True)
class Beat:
    """What one heartbeat learned."""

    live_nodes: int
    reaped: int


class Nodes:
    def __init__(self, db: Database, schema: str, node_id: str, node_ttl_s: float) -> None:
        self.db = db
        self.node_id = node_id
        self.node_ttl_s = node_ttl_s
        s = f'"{schema}"'
        channel = channel_name(schema)
        self._beat = (
            f"WITH me AS (INSERT INTO {s}.nodes AS n (id, info) VALUES (%(me)s, %(info)s)"
            " ON CONFLICT (id) DO UPDATE SET heartbeat_at = now() RETURNING id),"
            f" dead AS (DELETE FROM {s}.nodes WHERE heartbeat_at <="
            " now() - make_interval(secs => %(ttl)s) AND id != %(me)s RETURNING id),"
            f" http AS (DELETE FROM {s}.tickets WHERE node_id IN (SELECT id FROM dead)"
            " AND inbox_id IS NULL),"
            f" kept AS (UPDATE {s}.tickets SET node_id = NULL WHERE node_id IN"
            " (SELECT id FROM dead) AND inbox_id IS NOT NULL),"
            f" lanes AS (UPDATE {s}.lanes SET holder = NULL WHERE holder IN (SELECT id FROM dead)),"
            f" inbox AS (UPDATE {s}.inbox SET claimed_by = NULL WHERE claimed_by IN"
            " (SELECT id FROM dead)),"
            f" outbox AS (UPDATE {s}.outbox SET claimed_by = NULL WHERE claimed_by IN"
            " (SELECT id FROM dead)),"
            f" idem AS (DELETE FROM {s}.idempotency WHERE (body IS NULL AND node_id IN"
            " (SELECT id FROM dead)) OR expires_at < now()),"
            # A plain SELECT in a WITH runs only when the query reads it: it is read below.
            f" woke AS (SELECT pg_notify('{channel}', 'reaped') WHERE EXISTS"
            " (SELECT 1 FROM dead)),"
            # Heard back by this node's own listener: a LISTEN connection that stopped
            # delivering (half-open, no error) is noticed and replaced.
            f" heard AS (SELECT pg_notify('{channel}', 'beat:' || %(me)s))"
            f" SELECT (SELECT count(*) FROM {s}.nodes WHERE heartbeat_at > now()"
            " - make_interval(secs => %(ttl)s) AND id != %(me)s) + 1,"
            " (SELECT count(*) FROM dead) + (SELECT count(*) FROM woke) * 0"
            " + (SELECT count(*) FROM heard) * 0"
        )
        self._leave = (
            f"WITH gone AS (UPDATE {s}.nodes SET heartbeat_at = '-infinity' WHERE id = %(me)s)"
            f" SELECT pg_notify('{channel}', 'reaped')"
        )

    async def beat(self, info: str = "{}") -> Beat:
        """Renew this node's leases and reap the dead; one statement. (Right after this
        node could not reach the database it reaps nobody: see ``Database.takeover_ttl``.)"""
        ttl = self.db.takeover_ttl(self.node_ttl_s)
        [(live, reaped)] = await self.db.fetch(
            self._beat, {"me": self.node_id, "ttl": ttl, "info": info}
        )
        return Beat(int(live), int(reaped))

    async def leave(self) -> None:
        """A clean stop: the node counts as dead at once, so its claims are free now and
        the next heartbeat of any node reaps it."""
        await self.db.execute(self._leave, {"me": self.node_id})
