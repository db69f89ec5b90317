"""The inbox/outbox contract, held by both backends: SQLite's DurableQueue and the
postgres plugin's PostgresDurableQueue."""

import asyncio
import datetime
from dataclasses import replace

import pytest

from core.contract.delivery import DeliveryResult
from core.contract.events import MERGED_IDS, Message, Reply
from core.durable.outbox import Outbox


def message(text: str, conversation: str = "c", channel: str = "t", provider=None) -> Message:
    return Message(conversation, channel, text, message_id=provider or text)


async def answered(queue, texts, conversation="c", channel="t", now=None):
    for text in texts:
        kept = message(text, conversation, channel, provider=f"{conversation}/{text}")
        assert await queue.accept(kept)
        await queue.answer(Reply(conversation, channel, f"re {text}", kept), now=now)


async def test_a_provider_message_is_kept_once(queue):
    assert await queue.accept(message("hi", provider="p1")) is True
    assert await queue.accept(message("hi again", provider="p1")) is False
    assert await queue.accept(message("hi", provider="p1", channel="other")) is True
    stats = await queue.stats("t")
    assert (stats["received"], stats["duplicates"], stats["unanswered"]) == (1, 1, 1)
    assert (await queue.stats())["received"] == 2


async def test_concurrent_accepts_of_one_provider_id_keep_it_once(queue):
    results = await asyncio.gather(
        *(queue.accept(message(f"x{i}", provider="same")) for i in range(8))
    )
    assert sorted(results) == [False] * 7 + [True]


async def test_unanswered_messages_come_back_in_arrival_order_whole(queue):
    texts = ["один", "two \x00 nul", "three ☃", "four"]
    kept = [
        message(text, conversation=f"c{i % 2}", provider=f"p{i}") for i, text in enumerate(texts)
    ]
    for item in kept:
        assert await queue.accept(item)
    back = await queue.unanswered()
    assert [m.text for m in back] == texts
    assert back[1] == kept[1] and back[2].conversation_id == "c0"
    await queue.answer(Reply("c1", "t", "ok", kept[1]))
    assert [m.text for m in await queue.unanswered()] == ["один", "three ☃", "four"]


async def test_an_answer_settles_the_messages_merged_into_it(queue):
    first, second = message("a"), message("b")
    await queue.accept(first)
    await queue.accept(second)
    third = message("c")
    await queue.accept(third)
    # As the bus merges debounced messages: the newest one, the older ids listed.
    merged = replace(second, text="a\nb", metadata={MERGED_IDS: [first.id]})
    await queue.answer(Reply("c", "t", "both", merged))
    assert await queue.unanswered() == [third]
    [item], _ = await queue.schedule(1e12, set())
    assert item.reply.text == "both"


async def test_replies_go_out_one_at_a_time_per_conversation_in_order(queue):
    await answered(queue, ["a", "b"], conversation="c1", now=100)
    await answered(queue, ["x"], conversation="c2", now=100)
    due, next_at = await queue.schedule(200, set())
    assert sorted(item.reply.text for item in due) == ["re a", "re x"]
    assert next_at is None or next_at <= 200
    first = next(item for item in due if item.reply.text == "re a")
    await queue.mark_delivered(first.seq, 1)
    due, _ = await queue.schedule(200, {"c2"})
    assert [item.reply.text for item in due] == ["re b"]
    assert due[0].reply.in_reply_to.text == "b"


async def test_a_retry_waits_and_holds_its_conversation(queue):
    await answered(queue, ["a", "b"], now=100)
    [head], _ = await queue.schedule(100, set())
    await queue.mark_retry(head.seq, 1, 150.0, "503 \x00 busy")
    assert await queue.schedule(120, set()) == ([], 150.0)
    [again], _ = await queue.schedule(150, set())
    assert (again.seq, again.attempts) == (head.seq, 1)
    await queue.mark_failed(again.seq, 2, "gave up")
    [after], _ = await queue.schedule(150, set())
    assert after.reply.text == "re b"
    stats = await queue.stats("t")
    assert (stats["failed"], stats["retries"], stats["pending_deliveries"]) == (1, 1, 1)


async def test_delivery_progress_is_kept_on_the_row(queue):
    await answered(queue, ["a"])
    [item], _ = await queue.schedule(1e12, set())
    await queue.save_progress(item.seq, {"sent": 2, "ids": ["m1", "m2"]})
    await queue.mark_retry(item.seq, 1, 0.0, "later")
    [again], _ = await queue.schedule(1e12, set())
    assert again.progress == {"sent": 2, "ids": ["m1", "m2"]}


async def test_forget_channel_drops_undelivered_replies(queue):
    await answered(queue, ["a"], conversation="c1")
    await answered(queue, ["b"], conversation="c2")
    await queue.forget_channel("t", "c1")
    assert [i.reply.text for i in (await queue.schedule(1e12, set()))[0]] == ["re b"]
    await queue.forget_channel("t")
    assert await queue.schedule(1e12, set()) == ([], None)


async def test_purge_removes_settled_rows_only(queue):
    await answered(queue, ["done"], conversation="c1", now=100)
    await answered(queue, ["waiting"], conversation="c2", now=100)
    due, _ = await queue.schedule(1e12, set())
    done = next(item for item in due if item.reply.text == "re done")
    await queue.mark_delivered(done.seq, 1)
    removed = await queue.purge(settled_before=1e12)
    assert removed == 2
    stats = await queue.stats()
    assert (stats["received"], stats["pending_deliveries"]) == (1, 1)
    assert len(await queue.delivery_latencies("t")) == 0


async def test_delivery_latencies_are_seconds_from_webhook_to_delivery(queue):
    await answered(queue, ["a"])
    [item], _ = await queue.schedule(1e12, set())
    await queue.mark_delivered(item.seq, 1)
    [latency] = await queue.delivery_latencies("t")
    assert 0 <= latency < 60
    assert await queue.delivery_latencies("other") == []


async def test_a_failed_answer_cannot_undo_another_conversations_delivery(queue):
    await answered(queue, ["a"], conversation="c1")
    [item], _ = await queue.schedule(1e12, set())
    second = message("b", conversation="c2")
    await queue.accept(second)
    unencodable = Reply("c2", "t", "b", second, metadata={"at": datetime.datetime.now()})
    failing = asyncio.create_task(queue.answer(unencodable))
    await asyncio.sleep(0)
    await queue.mark_delivered(item.seq, 1)
    with pytest.raises(TypeError):
        await failing
    assert (await queue.stats())["delivered"] == 1
    assert await queue.schedule(1e12, set()) == ([], None)


async def test_due_leaves_out_conversations_in_flight_and_still_fills_its_batch(queue):
    for number in range(300):
        await answered(queue, [f"m{number}"], conversation=f"c{number}", now=1000 + number)
    in_flight = {f"c{number}" for number in range(250)}
    batch, next_at = await queue.schedule(2000, in_flight, limit=10)
    assert [item.reply.text for item in batch] == [f"re m{n}" for n in range(250, 260)]
    assert next_at == 1260


async def test_the_outbox_delivers_every_reply_in_order_with_retries(queue):
    for conversation in ("c1", "c2"):
        await answered(queue, ["a", "b", "c"], conversation=conversation)
    sent: list[tuple[str, str]] = []
    failures = {("c1", "re b"): 2}
    done = asyncio.Event()

    async def deliver(reply, attempt, progress):
        key = (reply.conversation_id, reply.text)
        if failures.get(key, 0) >= attempt:
            return DeliveryResult.retry("503")
        sent.append(key)
        if len(sent) == 6:
            done.set()
        return DeliveryResult.delivered()

    outbox = Outbox(queue, deliver, max_attempts=5, base_delay_s=0.01, max_delay_s=0.02)
    outbox.start()
    await asyncio.wait_for(done.wait(), 30)
    await outbox.stop(1)
    for conversation in ("c1", "c2"):
        assert [text for c, text in sent if c == conversation] == ["re a", "re b", "re c"]
    stats = await queue.stats()
    assert (stats["delivered"], stats["retries"], stats["pending_deliveries"]) == (6, 2, 0)


async def test_a_webhooks_trace_is_kept_for_the_node_that_answers(pg_queues):
    # Issue 19's additions to the durable queue: accept/answer take a traceparent.
    queue = await pg_queues.open()
    trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    kept = message("traced", provider="t1")
    assert await queue.accept(kept, trace=trace)
    other = await pg_queues.open(node_id="node-b")
    await queue.db.execute(  # the accepting node stopped
        f'UPDATE "{pg_queues.schema}".inbox SET claimed_by = NULL'
    )
    assert await other.unanswered_traced() == [(kept, trace)]
    await other.answer(Reply("c", "t", "re", kept), trace=trace)
    [item], _ = await other.schedule(1e12, set())
    assert getattr(item, "trace", trace) == trace


async def test_two_nodes_claiming_at_once_never_take_the_same_reply(pg_queues):
    from plugins.postgres.nodes import Nodes

    first = await pg_queues.open(node_id="node-a")
    second = await pg_queues.open(node_id="node-b")
    for node in ("node-a", "node-b"):
        await Nodes(first.db, pg_queues.schema, node, 5.0).beat()
    for number in range(120):
        await answered(first, [f"m{number}"], conversation=f"c{number}", now=100)
    taken: list[int] = []
    busy: dict[object, set[str]] = {first: set(), second: set()}  # as each node's outbox
    for _ in range(5):
        batches = await asyncio.gather(
            *(queue.schedule(1e12, set(busy[queue]), limit=16) for queue in (first, second))
        )
        for queue, (due, _) in zip((first, second), batches, strict=True):
            busy[queue].update(item.reply.conversation_id for item in due)
            taken += [item.seq for item in due]
    assert len(taken) == len(set(taken)), "a reply claimed by two nodes would be sent twice"
    assert len(taken) == 120
