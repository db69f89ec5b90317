"""The three kinds of key: what each may call, public origins, CORS, start-up rules."""

from __future__ import annotations

from typing import Any

import pytest

from core import ConfigError
from core.testing import ScriptedAgent

SITE = "https://shop.example.com"
ADMIN = {"X-API-Key": "admin-1"}
API = {"X-API-Key": "api-1"}
PUBLIC = {"X-API-Key": "pk-1", "Origin": SITE}
BODY = {"message": "hi"}


@pytest.fixture
def start_keys(eneca_app):
    async def start(**core: Any):
        settings = {
            "admin_keys": "admin-1",
            "api_keys": "api-1",
            "public_keys": "pk-1",
            "public_origins": SITE,
            **core,
        }
        return await eneca_app(
            ["http_api"],
            agent=ScriptedAgent(),
            settings={"core": settings, "http_api": {"debug_endpoint": True}},
        )

    return start


async def code_of(response) -> str:
    return (await response.json())["error"]["code"]


async def test_every_kind_of_key_can_chat_but_only_admin_keys_open_admin_routes(start_keys):
    client = await start_keys()
    for headers in (ADMIN, API, PUBLIC):
        assert (await client.post("/api/chat", json=BODY, headers=headers)).status == 200
    assert (await client.get("/metrics", headers=ADMIN)).status == 200
    for headers in (API, PUBLIC):
        response = await client.get("/metrics", headers=headers)
        assert response.status == 403
        assert await code_of(response) == "admin_key_required"
        response = await client.post("/api/debug", json={}, headers=headers)
        assert response.status == 403
    assert (await client.post("/api/debug", json={}, headers=ADMIN)).status == 200


async def test_a_public_key_works_only_from_a_listed_origin(start_keys):
    client = await start_keys()
    for origin in (None, "https://evil.example", "http://shop.example.com"):
        headers = {"X-API-Key": "pk-1", **({"Origin": origin} if origin else {})}
        response = await client.post("/api/chat", json=BODY, headers=headers)
        assert response.status == 403, origin
        assert await code_of(response) == "origin_not_allowed"
        assert "Access-Control-Allow-Origin" not in response.headers
    response = await client.post("/api/chat", json=BODY, headers=PUBLIC)
    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == SITE
    assert "X-Visitor-Token" in response.headers["Access-Control-Expose-Headers"]


async def test_cors_answers_the_public_origins_only(start_keys):
    client = await start_keys()
    preflight = {"Access-Control-Request-Method": "POST"}
    ok = await client.options("/api/chat/stream", headers={"Origin": SITE, **preflight})
    assert ok.status == 204
    assert ok.headers["Access-Control-Allow-Origin"] == SITE
    assert "x-visitor-token" in ok.headers["Access-Control-Allow-Headers"].lower()
    refused = await client.options(
        "/api/chat", headers={"Origin": "https://evil.example", **preflight}
    )
    assert refused.status == 403
    assert "Access-Control-Allow-Origin" not in refused.headers
    # A server-to-server key from a browser page gets no CORS headers to read the answer.
    response = await client.post(
        "/api/chat", json=BODY, headers={**API, "Origin": "https://evil.example"}
    )
    assert "Access-Control-Allow-Origin" not in response.headers


async def test_public_keys_without_public_origins_stop_start_up(eneca_app):
    with pytest.raises(ConfigError, match="PUBLIC_KEYS needs PUBLIC_ORIGINS"):
        await eneca_app(["http_api"], settings={"core": {"public_keys": "pk-1"}})
    with pytest.raises(ConfigError, match="PUBLIC_ORIGINS"):
        await eneca_app(
            ["http_api"],
            settings={"core": {"public_keys": "pk-1", "public_origins": "https://*.example.com/x"}},
        )


async def test_api_keys_alone_keep_chat_working_and_warn_once_about_admin_routes(
    eneca_app, app_log
):
    client = await eneca_app(
        ["http_api"], agent=ScriptedAgent(), settings={"core": {"api_keys": "api-1"}}
    )
    assert (await client.post("/api/chat", json=BODY, headers=API)).status == 200
    response = await client.get("/metrics", headers=API)
    assert response.status == 403
    assert await code_of(response) == "admin_disabled"
    warnings = [line for line in app_log().splitlines() if "ADMIN_KEYS is not set" in line]
    assert len(warnings) == 1 and "WARNING" in warnings[0]


async def test_with_no_keys_the_api_is_open_and_admin_routes_are_closed(eneca_app, app_log):
    client = await eneca_app(["http_api"], agent=ScriptedAgent())
    assert (await client.post("/api/chat", json=BODY)).status == 200
    response = await client.get("/metrics", headers=API)
    assert response.status == 403
    assert await code_of(response) == "admin_disabled"
    assert app_log().count("no keys are set") == 1


async def test_admin_routes_refuse_a_missing_or_unknown_key(start_keys):
    client = await start_keys()
    missing = await client.get("/metrics")
    assert missing.status == 401 and await code_of(missing) == "missing_api_key"
    wrong = await client.get("/metrics", headers={"X-API-Key": "admin-2"})
    assert wrong.status == 403 and await code_of(wrong) == "invalid_api_key"


async def test_an_api_key_loses_a_thread_once_another_channel_writes_into_it(start_keys):
    """An API client that chose another channel's id shape (``talkme:<visitor>``) before
    that visitor wrote cannot read on once the visitor's turns are there, even after it
    used the thread (its channel is checked on every request, not remembered)."""
    from core import Message, Turn
    from core.testing import gateway_of

    client = await start_keys()
    thread = "talkme:visitor-7"
    body = {"message": "first", "thread_id": thread}
    assert (await client.post("/api/chat", json=body, headers=API)).status == 200
    messages = f"/api/threads/{thread}/messages"
    assert (await client.get(messages, headers=API)).status == 200
    store = gateway_of(client).store
    visitor = Message(thread, "talkme", "my phone is +79990001122", user_id="visitor-7")
    await store.append(thread, Turn("user", visitor.text, "talkme", "visitor-7", "m-1"))
    assert (await client.get(messages, headers=API)).status == 404
    body = {"message": "again", "thread_id": thread}
    assert (await client.post("/api/chat", json=body, headers=API)).status == 404
    plain = {"message": "mine", "thread_id": "plain-thread"}
    for _ in range(2):  # an ordinary thread id keeps working (and is remembered)
        assert (await client.post("/api/chat", json=plain, headers=API)).status == 200
