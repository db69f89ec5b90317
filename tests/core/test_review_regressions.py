"""Bugs found in review of the bus and the pipeline, kept as regression tests."""

import asyncio

import pytest

from core.bus import InProcessBus
from core.durable import DurableQueue
from core.events import Message, Reply
from core.plugins import hookimpl
from core.testing import ScriptedAgent, gateway_of, wait_until
from tests.core.test_durable import FAST_RETRIES, FakeChannel


async def echo(message, handle):
    await asyncio.sleep(0.01)
    return Reply(message.conversation_id, message.channel, message.text, message)


async def test_cancelling_the_first_debounced_message_keeps_the_rest_of_the_lane():
    bus = InProcessBus(echo)
    first = await bus.publish(Message("c", "t", "a"), 0.05)
    second = await bus.publish(Message("c", "t", "b"), 0.05)
    await asyncio.sleep(0.01)
    first.cancel()
    assert (await asyncio.wait_for(second.reply(), 2)).text == "b"


async def test_a_handle_cancelled_before_its_task_starts_is_still_settled():
    bus = InProcessBus(echo)
    handle = await bus.publish(Message("c", "t", "a", stream=True))
    await asyncio.sleep(0)
    assert handle._task is not None and not handle._task.done()
    handle.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(handle.reply(), 1)
    assert [chunk async for chunk in handle.chunks()] == []


async def test_an_agents_own_timeout_is_a_fallback_not_a_storage_failure(eneca_app):
    agent = ScriptedAgent([TimeoutError("upstream read timed out"), "ok"])
    gateway = gateway_of(await eneca_app(plugins=["memory_sqlite"], agent=agent))
    handle = await gateway.publish(Message("c", "t", "hi"))
    reply = await handle.reply()
    assert reply.error.code == "agent_error"
    assert gateway.storage.failure is None


async def test_more_kept_messages_than_the_bus_holds_are_all_answered_after_a_restart(
    eneca_app, tmp_path
):
    data = tmp_path / "data"
    queue = DurableQueue(data / "gateway.db")
    await queue.open()
    for i in range(5):
        await queue.accept(Message(f"c{i}", "fake", f"m{i}", message_id=str(i)))
    await queue.close()
    channel = FakeChannel()
    await eneca_app(
        agent=ScriptedAgent(delay=0.05),
        data_dir=data,
        extra={"fake": channel},
        settings={"core": {**FAST_RETRIES, "bus_max_in_flight": 2, "bus_full_policy": "reject"}},
    )
    await wait_until(lambda: len(channel.delivered) == 5)
    assert sorted(channel.delivered) == [f"echo: m{i}" for i in range(5)]


async def test_a_kept_message_whose_answer_fails_gets_the_fallback_not_silence(eneca_app):
    class Broken:
        @hookimpl
        def agent_tools(self, message):
            return 42  # not a list of tools: the pipeline itself fails on it

    channel = FakeChannel()
    gateway = gateway_of(
        await eneca_app(
            agent=ScriptedAgent(),
            settings={"core": FAST_RETRIES},
            extra={"fake": channel, "broken": Broken()},
        )
    )
    await gateway.publish(Message("v", "fake", "hi", message_id="1"), durable=True)
    await wait_until(lambda: channel.delivered)
    assert channel.delivered == [gateway.settings.fallback_text]
    stats = await gateway.durable.stats("fake")
    assert (stats["unanswered"], stats["delivered"]) == (0, 1)


async def test_a_message_held_by_a_storage_failure_is_not_overtaken(eneca_app, monkeypatch):
    import sqlite3

    import core.gateway
    from core.testing import InMemoryConversationStore

    monkeypatch.setattr(core.gateway, "STORAGE_RETRY_S", 0.05)

    class FlakyStore(InMemoryConversationStore):
        failures = 1

        async def append(self, conversation_id, turn):
            if self.failures:
                self.failures -= 1
                raise sqlite3.OperationalError("database or disk is full")
            await super().append(conversation_id, turn)

    channel = FakeChannel()
    agent = ScriptedAgent()
    gateway = gateway_of(
        await eneca_app(
            agent=agent,
            store=FlakyStore(),
            extra={"fake": channel},
            settings={"core": FAST_RETRIES},
        )
    )
    await gateway.publish(Message("v", "fake", "first", message_id="1"), durable=True)
    await asyncio.sleep(0.02)
    await gateway.publish(Message("v", "fake", "second", message_id="2"), durable=True)
    await wait_until(lambda: len(channel.delivered) == 2)
    assert [r.message.text for r in agent.requests] == ["first", "second"]
    assert channel.delivered == ["echo: first", "echo: second"]
    assert gateway.storage.failure is None
