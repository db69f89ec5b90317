"""Which routes answer without a key: every route of ``/openapi.json`` is called.

With ``API_KEYS`` set, only the documented open routes answer a caller without a key; the
TalkMe webhooks answer only with their own secret; admin routes (stats, session deletion,
debug, metrics) refuse a caller without a key or with a wrong one, and refuse everyone
when no key is configured at all.
"""

from __future__ import annotations

import re
from typing import Any

from core.testing import ScriptedAgent

KEY = "route-walk-key-7"
SECRET = "hook-secret-9"
OPEN = {
    ("GET", "/"),
    ("GET", "/health"),
    ("GET", "/livez"),
    ("GET", "/readyz"),
    ("GET", "/openapi.json"),
    ("GET", "/webhook/talkme/health"),
}
#: Open to HTTP, guarded by TALKME_WEBHOOK_SECRET instead of a key.
WEBHOOKS = {("POST", "/webhook/talkme"), ("POST", "/webhook/talkme/{secret}")}
ADMIN = {
    ("GET", "/metrics"),
    ("POST", "/api/debug"),
    ("GET", "/webhook/talkme/stats"),
    ("DELETE", "/webhook/talkme/sessions"),
    ("DELETE", "/webhook/talkme/session/{user_id}"),
}
WEBHOOK_BODY = {"token": "t-1", "message": {"text": "hi"}, "client": {"clientId": "v1"}}


async def start(eneca_app, api_keys: str | None):
    core: dict[str, Any] = {"api_keys": api_keys} if api_keys else {}
    return await eneca_app(
        ["http_api", "talkme"],
        agent=ScriptedAgent(),
        settings={
            "core": core,
            "http_api": {"debug_endpoint": True},
            "talkme": {"test_mode": True, "webhook_secret": SECRET},
        },
    )


def operations(document: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    ]


async def call(client, method: str, template: str, headers: dict[str, str] | None = None):
    path = re.sub(r"\{(\w+)\}", lambda m: SECRET if m.group(1) == "secret" else "x", template)
    body = WEBHOOK_BODY if template.startswith("/webhook/talkme") else {"message": "hi"}
    kwargs: dict[str, Any] = {"headers": headers or {}}
    if method in ("POST", "PUT", "PATCH"):
        kwargs["json"] = body
    return await client.request(method, path, **kwargs)


async def test_without_a_key_only_the_documented_open_routes_answer(eneca_app):
    client = await start(eneca_app, KEY)
    document = await (await client.get("/openapi.json")).json()
    every = operations(document)
    assert ADMIN <= set(every) and OPEN <= set(every) and WEBHOOKS <= set(every)

    answered, refused = set(), {}
    for method, template in every:
        if (method, template) in WEBHOOKS:
            continue
        response = await call(client, method, template)
        if response.status in (401, 403):
            refused[(method, template)] = response.status
            body = await response.json()
            assert body["success"] is False and body["error"]["code"]
        else:
            answered.add((method, template))

    print(f"{len(every)} routes: {len(answered)} open, {len(refused)} refused without a key")
    assert answered == OPEN
    assert all(status == 401 for status in refused.values())
    # The document says the same: only open routes and webhooks carry no security.
    unsecured = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if "security" not in operation
    }
    assert unsecured == OPEN | WEBHOOKS


async def test_a_wrong_key_is_refused_on_every_keyed_route(eneca_app):
    client = await start(eneca_app, KEY)
    document = await (await client.get("/openapi.json")).json()
    for method, template in operations(document):
        if (method, template) in OPEN | WEBHOOKS:
            continue
        response = await call(client, method, template, {"X-API-Key": "not-" + KEY})
        assert response.status == 403, (method, template)
        right = await call(client, method, template, {"Authorization": f"Bearer {KEY}"})
        assert right.status not in (401, 403), (method, template, await right.text())


async def test_the_talkme_webhooks_answer_only_with_their_secret(eneca_app):
    client = await start(eneca_app, KEY)
    for path in ("/webhook/talkme", "/webhook/talkme/wrong-secret"):
        response = await client.post(path, json=WEBHOOK_BODY, headers={"X-API-Key": KEY})
        assert response.status == 403, path  # an API key is no substitute for the secret
    assert (await client.post(f"/webhook/talkme/{SECRET}", json=WEBHOOK_BODY)).status == 200
    query = await client.post("/webhook/talkme", params={"secret": SECRET}, json=WEBHOOK_BODY)
    assert query.status == 200


async def test_admin_routes_are_refused_to_everyone_when_no_key_is_configured(eneca_app):
    client = await start(eneca_app, None)
    document = await (await client.get("/openapi.json")).json()
    for method, template in operations(document):
        response = await call(client, method, template, {"X-API-Key": "anything"})
        if (method, template) in ADMIN:
            assert response.status == 403, (method, template)
            assert (await response.json())["error"]["code"] == "admin_disabled"
        elif (method, template) == ("POST", "/webhook/talkme"):  # no ?secret= given
            assert (await response.json())["error"]["code"] == "forbidden"
        else:  # the rest is open in this (local) mode
            assert response.status not in (401, 403), (method, template)
