"""RATE_LIMIT_PER_MINUTE on /api/*: per client IP and per API key, 429 with Retry-After."""

from core.testing import ScriptedAgent

BODY = {"message": "hi"}


async def test_a_client_over_the_limit_gets_429_with_retry_after(eneca_app):
    client = await eneca_app(
        ["http_api"], agent=ScriptedAgent(), settings={"core": {"rate_limit_per_minute": 3}}
    )
    statuses = [(await client.post("/api/chat", json=BODY)).status for _ in range(3)]
    assert statuses == [200, 200, 200]
    limited = await client.post("/api/chat", json=BODY)
    assert limited.status == 429
    assert int(limited.headers["Retry-After"]) >= 1
    body = await limited.json()
    assert body["success"] is False and body["error"]["code"] == "rate_limited"
    # Health stays reachable for monitoring.
    assert (await client.get("/health")).status == 200


async def test_unauthenticated_guessing_is_limited_per_ip(eneca_app):
    client = await eneca_app(
        ["http_api"],
        agent=ScriptedAgent(),
        settings={"core": {"rate_limit_per_minute": 2, "api_keys": "right"}},
    )
    wrong = [
        (await client.post("/api/chat", json=BODY, headers={"X-API-Key": f"g{i}"})).status
        for i in range(3)
    ]
    assert wrong == [403, 403, 429]


async def test_a_forwarded_address_counts_only_behind_a_trusted_proxy(eneca_app):
    client = await eneca_app(
        ["http_api"],
        agent=ScriptedAgent(),
        settings={"core": {"rate_limit_per_minute": 1, "trusted_proxies": "127.0.0.1"}},
    )
    first = await client.post("/api/chat", json=BODY, headers={"X-Forwarded-For": "198.51.100.1"})
    other = await client.post("/api/chat", json=BODY, headers={"X-Forwarded-For": "198.51.100.2"})
    again = await client.post("/api/chat", json=BODY, headers={"X-Forwarded-For": "198.51.100.1"})
    assert (first.status, other.status, again.status) == (200, 200, 429)


async def test_forwarded_headers_from_untrusted_peers_cannot_dodge_the_limit(eneca_app):
    client = await eneca_app(
        ["http_api"], agent=ScriptedAgent(), settings={"core": {"rate_limit_per_minute": 1}}
    )
    first = await client.post("/api/chat", json=BODY, headers={"X-Forwarded-For": "203.0.113.1"})
    spoofed = await client.post("/api/chat", json=BODY, headers={"X-Forwarded-For": "203.0.113.2"})
    assert (first.status, spoofed.status) == (200, 429)


async def test_no_limit_by_default(eneca_app):
    client = await eneca_app(["http_api"], agent=ScriptedAgent())
    statuses = {(await client.post("/api/chat", json=BODY)).status for _ in range(30)}
    assert statuses == {200}
