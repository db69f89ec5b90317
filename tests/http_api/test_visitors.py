"""Visitors of a public key: signed tokens, threads bound to them, listing threads."""

from __future__ import annotations

from typing import Any

import pytest

from core import Turn
from core.testing import ScriptedAgent, gateway_of
from core.web.visitors import VisitorTokens

SITE = "https://shop.example.com"
PUBLIC = {"X-API-Key": "pk-1", "Origin": SITE}
API = {"X-API-Key": "api-1"}
ADMIN = {"X-API-Key": "admin-1"}
SECRET = "a-visitor-secret-of-enough-length-1234567890"


@pytest.fixture
def start_site(eneca_app):
    async def start(**core: Any):
        settings = {
            "admin_keys": "admin-1",
            "api_keys": "api-1",
            "public_keys": "pk-1",
            "public_origins": SITE,
            **core,
        }
        return await eneca_app(["http_api"], agent=ScriptedAgent(), settings={"core": settings})

    return start


async def chat(client, text: str, token: str | None = None, **body: Any):
    headers = {**PUBLIC, **({"X-Visitor-Token": token} if token else {})}
    return await client.post("/api/chat", json={"message": text, **body}, headers=headers)


async def visitor_says(client, text: str) -> tuple[str, str]:
    """A new visitor sends ``text``; returns its token and thread."""
    response = await chat(client, text)
    assert response.status == 200
    body = await response.json()
    assert body["visitor_token"] == response.headers["X-Visitor-Token"]
    return body["visitor_token"], body["thread_id"]


def as_visitor(token: str) -> dict[str, str]:
    return {**PUBLIC, "X-Visitor-Token": token}


async def test_a_visitor_keeps_its_thread_and_another_visitor_cannot_see_it(start_site):
    client = await start_site()
    alice, thread = await visitor_says(client, "alice's secret order 4411")
    again = await chat(client, "and more", alice, thread_id=thread)
    assert again.status == 200
    assert (await again.json())["visitor_token"] == alice

    own = await client.get(f"/api/threads/{thread}/messages", headers=as_visitor(alice))
    assert [m["content"] for m in (await own.json())["messages"]] == [
        "alice's secret order 4411",
        "echo: alice's secret order 4411",
        "and more",
        "echo: and more",
    ]

    bob, _ = await visitor_says(client, "hello")
    for response in (
        await client.get(f"/api/threads/{thread}/messages", headers=as_visitor(bob)),
        await client.delete(f"/api/threads/{thread}", headers=as_visitor(bob)),
        await chat(client, "let me in", bob, thread_id=thread),
        await chat(client, "no token at all", None, thread_id=thread),
        await client.get(f"/api/threads/{thread}/messages", headers=PUBLIC),
    ):
        assert response.status == 404
        body = await response.json()
        assert body["error"]["code"] == "thread_not_found"
        assert "4411" not in await response.text()
    missing = await client.get("/api/threads/never-was/messages", headers=as_visitor(bob))
    assert missing.status == 404 and (await missing.json())["error"]["code"] == "thread_not_found"
    still = await client.get(f"/api/threads/{thread}/messages", headers=as_visitor(alice))
    assert len((await still.json())["messages"]) == 4


async def test_a_visitor_may_choose_a_new_thread_id_but_not_an_existing_one(start_site):
    client = await start_site()
    store = gateway_of(client).store
    await store.append("talkme:v-77", Turn("user", "my phone is +7 900 111 22 33", "talkme"))
    api = await client.post("/api/chat", json={"message": "x", "thread_id": "api-t"}, headers=API)
    assert api.status == 200

    token, _ = await visitor_says(client, "hi")
    chosen = await chat(client, "mine", token, thread_id="my-own-thread-1")
    assert chosen.status == 200 and (await chosen.json())["thread_id"] == "my-own-thread-1"
    for taken in ("talkme:v-77", "api-t"):
        response = await chat(client, "let me in", token, thread_id=taken)
        assert response.status == 404, taken
        assert "+7 900" not in await response.text()


async def test_listing_threads_shows_a_visitor_only_its_own(start_site):
    client = await start_site()
    alice, first = await visitor_says(client, "one")
    second = (await (await chat(client, "two", alice, thread_id="alice-2")).json())["thread_id"]
    bob, bobs = await visitor_says(client, "bob here")

    listed = await client.get("/api/threads", headers=as_visitor(alice))
    assert listed.status == 200
    assert {t["thread_id"] for t in (await listed.json())["threads"]} == {first, second}
    assert [
        t["thread_id"]
        for t in (await (await client.get("/api/threads", headers=as_visitor(bob))).json())[
            "threads"
        ]
    ] == [bobs]
    nobody = await client.get("/api/threads", headers=PUBLIC)
    assert (await nobody.json())["threads"] == []


async def test_an_api_key_sees_the_http_channel_only_and_an_admin_key_everything(start_site):
    client = await start_site()
    store = gateway_of(client).store
    await store.append("talkme:v-1", Turn("user", "TalkMe visitor: card 4242", "talkme"))
    for n in range(3):
        body = {"message": f"m{n}", "thread_id": f"api-{n}"}
        assert (await client.post("/api/chat", json=body, headers=API)).status == 200

    for response in (
        await client.get("/api/threads/talkme:v-1/messages", headers=API),
        await client.delete("/api/threads/talkme:v-1", headers=API),
        await client.post(
            "/api/chat", json={"message": "x", "thread_id": "talkme:v-1"}, headers=API
        ),
        await client.post(
            "/api/n8n/chat",
            json={"action": "loadPreviousSession", "sessionId": "talkme:v-1"},
            headers=API,
        ),
    ):
        assert response.status == 404
        assert "4242" not in await response.text()

    page1 = await (await client.get("/api/threads?limit=2", headers=API)).json()
    page2 = await (await client.get("/api/threads?limit=2&offset=2", headers=API)).json()
    listed = [t["thread_id"] for t in page1["threads"] + page2["threads"]]
    assert sorted(listed) == ["api-0", "api-1", "api-2"]
    assert len(page1["threads"]) == 2
    everything = await (await client.get("/api/threads", headers=ADMIN)).json()
    assert "talkme:v-1" in {t["thread_id"] for t in everything["threads"]}
    admin_read = await client.get("/api/threads/talkme:v-1/messages", headers=ADMIN)
    assert (await admin_read.json())["messages"][0]["content"] == "TalkMe visitor: card 4242"
    bad = await client.get("/api/threads?offset=-1", headers=API)
    assert bad.status == 422 and (await bad.json())["error"]["code"] == "validation_error"


async def test_bad_visitor_tokens_are_refused_with_401(start_site):
    client = await start_site(secret_key=SECRET, deployment_id="shop")
    good, thread = await visitor_says(client, "hi")
    prefix, dep, vid, expiry, sig = good.split(".")
    expired = VisitorTokens(SECRET.encode(), "shop", ttl_s=-10).issue(vid).token
    other_deployment = VisitorTokens(SECRET.encode(), "staging").issue(vid).token
    other_secret = VisitorTokens(b"another-secret-entirely-0987654321", "shop").issue(vid).token
    forged = ".".join([prefix, dep, "someone-else", expiry, sig])
    for token in (
        expired,
        other_deployment,
        other_secret,
        forged,
        "garbage",
        "v1.a.b.c",
        "x" * 5000,
        "v1.shop.id.notanumber.sig",
    ):
        for response in (
            await chat(client, "hi", token),
            await client.get(f"/api/threads/{thread}/messages", headers=as_visitor(token)),
            await client.get("/api/threads", headers=as_visitor(token)),
        ):
            assert response.status == 401, token
            body = await response.json()
            assert body["success"] is False
            assert body["error"]["code"] == "invalid_visitor_token"


async def test_the_secret_and_the_owners_survive_a_restart(eneca_app, tmp_path):
    core = {"public_keys": "pk-1", "public_origins": SITE, "data_dir": str(tmp_path / "d")}
    plugins = ["http_api", "memory_sqlite"]
    first = await eneca_app(plugins, agent=ScriptedAgent(), settings={"core": core})
    token, thread = await visitor_says(first, "before the restart")
    other, _ = await visitor_says(first, "someone else")
    secret = tmp_path / "d" / "visitor_secret"
    assert secret.stat().st_mode & 0o777 == 0o600
    await first.close()

    second = await eneca_app(plugins, agent=ScriptedAgent(), settings={"core": core})
    again = await chat(second, "after", token, thread_id=thread)
    assert again.status == 200
    history = await second.get(f"/api/threads/{thread}/messages", headers=as_visitor(token))
    messages = (await history.json())["messages"]
    assert messages[0]["content"] == "before the restart"
    stolen = await second.get(f"/api/threads/{thread}/messages", headers=as_visitor(other))
    assert stolen.status == 404
