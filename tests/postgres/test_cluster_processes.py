"""Three real ``eneca-bot serve`` processes on one PostgreSQL schema, clients sending each
request to a random node: one set of guarantees, also when a node is killed or paused."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.support.clients import chat, echo, eventually, get_json, thread_messages
from tests.support.cluster_load import ClusterLoad, summary
from tests.support.openai_server import FakeOpenAI
from tests.support.serve_process import ServeProcess, base_env

TTL_S = 2.0


@pytest.fixture
async def llm() -> AsyncIterator[FakeOpenAI]:
    fake = FakeOpenAI(default=echo())
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()


@pytest.fixture
async def cluster(tmp_path, postgres_dsn, postgres_schema, llm, talkme):
    """Start ``count`` nodes (each with its own data folder: nothing shared on disk)."""
    nodes: list[ServeProcess] = []

    async def start(count: int = 3) -> list[ServeProcess]:
        for _ in range(count):
            index = len(nodes)
            env = base_env(
                tmp_path / f"node-{index}",
                PLUGINS="http_api,talkme,postgres,agent_openai",
                POSTGRES_DSN=postgres_dsn,
                POSTGRES_SCHEMA=postgres_schema,
                CLUSTER_NODE_ID=f"node-{index}",
                CLUSTER_NODE_TTL_S=TTL_S,
                OPENAI_BASE_URL=llm.base_url,
                TALKME_API_URL=talkme.url,
                SHUTDOWN_GRACE_S="5",
                # A loaded 2-core machine runs three nodes here: generous model timeouts.
                REPLY_TIMEOUT_S="30",
                OPENAI_TIMEOUT_S="20",
            )
            nodes.append(ServeProcess(tmp_path / f"node-{index}", env))
        await asyncio.gather(*(node.start(timeout=40) for node in nodes))
        async with aiohttp.ClientSession() as session:  # each node loads its model client
            warm = await asyncio.gather(
                *(chat(session, node.url, f"warm-up-{i}", "hi") for i, node in enumerate(nodes))
            )
        assert all(outcome.ok for outcome in warm), warm
        return nodes

    try:
        yield start
    finally:
        for node in nodes:
            if node.process is not None and node.returncode is None:
                os.kill(node.pid, signal.SIGCONT)
                await node.kill()


def assert_in_order(messages: list[dict], asked: list[str]) -> None:
    """user/assistant pairs in the order asked, each answered once."""
    assert [m["content"] for m in messages] == [
        text for question in asked for text in (question, f"re: {question}")
    ]


async def test_each_conversation_is_answered_in_order_whichever_node_gets_it(cluster):
    nodes = await cluster(3)
    conversations, messages = 50, 20

    async def converse(session, thread: str) -> list[str]:
        asked = []
        for number in range(messages):
            text = f"{thread}-q{number}"
            outcome = await chat(session, random.choice(nodes).url, thread, text)
            assert outcome.ok and outcome.body["response"] == f"re: {text}", outcome
            asked.append(text)
        return asked

    async with aiohttp.ClientSession() as session:
        threads = [f"thread-{n}" for n in range(conversations)]
        asked = await asyncio.gather(*(converse(session, thread) for thread in threads))
        for thread, questions in zip(threads, asked, strict=True):
            stored = await thread_messages(session, random.choice(nodes).url, thread)
            assert_in_order(stored, questions)

        # Two requests of one thread at the same moment, on two nodes: one after the other.
        first, second = await asyncio.gather(
            chat(session, nodes[0].url, "together", "one"),
            chat(session, nodes[1].url, "together", "two"),
        )
        assert first.ok and second.ok
        stored = [m["content"] for m in await thread_messages(session, nodes[2].url, "together")]
        assert stored in (
            ["one", "re: one", "two", "re: two"],
            ["two", "re: two", "one", "re: one"],
        )

        status, health = await get_json(session, f"{nodes[0].url}/health")
        assert status == 200, health
        assert health["plugins"]["postgres"]["live_nodes"] == 3


async def test_kill9_of_a_node_loses_no_acknowledged_message_and_repeats_none(cluster, talkme, llm):
    """kill -9 under TalkMe, /api/chat and SSE load: every acknowledged webhook answered
    (a send in flight at the kill may go twice, at most one per visitor), every reply a
    client got stored once, in order; the dead node's conversations are answered once
    its heartbeat is too old (the time it took is printed)."""
    llm.default = echo(stall_s=0.05)
    nodes = await cluster(3)
    victim = random.randrange(len(nodes))
    load = ClusterLoad(nodes)
    async with aiohttp.ClientSession() as session:
        load.start(session)
        await asyncio.sleep(random.uniform(1.0, 2.0))
        killed_at = time.monotonic()
        await nodes[victim].kill()
        await asyncio.sleep(1.0)
        await load.stop()
        expected = load.expected_replies()
        await eventually(
            lambda: expected <= set(talkme.sent_texts()), TTL_S + 15, "every acked webhook"
        )
        await asyncio.sleep(0.5)  # time for a wrong second send to show up
        survivor = nodes[(victim + 1) % len(nodes)]
        await load.check_threads(session, survivor.url)
    resent = load.check_talkme(talkme, resends_per_visitor=1)
    waits = load.answered_after(victim, killed_at, talkme)
    print(
        f"\nkill -9 of node-{victim}: {load.webhooks_acked()} webhooks acked, "
        f"{load.replies_ok()} chat/stream replies ({load.replies_failed()} failed, sent "
        f"again); its {len(waits)} conversations answered after the kill: {summary(waits)} "
        f"(TTL {TTL_S}s); TalkMe resends: {resent}"
    )


async def test_rolling_sigterm_of_every_node_loses_nothing_and_repeats_nothing(
    cluster, talkme, llm
):
    """Each node in turn stopped with SIGTERM (exit code 0) and started again under its
    CLUSTER_NODE_ID while TalkMe, /api/chat and SSE clients keep sending: every
    acknowledged webhook answered exactly once, in order; every reply a client got
    stored once, in order."""
    llm.default = echo(stall_s=0.05)
    nodes = await cluster(3)
    load = ClusterLoad(nodes)
    async with aiohttp.ClientSession() as session:
        load.start(session)
        stops: list[float] = []
        for node in nodes:
            await asyncio.sleep(random.uniform(0.5, 1.0))
            stopping = time.monotonic()
            assert await node.stop(timeout=30) == 0, node.stderr()
            stops.append(time.monotonic() - stopping)
            await node.start(timeout=40)
            await eventually(lambda n=node: _live(session, n, len(nodes)), 30, "node healthy")
        await asyncio.sleep(0.5)
        await load.stop()
        expected = load.expected_replies()
        await eventually(
            lambda: expected <= set(talkme.sent_texts()), TTL_S + 15, "every acked webhook"
        )
        await asyncio.sleep(0.5)  # time for a wrong second send to show up
        await load.check_threads(session, nodes[0].url)
    load.check_talkme(talkme)
    print(
        f"\nrolling SIGTERM of {len(nodes)} nodes: {load.webhooks_acked()} webhooks acked, "
        f"{load.replies_ok()} chat/stream replies ({load.replies_failed()} failed, sent "
        f"again), nothing lost or sent twice; each stop took {summary(stops)}"
    )


async def _live(session: aiohttp.ClientSession, node: ServeProcess, count: int) -> bool:
    """The node answers /health with 200 and sees all ``count`` nodes beating."""
    try:
        status, health = await get_json(session, f"{node.url}/health")
    except aiohttp.ClientError:
        return False
    return status == 200 and health["plugins"]["postgres"]["live_nodes"] == count


async def test_a_node_paused_past_its_lease_commits_nothing(cluster, llm):
    nodes = await cluster(2)
    paused, other = nodes
    slow = asyncio.Event()

    def respond(body):
        text = echo()(body)
        if "slow" in str(body.get("messages", [])[-1].get("content")):
            slow.set()
            # Still thinking when the paused node wakes up (OPENAI_TIMEOUT_S is 20).
            return echo(stall_s=15.0)(body)
        return text

    llm.default = respond
    async with aiohttp.ClientSession() as session:
        stale = asyncio.ensure_future(chat(session, paused.url, "paused", "slow question"))
        await eventually(slow.is_set, 20, "the model call started")
        os.kill(paused.pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(TTL_S + 1.0)
            # The other node takes the lane once the paused node's lease has expired.
            fresh = await chat(session, other.url, "paused", "next question")
            assert fresh.ok, fresh
        finally:
            os.kill(paused.pid, signal.SIGCONT)
        outcome = await stale
        assert outcome.status == 503, outcome  # its answer was not stored
        assert outcome.body["error"]["code"] == "storage_unavailable"
        # Woken, the node hung up on its model call instead of running it to its end next
        # to the other node's: one model call per conversation at a time.
        assert llm.disconnects == 1
        stored = [m["content"] for m in await thread_messages(session, other.url, "paused")]
        assert "re: slow question" not in stored
        assert stored[-2:] == ["next question", "re: next question"]
        await eventually(lambda: paused.returncode is None, 5, "the paused node lives on")
