"""A conversation turn as a row of the ``turns`` table, and back.

Shared by the store (its appends and reads) and the lane handler, whose statements also
write turns: the answer's final commit, and the statement that takes an HTTP message's
lane together with storing its user turn.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, cast

from core import Role, Turn

#: The columns of a turn as read back, in :func:`turns_of` order.
TURN_COLUMNS = "role, text, channel, user_id, message_id, created_at, metadata"
#: The columns of a turn's INSERT, in :func:`turn_row` order (``stored_at`` is the
#: database's clock, written in place of the eighth value).
INSERT_COLUMNS = (
    "conversation_id, role, text, channel, user_id, message_id, created_at, stored_at, metadata"
)
NOW = "extract(epoch FROM clock_timestamp())"


def insert_sql(schema: str, source: str) -> str:
    """A turn's INSERT into ``schema`` (quoted) taking its values from ``source``
    (``VALUES (...)`` or a ``SELECT``); a replay (same conversation, role and message id)
    stores nothing, by a unique index."""
    return (
        f"INSERT INTO {schema}.turns({INSERT_COLUMNS}) {source} ON CONFLICT"
        " (conversation_id, role, message_id) WHERE message_id IS NOT NULL DO NOTHING"
    )


#: What a turn's INSERT returns for :func:`window_sql` (as the CTE ``added``).
RETURNING = f" RETURNING seq, {TURN_COLUMNS}"


def window_sql(schema: str, conversation: str, limit: str) -> str:
    """A SELECT of ``conversation``'s newest turns, newest first, at most ``limit``
    (SQL expressions), with the row of the CTE ``added`` (a turn INSERT ...
    :data:`RETURNING`): the statement's own snapshot cannot see the row it adds."""
    return (
        f"SELECT {TURN_COLUMNS} FROM (SELECT seq, {TURN_COLUMNS} FROM added UNION ALL"
        f" (SELECT seq, {TURN_COLUMNS} FROM {schema}.turns WHERE conversation_id = {conversation}"
        f" ORDER BY seq DESC LIMIT {limit})) AS window_ ORDER BY seq DESC LIMIT {limit}"
    )


def to_db(value: str) -> bytes:
    """A string as stored: UTF-8, lone surrogates passed through (exact round trip)."""
    return value.encode("utf-8", "surrogatepass")


def from_db(value: bytes | memoryview) -> str:
    return bytes(value).decode("utf-8", "surrogatepass")


def _optional(value: str | None) -> bytes | None:
    return None if value is None else to_db(value)


def turn_row(conversation_id: str, turn: Turn) -> tuple[Any, ...]:
    """The INSERT parameters of ``turn`` (see :data:`INSERT_COLUMNS`)."""
    return (
        to_db(conversation_id),
        turn.role,
        to_db(turn.text),
        to_db(turn.channel),
        _optional(turn.user_id),
        _optional(turn.message_id),
        turn.created_at,
        _metadata_json(turn.metadata),
    )


def named_values(prefix: str = "t") -> str:
    """The VALUES of a turn's INSERT from named parameters ``t0`` .. ``t7``."""
    return ", ".join(f"%({prefix}{i})s" if i != 7 else f"{NOW}, %({prefix}7)s" for i in range(8))


def named_params(row: tuple[Any, ...], prefix: str = "t") -> dict[str, Any]:
    """``row`` (:func:`turn_row`) as the parameters :func:`named_values` names."""
    return {f"{prefix}{i}": value for i, value in enumerate(row)}


def turns_of(rows: Sequence[Any], max_chars: int | None) -> list[Turn]:
    """Rows newest first as turns oldest first, within ``max_chars`` (always the newest)."""
    newest_first: list[Turn] = []
    used = 0
    for role, text, channel, user_id, message_id, created_at, metadata in rows:
        text = from_db(text)
        if max_chars is not None and newest_first and used + len(text) > max_chars:
            break
        used += len(text)
        newest_first.append(
            Turn(
                cast(Role, role),
                text,
                from_db(channel),
                None if user_id is None else from_db(user_id),
                None if message_id is None else from_db(message_id),
                created_at,
                {} if metadata == "{}" else json.loads(metadata),
            )
        )
    return newest_first[::-1]


def _metadata_json(metadata: Mapping[str, Any]) -> str:
    # ASCII escapes: PostgreSQL text holds no NUL, and lone surrogates stay exact.
    return json.dumps(dict(metadata), default=str) if metadata else "{}"
