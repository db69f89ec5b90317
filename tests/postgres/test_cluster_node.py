"""A node's heartbeat and LISTEN connection: wake-ups, live-node counts, the reaper."""

import asyncio

import psycopg

from core.contract.events import Message
from core.testing import wait_until
from plugins.postgres.answering import LaneHandler
from plugins.postgres.cluster import ClusterNode
from plugins.postgres.db import Database
from plugins.postgres.lanes import channel_name


async def test_a_released_lane_wakes_the_waiting_node_by_notify(postgres_db, postgres_schema):
    a = ClusterNode(postgres_db, postgres_schema, "node-a", 5.0)
    b = ClusterNode(postgres_db, postgres_schema, "node-b", 5.0)
    await a.start()
    await b.start()
    try:
        b.lanes.POLL_S = 3600.0  # only a notification can wake it within the test
        await wait_until(lambda: b.listening, 10)
        gate = asyncio.Event()

        async def slow(message, handle):
            await gate.wait()

        async def quick(message, handle):
            return "b answered"

        first = asyncio.create_task(
            LaneHandler(slow, postgres_db, postgres_schema, a.lanes)(
                Message("c1", "http", "one"), None
            )
        )
        await asyncio.sleep(0.2)
        second = asyncio.create_task(
            LaneHandler(quick, postgres_db, postgres_schema, b.lanes)(
                Message("c1", "http", "two"), None
            )
        )
        await asyncio.sleep(0.2)
        assert not second.done()
        gate.set()
        await first
        assert await asyncio.wait_for(second, 10) == "b answered"
        assert a.live_nodes >= 1 and b.live_nodes >= 1
    finally:
        await a.stop()
        await b.stop()


async def test_a_stopped_node_is_reaped_and_counted_out(postgres_dsn, postgres_db, postgres_schema):
    other_db = Database(postgres_dsn, pool_size=2)
    await other_db.open()
    a = ClusterNode(postgres_db, postgres_schema, "node-a", 0.5)
    b = ClusterNode(other_db, postgres_schema, "node-b", 0.5)
    await a.start()
    await b.start()
    try:
        await wait_until(lambda: a.live_nodes == 2, 10)
        for task in b._tasks:  # b stops beating (as a killed process would)
            task.cancel()
        await wait_until(lambda: a.live_nodes == 1, 10)
        rows = await postgres_db.fetch(f'SELECT id FROM "{postgres_schema}".nodes')
        assert rows == [("node-a",)]
    finally:
        await a.stop()
        await b.stop()
        await other_db.close()


async def test_the_heartbeat_goes_on_after_an_error_that_is_not_a_lost_connection(
    postgres_db, postgres_schema
):
    import psycopg

    node = ClusterNode(postgres_db, postgres_schema, "node-a", 1.5)
    await node.start()
    try:
        real_beat = node.nodes.beat
        failures = []

        async def read_only_once(info: str = "{}"):
            if not failures:  # e.g. a fail-over that reached a read-only replica first
                failures.append(1)
                raise psycopg.errors.ReadOnlySqlTransaction("read-only transaction")
            return await real_beat(info)

        node.nodes.beat = read_only_once
        before = node.last_beat_at
        # Before the fix the heartbeat task died on it: the node, still serving, was
        # taken for stopped by the others after the TTL.
        await wait_until(lambda: failures and node.last_beat_at != before, 10)
        assert node.beat_error is None
    finally:
        await node.stop()


async def test_a_lane_freed_with_nobody_in_line_sends_no_notification(
    postgres_dsn, postgres_db, postgres_schema
):
    """Each NOTIFY takes PostgreSQL's lock serialising notifying commits: a freed lane is
    told only when another ticket waits (the test above shows that one is told)."""
    a = ClusterNode(postgres_db, postgres_schema, "node-a", 5.0)
    await a.start()
    listener = await psycopg.AsyncConnection.connect(postgres_dsn, autocommit=True)
    try:
        await listener.execute(f'LISTEN "{channel_name(postgres_schema)}"')

        async def answer(message, handle):
            return "answered"

        async def fail(message, handle):
            raise RuntimeError("the agent failed")

        handler = LaneHandler(answer, postgres_db, postgres_schema, a.lanes)
        for number in range(3):  # answered: the final commit frees the lane
            await handler(Message("alone", "http", f"q{number}"), None)
        failing = LaneHandler(fail, postgres_db, postgres_schema, a.lanes)
        try:  # given up without an answer: the lane is released
            await failing(Message("alone", "http", "q3"), None)
        except RuntimeError:
            pass
        told = [
            note.payload
            async for note in listener.notifies(timeout=0.5)
            if note.payload.startswith("lane:")
        ]
        assert told == []
    finally:
        await listener.close()
        await a.stop()
