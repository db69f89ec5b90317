"""pytest fixtures for code that runs on the postgres plugin (loaded as a pytest plugin).

``postgres_dsn`` is ``ENECA_TEST_POSTGRES_DSN`` (default the local test server). When the
server cannot be reached the test is skipped with one line, except with ``CI=true``, where
it fails: a green CI run always means these tests ran. ``postgres_schema`` is a schema of
its own per test, dropped at the end (nothing else in the database is touched).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest

from core.testing import service_missing

DEFAULT_TEST_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def test_dsn() -> str:
    return os.environ.get("ENECA_TEST_POSTGRES_DSN", DEFAULT_TEST_DSN)


test_dsn.__test__ = False  # type: ignore[attr-defined]  # not a test, whatever its name

_reachable: dict[str, str | None] = {}


def _unreachable(dsn: str) -> str | None:
    """Why ``dsn`` cannot be used (``None``: it can); asked once per run."""
    if dsn not in _reachable:
        try:
            with psycopg.connect(dsn, connect_timeout=3, autocommit=True) as conn:
                conn.execute("SELECT 1")
            _reachable[dsn] = None
        except psycopg.Error as exc:
            _reachable[dsn] = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
    return _reachable[dsn]


def require_postgres() -> str:
    """The test DSN, or skip (fail under CI=true) when its server is not reachable."""
    dsn = test_dsn()
    why = _unreachable(dsn)
    if why is not None:
        service_missing(f"PostgreSQL not reachable at ENECA_TEST_POSTGRES_DSN ({why})")
    return dsn


def new_schema_name() -> str:
    return f"eneca_test_{uuid.uuid4().hex[:16]}"


def drop_schema(dsn: str, schema: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def postgres_dsn() -> str:
    return require_postgres()


@pytest.fixture
def postgres_schema(postgres_dsn: str) -> Iterator[str]:
    """A fresh schema name for this test (created by whoever migrates), dropped after."""
    schema = new_schema_name()
    try:
        yield schema
    finally:
        drop_schema(postgres_dsn, schema)


@pytest.fixture
async def postgres_db(postgres_dsn: str, postgres_schema: str) -> AsyncIterator[object]:
    """An open :class:`~plugins.postgres.db.Database` on a migrated per-test schema."""
    from plugins.postgres.connect import open_database
    from plugins.postgres.settings import PostgresSettings

    settings = PostgresSettings(dsn=postgres_dsn, schema=postgres_schema, pool_size=4)
    db, _ = await open_database(settings)
    try:
        yield db
    finally:
        await db.close()
