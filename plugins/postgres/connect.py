"""Opening the database at start-up: the pool, then the migrations, with one-line errors."""

from __future__ import annotations

import psycopg
from psycopg_pool import PoolTimeout

from core import PluginError
from plugins.postgres.db import Database
from plugins.postgres.schema import migrate
from plugins.postgres.settings import PostgresSettings


def describe(dsn: str) -> str:
    """The DSN without its password, for messages."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "the configured POSTGRES_DSN"
    host = info.get("host", "localhost")
    return f"{info.get('user', '')}@{host}:{info.get('port', 5432)}/{info.get('dbname', '')}"


async def open_database(settings: PostgresSettings, wait_s: float = 10.0) -> tuple[Database, int]:
    """An open pool on a migrated schema, and the schema's version."""
    dsn = settings.dsn.get_secret_value()
    db = Database(
        dsn,
        pool_size=settings.pool_size,
        statement_timeout_ms=settings.statement_timeout_ms,
        prepared_statements=settings.prepared_statements,
    )
    try:
        await db.open(wait_s)
    except (PoolTimeout, psycopg.Error) as exc:
        await db.close()
        raise PluginError(
            f"cannot connect to PostgreSQL at {describe(dsn)} within {wait_s:g}s: "
            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"
        ) from exc
    try:
        async with db.pool.connection() as conn:
            version = await migrate(conn, settings.schema)
    except PluginError:
        await db.close()
        raise
    except psycopg.Error as exc:
        await db.close()
        raise PluginError(f"cannot migrate PostgreSQL schema {settings.schema!r}: {exc}") from exc
    return db, version
