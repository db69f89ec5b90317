"""The plugin author's kit (core.testing) does what docs/plugins.md promises."""

import asyncio

import aiohttp
import pytest
from aiohttp import web

from core.contract.delivery import DeliveryResult
from core.contract.events import Message
from core.plugins import hookimpl
from core.testing import (
    FAST_DELIVERY,
    InMemoryConversationStore,
    ScriptedAgent,
    ask,
    failed_reply,
    gateway_of,
    sent_json,
    wait_delivered,
    wait_settled,
    wait_until,
)


class Recorder:
    """A plugin under test: one route, one observer."""

    def __init__(self):
        self.seen: list[str] = []

    @hookimpl
    def register_routes(self, gateway):
        async def ping(request):
            return web.json_response({"pong": True})

        return [web.get("/recorder/ping", ping)]

    @hookimpl
    def message_received(self, message):
        self.seen.append(message.text)


class DurableChannel:
    """A durable channel whose deliveries follow ``script`` (then succeed)."""

    def __init__(self, script=(), pause=0.0):
        self.script = list(script)
        self.pause = pause
        self.attempts: list[tuple[str, int]] = []

    @hookimpl
    async def deliver_reply(self, reply, attempt):
        if reply.channel != "durable":
            return None
        self.attempts.append((reply.text, attempt))
        if self.pause:
            await asyncio.sleep(self.pause)
        return self.script.pop(0) if self.script else DeliveryResult.delivered()


async def test_the_app_serves_the_plugin_under_test_and_fires_its_hooks(eneca_app):
    plugin = Recorder()
    client = await eneca_app(extra={"recorder": plugin}, agent=ScriptedAgent())
    response = await client.get("/recorder/ping")
    assert (response.status, await response.json()) == (200, {"pong": True})
    reply = await ask(gateway_of(client), "hi")
    assert reply.text == "echo: hi"
    assert plugin.seen == ["hi"]


async def test_plugins_are_enabled_by_entry_point_name_and_others_stay_off(eneca_app):
    client = await eneca_app(plugins=["memory_sqlite"], agent=ScriptedAgent())
    gateway = gateway_of(client)
    assert "memory_sqlite" in gateway.plugin_names
    assert "talkme" not in gateway.plugin_names
    assert (await client.post("/webhook/talkme", json={})).status == 404


async def test_settings_reach_the_gateway_and_every_app_gets_a_fresh_data_dir(eneca_app, tmp_path):
    first = gateway_of(await eneca_app(settings={"core": {"fallback_text": "later"}}))
    assert first.settings.fallback_text == "later"
    assert first.settings.data_dir == tmp_path / "data"
    reply = await ask(first, "no agent here")
    assert (reply.text, reply.error.code) == ("later", "no_agent")


async def test_scripted_replies_are_used_in_order_and_the_last_repeats(eneca_app):
    async def shout(request):
        return request.message.text.upper()

    agent = ScriptedAgent(["one", shout, "last"])
    gateway = gateway_of(await eneca_app(agent=agent))
    texts = [(await ask(gateway, text)).text for text in ("a", "b", "c", "d")]
    assert texts == ["one", "B", "last", "last"]
    assert [request.message.text for request in agent.requests] == ["a", "b", "c", "d"]
    assert [len(request.history) for request in agent.requests] == [1, 3, 5, 7]


async def test_a_scripted_exception_becomes_the_gateways_fallback(eneca_app):
    gateway = gateway_of(await eneca_app(agent=ScriptedAgent(RuntimeError("model down"))))
    reply = await ask(gateway, "hi")
    assert reply.error is not None and reply.error.code == "agent_error"
    assert reply.text == gateway.settings.fallback_text


async def test_a_streamed_reply_arrives_in_chunks_of_the_scripted_size(eneca_app):
    gateway = gateway_of(await eneca_app(agent=ScriptedAgent("abcdefghij", chunk_size=3)))
    handle = await gateway.publish(Message("c1", "test", "go", stream=True))
    chunks = [chunk async for chunk in handle.chunks()]
    assert chunks == ["abc", "def", "ghi", "j"]
    assert (await handle.reply()).text == "abcdefghij"


async def test_a_provided_store_is_the_one_the_gateway_uses(eneca_app):
    store = InMemoryConversationStore()
    gateway = gateway_of(await eneca_app(agent=ScriptedAgent("ok"), store=store))
    await ask(gateway, "remember me", conversation_id="c9")
    assert [turn.text for turn in await store.history("c9")] == ["remember me", "ok"]


def test_failed_reply_looks_like_an_agents_fallback():
    message = Message("c1", "test", "hi")
    reply = failed_reply(message, "sorry", "upstream_timeout")
    assert (reply.success, reply.error.code, reply.text) == (False, "upstream_timeout", "sorry")
    assert reply.in_reply_to is message


async def test_wait_until_times_out_when_the_condition_never_holds():
    with pytest.raises(TimeoutError):
        await wait_until(lambda: False, timeout=0.05)


async def test_mock_http_mocks_outbound_calls_and_lets_the_test_client_through(
    eneca_app, mock_http
):
    mock_http.post("http://provider.test/send", payload={"ok": True})
    client = await eneca_app(extra={"recorder": Recorder()})
    assert (await client.get("/recorder/ping")).status == 200  # passed through
    async with (
        aiohttp.ClientSession() as session,
        session.post("http://provider.test/send", json={"text": "hi"}) as response,
    ):
        assert await response.json() == {"ok": True}
    assert sent_json(mock_http, "http://provider.test/send") == [{"text": "hi"}]
    assert sent_json(mock_http, "http://provider.test/other") == []


async def test_wait_delivered_returns_the_figures_once_replies_are_through(eneca_app):
    channel = DurableChannel([DeliveryResult.retry("busy"), DeliveryResult.failed("gone")])
    gateway = gateway_of(
        await eneca_app(
            agent=ScriptedAgent(), extra={"ch": channel}, settings={"core": FAST_DELIVERY}
        )
    )
    first = Message("v1", "durable", "a", message_id="p1")
    await gateway.publish(first, durable=True)
    await gateway.publish(Message("v2", "durable", "b", message_id="p2"), durable=True)
    assert await gateway.publish(first, durable=True) is None  # a redelivered webhook
    stats = await wait_delivered(gateway, count=2, channel="durable")
    assert (stats["received"], stats["duplicates"]) == (2, 1)
    assert stats["delivered"] + stats["failed"] == 2
    settled = await wait_settled(gateway, channel="durable")
    assert settled["pending_deliveries"] == 0 and settled["unanswered"] == 0


async def test_wait_delivered_times_out_when_nothing_is_delivered(eneca_app):
    gateway = gateway_of(await eneca_app(agent=ScriptedAgent()))
    with pytest.raises(TimeoutError):
        await wait_delivered(gateway, timeout=0.05)


async def test_each_durable_reply_is_delivered_exactly_once(eneca_app, tmp_path):
    # Regression: an attempt that ended while the outbox read due replies freed its
    # conversation, and the stale row was delivered a second time.
    for round_ in range(6):
        channel = DurableChannel(pause=0.002)
        gateway = gateway_of(
            await eneca_app(
                agent=ScriptedAgent(),
                extra={"ch": channel},
                settings={"core": FAST_DELIVERY},
                data_dir=tmp_path / f"round{round_}",
            )
        )
        for number in range(5):
            message = Message("v1", "durable", f"m{number}", message_id=f"{round_}-{number}")
            await gateway.publish(message, durable=True)
        await wait_delivered(gateway, count=5, channel="durable")
        await wait_settled(gateway, channel="durable")
        assert channel.attempts == [(f"echo: m{n}", 1) for n in range(5)]
