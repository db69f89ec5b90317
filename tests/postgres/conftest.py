"""Durable queues of both backends behind one fixture, and the gateway with TalkMe on
PostgreSQL."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from core.durable.sqlite import DurableQueue
from plugins.postgres.testing import drop_schema, new_schema_name, require_postgres
from tests.support.talkme_fake_api import FakeTalkMe
from tests.support.talkme_helpers import ADMIN_KEY


class QueueBackend:
    """Opens queues on one database (SQLite file or per-test PostgreSQL schema); PostgreSQL
    queues may be given node ids, as separate gateway processes would have."""

    def __init__(self, name: str, tmp_path) -> None:
        self.name = name
        self.path = tmp_path / "gateway.db"
        self.dsn = require_postgres() if name == "postgres" else ""
        self.schema = new_schema_name() if name == "postgres" else ""
        self._closers: list = []

    async def open(self, node_id: str = "node-a", node_ttl_s: float = 5.0):
        if self.name == "sqlite":
            queue = DurableQueue(self.path)
            await queue.open()
            self._closers.append(queue.close)
            return queue
        from plugins.postgres.connect import open_database
        from plugins.postgres.queue import PostgresDurableQueue
        from plugins.postgres.settings import PostgresSettings

        db, _ = await open_database(PostgresSettings(dsn=self.dsn, schema=self.schema, pool_size=4))
        self._closers.append(db.close)
        return PostgresDurableQueue(db, self.schema, node_id=node_id, node_ttl_s=node_ttl_s)

    async def close_all(self) -> None:
        for close in reversed(self._closers):
            await close()
        if self.name == "postgres":
            drop_schema(self.dsn, self.schema)


@pytest.fixture(params=["sqlite", "postgres"])
async def queues(request, tmp_path):
    backend = QueueBackend(request.param, tmp_path)
    try:
        yield backend
    finally:
        await backend.close_all()


@pytest.fixture
async def queue(queues):
    return await queues.open()


@pytest.fixture
async def pg_queues(tmp_path):
    backend = QueueBackend("postgres", tmp_path)
    try:
        yield backend
    finally:
        await backend.close_all()


@pytest.fixture
def talkme_on_postgres(
    eneca_app: Any, talkme: FakeTalkMe, postgres_dsn: str, postgres_schema: str
) -> Callable[..., Awaitable[TestClient]]:
    """``client = await talkme_on_postgres(agent, pool_size=4)``: the gateway with the TalkMe
    and postgres plugins on this test's schema, sending to the fake TalkMe API ``talkme``."""

    async def make(agent: Any, pool_size: int = 4) -> TestClient:
        return await eneca_app(
            ["talkme", "postgres"],
            agent=agent,
            settings={
                "core": {"api_keys": [ADMIN_KEY], "delivery_base_delay_s": 0.02},
                "talkme": {"api_url": talkme.url, "typing_ttl_s": 0},
                "postgres": {
                    "dsn": postgres_dsn,
                    "schema": postgres_schema,
                    "pool_size": pool_size,
                },
            },
        )

    return make
