"""Cost protection for public keys: per visitor and per IP, per minute and per day, the
longest message, and the figures in /metrics."""

from __future__ import annotations

from typing import Any

import pytest

from core.testing import ScriptedAgent

SITE = "https://shop.example.com"
PUBLIC = {"X-API-Key": "pk-1", "Origin": SITE}
ADMIN = {"X-API-Key": "admin-1"}


@pytest.fixture
def start_limited(eneca_app):
    async def start(**limits: Any):
        core = {
            "admin_keys": "admin-1",
            "api_keys": "api-1",
            "public_keys": "pk-1",
            "public_origins": SITE,
            **limits,
        }
        return await eneca_app(["http_api"], agent=ScriptedAgent(), settings={"core": core})

    return start


async def send(client, text: str = "hi", token: str | None = None):
    headers = {**PUBLIC, **({"X-Visitor-Token": token} if token else {})}
    return await client.post("/api/chat", json={"message": text}, headers=headers)


async def metric(client, name: str) -> str:
    text = await (await client.get("/metrics", headers=ADMIN)).text()
    return "\n".join(line for line in text.splitlines() if line.startswith(name))


async def test_a_visitor_over_its_minute_gets_429_with_retry_after(start_limited):
    client = await start_limited(public_visitor_per_minute=3, public_ip_per_minute=100)
    first = await send(client)
    token = (await first.json())["visitor_token"]
    for _ in range(2):
        assert (await send(client, token=token)).status == 200
    refused = await send(client, token=token)
    assert refused.status == 429
    body = await refused.json()
    assert body["error"]["code"] == "rate_limited"
    assert "this visitor" in body["error"]["message"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["Access-Control-Allow-Origin"] == SITE  # the widget can read it
    assert (await send(client)).status == 200  # another visitor is not held up
    assert 'eneca_public_refusals_total{reason="visitor_minute"} 1.0' in await metric(
        client, "eneca_public_refusals_total"
    )
    assert "eneca_public_messages_total 4.0" in await metric(client, "eneca_public_messages")


async def test_many_visitors_from_one_address_hit_the_ip_limit(start_limited):
    client = await start_limited(public_ip_per_minute=4)
    statuses = [(await send(client)).status for _ in range(6)]  # a new visitor each time
    assert statuses == [200, 200, 200, 200, 429, 429]
    assert 'reason="ip_minute"} 2.0' in await metric(client, "eneca_public_refusals_total")
    assert "eneca_visitors_issued_total 6.0" in await metric(client, "eneca_visitors_issued")


async def test_the_daily_limits_apply_too(start_limited):
    client = await start_limited(public_visitor_per_day=2, public_ip_per_minute=100)
    token = (await (await send(client)).json())["visitor_token"]
    assert (await send(client, token=token)).status == 200
    refused = await send(client, token=token)
    assert refused.status == 429
    assert "a day" in (await refused.json())["error"]["message"]
    assert int(refused.headers["Retry-After"]) > 0


async def test_public_messages_have_their_own_length_limit(start_limited):
    client = await start_limited(public_max_message_chars=50)
    too_long = await send(client, "x" * 51)
    assert too_long.status == 413
    assert (await too_long.json())["error"]["code"] == "message_too_long"
    assert (await send(client, "x" * 50)).status == 200
    api = await client.post(
        "/api/chat", json={"message": "x" * 500}, headers={"X-API-Key": "api-1"}
    )
    assert api.status == 200  # server-to-server keys keep MAX_MESSAGE_CHARS
    assert 'reason="too_long"} 1.0' in await metric(client, "eneca_public_refusals_total")


async def test_limits_count_public_traffic_only(start_limited):
    client = await start_limited(public_ip_per_minute=1)
    for _ in range(3):
        response = await client.post(
            "/api/chat", json={"message": "hi"}, headers={"X-API-Key": "api-1"}
        )
        assert response.status == 200
    assert (await send(client)).status == 200
    assert (await send(client)).status == 429
