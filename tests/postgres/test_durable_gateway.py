"""The gateway-level inbox/outbox tests (tests/core/test_durable.py), run again with the
postgres plugin providing the store, the durable backend and the bus (cluster lanes).

Every test of that module is imported here; the ``eneca_app`` fixture below adds the
postgres plugin on a per-test schema (a "restart" reopens the same schema, as a
restarted process would)."""

import pytest

from core.testing import ScriptedAgent, gateway_of, wait_until
from tests.core.durable import test_durable as single_node
from tests.core.durable.test_durable import *  # noqa: F403 - the same tests, another backend
from tests.core.durable.test_durable import FAST_RETRIES, SplittingChannel, _msg


@pytest.fixture
def eneca_app(postgres_dsn, postgres_schema, eneca_app):  # schema dropped after the apps
    async def make(plugins=(), *, settings=None, **kwargs):
        settings = {
            **(settings or {}),
            "postgres": {"dsn": postgres_dsn, "schema": postgres_schema, "pool_size": 4},
        }
        return await eneca_app([*plugins, "postgres"], settings=settings, **kwargs)

    return make


def test_every_single_node_test_runs_here_too():
    names = {name for name in dir(single_node) if name.startswith("test_")}
    assert names and names <= set(globals())


async def test_delivery_progress_survives_a_restart(eneca_app, tmp_path, postgres_schema):
    # As in tests/core/test_durable.py, with the retry made due in PostgreSQL.
    first = SplittingChannel(fail_at={("alpha beta gamma", 1)})
    slow_retries = {**FAST_RETRIES, "delivery_base_delay_s": 30, "delivery_max_delay_s": 30}
    client = await eneca_app(
        agent=ScriptedAgent("alpha beta gamma"),
        extra={"fake": first},
        settings={"core": slow_retries},
    )
    await gateway_of(client).publish(_msg("go", provider_id="p"), durable=True)
    await wait_until(lambda: first.calls == ["alpha"])
    await client.close()

    second = SplittingChannel()
    client = await eneca_app(
        agent=ScriptedAgent(), extra={"fake": second}, settings={"core": FAST_RETRIES}
    )
    gateway = gateway_of(client)
    await gateway._durable.db.execute(f'UPDATE "{postgres_schema}".outbox SET next_attempt_at = 0')
    gateway._outbox.notify()
    await wait_until(lambda: second.calls == ["beta", "gamma"])


async def test_more_kept_messages_than_the_bus_holds_are_all_answered_after_a_restart(
    postgres_dsn, postgres_schema, eneca_app
):
    # As in tests/core/durable/test_durable.py, the messages kept by a process that is gone.
    from core.contract.events import Message
    from plugins.postgres.connect import open_database
    from plugins.postgres.queue import PostgresDurableQueue
    from plugins.postgres.settings import PostgresSettings
    from tests.support.durable_channel import FakeChannel

    db, _ = await open_database(PostgresSettings(dsn=postgres_dsn, schema=postgres_schema))
    gone = PostgresDurableQueue(db, postgres_schema, node_id="a-process-that-stopped")
    for i in range(5):
        await gone.accept(Message(f"c{i}", "fake", f"m{i}", message_id=str(i)))
    await db.close()
    channel = FakeChannel()
    await eneca_app(
        agent=ScriptedAgent(delay=0.05),
        extra={"fake": channel},
        settings={"core": {**FAST_RETRIES, "bus_max_in_flight": 2, "bus_full_policy": "reject"}},
    )
    await wait_until(lambda: len(channel.delivered) == 5)
    assert sorted(channel.delivered) == [f"echo: m{i}" for i in range(5)]
