"""Idempotency-Key: a retried request gets the first reply instead of a second answer."""

import asyncio

from core.testing import ScriptedAgent

KEY = {"X-API-Key": "k1"}


def with_key(key):
    return {**KEY, "Idempotency-Key": key}


async def post(client, body, key, path="/api/chat"):
    return await client.post(path, json=body, headers=with_key(key))


async def test_the_same_key_on_the_same_thread_answers_once(start_api):
    agent = ScriptedAgent(["first", "second"])
    client = await start_api(agent)
    body = {"message": "hi", "thread_id": "t"}
    one = await post(client, body, "abc")
    two = await post(client, body, "abc")
    assert await one.json() == await two.json()
    assert (await two.json())["response"] == "first"
    assert two.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in one.headers
    assert len(agent.requests) == 1
    history = await (await client.get("/api/threads/t/messages", headers=KEY)).json()
    assert len(history["messages"]) == 2  # remembered once


async def test_other_keys_threads_or_no_key_answer_again(start_api):
    agent = ScriptedAgent()
    client = await start_api(agent)
    await post(client, {"message": "hi", "thread_id": "t"}, "abc")
    await post(client, {"message": "hi", "thread_id": "t"}, "other")
    await post(client, {"message": "hi", "thread_id": "u"}, "abc")
    await client.post("/api/chat", json={"message": "hi", "thread_id": "t"}, headers=KEY)
    assert len(agent.requests) == 4


async def test_a_retry_without_a_thread_gets_the_same_new_thread(start_api):
    agent = ScriptedAgent()
    client = await start_api(agent)
    one = await (await post(client, {"message": "hi"}, "n8n-run-1")).json()
    two = await (await post(client, {"message": "hi"}, "n8n-run-1")).json()
    assert one["thread_id"] == two["thread_id"]
    assert len(agent.requests) == 1


async def test_a_duplicate_while_the_first_is_in_flight_waits_for_the_same_reply(start_api):
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(request):
        started.set()
        await release.wait()
        return "the one reply"

    agent = ScriptedAgent(slow)
    client = await start_api(agent)
    body = {"message": "hi", "thread_id": "t"}
    first = asyncio.create_task(post(client, body, "k"))
    await started.wait()
    second = asyncio.create_task(post(client, body, "k"))
    await asyncio.sleep(0.05)  # let the duplicate arrive while the first is in flight
    assert not second.done()
    release.set()
    one, two = await first, await second
    assert (await one.json())["response"] == (await two.json())["response"] == "the one reply"
    assert len(agent.requests) == 1


async def test_the_same_key_for_a_different_message_is_422(start_api):
    client = await start_api()
    await post(client, {"message": "hi", "thread_id": "t"}, "abc")
    resp = await post(client, {"message": "something else", "thread_id": "t"}, "abc")
    assert resp.status == 422
    assert (await resp.json())["error"]["code"] == "idempotency_key_reused"


async def test_a_failed_reply_is_not_kept_so_a_retry_can_succeed(start_api):
    agent = ScriptedAgent([RuntimeError("model down"), "recovered"])
    client = await start_api(agent)
    body = {"message": "hi", "thread_id": "t"}
    assert (await (await post(client, body, "r")).json())["success"] is False
    again = await (await post(client, body, "r")).json()
    assert again["success"] is True and again["response"] == "recovered"


async def test_clearing_the_thread_forgets_its_keys(start_api):
    agent = ScriptedAgent(["before", "after"])
    client = await start_api(agent)
    body = {"message": "hi", "thread_id": "t"}
    await post(client, body, "abc")
    await client.delete("/api/threads/t", headers=KEY)
    assert (await (await post(client, body, "abc")).json())["response"] == "after"


async def test_keys_expire_after_the_ttl(start_api):
    agent = ScriptedAgent()
    client = await start_api(agent, idempotency_ttl_s=0.05)
    body = {"message": "hi", "thread_id": "t"}
    await post(client, body, "a")
    await asyncio.sleep(0.1)
    resp = await post(client, body, "a")
    assert "Idempotent-Replayed" not in resp.headers
    assert len(agent.requests) == 2


async def test_the_oldest_keys_are_dropped_beyond_the_bound(start_api):
    agent = ScriptedAgent()
    client = await start_api(agent, idempotency_max_keys=2)
    body = {"message": "hi", "thread_id": "t"}
    for key in ("a", "b", "c"):
        await post(client, body, key)
    assert "Idempotent-Replayed" in (await post(client, body, "c")).headers
    assert "Idempotent-Replayed" not in (await post(client, body, "a")).headers
    assert len(agent.requests) == 4
    health = await (await client.get("/health")).json()
    assert health["plugins"]["http_api"]["idempotency_keys"] == 2


async def test_a_too_long_key_is_400(start_api):
    client = await start_api()
    resp = await post(client, {"message": "hi"}, "x" * 500)
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "invalid_idempotency_key"


async def test_the_n8n_widget_endpoint_honours_the_key_too(start_api):
    agent = ScriptedAgent(["first", "second"])
    client = await start_api(agent)
    body = {"action": "sendMessage", "sessionId": "w", "chatInput": "hi"}
    one = await post(client, body, "k", path="/api/n8n/chat")
    two = await post(client, body, "k", path="/api/n8n/chat")
    assert await one.json() == await two.json() == {"output": "first"}
