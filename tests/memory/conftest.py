"""The conversation-store tests run against both backends: SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from plugins.memory_sqlite.store import SqliteConversationStore
from plugins.postgres.testing import drop_schema, new_schema_name, require_postgres

BACKENDS = ["sqlite", "postgres"]


class Backend:
    """Opens stores on one database: a file for SQLite, a per-test schema for PostgreSQL.
    Every store opened on it sees the same conversations (as another process would)."""

    def __init__(self, name: str, tmp_path) -> None:
        self.name = name
        self.path = tmp_path / "memory.db"
        self.dsn = require_postgres() if name == "postgres" else ""
        self.schema = new_schema_name() if name == "postgres" else ""
        self._open: list[object] = []

    async def open(self, **window):
        if self.name == "sqlite":
            store = SqliteConversationStore(self.path, **window)
            await store.open()
        else:
            from plugins.postgres.connect import open_database
            from plugins.postgres.settings import PostgresSettings
            from plugins.postgres.store import PostgresConversationStore

            settings = PostgresSettings(dsn=self.dsn, schema=self.schema, pool_size=4)
            db, _ = await open_database(settings)
            store = PostgresConversationStore(db, self.schema, **window)
        self._open.append(store)
        return store

    async def close(self, store) -> None:
        if store in self._open:
            self._open.remove(store)
        if self.name == "sqlite":
            await store.close()
        else:
            await store.db.close()

    async def close_all(self) -> None:
        for store in list(self._open):
            await self.close(store)
        if self.name == "postgres":
            drop_schema(self.dsn, self.schema)


@pytest.fixture(params=BACKENDS)
async def backend(request, tmp_path):
    opened = Backend(request.param, tmp_path)
    try:
        yield opened
    finally:
        await opened.close_all()


@pytest.fixture
async def store(backend):
    return await backend.open(max_messages=None)
