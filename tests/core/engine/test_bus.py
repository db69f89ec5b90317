"""The bus: ordering per conversation, concurrency across them, backpressure, drain."""

import asyncio

import pytest

from core.contract.errors import BusClosedError, BusFullError
from core.contract.events import Message, Reply
from core.engine.bus import InProcessBus
from core.testing import ScriptedAgent, ask, gateway_of


class Recorder:
    """A handler that records start/end order and how many run at once."""

    def __init__(self, delay=0.0):
        self.delay = delay
        self.started: list[str] = []
        self.finished: list[str] = []
        self.running: dict[str, int] = {}
        self.max_parallel = 0
        self.max_parallel_per_conversation = 0

    async def __call__(self, message, handle):
        cid = message.conversation_id
        self.started.append(message.text)
        self.running[cid] = self.running.get(cid, 0) + 1
        self.max_parallel = max(self.max_parallel, sum(self.running.values()))
        self.max_parallel_per_conversation = max(
            self.max_parallel_per_conversation, self.running[cid]
        )
        await asyncio.sleep(self.delay)
        self.running[cid] -= 1
        self.finished.append(message.text)
        return Reply(cid, message.channel, message.text.upper(), message)


async def test_messages_of_one_conversation_are_answered_one_at_a_time_in_order():
    handler = Recorder(delay=0.001)
    bus = InProcessBus(handler)
    texts = [f"m{i}" for i in range(50)]
    handles = await asyncio.gather(*(bus.publish(Message("c", "t", t)) for t in texts))
    replies = [await h.reply() for h in handles]
    assert handler.started == texts
    assert handler.finished == texts
    assert [r.text for r in replies] == [t.upper() for t in texts]
    assert handler.max_parallel_per_conversation == 1


async def test_different_conversations_run_concurrently():
    handler = Recorder(delay=0.05)
    bus = InProcessBus(handler)
    handles = [await bus.publish(Message(f"c{i}", "t", f"x{i}")) for i in range(5)]
    await asyncio.gather(*(h.reply() for h in handles))
    assert handler.max_parallel == 5


async def test_two_slow_conversations_do_not_wait_on_each_other(eneca_app):
    both_running = asyncio.Event()
    running = set()

    async def slow(request):
        running.add(request.message.conversation_id)
        if len(running) == 2:
            both_running.set()
        # Each answer waits until the other conversation is being answered too:
        # serial lanes would dead-lock here (and time out).
        await asyncio.wait_for(both_running.wait(), 5)
        return "done"

    gateway = gateway_of(await eneca_app(agent=ScriptedAgent(slow)))
    replies = await asyncio.gather(ask(gateway, "a", "conv-a"), ask(gateway, "b", "conv-b"))
    assert [r.text for r in replies] == ["done", "done"]


async def test_a_full_bus_rejects_with_a_clear_error():
    gate = asyncio.Event()

    async def blocked(message, handle):
        await gate.wait()
        return Reply(message.conversation_id, "t", "ok", message)

    bus = InProcessBus(blocked, max_in_flight=2, full_policy="reject")
    first = await bus.publish(Message("a", "t", "1"))
    await bus.publish(Message("b", "t", "2"))
    with pytest.raises(BusFullError, match="2 messages"):
        await bus.publish(Message("c", "t", "3"))
    gate.set()
    assert (await first.reply()).text == "ok"
    await asyncio.sleep(0)
    # Capacity came back once the work finished.
    third = await bus.publish(Message("c", "t", "3"))
    assert (await third.reply()).text == "ok"


async def test_a_full_bus_makes_publish_wait_then_time_out():
    gate = asyncio.Event()

    async def blocked(message, handle):
        await gate.wait()
        return Reply(message.conversation_id, "t", "ok", message)

    bus = InProcessBus(blocked, max_in_flight=1, full_policy="wait", publish_timeout_s=0.05)
    await bus.publish(Message("a", "t", "1"))
    with pytest.raises(BusFullError):
        await bus.publish(Message("b", "t", "2"))
    waiting = asyncio.create_task(InProcessBus.publish(bus, Message("b", "t", "2")))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    gate.set()
    handle = await asyncio.wait_for(waiting, 1)
    assert (await handle.reply()).text == "ok"


async def test_a_raising_handler_fails_only_its_own_message():
    async def handler(message, handle):
        if message.text == "boom":
            raise RuntimeError("boom")
        return Reply(message.conversation_id, "t", "fine", message)

    bus = InProcessBus(handler)
    bad = await bus.publish(Message("c", "t", "boom"))
    good = await bus.publish(Message("c", "t", "next"))
    other = await bus.publish(Message("d", "t", "other"))
    with pytest.raises(RuntimeError):
        await bad.reply()
    assert (await good.reply()).text == "fine"
    assert (await other.reply()).text == "fine"
    assert bus.stats()["failed"] == 1


async def test_cancelling_one_message_does_not_skip_the_next():
    release = asyncio.Event()

    async def handler(message, handle):
        if message.text == "slow":
            await release.wait()
        return Reply(message.conversation_id, "t", message.text, message)

    bus = InProcessBus(handler)
    slow = await bus.publish(Message("c", "t", "slow"))
    after = await bus.publish(Message("c", "t", "after"))
    await asyncio.sleep(0.01)
    slow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow.reply()
    assert (await asyncio.wait_for(after.reply(), 1)).text == "after"


async def test_drain_lets_in_flight_work_finish_and_refuses_new_messages():
    handler = Recorder(delay=0.05)
    bus = InProcessBus(handler)
    handles = [await bus.publish(Message("c", "t", f"m{i}")) for i in range(3)]
    figures = await bus.drain(grace_s=5)
    assert figures == {"finished": 1, "cancelled": 0}
    assert [(await h.reply()).text for h in handles] == ["M0", "M1", "M2"]
    with pytest.raises(BusClosedError):
        await bus.publish(Message("c", "t", "late"))


async def test_drain_cancels_what_outlives_the_grace_period():
    async def forever(message, handle):
        await asyncio.sleep(60)

    bus = InProcessBus(forever)
    handle = await bus.publish(Message("c", "t", "x"))
    await asyncio.sleep(0)
    figures = await bus.drain(grace_s=0.05)
    assert figures == {"finished": 0, "cancelled": 1}
    with pytest.raises(asyncio.CancelledError):
        await handle.reply()
    assert bus.stats()["in_flight"] == 0


async def test_chunks_are_streamed_to_the_handle_in_order(eneca_app):
    agent = ScriptedAgent("abcdefghij", chunk_size=3)
    gateway = gateway_of(await eneca_app(agent=agent))
    handle = await gateway.publish(Message("s", "test", "hi", stream=True))
    chunks = [chunk async for chunk in handle.chunks()]
    assert chunks == ["abc", "def", "ghi", "j"]
    assert (await handle.reply()).text == "abcdefghij"


async def test_debounced_messages_of_a_quick_typist_are_answered_together():
    handler = Recorder()
    bus = InProcessBus(handler)
    first = await bus.publish(Message("v", "t", "hello"), debounce_s=0.4)
    await asyncio.sleep(0.02)
    second = await bus.publish(Message("v", "t", "are you there?"), debounce_s=0.4)
    other = await bus.publish(Message("w", "t", "separate"), debounce_s=0.4)
    replies = [await first.reply(), await second.reply(), await other.reply()]
    # One answer per conversation; the two conversations' order is not promised.
    assert sorted(handler.started) == ["hello\nare you there?", "separate"]
    assert replies[0] is replies[1]
    assert replies[0].in_reply_to.metadata["merged_message_ids"] == [first.message.id]
    await asyncio.sleep(0.1)
    later = await bus.publish(Message("v", "t", "later"), debounce_s=0.4)
    assert (await later.reply()).text == "LATER"
    await asyncio.sleep(0.01)  # the lane settles its count right after the reply
    assert bus.stats()["in_flight"] == 0


async def test_an_agent_that_never_answers_gets_the_fallback_within_the_reply_timeout(eneca_app):
    agent = ScriptedAgent("never", delay=60)
    gateway = gateway_of(await eneca_app(agent=agent, settings={"core": {"reply_timeout_s": 0.1}}))
    reply = await asyncio.wait_for(ask(gateway, "hello?"), 5)
    assert reply.error.code == "reply_timeout"
    assert reply.text == gateway.settings.fallback_text
    assert agent.cancelled == 1
    history = await gateway.store.history("c1")
    assert [t.role for t in history] == ["user"]  # no half reply remembered


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


async def test_a_handle_cancelled_before_its_task_starts_still_ends_its_reply_and_chunks():
    bus = InProcessBus(echo)
    handle = await bus.publish(Message("c", "t", "a", stream=True))
    await asyncio.sleep(0)
    assert handle._task is not None and not handle._task.done()
    handle.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(handle.reply(), 1)
    assert [chunk async for chunk in handle.chunks()] == []
