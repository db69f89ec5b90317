"""The conversation database's schema and its migrations.

A file is ours when its ``application_id`` is :data:`APPLICATION_ID`; a brand-new (empty)
file gets it on first open. Anything else (another program's database, the gateway's own
``gateway.db``) is refused rather than written into. ``schema_version`` holds the version
the file was migrated to; each migration runs in one transaction with its version bump.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite

from core import PluginError

#: ``PRAGMA application_id`` of an eneca-bot conversation database ("EnMm").
APPLICATION_ID = 0x456E4D6D

#: Migration ``n`` takes a file from version ``n - 1`` to version ``n``.
MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE conversations (
        id TEXT PRIMARY KEY,
        channel TEXT NOT NULL,
        created REAL NOT NULL,
        last_activity REAL NOT NULL,
        turns INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX conversations_by_activity ON conversations(last_activity);
    CREATE INDEX conversations_by_channel ON conversations(channel, last_activity);

    CREATE TABLE turns (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        conversation_id TEXT NOT NULL,
        role TEXT NOT NULL,
        text TEXT NOT NULL,
        channel TEXT NOT NULL,
        user_id TEXT,
        message_id TEXT,
        created_at REAL NOT NULL,
        stored_at REAL NOT NULL,
        metadata TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX turns_by_conversation ON turns(conversation_id, seq);
    CREATE UNIQUE INDEX turns_replayed ON turns(conversation_id, role, message_id)
        WHERE message_id IS NOT NULL;

    -- The conversation row is kept in the same implicit transaction as the turn, so an
    -- append is a single statement (one commit, nothing half-written after kill -9).
    CREATE TRIGGER turns_counted AFTER INSERT ON turns BEGIN
        INSERT INTO conversations(id, channel, created, last_activity, turns)
        VALUES (NEW.conversation_id, NEW.channel, NEW.stored_at, NEW.stored_at, 1)
        ON CONFLICT(id) DO UPDATE
            SET last_activity = excluded.last_activity, turns = turns + 1;
    END;
    """,
    # Which web visitor owns a conversation (core.store.OwnsConversations). Its own table:
    # a thread is claimed before its first turn is stored.
    2: """
    CREATE TABLE owners (
        conversation_id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        claimed_at REAL NOT NULL
    );
    CREATE INDEX owners_by_owner ON owners(owner);
    """,
}

LATEST_VERSION = max(MIGRATIONS)


async def check_ownership(db: aiosqlite.Connection, path: Path) -> None:
    """Refuse, before anything is written, a file that is not ours or is newer than us.

    Raises :class:`PluginError` naming ``path``; a file that is not a database at all
    raises :class:`sqlite3.DatabaseError` on the first read.
    """
    application_id = await _scalar(db, "PRAGMA application_id")
    if application_id == 0:
        if await _scalar(db, "SELECT COUNT(*) FROM sqlite_master"):
            raise PluginError(
                f"{path} is an SQLite database of another program (it has tables but no "
                "eneca-bot memory schema); refusing to write into it. Point "
                "MEMORY_SQLITE_PATH at a new file."
            )
    elif application_id != APPLICATION_ID:
        raise PluginError(
            f"{path} is not an eneca-bot conversation database (application_id "
            f"{application_id:#x}); refusing to write into it"
        )
    else:
        _refuse_newer(path, await _version(db))


async def migrate(db: aiosqlite.Connection, path: Path) -> int:
    """Bring the file to :data:`LATEST_VERSION`; returns the version it is at.

    Call :func:`check_ownership` first. Each step re-reads the version inside its write
    transaction, so two processes opening a new file at once do not migrate it twice.
    """
    if await _scalar(db, "PRAGMA application_id") == 0:
        async with _write_transaction(db):
            await db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            await db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    for target in range(1, LATEST_VERSION + 1):
        async with _write_transaction(db):
            version = await _version(db)
            _refuse_newer(path, version)
            if version >= target:
                continue
            for statement in _statements(MIGRATIONS[target]):
                await db.execute(statement)
            await db.execute("DELETE FROM schema_version")
            await db.execute("INSERT INTO schema_version(version) VALUES (?)", (target,))
    return LATEST_VERSION


def _refuse_newer(path: Path, version: int) -> None:
    if version > LATEST_VERSION:
        raise PluginError(
            f"{path} has schema version {version}, newer than this eneca-bot understands "
            f"({LATEST_VERSION}); upgrade eneca-bot or point MEMORY_SQLITE_PATH at another file"
        )


@asynccontextmanager
async def _write_transaction(db: aiosqlite.Connection) -> AsyncIterator[None]:
    await db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        await db.execute("ROLLBACK")
        raise
    await db.execute("COMMIT")


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (``executescript`` would commit early)."""
    statements: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        if line.strip().startswith("--"):
            continue
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip():
        statements.append(pending.strip())
    return statements


async def _version(db: aiosqlite.Connection) -> int:
    return await _scalar(db, "SELECT MAX(version) FROM schema_version")


async def _scalar(db: aiosqlite.Connection, query: str) -> int:
    async with db.execute(query) as cursor:
        row = await cursor.fetchone()
    return int(row[0]) if row and row[0] is not None else 0
