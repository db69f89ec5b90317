"""Start-up of the postgres plugin: migrations, and the one-line refusals."""

import asyncio

import psycopg
import pytest

from core.contract.errors import PluginError
from plugins.postgres.connect import open_database
from plugins.postgres.schema import LATEST_VERSION
from plugins.postgres.settings import PostgresSettings


def settings(dsn, schema, **extra):
    return PostgresSettings(dsn=dsn, schema=schema, pool_size=2, **extra)


async def test_a_new_schema_is_created_and_reopening_keeps_it(postgres_dsn, postgres_schema):
    db, version = await open_database(settings(postgres_dsn, postgres_schema))
    assert version == LATEST_VERSION
    await db.execute(f'INSERT INTO "{postgres_schema}".duplicates VALUES (%s, %s)', ("kept", 3))
    await db.close()
    db, version = await open_database(settings(postgres_dsn, postgres_schema))
    assert await db.fetchval(f'SELECT count FROM "{postgres_schema}".duplicates') == 3
    await db.close()


async def test_nodes_starting_at_once_migrate_once(postgres_dsn, postgres_schema):
    opened = await asyncio.gather(
        *(open_database(settings(postgres_dsn, postgres_schema)) for _ in range(4))
    )
    assert [version for _, version in opened] == [LATEST_VERSION] * 4
    for db, _ in opened:
        await db.close()


async def test_a_schema_of_another_program_is_refused_untouched(postgres_dsn, postgres_schema):
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{postgres_schema}"')
        conn.execute(f'CREATE TABLE "{postgres_schema}".orders (id int)')
    with pytest.raises(PluginError) as caught:
        await open_database(settings(postgres_dsn, postgres_schema))
    assert "not eneca-bot's" in str(caught.value) and "\n" not in str(caught.value)
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", (postgres_schema,)
        ).fetchall()
    assert tables == [("orders",)]


async def test_a_schema_newer_than_the_code_is_refused(postgres_dsn, postgres_schema):
    db, _ = await open_database(settings(postgres_dsn, postgres_schema))
    await db.execute(
        f"UPDATE \"{postgres_schema}\".meta SET value = '999' WHERE key = 'schema_version'"
    )
    await db.close()
    with pytest.raises(PluginError, match="version 999, newer than this eneca-bot") as caught:
        await open_database(settings(postgres_dsn, postgres_schema))
    assert "\n" not in str(caught.value)


async def test_an_unreachable_server_stops_start_up_with_one_line():
    unreachable = PostgresSettings(
        dsn="postgresql://postgres:hunter2@127.0.0.1:1/test?connect_timeout=1", pool_size=2
    )
    with pytest.raises(PluginError) as caught:
        await open_database(unreachable, wait_s=1.0)
    text = str(caught.value)
    assert "cannot connect to PostgreSQL at postgres@127.0.0.1:1/test" in text
    assert "hunter2" not in text and "\n" not in text


def test_a_schema_name_that_needs_quoting_is_refused():
    with pytest.raises(ValueError, match="lower-case letters"):
        PostgresSettings(schema='x"; DROP SCHEMA public; --')
