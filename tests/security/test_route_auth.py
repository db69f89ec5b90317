"""Every route of ``/openapi.json``, called with each kind of key and with none: the
exact status each must get.

Kinds: no key, an unknown key, an admin key, an API key, a public key from its page's
origin and the same public key with no origin (curl). Thread routes are called on a TalkMe
visitor's thread: only an admin key may see it. The TalkMe webhooks answer only with
their own secret, whatever key is sent.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from typing import Any

import pytest

from core import ConfigError, Turn
from core.testing import ScriptedAgent, gateway_of

SECRET = "hook-secret-9"
SITE = "https://shop.example.com"
TALKME_THREAD = "talkme:visitor-42"
CALLERS: dict[str, dict[str, str]] = {
    "none": {},
    "unknown": {"X-API-Key": "not-a-key"},
    "admin": {"X-API-Key": "admin-key-1"},
    "api": {"Authorization": "Bearer api-key-1"},
    "public": {"X-API-Key": "public-key-1", "Origin": SITE},
    "public_no_origin": {"X-API-Key": "public-key-1"},
}
OPEN = {
    ("GET", "/"),
    ("GET", "/health"),
    ("GET", "/livez"),
    ("GET", "/readyz"),
    ("GET", "/openapi.json"),
    ("GET", "/webhook/talkme/health"),
    ("GET", "/widget.js"),
}
WEBHOOKS = {("POST", "/webhook/talkme"), ("POST", "/webhook/talkme/{secret}")}
ADMIN = {
    ("GET", "/metrics"),
    ("POST", "/api/debug"),
    ("GET", "/webhook/talkme/stats"),
    ("DELETE", "/webhook/talkme/sessions"),
    ("DELETE", "/webhook/talkme/session/{user_id}"),
}
#: Any key may call these; a public one only from its origin.
CHAT = {
    ("POST", "/api/chat"),
    ("POST", "/api/chat/stream"),
    ("POST", "/api/n8n/chat"),
    ("GET", "/api/threads"),
}
#: Called on the TalkMe visitor's thread: only an admin key may see it.
THREAD = {("GET", "/api/threads/{thread_id}/messages"), ("DELETE", "/api/threads/{thread_id}")}
WEBHOOK_BODY = {"token": "t-1", "message": {"text": "hi"}, "client": {"clientId": "v1"}}


def expected(route: tuple[str, str], caller: str) -> int:
    if route in OPEN:
        return 200
    if route in WEBHOOKS:
        return 200 if route[1].endswith("{secret}") else 403  # no ?secret= given
    refused = {"none": 401, "unknown": 403, "public_no_origin": 403}
    if caller in refused:
        return refused[caller]
    if route in ADMIN:
        return 200 if caller == "admin" else 403
    if route in THREAD:
        return 200 if caller == "admin" else 404
    assert route in CHAT, route
    return 200


async def start(eneca_app, **core: Any):
    client = await eneca_app(
        ["http_api", "talkme"],
        agent=ScriptedAgent(),
        settings={
            "core": core,
            "http_api": {"debug_endpoint": True},
            "talkme": {"test_mode": True, "webhook_secret": SECRET},
        },
    )
    await seed(client)
    return client


async def seed(client) -> None:
    """The TalkMe visitor's thread, again if an admin call deleted it."""
    store = gateway_of(client).store
    if not await store.history(TALKME_THREAD, limit=1):
        await store.append(TALKME_THREAD, Turn("user", "my phone is +7 900 000 11 22", "talkme"))


KEYS = {
    "admin_keys": "admin-key-1",
    "api_keys": "api-key-1",
    "public_keys": "public-key-1",
    "public_origins": SITE,
}


def operations(document: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    ]


async def call(client, method: str, template: str, headers: dict[str, str]):
    values = {"secret": SECRET, "thread_id": TALKME_THREAD, "user_id": "v1"}
    path = re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], template)
    if template.startswith("/webhook/talkme"):
        body: Any = WEBHOOK_BODY
    elif template == "/api/n8n/chat":
        body = {"action": "sendMessage", "sessionId": str(uuid.uuid4()), "chatInput": "hi"}
    else:
        body = {"message": "hi"}
    kwargs: dict[str, Any] = {"headers": headers}
    if method in ("POST", "PUT", "PATCH"):
        kwargs["json"] = body
    return await client.request(method, path, **kwargs)


async def test_every_route_answers_each_kind_of_key_exactly_as_it_must(eneca_app):
    client = await start(eneca_app, **KEYS)
    document = await (await client.get("/openapi.json")).json()
    every = operations(document)
    assert set(every) == OPEN | WEBHOOKS | ADMIN | CHAT | THREAD, "a route is not classified"

    got: dict[tuple[str, str, str], int] = {}
    for route in every:
        for caller, headers in CALLERS.items():
            await seed(client)
            response = await call(client, *route, headers)
            got[(*route, caller)] = response.status
            if response.status >= 400:
                body = await response.json()
                assert body["success"] is False and body["error"]["code"], (route, caller)
    wrong = {
        key: (status, expected(key[:2], key[2]))
        for key, status in got.items()
        if status != expected(key[:2], key[2])
    }
    assert wrong == {}
    figures = Counter(got.values())
    print(
        f"route walk: {len(every)} routes x {len(CALLERS)} callers = {len(got)} calls; "
        f"statuses {dict(sorted(figures.items()))}"
    )
    # The document says the same: only open routes and webhooks carry no security.
    unsecured = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if "security" not in operation
    }
    assert unsecured == OPEN | WEBHOOKS


async def test_with_no_key_configured_the_api_is_open_and_admin_routes_closed(eneca_app):
    client = await start(eneca_app)
    document = await (await client.get("/openapi.json")).json()
    for route in operations(document):
        await seed(client)
        response = await call(client, *route, {"X-API-Key": "anything"})
        if route in ADMIN:
            assert response.status == 403, route
            assert (await response.json())["error"]["code"] == "admin_disabled"
        elif route in THREAD:  # open mode has the HTTP channel's scope, like an API key
            assert response.status == 404, route
        else:
            assert response.status == expected(route, "api"), route


async def test_the_talkme_webhooks_answer_only_with_their_secret(eneca_app):
    client = await start(eneca_app, **KEYS)
    for path in ("/webhook/talkme", "/webhook/talkme/wrong-secret"):
        for headers in CALLERS.values():
            response = await client.post(path, json=WEBHOOK_BODY, headers=headers)
            assert response.status == 403, path  # no key is a substitute for the secret
    assert (await client.post(f"/webhook/talkme/{SECRET}", json=WEBHOOK_BODY)).status == 200
    query = await client.post("/webhook/talkme", params={"secret": SECRET}, json=WEBHOOK_BODY)
    assert query.status == 200


async def test_one_key_in_two_lists_stops_start_up(eneca_app):
    with pytest.raises(ConfigError, match="both ADMIN_KEYS and PUBLIC_KEYS"):
        await eneca_app(
            ["http_api"],
            settings={"core": {**KEYS, "admin_keys": "public-key-1"}},
        )
