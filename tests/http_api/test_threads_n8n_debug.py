"""Thread history and clearing, the n8n chat widget endpoint, /api/debug, /examples/chat."""

from core import hookimpl
from core.testing import ScriptedAgent
from plugins.http_api import HttpApiPlugin

KEY = {"X-API-Key": "k1"}


async def say(client, thread, text):
    resp = await client.post("/api/chat", json={"message": text, "thread_id": thread}, headers=KEY)
    assert resp.status == 200


async def test_thread_history_oldest_first_with_a_limit(start_api):
    client = await start_api()
    await say(client, "h", "one")
    await say(client, "h", "two")
    body = await (await client.get("/api/threads/h/messages", headers=KEY)).json()
    assert body["thread_id"] == "h"
    assert [(m["role"], m["content"]) for m in body["messages"]] == [
        ("user", "one"),
        ("assistant", "echo: one"),
        ("user", "two"),
        ("assistant", "echo: two"),
    ]
    assert body["messages"][0]["channel"] == "http_api"
    assert body["messages"][0]["created_at"] > 0
    newest = await (await client.get("/api/threads/h/messages?limit=1", headers=KEY)).json()
    assert [m["content"] for m in newest["messages"]] == ["echo: two"]
    unknown = await (await client.get("/api/threads/none/messages", headers=KEY)).json()
    assert unknown["messages"] == []


async def test_a_bad_limit_is_422(start_api):
    client = await start_api()
    for bad in ("0", "abc", "100000"):
        resp = await client.get(f"/api/threads/h/messages?limit={bad}", headers=KEY)
        assert resp.status == 422
        assert "limit" in (await resp.json())["error"]["message"]


class ClearedRecorder:
    def __init__(self):
        self.events = []

    @hookimpl
    def session_cleared(self, event):
        self.events.append(event)


async def test_delete_forgets_the_thread_and_fires_session_cleared(eneca_app):
    agent = ScriptedAgent()
    recorder = ClearedRecorder()
    client = await eneca_app(
        plugins=["http_api"],
        agent=agent,
        extra={"recorder": recorder},
        settings={"core": {"api_keys": "k1"}},
    )
    await say(client, "gone", "remember me")
    resp = await client.delete("/api/threads/gone", headers=KEY)
    assert resp.status == 200
    assert await resp.json() == {"success": True, "thread_id": "gone", "removed": 2}
    assert [e.conversation_id for e in recorder.events] == ["gone"]
    body = await (await client.get("/api/threads/gone/messages", headers=KEY)).json()
    assert body["messages"] == []
    await say(client, "gone", "fresh")
    assert [t.text for t in agent.requests[-1].history] == ["fresh"]


async def test_n8n_widget_send_message_and_load_previous_session(start_api):
    agent = ScriptedAgent()
    client = await start_api(agent)
    resp = await client.post(
        "/api/n8n/chat",
        json={
            "action": "sendMessage",
            "sessionId": "w1",
            "chatInput": "hello",
            "metadata": {"page": "/pricing"},
        },
        headers=KEY,
    )
    assert resp.status == 200
    assert await resp.json() == {"output": "echo: hello"}
    assert agent.requests[0].message.conversation_id == "w1"
    assert dict(agent.requests[0].message.metadata) == {"page": "/pricing"}
    resp = await client.post(
        "/api/n8n/chat", json={"action": "loadPreviousSession", "sessionId": "w1"}, headers=KEY
    )
    data = (await resp.json())["data"]
    assert [(m["id"][-1], m["kwargs"]["content"]) for m in data] == [
        ("HumanMessage", "hello"),
        ("AIMessage", "echo: hello"),
    ]
    assert all(m["lc"] == 1 and m["type"] == "constructor" for m in data)
    # the widget's rule: an id containing "HumanMessage" is the user's
    assert ["HumanMessage" in m["id"] for m in data] == [True, False]
    fresh = await client.post(
        "/api/n8n/chat", json={"action": "loadPreviousSession", "sessionId": "new"}, headers=KEY
    )
    assert await fresh.json() == {"data": []}


async def test_n8n_widget_errors(start_api):
    client = await start_api(max_message_chars=5)
    cases = [
        ({"action": "sendMessage", "sessionId": "w"}, 422, "chatInput"),
        ({"action": "sendMessage", "sessionId": "w", "chatInput": " "}, 422, "chatInput"),
        ({"action": "sendMessage", "chatInput": "hi"}, 422, "sessionId"),
        ({"action": "explode", "sessionId": "w"}, 422, "action"),
        ({"action": "sendMessage", "sessionId": "w", "chatInput": "toolong"}, 413, "chatInput"),
    ]
    for body, status, field in cases:
        resp = await client.post("/api/n8n/chat", json=body, headers=KEY)
        assert resp.status == status, body
        assert field in (await resp.json())["error"]["message"], body


async def test_debug_is_absent_unless_enabled(start_api):
    client = await start_api()
    assert (await client.post("/api/debug", json={}, headers=KEY)).status == 404


async def test_debug_echoes_with_secrets_masked_and_logs(start_api, app_log):
    client = await start_api(debug_endpoint=True)
    resp = await client.post(
        "/api/debug?x=1&token=abc",
        json={"hello": "world", "nested": {"api_key": "sk-body-secret"}},
        headers={
            "X-API-Key": "adm1",
            "Cookie": "session=cookie-secret",
            "X-Webhook-Token": "hook-secret",
            "X-Trace": "visible",
        },
    )
    assert resp.status == 200
    echo = await resp.json()
    assert echo["body"] == {"hello": "world", "nested": {"api_key": "***"}}
    assert echo["query"] == {"x": "1", "token": "***"}
    headers = echo["headers"]
    assert headers["X-API-Key"] == headers["Cookie"] == headers["X-Webhook-Token"] == "***"
    assert headers["X-Trace"] == "visible"
    assert echo["method"] == "POST" and echo["path"] == "/api/debug"
    text = await resp.text()
    for secret in ("adm1", "cookie-secret", "hook-secret", "sk-body-secret", "abc"):
        assert f'"{secret}"' not in text and f"={secret}" not in text
    log = app_log()
    assert "debug request" in log and "visible" in log
    assert "hook-secret" not in log and "sk-body-secret" not in log


async def test_debug_masks_bearer_and_needs_a_key_even_in_open_mode(eneca_app, start_api):
    client = await start_api(debug_endpoint=True)
    resp = await client.post("/api/debug", json=[1], headers={"Authorization": "Bearer adm2"})
    echo = await resp.json()
    assert echo["headers"]["Authorization"] == "Bearer ***"
    assert echo["body"] == [1]
    assert (await client.post("/api/debug", json={})).status == 401
    open_client = await eneca_app(
        plugins=["http_api"], agent=ScriptedAgent(), settings={"http_api": {"debug_endpoint": True}}
    )
    resp = await open_client.post("/api/debug", json={})
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "admin_disabled"


async def test_examples_page_is_served_only_when_enabled(start_api, tmp_path):
    page = tmp_path / "site"
    page.mkdir()
    (page / "index.html").write_text("<!doctype html><title>chat</title>")
    plugin = HttpApiPlugin(examples_dir=page)
    client = await start_api(extra={"http_api": plugin}, serve_examples=True)
    resp = await client.get("/examples/chat")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    assert "<title>chat</title>" in await resp.text()
    off = await start_api()
    assert (await off.get("/examples/chat")).status == 404


async def test_examples_page_missing_is_a_json_404(start_api, tmp_path):
    plugin = HttpApiPlugin(examples_dir=tmp_path / "absent")
    client = await start_api(extra={"http_api": plugin}, serve_examples=True)
    resp = await client.get("/examples/chat")
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "examples_missing"


async def test_the_repository_example_is_found_by_default():
    from plugins.http_api.examples import DEFAULT_EXAMPLES_DIR

    assert DEFAULT_EXAMPLES_DIR.name == "vanilla-js"
    assert DEFAULT_EXAMPLES_DIR.parent.parent.joinpath("pyproject.toml").is_file()
