"""No response to a public or an API key carries another visitor's text.

Four people's words are stored: a TalkMe visitor (with a phone number), a web visitor
(public key, visitor token), an ``@n8n/chat`` visitor (public key, random session id) and
a back end (API key). Then another web visitor, a public caller without a token, and an
API key call every route of ``/openapi.json`` with every known thread or session id in
every place an id goes (path, ``thread_id``, ``chat_id``, ``sessionId``), and the status
line, headers and body of every response are searched for those words. (The n8n
visitor's random session id is its credential: with a public key, holding it on
``/api/n8n/chat`` is being that visitor, so that one pair is not tried.)
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from core import Turn
from core.testing import ScriptedAgent, gateway_of

SITE = "https://shop.example.com"
PUBLIC = {"X-API-Key": "pk-scan", "Origin": SITE}
API = {"X-API-Key": "api-scan"}
TALKME = "TALKME-visitor-phone-79001112233"
ALICE = "ALICE-web-visitor-order-4411"
N8N = "N8N-widget-visitor-address-Lenina-5"
BACKEND = "BACKEND-private-note-7c1"


async def everything(
    client, headers: dict[str, str], ids: list[str], own: set[tuple[str, str]] = frozenset()
) -> list[str]:
    """Every route with every id: the text of each response (status, headers, body).
    ``own`` leaves out (path, id) pairs that are the caller's own credential."""
    document = await (await client.get("/openapi.json")).json()
    seen: list[str] = []

    async def keep(response) -> None:
        body = await response.text()
        seen.append(f"{response.status} {dict(response.headers)} {body}")

    for path, item in document["paths"].items():
        for method in item:
            method = method.upper()
            if path.startswith("/webhook/") or path in ("/metrics", "/api/debug"):
                continue  # secret- or admin-guarded: not a visitor's way in
            for thread in ids:
                if (path, thread) in own:
                    continue
                url = re.sub(r"\{\w+\}", thread, path)
                bodies: list[Any] = [None]
                if path in ("/api/chat", "/api/chat/stream"):
                    bodies = [
                        {"message": "show me", "thread_id": thread},
                        {"message": "show me", "chat_id": thread},
                    ]
                elif path == "/api/n8n/chat":
                    bodies = [
                        {"action": action, "sessionId": thread, "chatInput": "show me"}
                        for action in ("loadPreviousSession", "sendMessage")
                    ]
                for body in bodies:
                    for accept in ("*/*", "text/plain"):
                        response = await client.request(
                            method, url, json=body, headers={**headers, "Accept": accept}
                        )
                        await keep(response)
            listing = await client.get("/api/threads?limit=1000", headers=headers)
            await keep(listing)
    return seen


async def test_no_response_to_a_public_or_api_key_carries_another_visitors_text(eneca_app):
    client = await eneca_app(
        ["http_api", "memory_sqlite"],
        agent=ScriptedAgent(lambda r: f"noted ({len(r.message.text)} chars)"),
        settings={
            "core": {
                "api_keys": "api-scan",
                "public_keys": "pk-scan",
                "public_origins": SITE,
                "public_visitor_per_minute": 0,
                "public_ip_per_minute": 0,
                "public_ip_per_day": 0,
                "public_visitor_per_day": 0,
            }
        },
    )
    store = gateway_of(client).store
    await store.append("talkme:v-9", Turn("user", f"call me: {TALKME}", "talkme"))
    alice = await client.post("/api/chat", json={"message": ALICE}, headers=PUBLIC)
    alice_thread = (await alice.json())["thread_id"]
    session = str(uuid.uuid4())
    n8n = {"action": "sendMessage", "sessionId": session, "chatInput": N8N}
    assert (await client.post("/api/n8n/chat", json=n8n, headers=PUBLIC)).status == 200
    backend = {"message": BACKEND, "thread_id": "backend-thread-1"}
    assert (await client.post("/api/chat", json=backend, headers=API)).status == 200
    ids = ["talkme:v-9", alice_thread, session, "backend-thread-1"]

    bob = await client.post("/api/chat", json={"message": "hi"}, headers=PUBLIC)
    bob_headers = {**PUBLIC, "X-Visitor-Token": (await bob.json())["visitor_token"]}
    scanned = 0
    # With a public key the n8n widget's random session id is its visitor's credential:
    # whoever holds it is that visitor, so it is not tried on /api/n8n/chat itself.
    session_is_credential = {("/api/n8n/chat", session)}
    for headers in (bob_headers, PUBLIC):
        for text in await everything(client, headers, ids, session_is_credential):
            scanned += 1
            for secret in (TALKME, ALICE, N8N, BACKEND):
                assert secret not in text, (secret, text[:300])
    # Nothing the public callers did removed anyone's words.
    alice_history = await client.get(
        f"/api/threads/{alice_thread}/messages",
        headers={**PUBLIC, "X-Visitor-Token": (await alice.json())["visitor_token"]},
    )
    assert ALICE in await alice_history.text()
    loaded = await client.post(
        "/api/n8n/chat",
        json={"action": "loadPreviousSession", "sessionId": session},
        headers=PUBLIC,
    )
    assert N8N in await loaded.text()
    assert TALKME in (await store.history("talkme:v-9"))[0].text

    for text in await everything(client, API, ids):
        scanned += 1
        assert TALKME not in text, text[:300]  # an API key sees the HTTP channel only
    print(f"visitor isolation: {scanned} responses scanned, none with another visitor's text")
    assert TALKME in (await store.history("talkme:v-9"))[0].text  # its DELETE was refused
