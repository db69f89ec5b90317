"""The outbox loop (core.durable.outbox), tested directly on a real SQLite queue: retries
with backoff honouring a provider's retry_after, giving up, delivery progress saved and
resumed (also by a new loop, as after a restart), one reply at a time per conversation."""

import asyncio
import time

import pytest

from core.contract.delivery import DeliveryResult
from core.contract.events import Message, Reply
from core.durable.outbox import Outbox
from core.durable.sqlite import DurableQueue
from core.testing import wait_until


@pytest.fixture
async def queue(tmp_path):
    queue = DurableQueue(tmp_path / "gateway.db")
    await queue.open()
    yield queue
    await queue.close()


async def _queue_reply(queue, conversation="v1", text="hi", provider_id=None):
    message = Message(conversation, "fake", text, message_id=provider_id)
    assert await queue.accept(message)
    await queue.answer(Reply(conversation, "fake", f"re: {text}", message))


class Script:
    """A ``deliver`` function answering from a list of outcomes (then delivered)."""

    def __init__(self, *outcomes, delay=0.0):
        self.outcomes = list(outcomes)
        self.delay = delay
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, reply, attempt, progress):
        self.calls.append((reply.text, attempt))
        if self.delay:
            await asyncio.sleep(self.delay)
        return self.outcomes.pop(0) if self.outcomes else DeliveryResult.delivered()


def _outbox(queue, deliver, **kwargs):
    settings = {"max_attempts": 5, "base_delay_s": 0.01, "max_delay_s": 5.0, **kwargs}
    outbox = Outbox(queue, deliver, **settings)
    outbox.start()
    return outbox


async def _finished(queue, count=1):
    """The figures once ``count`` replies are delivered or given up."""
    async with asyncio.timeout(5):
        while True:
            stats = await queue.stats()
            if stats["delivered"] + stats["failed"] >= count:
                return stats
            await asyncio.sleep(0.01)


async def test_a_retry_is_attempted_again_after_the_providers_retry_after(queue):
    deliver = Script(DeliveryResult.retry("429", retry_after=0.2))
    await _queue_reply(queue)
    outbox = _outbox(queue, deliver)
    await wait_until(lambda: len(deliver.calls) == 1)
    async with queue.db.execute("SELECT attempts, next_attempt_at, created_at FROM outbox") as c:
        attempts, next_at, created = await c.fetchone()
    assert attempts == 1 and next_at - created >= 0.2  # not the 10 ms backoff
    stats = await _finished(queue)
    await outbox.stop(1)
    assert deliver.calls == [("re: hi", 1), ("re: hi", 2)]
    assert (stats["delivered"], stats["retries"], stats["failed"]) == (1, 1, 0)


def test_backoff_doubles_with_jitter_and_caps_retry_after_at_the_maximum(queue):
    outbox = Outbox(queue, Script(), max_attempts=5, base_delay_s=1.0, max_delay_s=10.0)
    assert outbox.backoff(1, 3.0) == 3.0
    assert outbox.backoff(1, 99.0) == 10.0
    assert 2.0 <= outbox.backoff(3, None) <= 4.0
    assert outbox.backoff(20, None) <= 10.0


async def test_a_failed_delivery_is_given_up_at_once(queue):
    deliver = Script(DeliveryResult.failed("400 bad chat"))
    await _queue_reply(queue)
    outbox = _outbox(queue, deliver)
    stats = await _finished(queue)
    await outbox.stop(1)
    assert deliver.calls == [("re: hi", 1)]
    assert (stats["failed"], stats["delivered"], outbox.failures) == (1, 0, 1)


async def test_retries_stop_after_max_attempts(queue):
    deliver = Script(*[DeliveryResult.retry("503")] * 10)
    await _queue_reply(queue)
    outbox = _outbox(queue, deliver, max_attempts=3)
    stats = await _finished(queue)
    await outbox.stop(1)
    assert [attempt for _, attempt in deliver.calls] == [1, 2, 3]
    assert stats["failed"] == 1


async def test_progress_is_saved_and_a_retry_and_a_new_loop_resume_after_it(queue):
    seen: list[int] = []

    async def deliver(reply, attempt, progress):
        seen.append(progress.get("parts_sent", 0))
        await progress.save(parts_sent=progress.get("parts_sent", 0) + 1)
        return DeliveryResult.retry("cut") if attempt == 1 else DeliveryResult.failed("stop")

    await _queue_reply(queue)
    outbox = _outbox(queue, deliver)
    await _finished(queue)
    await outbox.stop(1)
    assert seen == [0, 1]
    async with queue.db.execute("SELECT progress FROM outbox") as cursor:
        (progress,) = await cursor.fetchone()
    assert progress == '{"parts_sent":2}'

    await queue.db.execute("UPDATE outbox SET status = 'pending', next_attempt_at = 0")
    again = _outbox(queue, deliver)  # as after a restart: the state comes from the row
    await wait_until(lambda: len(seen) == 3)
    await again.stop(1)
    assert seen[-1] == 2


async def test_one_reply_at_a_time_per_conversation_conversations_in_parallel(queue):
    running: dict[str, int] = {}
    most: dict[str, int] = {}
    order: list[str] = []
    other_started = asyncio.Event()

    async def deliver(reply, attempt, progress):
        conversation = reply.conversation_id
        running[conversation] = running.get(conversation, 0) + 1
        most[conversation] = max(most.get(conversation, 0), running[conversation])
        order.append(reply.text)
        if conversation == "b":
            other_started.set()
        else:  # "a" waits until "b" runs: conversations do not wait on each other
            await asyncio.wait_for(other_started.wait(), 5)
        await asyncio.sleep(0.01)
        running[conversation] -= 1
        return DeliveryResult.delivered()

    for text in ("a1", "a2", "a3"):
        await _queue_reply(queue, "a", text)
    await _queue_reply(queue, "b", "b1")
    outbox = _outbox(queue, deliver)
    await _finished(queue, 4)
    await outbox.stop(1)
    assert most == {"a": 1, "b": 1}
    assert [text for text in order if text.startswith("re: a")] == ["re: a1", "re: a2", "re: a3"]


class IdleQueue:
    """Nothing due now; a retry due in a minute (so the outbox waits with a timeout)."""

    async def schedule(self, now: float, busy: set[str]) -> tuple[list[object], float]:
        return [], time.time() + 60


async def _never_called(*args: object) -> None:
    raise AssertionError("nothing is due")


async def test_a_stop_that_lands_with_a_wake_up_still_stops_the_outbox() -> None:
    # On Python 3.11 asyncio.wait_for lost a cancellation that arrived in the same loop
    # turn as the event it waited for: the outbox then slept until its next retry and
    # the gateway's shutdown hung (seen in CI as a test stuck for 120 s).
    outbox = Outbox(IdleQueue(), _never_called, 5, 0.01, 0.05)  # type: ignore[arg-type]
    outbox.start()
    await asyncio.sleep(0.05)  # the outbox waits for a wake-up or its next retry
    outbox.notify()
    await asyncio.sleep(0)  # the wake-up is under way...
    async with asyncio.timeout(2):
        await outbox.stop(grace_s=0.1)  # ...when the stop cancels the outbox
