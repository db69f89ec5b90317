"""PostgreSQL unreachable: 503 storage_unavailable with Retry-After (never a 500, never a
200 for what was not stored), a degraded /health, and recovery without a restart."""

import asyncio

import psycopg

from core.testing import ScriptedAgent, gateway_of
from tests.postgres.proxy import CuttableProxy


async def test_a_database_outage_answers_503_then_recovers(
    postgres_dsn, postgres_schema, eneca_app
):
    info = psycopg.conninfo.conninfo_to_dict(postgres_dsn)
    proxy = CuttableProxy(info.get("host", "127.0.0.1"), int(info.get("port", 5432)))
    await proxy.start()
    dsn = psycopg.conninfo.make_conninfo(postgres_dsn, host="127.0.0.1", port=proxy.port)
    try:
        client = await eneca_app(
            ["http_api", "postgres"],
            agent=ScriptedAgent(),
            settings={"postgres": {"dsn": dsn, "schema": postgres_schema, "pool_size": 2}},
        )
        body = {"message": "before", "thread_id": "t1"}
        assert (await client.post("/api/chat", json=body)).status == 200

        proxy.cut()
        response = await client.post("/api/chat", json={**body, "message": "during"})
        assert response.status == 503
        assert (await response.json())["error"]["code"] == "storage_unavailable"
        assert response.headers["Retry-After"]
        health = await client.get("/health")
        assert health.status == 503
        assert (await health.json())["status"] == "degraded"

        proxy.restore()

        async def answered() -> bool:
            response = await client.post("/api/chat", json={**body, "message": "after"})
            return response.status == 200

        ok = False
        for _ in range(40):  # the pool reconnects by itself; nothing restarts
            if ok := await answered():
                break
            await asyncio.sleep(0.25)
        assert ok
        health = await client.get("/health")
        assert health.status == 200, await health.text()
        history = await gateway_of(client).store.history("t1")
        assert [turn.text for turn in history if turn.role == "user"][:1] == ["before"]
        assert "during" not in [turn.text for turn in history]
    finally:
        await proxy.close()
