"""The PostgreSQL :class:`~core.store.ConversationStore`.

Every method is one statement on an autocommit connection (one round trip, atomic):
an append is one ``INSERT`` whose trigger counts the turn, and
:meth:`~PostgresConversationStore.append_and_history` appends and reads the window in one
statement too (the new row comes from ``RETURNING``, since the statement's own snapshot
cannot see it). A replay (same conversation, role and message id) stores nothing, by a
unique index.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from loguru import logger

from core import ApiError, ConversationInfo, Turn
from plugins.postgres.answering import held_for
from plugins.postgres.db import NO_FLUSH, Database, DatabaseUnavailable
from plugins.postgres.turns import (
    NOW,
    RETURNING,
    TURN_COLUMNS,
    from_db,
    insert_sql,
    to_db,
    turn_row,
    turns_of,
    window_sql,
)

#: Conversations removed per statement by :meth:`PostgresConversationStore.purge_idle`.
PURGE_BATCH = 500


class PostgresConversationStore:
    """Conversations in the tables of one schema (see :mod:`plugins.postgres.schema`).

    ``max_messages`` / ``max_chars`` are the window :meth:`history` returns when the caller
    gives none (``None``: no bound).
    """

    def __init__(
        self,
        db: Database,
        schema: str,
        *,
        max_messages: int | None = 40,
        max_chars: int | None = None,
        node_id: str = "",
    ) -> None:
        self.db = db
        self.schema = schema
        self.max_messages = max_messages
        self.max_chars = max_chars
        #: The node this process is in the cluster (names its running Idempotency-Keys).
        self.node_id = node_id or "single"
        s = f'"{schema}"'
        self._s = s
        values = f"%s, %s, %s, %s, %s, %s, %s, {NOW}, %s"
        self._insert = insert_sql(s, f"VALUES ({values})")
        self._newest = (
            f"SELECT {TURN_COLUMNS} FROM {s}.turns WHERE conversation_id = %s"
            " ORDER BY seq DESC LIMIT %s"
        )
        newest = window_sql(s, "%s", "%s")
        self._append_and_newest = f"WITH added AS ({self._insert}{RETURNING}) {newest}"
        #: The same for a turn stored inside a cluster lane, before its answer: its
        #: commit does not wait for the disk, since the answer's fenced final commit does
        #: (see :data:`~plugins.postgres.db.NO_FLUSH`); a message that was acknowledged
        #: (kept) is in the inbox, whose row stays unanswered until that commit.
        no_flush = insert_sql(s, f"SELECT {values} FROM (SELECT {NO_FLUSH}) AS no_flush")
        self._append_and_newest_in_lane = f"WITH added AS ({no_flush}{RETURNING}) {newest}"

    # -- ConversationStore ------------------------------------------------------------------

    async def append(self, conversation_id: str, turn: Turn) -> None:
        """Store ``turn``, committed when this returns; a replay stores nothing.

        Inside a cluster lane the assistant's turn is the answer's: it is written by the
        lane's fenced final commit (:mod:`plugins.postgres.answering`), with the rest.
        """
        row = turn_row(conversation_id, turn)
        held = held_for(conversation_id) if turn.role == "assistant" else None
        if held is not None and held.turn is None:
            held.turn = row
            return
        await self.db.execute(self._insert, row)

    async def history(
        self, conversation_id: str, limit: int | None = None, max_chars: int | None = None
    ) -> list[Turn]:
        limit = self.max_messages if limit is None else limit
        max_chars = self.max_chars if max_chars is None else max_chars
        if limit is not None and limit <= 0:
            return []
        rows = await self.db.fetch(self._newest, (to_db(conversation_id), limit))
        return turns_of(rows, max_chars)

    async def append_and_history(
        self,
        conversation_id: str,
        turn: Turn,
        limit: int | None = None,
        max_chars: int | None = None,
    ) -> list[Turn]:
        """:meth:`append` then :meth:`history`, as one statement (one round trip)."""
        limit = self.max_messages if limit is None else limit
        max_chars = self.max_chars if max_chars is None else max_chars
        if limit is not None and limit <= 0:
            await self.append(conversation_id, turn)
            return []
        held = held_for(conversation_id)
        if held is None:
            sql = self._append_and_newest
        else:
            opened, held.opened = held.opened, None
            if opened is not None and opened[:2] == (turn, limit):
                return turns_of(opened[2], max_chars)  # stored with the lane taken
            sql = self._append_and_newest_in_lane
        row = turn_row(conversation_id, turn)
        rows = await self.db.fetch(sql, (*row, row[0], limit, limit))
        return turns_of(rows, max_chars)

    async def clear(self, conversation_id: str) -> int:
        s = self._s
        key = to_db(conversation_id)
        return int(
            await self.db.fetchval(
                f"WITH gone AS (DELETE FROM {s}.turns WHERE conversation_id = %s RETURNING 1),"
                f" conv AS (DELETE FROM {s}.conversations WHERE id = %s),"
                f" own AS (DELETE FROM {s}.owners WHERE conversation_id = %s),"
                f" idem AS (DELETE FROM {s}.idempotency WHERE thread = %s)"
                " SELECT count(*) FROM gone",
                (key, key, key, key),
            )
        )

    async def clear_channel(self, channel: str) -> int:
        s = self._s
        return int(
            await self.db.fetchval(
                f"WITH conv AS (DELETE FROM {s}.conversations WHERE channel = %s RETURNING id),"
                f" gone AS (DELETE FROM {s}.turns WHERE conversation_id IN (SELECT id FROM conv)),"
                f" own AS (DELETE FROM {s}.owners WHERE conversation_id IN (SELECT id FROM conv))"
                " SELECT count(*) FROM conv",
                (to_db(channel),),
            )
        )

    async def list_conversations(
        self, channel: str | None = None, limit: int = 100, offset: int = 0
    ) -> Sequence[ConversationInfo]:
        where, params = _channel_filter(channel)
        rows = await self.db.fetch(
            f"SELECT id, channel, turns, last_activity FROM {self._s}.conversations{where}"
            " ORDER BY last_activity DESC, ord ASC LIMIT %s OFFSET %s",
            (*params, max(limit, 0), max(offset, 0)),
        )
        return [
            ConversationInfo(from_db(cid), from_db(ch), turns, last)
            for cid, ch, turns, last in rows
        ]

    async def count_conversations(self, channel: str | None = None) -> int:
        where, params = _channel_filter(channel)
        return int(
            await self.db.fetchval(f"SELECT count(*) FROM {self._s}.conversations{where}", params)
        )

    async def stats(self) -> dict[str, Any]:
        s = self._s
        [(conversations, turns, size)] = await self.db.fetch(
            f"SELECT count(*), COALESCE(sum(turns), 0),"
            f" pg_total_relation_size('{s}.turns') + pg_total_relation_size('{s}.conversations')"
            f" FROM {s}.conversations"
        )
        return {
            "backend": "postgres",
            "schema": self.schema,
            "conversations": int(conversations),
            "turns": int(turns),
            "size_bytes": int(size),
        }

    async def ping(self) -> bool:
        """True when the schema can be read and the server takes writes (not a replica)."""
        try:
            ok = await self.db.fetchval(
                f"SELECT NOT pg_is_in_recovery() FROM {self._s}.meta WHERE key = 'owner'"
            )
        except (DatabaseUnavailable, RuntimeError) as exc:  # RuntimeError: pool closed
            logger.warning("postgres store: ping failed: {}", exc)
            return False
        return bool(ok)

    # -- SharesIdempotency (optional contract, issue 15) -------------------------------------

    #: The node running a first request holds its key this long at most.
    IDEMPOTENCY_RUNNING_S = 600.0

    async def idempotent(
        self,
        scope: tuple[str, str, str],
        digest: bytes,
        produce: Callable[[], Awaitable[tuple[dict[str, Any], bool]]],
        ttl_s: float,
    ) -> tuple[dict[str, Any], bool]:
        """The answer for ``scope`` (route, thread, key) on every node: the remembered
        one (``True``) or ``produce()``'s, run once however many nodes get the key at
        once (the others wait for it). A different request under the same key is 422."""
        s = self._s
        key = "\x1f".join(scope)
        params = {"scope": key, "thread": to_db(scope[1]), "fp": digest, "me": self.node_id}
        while True:
            [(mine, fingerprint, body, expired)] = await self.db.fetch(
                f"WITH mine AS (INSERT INTO {s}.idempotency(scope, thread, fingerprint, node_id,"
                " expires_at) VALUES (%(scope)s, %(thread)s, %(fp)s, %(me)s, now() +"
                " make_interval(secs => %(running)s)) ON CONFLICT (scope) DO NOTHING RETURNING 1)"
                " SELECT (SELECT count(*) FROM mine), i.fingerprint, i.body,"
                f" i.expires_at < now() FROM (SELECT 1) AS one LEFT JOIN {s}.idempotency i"
                " ON i.scope = %(scope)s",
                {**params, "running": self.IDEMPOTENCY_RUNNING_S},
            )
            if mine:
                return await self._produce_once(params, produce, ttl_s), False
            if fingerprint is None or expired:
                await self.db.execute(
                    f"DELETE FROM {s}.idempotency WHERE scope = %s AND expires_at < now()",
                    (key,),
                )
                continue
            if bytes(fingerprint) != digest:
                raise ApiError(
                    422,
                    "idempotency_key_reused",
                    "this Idempotency-Key was already used for a different request",
                )
            if body is not None:
                return json.loads(body), True
            await asyncio.sleep(0.1)  # the first request runs (maybe on another node)

    async def _produce_once(
        self,
        params: dict[str, Any],
        produce: Callable[[], Awaitable[tuple[dict[str, Any], bool]]],
        ttl_s: float,
    ) -> dict[str, Any]:
        s = self._s
        try:
            body, reusable = await produce()
        except BaseException:
            await asyncio.shield(
                self.db.execute(
                    f"DELETE FROM {s}.idempotency WHERE scope = %(scope)s AND body IS NULL",
                    params,
                )
            )
            raise
        if reusable:
            await self.db.execute(
                f"UPDATE {s}.idempotency SET body = %(body)s, expires_at = now() +"
                " make_interval(secs => %(ttl)s) WHERE scope = %(scope)s",
                {**params, "body": json.dumps(body), "ttl": ttl_s},
            )
        else:
            await self.db.execute(f"DELETE FROM {s}.idempotency WHERE scope = %(scope)s", params)
        return body

    # -- OwnsConversations (optional contract, issue 14) ------------------------------------

    async def claim(self, conversation_id: str, owner: str) -> bool:
        """Bind a conversation with no owner and no turns to ``owner``, atomically; True
        also when ``owner`` already has it, False when another owner has it or it has
        turns without an owner."""
        s = self._s
        return bool(
            await self.db.fetchval(
                f"WITH mine AS (INSERT INTO {s}.owners(conversation_id, owner, claimed_at)"
                f" SELECT %(cid)s, %(owner)s, {NOW} WHERE NOT EXISTS"
                f" (SELECT 1 FROM {s}.conversations WHERE id = %(cid)s)"
                " ON CONFLICT (conversation_id) DO NOTHING RETURNING owner)"
                " SELECT COALESCE((SELECT owner FROM mine),"
                f" (SELECT owner FROM {s}.owners WHERE conversation_id = %(cid)s)) = %(owner)s",
                {"cid": to_db(conversation_id), "owner": owner},
            )
        )

    async def owner(self, conversation_id: str) -> str | None:
        """Who ``conversation_id`` belongs to (``None``: nobody)."""
        value = await self.db.fetchval(
            f"SELECT owner FROM {self._s}.owners WHERE conversation_id = %s",
            (to_db(conversation_id),),
        )
        return None if value is None else str(value)

    async def list_owned(
        self, owner: str, limit: int = 100, offset: int = 0
    ) -> Sequence[ConversationInfo]:
        """``owner``'s conversations, most recently active first (claimed but empty ones
        too, active since their claim)."""
        s = self._s
        rows = await self.db.fetch(
            "SELECT o.conversation_id, c.channel, COALESCE(c.turns, 0),"
            f" COALESCE(c.last_activity, o.claimed_at) AS active FROM {s}.owners o"
            f" LEFT JOIN {s}.conversations c ON c.id = o.conversation_id WHERE o.owner = %s"
            " ORDER BY active DESC, o.conversation_id LIMIT %s OFFSET %s",
            (owner, max(limit, 0), max(offset, 0)),
        )
        return [
            ConversationInfo(from_db(cid), "" if ch is None else from_db(ch), turns, active)
            for cid, ch, turns, active in rows
        ]

    # -- beyond the protocol ------------------------------------------------------------------

    async def purge_idle(self, idle_for_s: float, now: float | None = None) -> int:
        """Forget conversations with no turn for ``idle_for_s`` seconds; returns how many."""
        s = self._s
        cutoff = (time.time() if now is None else now) - idle_for_s
        removed = 0
        while True:
            count = int(
                await self.db.fetchval(
                    f"WITH conv AS (DELETE FROM {s}.conversations WHERE id IN (SELECT id FROM"
                    f" {s}.conversations WHERE last_activity < %s ORDER BY last_activity"
                    " LIMIT %s) RETURNING id),"
                    f" gone AS (DELETE FROM {s}.turns WHERE conversation_id IN"
                    " (SELECT id FROM conv)),"
                    f" own AS (DELETE FROM {s}.owners WHERE conversation_id IN"
                    " (SELECT id FROM conv)) SELECT count(*) FROM conv",
                    (cutoff, PURGE_BATCH),
                )
            )
            removed += count
            if count < PURGE_BATCH:
                return removed


def _channel_filter(channel: str | None) -> tuple[str, tuple[bytes, ...]]:
    if channel is None:
        return "", ()
    return " WHERE channel = %s", (to_db(channel),)
