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

from tests.support.clients import chat, echo, eventually, get_json, thread_messages, webhook
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


async def test_kill9_of_a_node_loses_no_acknowledged_webhook_and_repeats_none(cluster, talkme, llm):
    llm.default = echo(stall_s=0.05)
    nodes = await cluster(3)
    victim = random.choice(nodes)
    survivors = [node for node in nodes if node is not victim]
    acked: dict[int, list[int]] = {visitor: [] for visitor in range(6)}

    async def visitor_loop(session, visitor: int, stop: asyncio.Event) -> None:
        number = 0
        while not stop.is_set():
            number += 1
            text = f"v{visitor}-m{number}"
            for node in [random.choice(nodes), *survivors]:  # TalkMe retries a failure
                outcome = await webhook(session, node.url, f"visitor-{visitor}",
                                        visitor * 10_000 + number, text)  # fmt: skip
                if outcome.status == 200:
                    acked[visitor].append(number)
                    break
            await asyncio.sleep(0.03)

    async with aiohttp.ClientSession() as session:
        stop = asyncio.Event()
        load = [asyncio.ensure_future(visitor_loop(session, v, stop)) for v in acked]
        await asyncio.sleep(random.uniform(0.8, 1.5))
        killed_at = time.monotonic()
        await victim.kill()
        await asyncio.sleep(1.0)
        stop.set()
        await asyncio.gather(*load)
        expected = {f"re: v{v}-m{n}" for v, numbers in acked.items() for n in numbers}
        took = await eventually(
            lambda: expected <= set(talkme.sent_texts()), TTL_S + 15, "every acked webhook"
        )
        await asyncio.sleep(0.5)  # time for a wrong second send to show up
        for visitor, numbers in acked.items():
            stored = await thread_messages(session, survivors[0].url, f"talkme:visitor-{visitor}")
            assert_in_order(stored, [f"v{visitor}-m{n}" for n in numbers])

    sends = [call.body["content"]["text"] for call in talkme.confirmed("send")]
    assert set(sends) == expected
    repeated = len(sends) - len(set(sends))
    assert repeated <= len(acked), "at most the send in flight at the kill, per visitor"
    for visitor in acked:
        own = [text for text in sends if text.startswith(f"re: v{visitor}-")]
        numbers = [int(text.rsplit("-m", 1)[1]) for text in own]
        distinct = [n for i, n in enumerate(numbers) if i == 0 or n != numbers[i - 1]]
        assert distinct == sorted(acked[visitor]), (visitor, numbers)
    print(
        f"\nkill -9 of {victim.env['CLUSTER_NODE_ID']}: {len(expected)} webhooks acked, all "
        f"answered {took:.1f}s after the load stopped ({time.monotonic() - killed_at:.1f}s "
        f"after the kill); sent twice: {repeated}"
    )


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
