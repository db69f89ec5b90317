"""The pipeline that answers one message (core.engine.pipeline), tested directly: the order
of its steps, the fallback on an agent's error or timeout, the assistant turn stored only
on success, and a kept durable message answered through the inbox. The last tests run it
inside a gateway: a kept message is answered whatever fails, and held while storage fails.
"""

import asyncio
import sqlite3

from core.config.settings import CoreSettings
from core.contract.events import Message
from core.durable.inbox import Inbox
from core.durable.sqlite import DurableQueue
from core.durable.storage import StorageWatch
from core.engine.bus import ReplyHandle
from core.engine.memory import InMemoryConversationStore
from core.engine.pipeline import Pipeline
from core.plugins import hookimpl
from core.testing import ScriptedAgent, gateway_of, wait_until
from tests.support.durable_channel import FAST_RETRIES, FakeChannel


class Steps:
    """Records the pipeline's steps: hooks fired, turns stored, the agent's call."""

    def __init__(self):
        self.log: list[str] = []

    async def hook(self, name, **kwargs):
        self.log.append(f"hook:{name}")
        return [] if name == "agent_tools" else None


class RecordingStore(InMemoryConversationStore):
    def __init__(self, steps):
        super().__init__()
        self.steps = steps

    async def append(self, conversation_id, turn):
        self.steps.log.append(f"store:{turn.role}")
        await super().append(conversation_id, turn)


class RecordingAgent(ScriptedAgent):
    def __init__(self, steps, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.steps = steps

    async def respond(self, request, on_chunk):
        self.steps.log.append("agent")
        return await super().respond(request, on_chunk)


async def _pipeline(tmp_path, agent_replies=None, **settings):
    steps = Steps()
    queue = DurableQueue(tmp_path / "gateway.db")
    await queue.open()
    answered = []
    storage = StorageWatch(tmp_path)
    inbox = Inbox(queue, storage, lambda: answered.append(True))
    pipeline = Pipeline(CoreSettings(data_dir=tmp_path, **settings), steps.hook, inbox, storage)
    pipeline.store = RecordingStore(steps)
    pipeline.agent = RecordingAgent(steps, agent_replies)
    return pipeline, steps, queue, inbox, answered


async def test_the_steps_run_in_order_and_the_agent_sees_the_new_turn(tmp_path):
    pipeline, steps, queue, _, _ = await _pipeline(tmp_path)
    message = Message("c1", "test", "hello")
    reply = await pipeline.answer(message, ReplyHandle(message))
    await queue.close()
    assert reply.text == "echo: hello" and reply.success
    assert steps.log == [
        "store:user",
        "hook:message_received",
        "hook:agent_tools",
        "agent",
        "store:assistant",
        "hook:reply_ready",
    ]
    [request] = pipeline.agent.requests
    assert [turn.text for turn in request.history] == ["hello"]


async def test_an_agent_error_is_the_fallback_and_no_assistant_turn_is_stored(tmp_path):
    pipeline, steps, queue, _, _ = await _pipeline(tmp_path, RuntimeError("model exploded"))
    message = Message("c1", "test", "hello")
    reply = await pipeline.answer(message, ReplyHandle(message))
    await queue.close()
    assert reply.error.code == "agent_error"
    assert reply.text == pipeline._settings.fallback_text
    assert "store:assistant" not in steps.log
    assert steps.log[-1] == "hook:reply_ready"  # a fallback is still a reply
    assert [turn.role for turn in await pipeline.store.history("c1")] == ["user"]


async def test_a_reply_over_the_deadline_is_the_timeout_fallback(tmp_path):
    pipeline, steps, queue, _, _ = await _pipeline(tmp_path, reply_timeout_s=0.05)
    pipeline.agent.delay = 5.0
    message = Message("c1", "test", "hello")
    reply = await pipeline.answer(message, ReplyHandle(message))
    await queue.close()
    assert reply.error.code == "reply_timeout"
    assert "store:assistant" not in steps.log


async def test_without_an_agent_every_message_gets_the_no_agent_fallback(tmp_path):
    pipeline, steps, queue, _, _ = await _pipeline(tmp_path)
    pipeline.agent = None
    message = Message("c1", "test", "hello")
    reply = await pipeline.answer(message, ReplyHandle(message))
    await queue.close()
    assert reply.error.code == "no_agent"
    assert "agent" not in steps.log and "store:assistant" not in steps.log


async def test_a_kept_message_is_answered_into_the_outbox_and_no_longer_kept(tmp_path):
    pipeline, _, queue, inbox, answered = await _pipeline(tmp_path)
    message = Message("c1", "fake", "hello", message_id="p1")

    async def enqueue(overflow: bool = False):
        return ReplyHandle(message)

    handle = await inbox.keep(message, enqueue)
    assert inbox.is_kept(message)
    assert (await queue.stats("fake"))["unanswered"] == 1
    reply = await pipeline.answer(message, handle)
    stats = await queue.stats("fake")
    await queue.close()
    assert reply.text == "echo: hello"
    assert not inbox.is_kept(message)
    assert answered == [True]  # the outbox was woken
    assert (stats["unanswered"], stats["pending_deliveries"]) == (0, 1)


async def test_a_message_not_kept_raises_what_failed(tmp_path):
    pipeline, _, queue, _, _ = await _pipeline(tmp_path)

    class Broken(InMemoryConversationStore):
        async def append(self, conversation_id, turn):
            raise ValueError("broken store")

    pipeline.store = Broken()
    message = Message("c1", "test", "hello")
    try:
        await pipeline.answer(message, ReplyHandle(message))
    except ValueError as exc:
        assert str(exc) == "broken store"
    else:
        raise AssertionError("the failure was swallowed")
    finally:
        await queue.close()


async def test_an_agents_own_timeout_is_a_fallback_not_a_storage_failure(eneca_app):
    agent = ScriptedAgent([TimeoutError("upstream read timed out"), "ok"])
    gateway = gateway_of(await eneca_app(plugins=["memory_sqlite"], agent=agent))
    handle = await gateway.publish(Message("c", "t", "hi"))
    reply = await handle.reply()
    assert reply.error.code == "agent_error"
    assert gateway._storage.failure is None


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
    stats = await gateway.delivery_stats("fake")
    assert (stats["unanswered"], stats["delivered"]) == (0, 1)


async def test_a_message_held_by_a_storage_failure_is_not_overtaken(eneca_app, monkeypatch):
    import core.engine.pipeline
    from core.testing import InMemoryConversationStore

    monkeypatch.setattr(core.engine.pipeline, "HELD_PROBE_S", 0.05)

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
    assert gateway._storage.failure is None
