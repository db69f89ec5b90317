"""Races in the inbox/outbox found in review, kept as regression tests."""

import asyncio
import datetime

import pytest

from core.contract.delivery import DeliveryResult
from core.contract.events import Message, Reply
from core.durable.outbox import Outbox
from core.durable.sqlite import DurableQueue


async def _queue_with_replies(path, texts, conversation="c"):
    queue = DurableQueue(path)
    await queue.open()
    for text in texts:
        message = Message(conversation, "t", text, message_id=text)
        assert await queue.accept(message)
        await queue.answer(Reply(conversation, "t", text, message))
    return queue


async def test_the_loop_sleeps_while_a_conversations_head_waits_for_its_retry(tmp_path):
    queue = await _queue_with_replies(tmp_path / "g.db", ["a", "b"])
    polls = 0
    real_schedule = queue.schedule

    async def counting_schedule(*args, **kwargs):
        nonlocal polls
        polls += 1
        return await real_schedule(*args, **kwargs)

    queue.schedule = counting_schedule

    async def deliver(reply, attempt, progress):
        return DeliveryResult.retry("503", retry_after=30)

    outbox = Outbox(queue, deliver, max_attempts=5, base_delay_s=1, max_delay_s=60)
    outbox.start()
    await asyncio.sleep(0.5)
    await outbox.stop(1)
    await queue.close()
    # "b" is due but waits behind "a", whose retry is 30 s away: nothing to poll for.
    assert 1 <= polls < 10, f"the outbox polled {polls} times in 0.5 s"


async def test_a_failed_answer_cannot_undo_another_conversations_delivery(tmp_path):
    queue = await _queue_with_replies(tmp_path / "g.db", ["a"], conversation="c1")
    [item], _ = await queue.schedule(1e12, set())
    second = Message("c2", "t", "b", message_id="b")
    await queue.accept(second)
    unencodable = Reply("c2", "t", "b", second, metadata={"at": datetime.datetime.now()})
    failing = asyncio.create_task(queue.answer(unencodable))
    await asyncio.sleep(0)
    await queue.mark_delivered(item.seq, 1)
    with pytest.raises(TypeError):
        await failing
    rows = await queue.db.execute_fetchall("SELECT status FROM outbox WHERE seq = ?", (item.seq,))
    await queue.close()
    assert rows[0][0] == "delivered"  # else c1's reply would be sent again


async def test_due_leaves_out_conversations_in_flight_and_still_fills_its_batch(tmp_path):
    queue = DurableQueue(tmp_path / "g.db")
    await queue.open()
    for number in range(300):
        message = Message(f"c{number}", "t", f"m{number}", message_id=f"m{number}")
        assert await queue.accept(message)
        await queue.answer(Reply(f"c{number}", "t", f"r{number}", message), now=1000 + number)
    in_flight = {f"c{number}" for number in range(250)}
    batch, next_at = await queue.schedule(2000, in_flight, limit=10)
    # The oldest heads not in flight, in order, a full batch, their text intact.
    assert [item.reply.text for item in batch] == [f"r{n}" for n in range(250, 260)]
    # Read in the same hand-off: the next attempt after the batch it returns.
    assert next_at == 1260
    # With none taken, the next attempt is the oldest head not in flight.
    assert await queue.schedule(2000, in_flight, limit=0) == ([], 1250)
    assert await queue.schedule(2000, {f"c{number}" for number in range(300)}) == ([], None)
    await queue.close()
