"""The TalkMe webhook end to end: ack, typing, agent, send; duplicates; bad input; auth."""

from __future__ import annotations

import asyncio

import pytest

from core.testing import ScriptedAgent, gateway_of
from tests.support.talkme_helpers import (
    ADMIN_KEY,
    TOKEN,
    delivered_count,
    dumps,
    eventually,
    read_log,
    webhook_body,
)


async def test_round_trip_typing_then_agent_then_send_with_the_token(talkme_app, fake_talkme):
    agent = ScriptedAgent(lambda request: f"Hi {request.message.text}!")
    client = await talkme_app(agent, talkme={"typing_ttl_s": 7})

    resp = await client.post("/webhook/talkme", json=webhook_body("there", client_id="abc"))
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {"success": True, "status": "ok", "duplicate": False}

    await fake_talkme.wait_until(lambda: len(fake_talkme.confirmed("send")) == 1)
    typing, send = fake_talkme.calls
    assert typing.method == "simulateTyping" and typing.body == {"ttl": 7}
    assert send.method == "send" and send.body == {"content": {"text": "Hi there!"}}
    assert typing.headers["X-Token"] == TOKEN and send.headers["X-Token"] == TOKEN
    assert send.headers["Content-Type"].startswith("application/json")

    request = agent.requests[0]
    assert request.message.conversation_id == "talkme:abc"
    assert request.message.user_id == "abc"
    assert request.message.message_id == "1"
    assert request.message.chat_id == "1011"
    assert [tool.name for tool in request.tools] == ["transfer_to_operator"]
    kept = request.message.metadata["talkme"]
    assert kept["site"] == {"id": 123, "domain": "example.com"}
    assert kept["client"]["phone"] == "+100"
    await eventually(lambda: delivered_count(client))


async def test_unknown_fields_are_kept_in_metadata(talkme_app, fake_talkme):
    agent = ScriptedAgent("ok")
    client = await talkme_app(agent)
    body = webhook_body("hi", campaign={"utm": "spring"})
    body["client"]["vip"] = True
    body["message"]["attachments"] = ["https://files.example/a.png"]
    resp = await client.post("/webhook/talkme", json=body)
    assert resp.status == 200
    await eventually(lambda: len(agent.requests) == 1)
    kept = agent.requests[0].message.metadata["talkme"]
    assert kept["campaign"] == {"utm": "spring"}
    assert kept["client"]["vip"] is True
    assert kept["message"]["attachments"] == ["https://files.example/a.png"]


@pytest.mark.parametrize(
    ("client_fields", "expected"),
    [
        ({"clientId": "cid", "login": "lg", "searchId": 9}, "talkme:cid"),
        ({"login": "lg", "searchId": 9}, "talkme:lg"),
        ({"searchId": 9}, "talkme:9"),
    ],
)
async def test_the_conversation_is_the_visitor(talkme_app, fake_talkme, client_fields, expected):
    agent = ScriptedAgent("ok")
    client = await talkme_app(agent)
    body = webhook_body("hi", client_id=None)
    body["client"] = client_fields
    assert (await client.post("/webhook/talkme", json=body)).status == 200
    await eventually(lambda: len(agent.requests) == 1)
    assert agent.requests[0].message.conversation_id == expected


async def test_any_content_type_is_accepted_when_the_body_is_json(talkme_app, fake_talkme):
    client = await talkme_app(ScriptedAgent("ok"))
    resp = await client.post(
        "/webhook/talkme",
        data=dumps(webhook_body("hi")).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert resp.status == 200, await resp.text()
    await fake_talkme.wait_until(lambda: fake_talkme.sent_texts() == ["ok"])


async def test_a_redelivered_webhook_is_answered_once(talkme_app, fake_talkme):
    agent = ScriptedAgent(lambda request: f"re: {request.message.text}", delay=0.2)
    client = await talkme_app(agent)
    body = webhook_body("once", message_id=42)

    first, second = await asyncio.gather(
        client.post("/webhook/talkme", json=body), client.post("/webhook/talkme", json=body)
    )
    assert (first.status, second.status) == (200, 200)
    flags = sorted([(await first.json())["duplicate"], (await second.json())["duplicate"]])
    assert flags == [False, True]
    await fake_talkme.wait_until(lambda: fake_talkme.sent_texts() == ["re: once"])
    await eventually(lambda: delivered_count(client))

    again = await client.post("/webhook/talkme", json=body)  # after the reply went out
    assert again.status == 200 and (await again.json())["duplicate"] is True
    await asyncio.sleep(0.3)
    assert fake_talkme.sent_texts() == ["re: once"]
    assert len(agent.requests) == 1

    stats = await (
        await client.get("/webhook/talkme/stats", headers={"X-API-Key": ADMIN_KEY})
    ).json()
    assert stats["since_start"]["duplicates_ignored"] == 2
    assert stats["totals"]["duplicates"] == 2
    assert stats["totals"]["received"] == 1


async def test_without_a_provider_message_id_nothing_is_deduplicated(talkme_app, fake_talkme):
    agent = ScriptedAgent("ok")
    client = await talkme_app(agent)
    body = webhook_body("again", message_id=None)
    for _ in range(2):
        assert (await (await client.post("/webhook/talkme", json=body)).json())[
            "duplicate"
        ] is False
    await fake_talkme.wait_until(lambda: len(fake_talkme.sent_texts()) == 2)


BAD_BODIES = {
    "not json": b"token=abc&text=hello",
    "empty": b"",
    "json array": b'[{"token": "t"}]',
    "json string": b'"hello"',
    "missing token": dumps({"message": {"text": "hi"}, "client": {"clientId": "a"}}).encode(),
    "empty token": dumps(webhook_body("hi", token="  ")).encode(),
    "token not a string": dumps({**webhook_body("hi"), "token": 12345}).encode(),
    "missing message": dumps({"token": "tok-x", "client": {"clientId": "a"}}).encode(),
    "missing text": dumps({**webhook_body("hi"), "message": {}}).encode(),
    "empty text": dumps(webhook_body("")).encode(),
    "blank text": dumps(webhook_body(" \n ")).encode(),
    "text not a string": dumps({**webhook_body("hi"), "message": {"text": ["hi"]}}).encode(),
    "message not an object": dumps({**webhook_body("hi"), "message": "hi"}).encode(),
    "client id of a wrong type": dumps(
        {**webhook_body("hi"), "client": {"clientId": {"a": 1}}}
    ).encode(),
    "no visitor at all": dumps({"token": "tok-x", "message": {"text": "hi"}}).encode(),
    "message id of a wrong type": dumps(
        {**webhook_body("hi"), "originalOnlineChatMessage": {"id": [1]}}
    ).encode(),
}


async def test_odd_types_in_fields_not_needed_to_answer_are_kept(talkme_app, fake_talkme):
    agent = ScriptedAgent("ok")
    client = await talkme_app(agent)
    body = webhook_body("hi", site="example.com")
    body["client"].update(name=None, phone=79991234567)
    body["originalOnlineChatMessage"]["dialogId"] = {"odd": True}
    resp = await client.post("/webhook/talkme", json=body)
    assert resp.status == 200, await resp.text()
    await fake_talkme.wait_until(lambda: fake_talkme.sent_texts() == ["ok"])
    message = agent.requests[0].message
    assert message.chat_id is None
    assert message.metadata["talkme"]["client"]["phone"] == 79991234567
    assert message.metadata["talkme"]["site"] == "example.com"


@pytest.mark.parametrize("name", sorted(BAD_BODIES))
async def test_bad_payloads_answer_400_and_are_not_queued(talkme_app, fake_talkme, name):
    agent = ScriptedAgent("should not run")
    client = await talkme_app(agent)
    resp = await client.post(
        "/webhook/talkme", data=BAD_BODIES[name], headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400, await resp.text()
    body = await resp.json()
    assert body["success"] is False and body["error"]["code"] in ("invalid_json", "invalid_payload")
    await asyncio.sleep(0.05)
    totals = await gateway_of(client).delivery_stats("talkme")
    assert totals["received"] == 0
    assert agent.requests == [] and fake_talkme.calls == []


SECRET = "hook-secret-7d1f"


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/webhook/talkme", 403),
        ("/webhook/talkme/wrong-secret", 403),
        ("/webhook/talkme?secret=wrong-secret", 403),
        ("/webhook/talkme?secret=", 403),
        (f"/webhook/talkme/{SECRET}", 200),
        (f"/webhook/talkme?secret={SECRET}", 200),
    ],
)
async def test_the_webhook_secret_is_required_when_set(talkme_app, fake_talkme, path, status):
    agent = ScriptedAgent("ok")
    client = await talkme_app(agent, talkme={"webhook_secret": SECRET})
    resp = await client.post(path, json=webhook_body("hi"))
    assert resp.status == status, await resp.text()
    if status == 403:
        assert (await resp.json())["error"]["code"] == "forbidden"
        await asyncio.sleep(0.05)
        assert agent.requests == []
    else:
        await fake_talkme.wait_until(lambda: fake_talkme.sent_texts() == ["ok"])


async def test_the_secret_never_reaches_the_log(talkme_app, fake_talkme, tmp_path):
    client = await talkme_app(ScriptedAgent("ok"), talkme={"webhook_secret": SECRET})
    assert (await client.post(f"/webhook/talkme/{SECRET}", json=webhook_body("hi"))).status == 200
    await fake_talkme.wait_until(lambda: fake_talkme.sent_texts() == ["ok"])
    log = read_log(tmp_path)
    assert "/webhook/talkme/***" in log
    assert SECRET not in log


async def test_without_a_secret_the_plain_url_is_open_and_a_warning_is_logged(
    talkme_app, fake_talkme, tmp_path
):
    client = await talkme_app(ScriptedAgent("ok"))
    assert (await client.post("/webhook/talkme", json=webhook_body("hi"))).status == 200
    assert "TALKME_WEBHOOK_SECRET is not set" in read_log(tmp_path)


ADMIN_ROUTES = [
    ("GET", "/webhook/talkme/stats"),
    ("DELETE", "/webhook/talkme/session/visitor-1"),
    ("DELETE", "/webhook/talkme/sessions"),
]


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
async def test_admin_endpoints_need_the_key(talkme_app, fake_talkme, method, path):
    client = await talkme_app()
    resp = await client.request(method, path)
    assert resp.status == 401 and (await resp.json())["error"]["code"] == "missing_api_key"
    resp = await client.request(method, path, headers={"X-API-Key": "not-the-key"})
    assert resp.status == 403 and (await resp.json())["error"]["code"] == "invalid_api_key"
    resp = await client.request(method, path, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert resp.status == 200, await resp.text()


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
async def test_admin_endpoints_are_closed_when_no_keys_are_configured(
    talkme_app, fake_talkme, method, path
):
    client = await talkme_app(core={"admin_keys": []})
    resp = await client.request(method, path, headers={"X-API-Key": "anything"})
    assert resp.status == 403 and (await resp.json())["error"]["code"] == "admin_disabled"


async def test_deleting_a_session_forgets_the_visitor(talkme_app, fake_talkme):
    agent = ScriptedAgent(lambda request: f"turns seen: {len(request.history)}")
    client = await talkme_app(agent)
    gateway = gateway_of(client)
    admin = {"X-API-Key": ADMIN_KEY}
    await client.post("/webhook/talkme", json=webhook_body("one", client_id="v1", message_id=1))
    await client.post("/webhook/talkme", json=webhook_body("hey", client_id="v2", message_id=2))
    await fake_talkme.wait_until(lambda: len(fake_talkme.sent_texts()) == 2)
    assert await gateway.store.count_conversations("talkme") == 2

    resp = await client.delete("/webhook/talkme/session/v1", headers=admin)
    assert await resp.json() == {"success": True, "conversation_id": "talkme:v1", "removed": 2}
    assert await gateway.store.history("talkme:v1") == []
    assert len(await gateway.store.history("talkme:v2")) == 2

    await client.post("/webhook/talkme", json=webhook_body("two", client_id="v1", message_id=3))
    await fake_talkme.wait_until(lambda: len(fake_talkme.sent_texts()) == 3)
    assert fake_talkme.sent_texts()[-1] == "turns seen: 1"

    resp = await client.delete("/webhook/talkme/sessions", headers=admin)
    assert (await resp.json())["removed"] == 2
    assert await gateway.store.count_conversations("talkme") == 0


async def test_health_and_stats_report_the_channel(talkme_app, fake_talkme):
    client = await talkme_app(ScriptedAgent("ok"))
    health = await (await client.get("/webhook/talkme/health")).json()
    assert health["enabled"] is True and health["test_mode"] is False
    assert health["api"]["reachable"] is None
    assert health["queue_depth"] == 0

    await client.post("/webhook/talkme", json=webhook_body("hi"))
    await eventually(lambda: delivered_count(client))
    health = await (await client.get("/webhook/talkme/health")).json()
    assert health["api"]["reachable"] is True

    resp = await client.get("/webhook/talkme/stats", headers={"X-API-Key": ADMIN_KEY})
    stats = await resp.json()
    assert stats["since_start"]["received"] == 1
    assert stats["since_start"]["replies_sent"] == 1
    assert stats["since_start"]["typing_sent"] == 1
    assert stats["totals"]["delivered"] == 1
    assert stats["active_sessions"] == 1
    assert stats["webhook_to_delivered"]["samples"] == 1
    assert stats["webhook_to_delivered"]["p50_s"] >= 0

    gateway_health = await (await client.get("/health")).json()
    assert gateway_health["plugins"]["talkme"]["ok"] is True

    doc = await (await client.get("/openapi.json")).json()
    for path in (
        "/webhook/talkme",
        "/webhook/talkme/{secret}",
        "/webhook/talkme/health",
        "/webhook/talkme/stats",
        "/webhook/talkme/session/{user_id}",
        "/webhook/talkme/sessions",
    ):
        assert path in doc["paths"], path
    assert "TalkMeWebhook" in doc["components"]["schemas"]


async def test_tokens_never_appear_in_responses_or_logs(talkme_app, fake_talkme, tmp_path):
    client = await talkme_app(ScriptedAgent("ok"))
    seen = []
    resp = await client.post("/webhook/talkme", json=webhook_body("hi"))
    seen.append(await resp.text())
    resp = await client.post("/webhook/talkme", json=webhook_body("hi"))  # duplicate
    seen.append(await resp.text())
    bad = {**webhook_body("hi"), "message": {"text": 5}}
    resp = await client.post("/webhook/talkme", json=bad)
    assert resp.status == 400
    seen.append(await resp.text())
    await eventually(lambda: delivered_count(client))
    admin = {"X-API-Key": ADMIN_KEY}
    for path in (
        "/webhook/talkme/health",
        "/webhook/talkme/stats",
        "/health",
        "/openapi.json",
        "/",
    ):
        seen.append(await (await client.get(path, headers=admin)).text())
    seen.append(await (await client.delete("/webhook/talkme/sessions", headers=admin)).text())
    assert all(TOKEN not in text for text in seen)
    log = read_log(tmp_path)
    assert log and TOKEN not in log
    assert ADMIN_KEY not in log


async def test_a_visitor_over_the_rate_limit_gets_429_and_is_not_queued(talkme_app, fake_talkme):
    agent = ScriptedAgent("ok")
    client = await talkme_app(agent, core={"rate_limit_per_minute": 2})
    statuses = []
    for n in range(3):
        body = webhook_body(f"m{n}", client_id="chatty", message_id=f"c{n}")
        statuses.append((await client.post("/webhook/talkme", json=body)).status)
    other = webhook_body("hi", client_id="calm", message_id="calm-1")
    statuses.append((await client.post("/webhook/talkme", json=other)).status)
    assert statuses == [200, 200, 429, 200]
    await fake_talkme.wait_until(lambda: len(fake_talkme.sent_texts()) == 3)
    assert (await gateway_of(client).delivery_stats("talkme"))["received"] == 3


async def test_a_webhook_the_full_bus_refused_is_still_answered_once(talkme_app, fake_talkme):
    """Stored is kept: a webhook whose message was stored but found the bus full gets
    503 ``busy`` (the provider slows down), yet is answered, once. Its retry, here sent
    while the first request still waits for room (a provider that gave up waiting), is a
    duplicate; before, the waiting request then deleted the stored message when its wait
    ran out, so the retry's 200 acknowledged a message nobody would answer."""
    agent = ScriptedAgent(lambda request: f"re: {request.message.text}", delay=1.5)
    client = await talkme_app(
        agent,
        core={
            "bus_max_in_flight": 1,
            "bus_full_policy": "wait",
            "bus_publish_timeout_s": 0.6,
        },
    )
    first = await client.post("/webhook/talkme", json=webhook_body("first", client_id="a"))
    assert first.status == 200  # holds the bus's only slot for 1.5 s
    body = webhook_body("second", client_id="b", message_id=2)
    waiting = asyncio.ensure_future(client.post("/webhook/talkme", json=body))
    await asyncio.sleep(0.2)
    retry = await client.post("/webhook/talkme", json=body)
    assert retry.status == 200 and (await retry.json())["duplicate"] is True
    refused = await waiting
    assert refused.status == 503 and (await refused.json())["error"]["code"] == "busy"
    await fake_talkme.wait_until(
        lambda: sorted(fake_talkme.sent_texts()) == ["re: first", "re: second"]
    )
    await asyncio.sleep(0.3)
    assert sorted(fake_talkme.sent_texts()) == ["re: first", "re: second"]
    assert [request.message.text for request in agent.requests].count("second") == 1
