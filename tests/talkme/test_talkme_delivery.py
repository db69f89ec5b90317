"""Delivering replies through the TalkMe API: order, splitting, handover, failures, retries."""

from __future__ import annotations

import asyncio

from core.testing import ScriptedAgent, ask, gateway_of
from tests.support.talkme_fake_api import Scripted, talkme_error
from tests.support.talkme_helpers import (
    ADMIN_KEY,
    delivered_count,
    eventually,
    read_log,
    webhook_body,
)


async def inbox_texts(client, conversation_id: str) -> list[str]:
    """Texts of a conversation's accepted messages, in the order the inbox took them."""
    db = gateway_of(client)._durable.db
    async with db.execute(
        "SELECT json_extract(message, '$.text') FROM inbox WHERE conversation_id = ? ORDER BY seq",
        (conversation_id,),
    ) as cursor:
        return [row[0] for row in await cursor.fetchall()]


async def outbox_rows(client) -> list[tuple[str, int]]:
    async with gateway_of(client)._durable.db.execute(
        "SELECT status, attempts FROM outbox ORDER BY seq"
    ) as cursor:
        return [tuple(row) for row in await cursor.fetchall()]


async def test_one_visitors_replies_go_out_in_order_under_concurrent_webhooks(
    talkme_app, fake_talkme
):
    agent = ScriptedAgent(lambda request: f"re: {request.message.text}", delay=0.05)
    client = await talkme_app(agent)
    posts = [
        client.post(
            "/webhook/talkme",
            json=webhook_body(f"{who}{n}", client_id=who, message_id=f"{who}-{n}"),
        )
        for n in range(8)
        for who in ("ann", "bob")
    ]
    responses = await asyncio.gather(*posts)
    assert [r.status for r in responses] == [200] * 16
    await fake_talkme.wait_until(lambda: len(fake_talkme.sent_texts()) == 16)

    for who in ("ann", "bob"):
        accepted = await inbox_texts(client, f"talkme:{who}")
        sent = [t for t in fake_talkme.sent_texts() if t.startswith(f"re: {who}")]
        assert sent == [f"re: {text}" for text in accepted]
        answered = [r.message.text for r in agent.requests if r.message.user_id == who]
        assert answered == accepted
    assert len(set(fake_talkme.sent_texts())) == 16


LONG_REPLY = (
    "Our office is open on weekdays. We close at six! Do you need the address?\n\n"
    "The second paragraph is long enough that it has to be cut on a sentence boundary, "
    "because it does not fit. It keeps going for a while. And then a bit more.\n"
    "A line of its own.\n\n" + "x" * 130 + " tail words after a very long token."
)


async def test_a_long_reply_is_split_and_nothing_is_lost(talkme_app, fake_talkme):
    limit = 60
    client = await talkme_app(ScriptedAgent(LONG_REPLY), talkme={"max_message_chars": limit})
    await client.post("/webhook/talkme", json=webhook_body("where are you?"))
    await eventually(lambda: delivered_count(client))
    parts = fake_talkme.sent_texts()
    assert len(parts) > 3
    assert all(len(part) <= limit for part in parts)
    assert "".join(parts) == LONG_REPLY
    assert parts[0] == "Our office is open on weekdays. We close at six! "
    assert all(call.headers["X-Token"] for call in fake_talkme.calls_to("send"))


async def test_handover_sends_the_text_then_finish_with_the_operator_code(talkme_app, fake_talkme):
    agent = ScriptedAgent("Connecting you to a colleague.", actions=("handover",))
    client = await talkme_app(agent, talkme={"operator_code": "HUMAN_PLEASE"})
    await client.post("/webhook/talkme", json=webhook_body("I want a human"))
    await eventually(lambda: delivered_count(client))
    methods = [call.method for call in fake_talkme.calls if call.method != "simulateTyping"]
    assert methods == ["send", "finish"]
    finish = fake_talkme.calls_to("finish")[0]
    assert finish.body == {"code": "HUMAN_PLEASE"}
    assert finish.headers["X-Token"] == fake_talkme.calls_to("send")[0].headers["X-Token"]
    resp = await client.get("/webhook/talkme/stats", headers={"X-API-Key": ADMIN_KEY})
    assert (await resp.json())["since_start"]["handovers"] == 1


async def test_the_transfer_tool_is_offered_to_talkme_messages_only(talkme_app, fake_talkme):
    agent = ScriptedAgent("ok")
    client = await talkme_app(agent)
    await client.post("/webhook/talkme", json=webhook_body("hi"))
    await eventually(lambda: len(agent.requests) == 1)
    (tool,) = agent.requests[0].tools
    assert tool.name == "transfer_to_operator"
    result = await tool.handler({"reason": "asked for a person"}, agent.requests[0].message)
    assert result.action == "handover" and "operator" in result.content

    await ask(gateway_of(client), "hello", channel="http")
    assert agent.requests[1].tools == []


async def test_success_false_with_a_client_error_is_not_retried(talkme_app, fake_talkme, tmp_path):
    fake_talkme.script("send", talkme_error("INVALID_TOKEN", "token expired"))
    client = await talkme_app(ScriptedAgent("hello"))
    await client.post("/webhook/talkme", json=webhook_body("hi"))
    await eventually(async_equals(lambda: outbox_rows(client), [("failed", 1)]))
    assert len(fake_talkme.calls_to("send")) == 1
    assert "INVALID_TOKEN" in read_log(tmp_path)
    resp = await client.get("/webhook/talkme/stats", headers={"X-API-Key": ADMIN_KEY})
    stats = await resp.json()
    assert stats["since_start"]["permanent_failures"] == 1
    assert stats["totals"]["failed"] == 1


async def test_a_4xx_is_permanent(talkme_app, fake_talkme):
    fake_talkme.script("send", Scripted(403, {"success": False, "error": {"code": "FORBIDDEN"}}))
    client = await talkme_app(ScriptedAgent("hello"))
    await client.post("/webhook/talkme", json=webhook_body("hi"))
    await eventually(async_equals(lambda: outbox_rows(client), [("failed", 1)]))
    assert len(fake_talkme.calls_to("send")) == 1


async def test_500_429_and_server_side_errors_are_retried_honouring_retry_after(
    talkme_app, fake_talkme
):
    fake_talkme.script(
        "send",
        Scripted(500),
        talkme_error("INTERNAL_ERROR", "try later"),
        Scripted(429, headers={"Retry-After": "1"}),
    )
    client = await talkme_app(ScriptedAgent("hello"), core={"delivery_max_delay_s": 5.0})
    await client.post("/webhook/talkme", json=webhook_body("hi"))
    await fake_talkme.wait_until(lambda: fake_talkme.sent_texts() == ["hello"])
    calls = fake_talkme.calls_to("send")
    assert [call.status for call in calls] == [500, 200, 429, 200]
    assert calls[3].at - calls[2].at >= 0.9  # waited as the 429 asked
    await eventually(async_equals(lambda: outbox_rows(client), [("delivered", 4)]))
    resp = await client.get("/webhook/talkme/stats", headers={"X-API-Key": ADMIN_KEY})
    stats = await resp.json()
    assert stats["since_start"]["retries"] == 3
    assert stats["totals"]["retries"] == 3


async def test_retries_stop_at_the_limit(talkme_app, fake_talkme):
    fake_talkme.script("send", *[Scripted(503)] * 10)
    client = await talkme_app(ScriptedAgent("hello"), core={"delivery_max_attempts": 3})
    await client.post("/webhook/talkme", json=webhook_body("hi"))
    await eventually(async_equals(lambda: outbox_rows(client), [("failed", 3)]))
    assert len(fake_talkme.calls_to("send")) == 3


async def test_a_retry_resumes_after_the_parts_talkme_confirmed(talkme_app, fake_talkme):
    reply = "First part here. " * 3 + "Second part here. " * 3 + "Third part here. " * 3
    fake_talkme.script("send", Scripted(), Scripted(502))
    fake_talkme.script("finish", Scripted(500))
    agent = ScriptedAgent(reply, actions=("handover",))
    client = await talkme_app(agent, talkme={"max_message_chars": 60})
    await client.post("/webhook/talkme", json=webhook_body("hi"))
    await eventually(async_equals(lambda: outbox_rows(client), [("delivered", 3)]))
    texts = fake_talkme.sent_texts()
    assert "".join(texts) == reply and len(texts) == len(set(texts))
    assert [call.status for call in fake_talkme.calls_to("send")] == [200, 502, 200, 200]
    assert [call.status for call in fake_talkme.calls_to("finish")] == [500, 200]


async def test_api_down_then_back_delivers_everything_in_order_once(talkme_app, fake_talkme):
    client = await talkme_app(
        ScriptedAgent(lambda request: f"re: {request.message.text}"),
        core={"delivery_max_attempts": 100, "delivery_base_delay_s": 0.05},
    )
    await fake_talkme.stop()
    for n in range(3):
        body = webhook_body(f"a{n}", client_id="ann", message_id=f"a{n}")
        assert (await client.post("/webhook/talkme", json=body)).status == 200
    body = webhook_body("b0", client_id="bob", message_id="b0")
    assert (await client.post("/webhook/talkme", json=body)).status == 200

    gateway = gateway_of(client)
    await eventually(lambda: gateway._outbox.retries >= 3)
    health = await (await client.get("/webhook/talkme/health")).json()
    assert health["api"]["reachable"] is False
    assert health["pending_deliveries"] >= 1

    await fake_talkme.start()  # back, on the same port
    await eventually(lambda: delivered_count(client))
    await eventually(async_equals(lambda: delivered_count(client), 4))
    texts = fake_talkme.sent_texts()
    assert [t for t in texts if t.startswith("re: a")] == ["re: a0", "re: a1", "re: a2"]
    assert sorted(texts) == ["re: a0", "re: a1", "re: a2", "re: b0"]
    health = await (await client.get("/webhook/talkme/health")).json()
    assert health["api"]["reachable"] is True and health["queue_depth"] == 0


async def test_test_mode_sends_nothing_but_logs_and_counts(talkme_app, fake_talkme, tmp_path):
    agent = ScriptedAgent("Hello there.", actions=("handover",))
    client = await talkme_app(agent, talkme={"test_mode": True})
    await client.post("/webhook/talkme", json=webhook_body("hi"))
    await eventually(lambda: delivered_count(client))
    assert fake_talkme.calls == []
    log = read_log(tmp_path)
    assert "would call customBot/send" in log and "would call customBot/finish" in log
    assert "would call customBot/simulateTyping" in log
    resp = await client.get("/webhook/talkme/stats", headers={"X-API-Key": ADMIN_KEY})
    stats = await resp.json()
    assert stats["test_mode"] is True
    assert stats["since_start"]["test_mode_calls"] == 3
    assert stats["since_start"]["messages_sent"] == 0


async def test_a_slow_typing_call_does_not_hold_the_reply(talkme_app, fake_talkme):
    fake_talkme.script("simulateTyping", Scripted(delay=3.0))
    client = await talkme_app(ScriptedAgent("ok"), talkme={"typing_wait_s": 0.1})
    await client.post("/webhook/talkme", json=webhook_body("hi"))
    await fake_talkme.wait_until(lambda: fake_talkme.sent_texts() == ["ok"], timeout=2.0)


async def test_a_failing_typing_call_is_not_retried(talkme_app, fake_talkme):
    fake_talkme.script("simulateTyping", Scripted(500))
    client = await talkme_app(ScriptedAgent("ok"))
    await client.post("/webhook/talkme", json=webhook_body("hi"))
    await eventually(lambda: delivered_count(client))
    assert len(fake_talkme.calls_to("simulateTyping")) == 1
    assert fake_talkme.sent_texts() == ["ok"]


async def test_when_the_agent_fails_the_visitor_gets_the_fallback_text(talkme_app, fake_talkme):
    client = await talkme_app(ScriptedAgent(RuntimeError("model down")))
    await client.post("/webhook/talkme", json=webhook_body("hi"))
    fallback = gateway_of(client).settings.fallback_text
    await fake_talkme.wait_until(lambda: fake_talkme.sent_texts() == [fallback])


def async_equals(get, expected):
    """A condition for :func:`eventually`: ``await get() == expected``."""

    async def check() -> bool:
        return await get() == expected

    return check
