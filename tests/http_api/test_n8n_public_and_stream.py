"""``/api/n8n/chat`` with a public key (the session id binds the visitor) and the
widget's streaming mode (``Accept: text/plain``: newline-delimited JSON chunks)."""

from __future__ import annotations

import json
import uuid

from core.testing import ScriptedAgent

SITE = "https://shop.example.com"
PUBLIC = {"X-API-Key": "pk-1", "Origin": SITE}
API = {"X-API-Key": "api-1"}
STREAM = {"Accept": "text/plain"}
CORE = {"api_keys": "api-1", "public_keys": "pk-1", "public_origins": SITE}


def send(session: str, text: str = "hi") -> dict[str, str]:
    return {"action": "sendMessage", "sessionId": session, "chatInput": text}


def load(session: str) -> dict[str, str]:
    return {"action": "loadPreviousSession", "sessionId": session}


async def test_a_public_key_needs_a_random_session_id(eneca_app):
    client = await eneca_app(["http_api"], agent=ScriptedAgent(), settings={"core": CORE})
    for weak in ("1", "session", "aaaaaaaaaaaaaaaaaaaa", "1234567812345678", "talkme:someone-xyz1"):
        for body in (send(weak), load(weak)):
            response = await client.post("/api/n8n/chat", json=body, headers=PUBLIC)
            assert response.status == 422, weak
            assert (await response.json())["error"]["code"] == "weak_session_id"
    session = str(uuid.uuid4())
    response = await client.post("/api/n8n/chat", json=send(session), headers=PUBLIC)
    assert (await response.json()) == {"output": "echo: hi"}
    history = await client.post("/api/n8n/chat", json=load(session), headers=PUBLIC)
    assert [m["kwargs"]["content"] for m in (await history.json())["data"]] == ["hi", "echo: hi"]
    fresh = await client.post("/api/n8n/chat", json=load(str(uuid.uuid4())), headers=PUBLIC)
    assert (await fresh.json()) == {"data": []}


async def test_a_public_session_cannot_take_over_an_existing_thread(eneca_app):
    client = await eneca_app(["http_api"], agent=ScriptedAgent(), settings={"core": CORE})
    taken = "api-thread-0123456789abcdef"
    await client.post(
        "/api/chat", json={"message": "the back end's", "thread_id": taken}, headers=API
    )
    for body in (send(taken), load(taken)):
        response = await client.post("/api/n8n/chat", json=body, headers=PUBLIC)
        assert response.status == 404
        assert "back end" not in await response.text()


async def test_streaming_mode_sends_begin_items_and_end_as_the_model_writes(eneca_app):
    agent = ScriptedAgent(["Streamed, piece by piece."], chunk_size=5, chunk_delay=0.01)
    client = await eneca_app(["http_api"], agent=agent, settings={"core": CORE})
    session = str(uuid.uuid4())
    response = await client.post(
        "/api/n8n/chat", json=send(session, "stream please"), headers={**PUBLIC, **STREAM}
    )
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    assert response.headers["Access-Control-Allow-Origin"] == SITE
    lines = [json.loads(line) for line in (await response.text()).splitlines() if line]
    kinds = [line["type"] for line in lines]
    assert kinds[0] == "begin" and kinds[-1] == "end"
    assert kinds.count("item") == 5
    assert "".join(line["content"] for line in lines if line["type"] == "item") == (
        "Streamed, piece by piece."
    )
    assert all(line["metadata"]["nodeId"] and line["metadata"]["runIndex"] == 0 for line in lines)
    assert agent.requests[-1].message.stream is True
    history = await client.post("/api/n8n/chat", json=load(session), headers=PUBLIC)
    assert [m["kwargs"]["content"] for m in (await history.json())["data"]] == [
        "stream please",
        "Streamed, piece by piece.",
    ]


async def test_streaming_mode_reports_a_failed_reply_as_an_error_chunk(eneca_app):
    client = await eneca_app(
        ["http_api"], agent=ScriptedAgent([RuntimeError("model down")]), settings={"core": CORE}
    )
    response = await client.post(
        "/api/n8n/chat", json=send(str(uuid.uuid4())), headers={**API, **STREAM}
    )
    lines = [json.loads(line) for line in (await response.text()).splitlines() if line]
    assert [line["type"] for line in lines] == ["begin", "error"]
    assert lines[-1]["content"]


async def test_the_plain_mode_is_unchanged_for_other_accept_headers(eneca_app):
    client = await eneca_app(["http_api"], agent=ScriptedAgent(), settings={"core": CORE})
    n8n_node = "application/json,text/html,application/xhtml+xml,text/*;q=0.9,*/*;q=0.7"
    for accept in ("*/*", "application/json", n8n_node, "text/plain, application/json"):
        response = await client.post(
            "/api/n8n/chat", json=send("s-1"), headers={**API, "Accept": accept}
        )
        assert await response.json() == {"output": "echo: hi"}, accept
