"""POST /api/chat: replies, threads, memory and every error a client can cause."""

import asyncio
import json

from core.testing import ScriptedAgent, gateway_of

KEY = {"X-API-Key": "k1"}


async def chat(client, body, headers=KEY, **kwargs):
    return await client.post("/api/chat", json=body, headers=headers, **kwargs)


async def test_reply_carries_the_thread_and_ids(start_api):
    agent = ScriptedAgent()
    client = await start_api(agent)
    resp = await chat(
        client,
        {"message": "hi", "user_id": "u1", "thread_id": "t1", "metadata": {"page": "home"}},
    )
    assert resp.status == 200
    assert await resp.json() == {
        "response": "echo: hi",
        "thread_id": "t1",
        "user_id": "u1",
        "chat_id": None,
        "success": True,
        "error": None,
    }
    message = agent.requests[0].message
    assert (message.conversation_id, message.channel, message.user_id) == ("t1", "http_api", "u1")
    assert dict(message.metadata) == {"page": "home"}
    assert resp.headers["X-Request-ID"]


async def test_memory_across_three_turns_through_the_api(start_api):
    agent = ScriptedAgent()
    client = await start_api(agent)
    for text in ("one", "two", "three"):
        resp = await chat(client, {"message": text, "thread_id": "mem"})
        assert (await resp.json())["response"] == f"echo: {text}"
    history = [(turn.role, turn.text) for turn in agent.requests[-1].history]
    assert history == [
        ("user", "one"),
        ("assistant", "echo: one"),
        ("user", "two"),
        ("assistant", "echo: two"),
        ("user", "three"),
    ]


async def test_without_a_thread_a_new_one_is_made_and_can_be_continued(start_api):
    agent = ScriptedAgent()
    client = await start_api(agent)
    first = await (await chat(client, {"message": "hello"})).json()
    other = await (await chat(client, {"message": "hello"})).json()
    assert first["thread_id"] and first["thread_id"] != other["thread_id"]
    await chat(client, {"message": "more", "thread_id": first["thread_id"]})
    assert [t.text for t in agent.requests[-1].history] == ["hello", "echo: hello", "more"]


async def test_chat_id_is_the_thread_when_no_thread_id(start_api):
    agent = ScriptedAgent()
    client = await start_api(agent)
    body = await (await chat(client, {"message": "a", "chat_id": 42})).json()
    assert body["thread_id"] == "42"
    assert body["chat_id"] == "42"
    assert agent.requests[0].message.chat_id == "42"


async def test_a_fallback_reply_is_200_with_success_false_and_the_error(start_api):
    client = await start_api(ScriptedAgent(RuntimeError("model down")))
    resp = await chat(client, {"message": "hi", "thread_id": "f"})
    assert resp.status == 200
    body = await resp.json()
    assert body["success"] is False
    assert body["error"]["code"] == "agent_error"
    assert body["response"] == gateway_of(client).settings.fallback_text


async def error_of(resp, status):
    assert resp.status == status, await resp.text()
    body = await resp.json()
    assert body["success"] is False
    return body["error"]


async def test_malformed_json_is_400(start_api):
    client = await start_api()
    resp = await client.post(
        "/api/chat", data=b'{"message": ', headers={**KEY, "Content-Type": "application/json"}
    )
    assert (await error_of(resp, 400))["code"] == "invalid_json"


async def test_missing_message_is_422_naming_the_field(start_api):
    client = await start_api()
    error = await error_of(await chat(client, {"user_id": "u"}), 422)
    assert error["code"] == "validation_error"
    assert "message" in error["message"]


async def test_wrong_types_are_422_naming_the_field(start_api):
    client = await start_api()
    error = await error_of(await chat(client, {"message": 123}), 422)
    assert "message" in error["message"]
    error = await error_of(await chat(client, {"message": "x", "metadata": "nope"}), 422)
    assert "metadata" in error["message"]
    error = await error_of(await chat(client, [1, 2]), 422)
    assert "object" in error["message"]


async def test_empty_or_whitespace_message_is_422(start_api):
    client = await start_api()
    for text in ("", "   \n\t"):
        error = await error_of(await chat(client, {"message": text}), 422)
        assert "message" in error["message"]


async def test_message_over_the_limit_is_413(start_api):
    client = await start_api(max_message_chars=10)
    assert (await chat(client, {"message": "x" * 10})).status == 200
    error = await error_of(await chat(client, {"message": "x" * 11}), 413)
    assert error["code"] == "message_too_long"


async def test_body_over_max_body_bytes_is_413(start_api):
    client = await start_api(core={"max_body_bytes": 2048})
    resp = await chat(client, {"message": "x" * 4000})
    assert (await error_of(resp, 413))["code"] == "payload_too_large"


async def test_wrong_content_type_is_415(start_api):
    client = await start_api()
    resp = await client.post(
        "/api/chat",
        data=json.dumps({"message": "hi"}),
        headers={**KEY, "Content-Type": "text/plain"},
    )
    assert (await error_of(resp, 415))["code"] == "unsupported_media_type"


async def test_unknown_route_is_404_and_wrong_method_405(start_api):
    client = await start_api()
    assert (await error_of(await client.get("/api/nope", headers=KEY), 404))["code"] == (
        "not_found"
    )
    resp = await client.get("/api/chat", headers=KEY)
    assert (await error_of(resp, 405))["code"] == "method_not_allowed"
    assert "POST" in resp.headers["Allow"]


async def test_unexpected_error_is_500_with_the_request_id_and_no_traceback(
    eneca_app, app_log, broken_store
):
    client = await eneca_app(
        plugins=["http_api"],
        agent=ScriptedAgent(),
        store=broken_store,
        settings={"core": {"api_keys": "k1"}},
    )
    resp = await chat(client, {"message": "hi"}, headers={**KEY, "X-Request-ID": "req-42"})
    error = await error_of(resp, 500)
    assert error["code"] == "internal_error"
    assert "req-42" in error["message"]
    text = await resp.text()
    assert "disk on fire" not in text and "Traceback" not in text
    assert "req-42" in app_log()


async def test_a_full_bus_is_503_with_retry_after(start_api):
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(request):
        started.set()
        await release.wait()
        return "done"

    client = await start_api(
        ScriptedAgent(slow), core={"bus_max_in_flight": 1, "bus_full_policy": "reject"}
    )
    first = asyncio.create_task(chat(client, {"message": "slow", "thread_id": "a"}))
    await started.wait()
    resp = await chat(client, {"message": "next", "thread_id": "b"})
    assert (await error_of(resp, 503))["code"] == "busy"
    assert resp.headers["Retry-After"] == "1"
    release.set()
    assert (await (await first).json())["response"] == "done"


async def test_a_closed_bus_is_503(start_api):
    client = await start_api()
    await gateway_of(client)._bus.drain(0)
    resp = await chat(client, {"message": "hi"})
    assert (await error_of(resp, 503))["code"] == "shutting_down"
