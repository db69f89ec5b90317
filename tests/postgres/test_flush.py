"""Which statements wait for the disk: every write something is acknowledged on (a
webhook's accept, an answer's final commit, a delivery record) does; the lane taken and
the user's turn stored before an answer do not (``NO_FLUSH``: the final commit flushes
them with it). The setting is the statement's own: no pooled connection keeps it."""

import asyncio

from core.testing import ScriptedAgent, gateway_of, wait_until
from plugins.postgres.db import NO_FLUSH
from tests.support.talkme_helpers import webhook_body


def record_statements(db) -> list[str]:
    """The SQL of every statement ``db`` sends from now on."""
    sent: list[str] = []
    fetch, execute = db.fetch, db.execute

    async def recording_fetch(sql, params=()):
        sent.append(sql)
        return await fetch(sql, params)

    async def recording_execute(sql, params=()):
        sent.append(sql)
        return await execute(sql, params)

    db.fetch, db.execute = recording_fetch, recording_execute
    return sent


def kind(sql: str) -> str:
    """What a statement of an answer is, by the tables it writes."""
    if "fence AS" in sql:
        return "final commit"
    if ".inbox(id," in sql:
        return "accept"
    if ".lanes AS l" in sql:
        return "lane"
    if "INSERT INTO" in sql and ".turns(" in sql:
        return "user turn"
    if "status = 'delivered'" in sql:
        return "delivery record"
    return "other"


async def settings_of_every_pooled_connection(db) -> set[str]:
    """``synchronous_commit`` as each of the pool's connections has it now."""
    async with asyncio.TaskGroup() as group:
        held = [group.create_task(db.pool.getconn()) for _ in range(db.pool.max_size)]
    conns = [task.result() for task in held]
    try:
        return {
            (await (await conn.execute("SHOW synchronous_commit")).fetchone())[0] for conn in conns
        }
    finally:
        for conn in conns:
            await db.pool.putconn(conn)


async def test_an_api_chat_turn_waits_for_the_disk_in_its_final_commit_only(
    postgres_dsn, postgres_schema, eneca_app
):
    client = await eneca_app(
        ["http_api", "postgres"],
        agent=ScriptedAgent(lambda request: f"{len(request.history)} turns seen"),
        settings={"postgres": {"dsn": postgres_dsn, "schema": postgres_schema, "pool_size": 3}},
    )
    db = gateway_of(client)._pm.get_plugin("postgres").db
    sent = record_statements(db)
    for turn in range(6):  # concurrent turns of two threads: every connection used
        responses = await asyncio.gather(
            *(
                client.post("/api/chat", json={"message": f"m{turn}", "thread_id": thread})
                for thread in ("a", "b")
            )
        )
        assert [r.status for r in responses] == [200, 200]
        assert [(await r.json())["response"] for r in responses] == [
            f"{2 * turn + 1} turns seen"
        ] * 2
    statements = {(kind(sql), NO_FLUSH in sql) for sql in sent}
    # The user's turn is stored by the statement that takes the lane (free here).
    assert statements - {("other", False)} == {("lane", True), ("final commit", False)}
    assert all("INSERT INTO" in sql for sql in sent if kind(sql) == "lane")
    assert await settings_of_every_pooled_connection(db) == {"on"}


async def test_a_talkme_message_waits_for_the_disk_when_acknowledged_answered_and_sent(
    talkme_on_postgres, talkme
):
    agent = ScriptedAgent(lambda request: f"re {request.message.text}")
    client = await talkme_on_postgres(agent, pool_size=3)
    gateway = gateway_of(client)
    db = gateway._pm.get_plugin("postgres").db
    sent = record_statements(db)
    for number in range(4):
        body = webhook_body(f"m{number}", client_id=f"v{number % 2}", message_id=number + 1)
        assert (await client.post("/webhook/talkme", json=body)).status == 200
    await wait_until(lambda: len(talkme.confirmed("send")) == 4, timeout=15)
    await wait_until(lambda: gateway._outbox.in_progress == 0, timeout=15)
    statements = {(kind(sql), NO_FLUSH in sql) for sql in sent}
    assert statements - {("other", False)} == {
        ("accept", False),
        ("lane", True),  # with the user turn: each visitor's lane is free here
        ("final commit", False),
        ("delivery record", False),
    }
    assert await settings_of_every_pooled_connection(db) == {"on"}
