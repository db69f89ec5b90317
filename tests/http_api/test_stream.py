"""POST /api/chat/stream, read with a real SSE client (httpx-sse), not string matching."""

import asyncio
import json

import httpx
from httpx_sse import aconnect_sse

from core.testing import ScriptedAgent

KEY = {"X-API-Key": "k1"}


class WatchedAgent(ScriptedAgent):
    """A ScriptedAgent that also signals when its generation is cancelled."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.was_cancelled = asyncio.Event()

    async def respond(self, request, on_chunk):
        try:
            return await super().respond(request, on_chunk)
        except asyncio.CancelledError:
            self.was_cancelled.set()
            raise


async def stream_events(client, body, headers=KEY):
    url = str(client.make_url("/api/chat/stream"))
    async with (
        httpx.AsyncClient(timeout=10) as http,
        aconnect_sse(http, "POST", url, json=body, headers=headers) as source,
    ):
        events = [json.loads(event.data) async for event in source.aiter_sse()]
        return source.response, events


async def test_metadata_then_chunks_in_order_then_done(start_api):
    text = "Hello streaming world"
    client = await start_api(ScriptedAgent(text, chunk_size=5))
    response, events = await stream_events(client, {"message": "hi", "thread_id": "s1"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    assert events[0] == {"type": "metadata", "thread_id": "s1", "user_id": None, "chat_id": None}
    chunks = [e["content"] for e in events[1:-1]]
    assert all(e["type"] == "chunk" for e in events[1:-1])
    assert chunks == ["Hello", " stre", "aming", " worl", "d"]
    assert events[-1] == {"type": "done", "response": text, "thread_id": "s1"}
    stored = await (await client.get("/api/threads/s1/messages", headers=KEY)).json()
    assert [m["content"] for m in stored["messages"]] == ["hi", text]


async def test_a_new_thread_is_announced_in_metadata_and_done(start_api):
    client = await start_api()
    _, events = await stream_events(client, {"message": "hi"})
    thread = events[0]["thread_id"]
    assert thread and events[-1]["thread_id"] == thread


async def test_a_fallback_reply_ends_with_an_error_event(start_api):
    client = await start_api(ScriptedAgent(RuntimeError("model down")))
    _, events = await stream_events(client, {"message": "hi", "thread_id": "e"})
    assert [e["type"] for e in events] == ["metadata", "error"]
    assert events[-1]["code"] == "agent_error"
    assert events[-1]["response"]  # the fallback text, to show


async def test_errors_before_the_stream_starts_are_plain_json(start_api):
    client = await start_api()
    url = str(client.make_url("/api/chat/stream"))
    async with httpx.AsyncClient(timeout=10) as http:
        resp = await http.post(url, json={"message": "  "}, headers=KEY)
        assert resp.status_code == 422
        assert resp.headers["content-type"].startswith("application/json")
        assert resp.json()["error"]["code"] == "validation_error"
        resp = await http.post(url, json={"message": "hi"})
        assert resp.status_code == 401


async def test_long_generations_get_comment_pings(start_api):
    agent = ScriptedAgent("abcdefgh", chunk_size=2, chunk_delay=0.05)
    client = await start_api(agent, stream_ping_s=0.015)
    resp = await client.post("/api/chat/stream", json={"message": "hi"}, headers=KEY)
    raw = await resp.text()
    comments = [line for line in raw.splitlines() if line.startswith(":")]
    assert comments and all(line.strip() == ": ping" for line in comments)
    # the pings do not disturb the events a client library sees
    _, events = await stream_events(client, {"message": "hi"})
    assert "".join(e.get("content", "") for e in events) == "abcdefgh"


async def test_a_client_leaving_mid_stream_cancels_the_generation(start_api):
    agent = WatchedAgent("x" * 200, chunk_size=1, chunk_delay=0.02)
    client = await start_api(agent)
    url = str(client.make_url("/api/chat/stream"))
    seen = []
    async with (
        httpx.AsyncClient(timeout=10) as http,
        aconnect_sse(http, "POST", url, json={"message": "hi"}, headers=KEY) as source,
    ):
        async for event in source.aiter_sse():
            seen.append(json.loads(event.data)["type"])
            if seen[-1] == "chunk":
                break  # leaving the block closes the connection
    await asyncio.wait_for(agent.was_cancelled.wait(), 5)
    assert agent.cancelled == 1


async def test_a_client_leaving_while_the_agent_is_silent_is_noticed_by_the_ping(start_api):
    agent = WatchedAgent("late", delay=30)
    client = await start_api(agent, stream_ping_s=0.05)
    url = str(client.make_url("/api/chat/stream"))
    async with (
        httpx.AsyncClient(timeout=10) as http,
        aconnect_sse(http, "POST", url, json={"message": "hi"}, headers=KEY) as source,
    ):
        async for event in source.aiter_sse():
            assert json.loads(event.data)["type"] == "metadata"
            break
    await asyncio.wait_for(agent.was_cancelled.wait(), 5)
    assert agent.cancelled == 1


async def test_an_unexpected_error_mid_stream_is_an_error_event_with_the_request_id(
    eneca_app, broken_store
):
    client = await eneca_app(
        plugins=["http_api"],
        agent=ScriptedAgent(),
        store=broken_store,
        settings={"core": {"api_keys": "k1"}},
    )
    _, events = await stream_events(
        client, {"message": "hi"}, headers={**KEY, "X-Request-ID": "req-7"}
    )
    assert [e["type"] for e in events] == ["metadata", "error"]
    assert events[-1]["code"] == "internal_error"
    assert events[-1]["request_id"] == "req-7"


async def test_a_storage_failure_mid_stream_ends_with_its_own_error_code(eneca_app):
    import sqlite3

    from core.testing import InMemoryConversationStore

    class FullDisk(InMemoryConversationStore):
        async def append(self, conversation_id, turn):
            raise sqlite3.OperationalError("database or disk is full")

    client = await eneca_app(["http_api"], agent=ScriptedAgent("never sent"), store=FullDisk())
    response, events = await stream_events(client, {"message": "hi"}, headers={})
    assert response.status_code == 200  # the stream had started
    assert events[-1]["type"] == "error"
    assert events[-1]["code"] == "storage_unavailable"
