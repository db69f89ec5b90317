"""``eneca-bot postgres import-sqlite DATA_DIR``: move an SQLite deployment's conversations into
PostgreSQL, turn by turn in their order, into a schema that has none yet."""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from core import PluginError
from plugins.postgres.settings import PostgresSettings
from plugins.postgres.turns import to_db

BATCH = 1000


def _text(value: str | bytes | None) -> bytes | None:
    """memory_sqlite keeps strings UTF-8 encodable as TEXT, others as surrogate-pass BLOBs."""
    if value is None:
        return None
    return bytes(value) if isinstance(value, bytes | memoryview) else to_db(value)


def _metadata(value: str | bytes) -> str:
    import json

    raw = value.decode("utf-8", "surrogatepass") if isinstance(value, bytes) else value
    return "{}" if raw == "{}" else json.dumps(json.loads(raw))


def _database_file(data_dir: Path) -> Path:
    path = data_dir / "checkpoints.db" if data_dir.is_dir() else data_dir
    if not path.is_file():
        raise PluginError(f"no SQLite conversation database at {path}")
    return path


def _row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A memory_sqlite ``turns`` row (after its seq) as the postgres store's columns."""
    cid, role, text, channel, user_id, message_id, created_at, stored_at, metadata = row[1:]
    return (
        _text(cid),
        role,
        _text(text),
        _text(channel),
        _text(user_id),
        _text(message_id),
        created_at,
        stored_at,
        _metadata(metadata),
    )


def _read_batch(path: Path, after: int) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT seq, conversation_id, role, text, channel, user_id, message_id, created_at,"
            " stored_at, metadata FROM turns WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, BATCH),
        ).fetchall()
    return rows


async def import_sqlite(settings: PostgresSettings, data_dir: Path) -> int:
    """Copy every turn of ``DATA_DIR/checkpoints.db``; returns how many were copied."""
    from plugins.postgres.connect import open_database

    path = await asyncio.to_thread(_database_file, data_dir)
    db, _ = await open_database(settings)
    s = f'"{settings.schema}"'
    try:
        if await db.fetchval(f"SELECT count(*) FROM {s}.turns"):
            raise PluginError(
                f"PostgreSQL schema {settings.schema!r} already holds conversations; import "
                "into a new schema (POSTGRES_SCHEMA) so nothing is stored twice"
            )
        copied = 0
        after = 0
        async with db.pool.connection() as conn:
            while rows := await asyncio.to_thread(_read_batch, path, after):
                after = rows[-1][0]
                async with conn.transaction(), conn.cursor() as cursor:
                    await cursor.executemany(
                        f"INSERT INTO {s}.turns(conversation_id, role, text, channel, user_id,"
                        " message_id, created_at, stored_at, metadata)"
                        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                        [_row(row) for row in rows],
                    )
                copied += len(rows)
        return copied
    except sqlite3.Error as exc:
        raise PluginError(f"cannot read {path}: {exc}") from exc
    finally:
        await db.close()


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    # Not "db": that group is the core's (`eneca-bot db backup`, SQLite files).
    db = subparsers.add_parser("postgres", help="the postgres plugin's database")
    commands = db.add_subparsers(dest="db_command", required=True)
    copy = commands.add_parser(
        "import-sqlite",
        help="copy the conversations of an SQLite deployment (DATA_DIR) into PostgreSQL",
    )
    copy.add_argument("data_dir", type=Path, help="the old DATA_DIR (or its checkpoints.db)")
    copy.set_defaults(func=_run_import)


async def _run_import(args: argparse.Namespace, gateway: Any) -> int:
    settings = gateway.settings_for(PostgresSettings)
    copied = await import_sqlite(settings, args.data_dir)
    print(f"imported {copied} turn(s) into PostgreSQL schema {settings.schema}")
    return 0
