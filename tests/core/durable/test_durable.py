"""The durable inbox/outbox any asynchronous channel reuses through publish(durable=True)
and the deliver_reply hook."""

import asyncio

from core.contract.delivery import DeliveryResult
from core.contract.events import Message
from core.durable.sqlite import DurableQueue
from core.plugins import hookimpl
from core.testing import ScriptedAgent, gateway_of, wait_delivered, wait_settled, wait_until
from tests.support.durable_channel import FAST_RETRIES, FakeChannel


def _msg(text, conversation="v1", provider_id=None):
    return Message(conversation, "fake", text, message_id=provider_id)


async def test_a_redelivered_provider_message_is_answered_once(eneca_app):
    channel = FakeChannel()
    agent = ScriptedAgent()
    gateway = gateway_of(
        await eneca_app(agent=agent, extra={"fake": channel}, settings={"core": FAST_RETRIES})
    )
    assert await gateway.publish(_msg("hi", provider_id="p1"), durable=True) is not None
    assert await gateway.publish(_msg("hi", provider_id="p1"), durable=True) is None
    await wait_until(lambda: channel.delivered)
    await asyncio.sleep(0.05)
    assert channel.delivered == ["echo: hi"]
    assert len(agent.requests) == 1
    stats = await gateway.delivery_stats("fake")
    assert (stats["received"], stats["duplicates"], stats["delivered"]) == (1, 1, 1)


async def test_transient_failures_are_retried_and_order_is_kept(eneca_app):
    channel = FakeChannel([DeliveryResult.retry("503"), DeliveryResult.retry("timeout")])
    gateway = gateway_of(
        await eneca_app(
            agent=ScriptedAgent(), extra={"fake": channel}, settings={"core": FAST_RETRIES}
        )
    )
    for i in range(3):
        await gateway.publish(_msg(f"m{i}", provider_id=f"p{i}"), durable=True)
    await wait_until(lambda: len(channel.delivered) == 3)
    assert channel.delivered == ["echo: m0", "echo: m1", "echo: m2"]
    assert channel.attempts[:3] == [("echo: m0", 1), ("echo: m0", 2), ("echo: m0", 3)]
    # The last delivery is recorded just after the channel saw it.
    stats = await wait_settled(gateway, "fake")
    assert stats["retries"] == 2 and stats["pending_deliveries"] == 0


async def test_a_permanent_failure_is_given_up_and_the_next_reply_goes_out(eneca_app):
    channel = FakeChannel([DeliveryResult.failed("400 bad request")])
    gateway = gateway_of(
        await eneca_app(
            agent=ScriptedAgent(), extra={"fake": channel}, settings={"core": FAST_RETRIES}
        )
    )
    await gateway.publish(_msg("first", provider_id="a"), durable=True)
    await gateway.publish(_msg("second", provider_id="b"), durable=True)
    await wait_until(lambda: channel.delivered)
    assert channel.delivered == ["echo: second"]
    assert [text for text, _ in channel.attempts] == ["echo: first", "echo: second"]
    assert (await gateway.delivery_stats("fake"))["failed"] == 1


async def test_retries_stop_after_the_configured_attempts(eneca_app):
    channel = FakeChannel([DeliveryResult.retry("down")] * 10)
    gateway = gateway_of(
        await eneca_app(
            agent=ScriptedAgent(),
            extra={"fake": channel},
            settings={"core": {**FAST_RETRIES, "delivery_max_attempts": 3}},
        )
    )
    await gateway.publish(_msg("x", provider_id="x"), durable=True)
    await wait_until(lambda: len(channel.attempts) == 3)
    await asyncio.sleep(0.1)
    assert len(channel.attempts) == 3
    assert (await gateway.delivery_stats("fake"))["failed"] == 1


async def test_an_accepted_message_is_answered_after_a_restart(eneca_app, tmp_path):
    data = tmp_path / "shared-data"
    first_channel = FakeChannel()
    client = await eneca_app(
        agent=ScriptedAgent("slow", delay=30),
        data_dir=data,
        extra={"fake": first_channel},
        settings={"core": FAST_RETRIES},
    )
    gateway = gateway_of(client)
    await gateway.publish(_msg("kept", provider_id="k1"), durable=True)
    await client.close()  # shut down before the agent could answer
    assert first_channel.delivered == []

    second_channel = FakeChannel()
    agent = ScriptedAgent()
    client = await eneca_app(
        agent=agent, data_dir=data, extra={"fake": second_channel}, settings={"core": FAST_RETRIES}
    )
    await wait_until(lambda: second_channel.delivered)
    assert second_channel.delivered == ["echo: kept"]
    # The same provider message id is still known after the restart.
    assert await gateway_of(client).publish(_msg("kept", provider_id="k1"), durable=True) is None


async def test_an_undelivered_reply_is_delivered_after_a_restart_and_never_twice(
    eneca_app, tmp_path
):
    data = tmp_path / "shared-data"
    down = FakeChannel([DeliveryResult.retry("down")] * 100)
    client = await eneca_app(
        agent=ScriptedAgent(), data_dir=data, extra={"fake": down}, settings={"core": FAST_RETRIES}
    )
    gateway = gateway_of(client)
    await gateway.publish(_msg("one", provider_id="1"), durable=True)
    await gateway.publish(_msg("two", provider_id="2"), durable=True)
    await wait_until(lambda: len(down.attempts) >= 1)
    await client.close()

    up = FakeChannel()
    agent = ScriptedAgent()
    client = await eneca_app(
        agent=agent, data_dir=data, extra={"fake": up}, settings={"core": FAST_RETRIES}
    )
    await wait_until(lambda: len(up.delivered) == 2)
    await asyncio.sleep(0.1)
    assert up.delivered == ["echo: one", "echo: two"]
    assert agent.requests == []  # answered before the restart: not answered again
    await client.close()

    again = FakeChannel()
    await eneca_app(
        agent=ScriptedAgent(), data_dir=data, extra={"fake": again}, settings={"core": FAST_RETRIES}
    )
    await asyncio.sleep(0.2)
    assert again.attempts == []


async def test_a_message_the_full_bus_refused_is_answered_once_and_its_retry_is_a_duplicate(
    eneca_app,
):
    """Stored is kept: the provider is told 503 (``BusFullError``), yet the message is
    queued past the bound and answered; the provider's retry is a duplicate."""
    import pytest

    from core.contract.errors import BusFullError

    channel = FakeChannel()
    agent = ScriptedAgent("ok", delay=0.2)
    gateway = gateway_of(
        await eneca_app(
            agent=agent,
            extra={"fake": channel},
            settings={
                "core": {**FAST_RETRIES, "bus_max_in_flight": 1, "bus_full_policy": "reject"}
            },
        )
    )
    await gateway.publish(_msg("first", "a", provider_id="1"), durable=True)
    with pytest.raises(BusFullError):
        await gateway.publish(_msg("second", "b", provider_id="2"), durable=True)
    await wait_until(lambda: len(channel.delivered) == 2)
    # The provider retries the refused message: a duplicate, not answered again.
    assert await gateway.publish(_msg("second", "b", provider_id="2"), durable=True) is None
    await asyncio.sleep(0.4)
    assert len(channel.delivered) == 2 and len(agent.requests) == 2
    assert (await gateway.delivery_stats("fake"))["duplicates"] == 1


class SplittingChannel:
    """Sends each reply as one provider call per word; ``fail_at`` fails calls once."""

    def __init__(self, fail_at=()):
        self.fail_at = set(fail_at)
        self.calls: list[str] = []

    @hookimpl
    async def deliver_reply(self, reply, attempt, progress):
        if reply.channel != "fake":
            return None
        words = reply.text.split()
        for index in range(progress.get("sent", 0), len(words)):
            if (reply.text, index) in self.fail_at:
                self.fail_at.discard((reply.text, index))
                return DeliveryResult.retry("provider hiccup")
            self.calls.append(words[index])
            await progress.save(sent=index + 1)
        return DeliveryResult.delivered()


async def test_a_retried_reply_resumes_after_the_parts_already_sent(eneca_app):
    channel = SplittingChannel(fail_at={("one two three four", 2)})
    gateway = gateway_of(
        await eneca_app(
            agent=ScriptedAgent("one two three four"),
            extra={"fake": channel},
            settings={"core": FAST_RETRIES},
        )
    )
    await gateway.publish(_msg("go", provider_id="p"), durable=True)
    await wait_until(lambda: len(channel.calls) == 4)
    await asyncio.sleep(0.05)
    assert channel.calls == ["one", "two", "three", "four"]
    stats = await gateway.delivery_stats("fake")
    assert (stats["delivered"], stats["retries"]) == (1, 1)


async def test_delivery_progress_survives_a_restart(eneca_app, tmp_path):
    data = tmp_path / "shared-data"
    first = SplittingChannel(fail_at={("alpha beta gamma", 1)})
    client = await eneca_app(
        agent=ScriptedAgent("alpha beta gamma"),
        data_dir=data,
        extra={"fake": first},
        settings={
            "core": {**FAST_RETRIES, "delivery_base_delay_s": 30, "delivery_max_delay_s": 30}
        },
    )
    await gateway_of(client).publish(_msg("go", provider_id="p"), durable=True)
    await wait_until(lambda: first.calls == ["alpha"])
    await client.close()  # stopped while the retry of part 2 waits

    second = SplittingChannel()
    client = await eneca_app(
        agent=ScriptedAgent(),
        data_dir=data,
        extra={"fake": second},
        settings={"core": FAST_RETRIES},
    )
    # The retry is due in 30 s; make it due now, as if that time had passed.
    await gateway_of(client)._durable.db.execute("UPDATE outbox SET next_attempt_at = 0")
    gateway_of(client)._outbox.notify()
    await wait_until(lambda: second.calls == ["beta", "gamma"])


async def test_a_sent_reply_whose_record_failed_is_recorded_later_not_sent_again(
    eneca_app, monkeypatch
):
    import sqlite3

    import core.durable.outbox

    monkeypatch.setattr(core.durable.outbox, "RECORD_RETRY_S", 0.05)
    channel = FakeChannel()
    gateway = gateway_of(
        await eneca_app(
            agent=ScriptedAgent(), extra={"fake": channel}, settings={"core": FAST_RETRIES}
        )
    )
    real_mark = gateway._durable.mark_delivered
    failures = []

    async def disk_full_once(seq, attempts):
        if not failures:
            failures.append(seq)
            raise sqlite3.OperationalError("database or disk is full")
        await real_mark(seq, attempts)

    monkeypatch.setattr(gateway._durable, "mark_delivered", disk_full_once)
    await gateway.publish(_msg("once", provider_id="o"), durable=True)
    await wait_until(lambda: failures)
    await wait_until(lambda: gateway._outbox.in_progress == 0)
    await asyncio.sleep(0.2)
    assert channel.delivered == ["echo: once"]
    stats = await gateway.delivery_stats("fake")
    assert (stats["delivered"], stats["pending_deliveries"]) == (1, 0)


async def test_settled_rows_older_than_the_retention_are_purged_pending_work_is_kept(
    eneca_app,
):
    import time

    class StuckForV1(FakeChannel):
        @hookimpl
        def deliver_reply(self, reply, attempt):
            if reply.conversation_id == "v1":
                self.attempts.append((reply.text, attempt))
                return DeliveryResult.retry("v1's provider is down")
            return super().deliver_reply(reply, attempt)

    channel = StuckForV1()
    gateway = gateway_of(
        await eneca_app(
            agent=ScriptedAgent(), extra={"fake": channel}, settings={"core": FAST_RETRIES}
        )
    )
    await gateway.publish(_msg("stuck", "v1", provider_id="s"), durable=True)
    await wait_until(lambda: channel.attempts)
    await gateway.publish(_msg("done", "v2", provider_id="d"), durable=True)
    await wait_until(lambda: channel.delivered == ["echo: done"])
    await wait_delivered(gateway, 1, "fake")  # recorded just after the channel saw it
    removed = await gateway._durable.purge(time.time() + 1)  # everything settled is "old"
    assert removed == 2  # the delivered reply and its message
    stats = await gateway.delivery_stats("fake")
    assert (stats["received"], stats["pending_deliveries"], stats["delivered"]) == (1, 1, 0)
    # Within the retention the provider id is still a duplicate:
    assert await gateway.publish(_msg("stuck", "v1", provider_id="s"), durable=True) is None


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
