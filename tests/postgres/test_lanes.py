"""Conversation lanes across nodes, on the real database: order by ticket, one holder at a
time, leases that expire by the database clock, and a fenced final commit. Each "node"
here is a separate Lanes/Nodes pair with its own id on one schema, as separate gateway
processes would have."""

import asyncio

import pytest
from psycopg_pool import PoolTimeout

from core.contract.errors import StorageUnavailable
from core.contract.events import Message, Reply
from core.contract.store import Turn
from core.testing import wait_until
from plugins.postgres.answering import HELD, Held, LaneHandler
from plugins.postgres.db import Database, DatabaseUnavailable
from plugins.postgres.lanes import AheadOfItsTurn, Lanes, LeaseLost
from plugins.postgres.nodes import Nodes
from plugins.postgres.queue import PostgresDurableQueue
from plugins.postgres.store import PostgresConversationStore

TTL = 0.6


class Node:
    def __init__(self, db, beat_db, schema, node_id, opened=False):
        self.id = node_id
        self.nodes = Nodes(beat_db, schema, node_id, TTL)  # its own pool: not counted
        self.lanes = Lanes(db, schema, node_id, TTL)
        self.lanes.POLL_S = 0.05
        self.queue = PostgresDurableQueue(db, schema, node_id=node_id, node_ttl_s=TTL)
        self.store = PostgresConversationStore(db, schema, max_messages=None)
        # The queue's kept ids, shared as the cluster runtime shares them.
        self.handler = LaneHandler(self.answer, db, schema, self.lanes, self.queue.kept)
        # Whether a message that was not kept takes its lane with its user turn stored
        # and the window read back (the gateway's store is the postgres store).
        self.handler.window = opened
        self.seen: list[list[str]] = []  # the window each answer was given
        self.reply_text = "ok"
        self.release = asyncio.Event()
        self.release.set()
        self.model_calls: list[str] = []
        self.paused = False  # True: no more heartbeats, as under SIGSTOP

    async def answer(self, message, handle):
        """What the gateway's pipeline does, in brief."""
        window = await self.store.append_and_history(
            message.conversation_id, Turn.of_message(message)
        )
        self.seen.append([turn.text for turn in window])
        self.model_calls.append(message.text)
        await self.release.wait()  # the model call
        reply = Reply(message.conversation_id, message.channel, self.reply_text, message)
        await self.store.append(
            message.conversation_id, Turn("assistant", reply.text, message_id=message.id)
        )
        if await self.queue.db.fetchval(
            f'SELECT 1 FROM "{self.queue.schema}".inbox WHERE id = %s', (message.id,)
        ):
            await self.queue.answer(reply)
        return reply


async def beat_forever(nodes):
    while True:
        for node in nodes:
            if not node.paused:
                await node.nodes.beat()
        await asyncio.sleep(0.1)


@pytest.fixture(params=[False, True], ids=["lane-then-turn", "lane-with-turn"])
async def nodes(request, postgres_db, postgres_dsn, postgres_schema):
    beat_db = Database(postgres_dsn, pool_size=2)
    await beat_db.open()
    made = [
        Node(postgres_db, beat_db, postgres_schema, f"node-{name}", request.param) for name in "abc"
    ]
    for node in made:
        await node.nodes.beat()
    beating = asyncio.create_task(beat_forever(made))
    yield made
    beating.cancel()
    await asyncio.gather(beating, return_exceptions=True)
    await beat_db.close()


async def texts(store, cid):
    return [(t.role, t.text) for t in await store.history(cid)]


async def test_one_node_at_a_time_in_ticket_order(nodes):
    a, b, c = nodes
    a.release.clear()
    first = asyncio.create_task(a.handler(Message("c1", "http", "one"), None))
    await wait_until(lambda: a.model_calls)
    second = asyncio.create_task(b.handler(Message("c1", "http", "two"), None))
    await asyncio.sleep(0.2)
    third = asyncio.create_task(c.handler(Message("c1", "http", "three"), None))
    await asyncio.sleep(0.3)
    assert b.model_calls == [] and c.model_calls == [], "the lane is a's until it commits"
    a.release.set()
    await asyncio.gather(first, second, third)
    assert (b.model_calls, c.model_calls) == (["two"], ["three"])
    assert [text for _, text in await texts(a.store, "c1")] == [
        "one", "ok", "two", "ok", "three", "ok"
    ]  # fmt: skip


async def test_every_answer_sees_every_earlier_turn_of_its_thread(nodes):
    """Requests of one thread racing on three nodes: each answer's window is the thread
    as stored up to its own user turn (a lane taken in the statement that also reads the
    window must not read from before the previous answer's commit)."""
    for node in nodes:
        node.release.set()
    for round_ in range(30):
        await asyncio.gather(
            *(node.handler(Message("race", "http", f"{round_}{node.id}"), None) for node in nodes)
        )
    stored = [text for _, text in await texts(nodes[0].store, "race")]
    seen = [window for node in nodes for window in node.seen]
    assert len(seen) == 90 and len(stored) == 180
    for window in seen:
        assert window == stored[: stored.index(window[-1]) + 1]


async def test_other_conversations_do_not_wait(nodes):
    a, b, _ = nodes
    a.release.clear()
    held = asyncio.create_task(a.handler(Message("c1", "http", "slow"), None))
    await wait_until(lambda: a.model_calls)
    await asyncio.wait_for(b.handler(Message("c2", "http", "fast"), None), 10)
    a.release.set()
    await held


async def test_a_node_paused_past_its_lease_commits_nothing(nodes):
    a, b, _ = nodes
    a.release.clear()
    stale = asyncio.create_task(a.handler(Message("c1", "http", "first"), None))
    await wait_until(lambda: a.model_calls)
    a.paused = True  # a stops beating: "SIGSTOP"
    if True:
        # b waits for the lane, takes it once a's heartbeat is older than the TTL.
        b_reply = await asyncio.wait_for(b.handler(Message("c1", "http", "second"), None), 10)
        assert b_reply.text == "ok"
        a.reply_text = "stale"
        a.release.set()  # "SIGCONT": a finishes its model call and tries to commit
        with pytest.raises(StorageUnavailable):
            await stale
    assert a.handler.fenced == 1
    history = await texts(b.store, "c1")
    assert ("assistant", "stale") not in history
    assert history[-2:] == [("user", "second"), ("assistant", "ok")]


async def test_a_kept_message_of_a_dead_node_keeps_its_place_and_is_adopted(nodes):
    a, b, _ = nodes
    requeued: list[Message] = []

    async def requeue(messages):  # what the gateway's bus does: back of the local lane
        requeued.extend(messages)

    b.handler.requeue = requeue
    kept = Message("t1", "talkme", "first", message_id="p1")
    later = Message("t1", "talkme", "second", message_id="p2")
    assert await a.queue.accept(kept)  # a acknowledged it, then died before answering
    assert await b.queue.accept(later)
    assert await b.queue.adopt_orphans() == [], "a is alive: its message is not b's"
    a.paused = True  # a dies
    waiting = asyncio.create_task(b.handler(later, None))
    await asyncio.sleep(TTL * 3)
    assert not waiting.done(), "the second message waits for the first, a's"
    adopted = await b.queue.adopt_orphans()  # what b's reaper round does
    assert [m.text for m in adopted] == ["first"]
    # b now holds both: the later one steps back behind the older one.
    with pytest.raises(AheadOfItsTurn):
        await asyncio.wait_for(waiting, 10)
    assert requeued == [later]
    await b.handler(adopted[0], None)
    await b.handler(requeued[0], None)
    assert b.model_calls == ["first", "second"]
    due, _ = await b.queue.schedule(1e12, set())
    assert [item.reply.in_reply_to.text for item in due] == ["first"]  # one head per lane


async def test_a_kept_message_answered_elsewhere_is_not_answered_again(nodes):
    a, b, _ = nodes
    kept = Message("t1", "talkme", "once", message_id="p1")
    assert await a.queue.accept(kept)
    await a.handler(kept, None)
    with pytest.raises(StorageUnavailable):
        await b.handler(kept, None)  # e.g. replayed by a node that thought a was dead
    assert b.model_calls == []


async def test_the_final_commit_is_one_round_trip_and_writes_everything(nodes, postgres_db):
    a, _, _ = nodes
    kept = Message("t1", "talkme", "hi", message_id="p1")
    assert await a.queue.accept(kept)
    before = postgres_db.round_trips
    await a.handler(kept, None)
    # lane taken, user turn + history (one statement with the lane when the handler
    # takes it with the turn), final commit, (the test's own inbox lookup)
    assert postgres_db.round_trips - before == (3 if a.handler.window else 4)
    assert await texts(a.store, "t1") == [("user", "hi"), ("assistant", "ok")]
    assert (await a.queue.stats())["pending_deliveries"] == 1
    assert HELD.get() is None


async def test_a_cancelled_wait_gives_its_place_up(nodes):
    a, b, _ = nodes
    a.release.clear()
    held = asyncio.create_task(a.handler(Message("c1", "http", "one"), None))
    await wait_until(lambda: a.model_calls)
    gave_up = asyncio.create_task(b.handler(Message("c1", "http", "two"), None))
    await asyncio.sleep(0.2)
    gave_up.cancel()
    await asyncio.gather(gave_up, return_exceptions=True)
    a.release.set()
    await held
    await asyncio.wait_for(b.handler(Message("c1", "http", "three"), None), 10)
    assert b.model_calls == ["three"]


def test_held_is_only_the_answering_tasks():
    assert HELD.get() is None
    assert Held.__slots__  # a plain record


# -- the database going away in the middle of taking or giving up a lane -----------------


class Flaky:
    """The node's database, except for the next statement whose SQL contains ``marker``:
    ``"lost"``: it runs, but its answer is lost (the connection dropped after the commit);
    ``"away"``: it never reaches the server."""

    def __init__(self, db: Database, marker: str, how: str) -> None:
        self.db = db
        self.marker = marker
        self.how = how
        self.hit = False

    def __getattr__(self, name: str):
        return getattr(self.db, name)

    async def _run(self, run, sql, params):
        if self.hit or self.marker not in sql:
            return await run(sql, params)
        self.hit = True
        if self.how == "lost":
            await run(sql, params)
        raise DatabaseUnavailable("PostgreSQL: server closed the connection unexpectedly")

    async def fetch(self, sql, params=()):
        return await self._run(self.db.fetch, sql, params)

    async def execute(self, sql, params=()):
        return await self._run(self.db.execute, sql, params)

    async def fetchval(self, sql, params=()):
        rows = await self.fetch(sql, params)
        return rows[0][0] if rows else None


async def test_a_kept_message_whose_lane_was_taken_but_not_told_takes_it_again(nodes):
    a, _, _ = nodes
    kept = Message("t1", "talkme", "kept", message_id="p1")
    assert await a.queue.accept(kept)
    a.handler.kept.add(kept.id)
    a.lanes.db = Flaky(a.lanes.db, "taken AS", "lost")
    # Before the fix its retry waited for ever for the lane this node itself held.
    reply = await asyncio.wait_for(a.handler(kept, None), 10)
    assert a.lanes.db.hit and reply.text == "ok"
    assert (await a.queue.stats())["unanswered"] == 0


async def test_a_request_whose_ticket_was_taken_but_not_told_does_not_stop_the_thread(nodes):
    a, b, _ = nodes
    a.lanes.db = Flaky(a.lanes.db, "taken AS", "lost")
    with pytest.raises(StorageUnavailable):  # the client is told 503
        await a.handler(Message("c1", "http", "lost"), None)
    # Before the fix a's ticket (a live node's) stayed at the head of the line for ever.
    await asyncio.wait_for(b.handler(Message("c1", "http", "next"), None), 10)
    assert b.model_calls == ["next"]


async def test_a_lane_given_up_while_the_database_is_away_is_freed_when_it_is_back(nodes):
    a, b, _ = nodes
    a.lanes.POLL_S = 0.1
    a.lanes.db = Flaky(a.lanes.db, "freed AS", "away")

    async def fails(message, handle):
        raise StorageUnavailable("store the conversation")

    a.handler.inner = fails
    with pytest.raises(StorageUnavailable):
        await a.handler(Message("c1", "http", "refused"), None)
    # Before the fix the lane stayed a's (a live node) and nobody else could answer.
    await asyncio.wait_for(b.handler(Message("c1", "http", "next"), None), 10)
    assert a.lanes.db.hit and b.model_calls == ["next"]


async def test_a_webhook_kept_by_a_statement_whose_answer_was_lost_is_still_answered(nodes):
    a, _, _ = nodes
    a.queue.db = Flaky(a.queue.db, "INSERT INTO", "lost")
    message = Message("talkme:v1", "talkme", "kept?", message_id="p1")
    with pytest.raises(DatabaseUnavailable):  # the channel answers 503: TalkMe sends again
        await a.queue.accept(message)
    assert not await a.queue.accept(Message("talkme:v1", "talkme", "kept?", message_id="p1"))
    # Kept, claimed by a, and in no lane of a's: before the fix nothing ever answered it,
    # and every later message of the visitor waited behind it.
    adopted = await a.queue.adopt_orphans()
    assert [m.id for m in adopted] == [message.id]
    assert await a.queue.adopt_orphans() == [], "now known: not adopted twice"


async def test_a_kept_message_dropped_by_a_failing_answer_is_adopted_by_its_own_node(nodes):
    a, _, _ = nodes
    a.handler.kept = a.queue.kept  # shared, as in the plugin's runtime
    message = Message("talkme:v1", "talkme", "kept", message_id="p1")
    assert await a.queue.accept(message)
    assert await a.queue.adopt_orphans() == [], "in a's lanes: not adopted"

    async def cut_off(message, handle):
        raise LeaseLost("lost with the connection")

    a.handler.inner = cut_off
    with pytest.raises(StorageUnavailable):
        await a.handler(message, None)
    assert [m.id for m in await a.queue.adopt_orphans()] == [message.id]


async def test_a_request_refused_while_the_database_is_away_leaves_no_retry_behind(nodes):
    a, _, _ = nodes
    # Hundreds of requests refused during a long outage each left a task polling the
    # pool every second: a statement that never left took no ticket.
    timeout = DatabaseUnavailable("PostgreSQL: couldn't get a connection after 5.00 sec")
    timeout.__cause__ = PoolTimeout("couldn't get a connection after 5.00 sec")

    class Away(Flaky):  # every statement: no connection to be had
        async def _run(self, run, sql, params):
            raise timeout

    a.lanes.db = Away(a.lanes.db, "", "away")
    with pytest.raises(StorageUnavailable):
        await a.handler(Message("c1", "http", "refused"), None)
    kept = Message("talkme:v1", "talkme", "kept", message_id="p1")
    a.handler.kept.add(kept.id)
    waiting = asyncio.create_task(a.handler(kept, None))  # a kept one waits for the database
    await asyncio.sleep(0.2)
    assert not a.lanes._pending
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)


async def test_a_kept_message_whose_lane_cannot_be_taken_for_another_reason_is_adopted(nodes):
    a, _, _ = nodes
    a.handler.kept = a.queue.kept  # shared, as in the plugin's runtime
    message = Message("talkme:v1", "talkme", "kept", message_id="p1")
    assert await a.queue.accept(message)

    async def broken(*args, **kwargs):
        raise RuntimeError("a bug, or a server error that is not a lost connection")

    a.lanes.acquire = broken
    with pytest.raises(RuntimeError):
        await a.handler(message, None)
    # Before the fix it stayed "in a's lanes" for good: answered by nobody until a restart.
    assert [m.id for m in await a.queue.adopt_orphans()] == [message.id]
