"""The gateway with the postgres plugin enabled in place of memory_sqlite."""

import pytest

from core.contract.errors import PluginError
from core.testing import ScriptedAgent, gateway_of


def pg_settings(dsn: str, schema: str, **extra) -> dict:
    return {"postgres": {"dsn": dsn, "schema": schema, "pool_size": 4, **extra}}


def plugin_of(client):
    return gateway_of(client)._pm.get_plugin("postgres")


async def chat(client, text: str, thread: str = "t1") -> dict:
    response = await client.post("/api/chat", json={"message": text, "thread_id": thread})
    assert response.status == 200, await response.text()
    return await response.json()


async def test_conversations_live_in_postgres_and_survive_a_restart(
    eneca_app, postgres_dsn, postgres_schema, tmp_path
):
    settings = pg_settings(postgres_dsn, postgres_schema)
    agent = ScriptedAgent(lambda request: f"{len(request.history)} turns seen")
    client = await eneca_app(["http_api", "postgres"], agent=agent, settings=settings)
    assert (await chat(client, "hello"))["response"] == "1 turns seen"
    assert (await chat(client, "again"))["response"] == "3 turns seen"
    await client.close()
    # Another process (a fresh data dir: nothing on local disk) sees the same memory.
    client = await eneca_app(
        ["http_api", "postgres"], agent=agent, settings=settings, data_dir=tmp_path / "other"
    )
    assert (await chat(client, "third"))["response"] == "5 turns seen"
    health = await (await client.get("/health")).json()
    assert health["plugins"]["store"]["backend"] == "PostgresConversationStore"
    assert health["plugins"]["postgres"]["ok"] is True


async def test_an_api_chat_turn_costs_at_most_three_round_trips(
    eneca_app, postgres_dsn, postgres_schema
):
    client = await eneca_app(
        ["http_api", "postgres"],
        agent=ScriptedAgent(),
        settings=pg_settings(postgres_dsn, postgres_schema),
    )
    await chat(client, "warm up")
    db = plugin_of(client).db
    before = db.round_trips
    for i in range(10):
        await chat(client, f"turn {i}")
    assert (db.round_trips - before) / 10 <= 3


async def test_a_schema_of_another_program_stops_start_up(eneca_app, postgres_dsn, postgres_schema):
    import psycopg

    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{postgres_schema}"')
        conn.execute(f'CREATE TABLE "{postgres_schema}".invoices (id int)')
    with pytest.raises(PluginError, match="plugin 'postgres': PostgreSQL schema"):
        await eneca_app(["postgres"], settings=pg_settings(postgres_dsn, postgres_schema))


async def test_a_session_cleared_on_one_node_is_told_to_every_node(
    eneca_app, postgres_dsn, postgres_schema
):
    from core import hookimpl
    from core.testing import wait_until

    class Recorder:
        def __init__(self):
            self.cleared = []

        @hookimpl
        def session_cleared(self, event):
            self.cleared.append((event.conversation_id, event.channel))

    settings = pg_settings(postgres_dsn, postgres_schema)
    first, second = Recorder(), Recorder()
    one = await eneca_app(["http_api", "postgres"], agent=ScriptedAgent(), settings=settings,
                          extra={"recorder": first}, data_dir=None)  # fmt: skip
    two_settings = {**settings, "core": {"cluster_node_id": "second"}}
    two = await eneca_app(["http_api", "postgres"], agent=ScriptedAgent(), settings=two_settings,
                          extra={"recorder": second})  # fmt: skip
    await chat(one, "remember me", thread="t-shared")
    await wait_until(lambda: plugin_of(two).runtime.node.listening, 10)
    response = await two.delete("/api/threads/t-shared")
    assert response.status in (200, 204), await response.text()
    await wait_until(lambda: first.cleared, 10)
    assert first.cleared == [("t-shared", None)] and second.cleared == [("t-shared", None)]
    assert await gateway_of(one).store.history("t-shared") == []
