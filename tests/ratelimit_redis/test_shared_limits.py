"""Two gateways on one Redis share their rate limits; with Redis away they keep answering
(each counting its own traffic), warn once, show it in /health, and share again when
Redis is back."""

from __future__ import annotations

import asyncio

import pytest

from core.contract.errors import ConfigError
from core.testing import ScriptedAgent
from tests.support.logs import captured_log
from tests.support.proxy import CuttableProxy
from tests.support.serve_process import free_port

SITE = "https://shop.example.com"
PUBLIC = {"X-API-Key": "pk-1", "Origin": SITE}
PASSWORD = "s3cret-redis-pass"


def settings(url: str, prefix: str, **core) -> dict:
    return {
        "core": {"trusted_proxies": "127.0.0.1", **core},
        "redis": {"url": url, "key_prefix": prefix, "timeout_ms": 500},
    }


async def chat(client, ip: str, **headers):
    return await client.post(
        "/api/chat", json={"message": "hi"}, headers={"X-Forwarded-For": ip, **headers}
    )


async def statuses(clients, ip: str) -> list[int]:
    return [(await chat(client, ip)).status for client in clients]


async def rate_limits(client) -> dict:
    response = await client.get("/health")
    assert response.status == 200  # Redis away never makes the node unhealthy
    return (await response.json())["plugins"]["rate_limits"]


@pytest.fixture
def warnings():
    with captured_log() as lines:
        yield lines


async def test_the_per_ip_limit_is_shared_by_two_gateways(eneca_app, redis_url, redis_prefix):
    config = settings(redis_url, redis_prefix, rate_limit_per_minute=4)
    plugins = ["http_api", "ratelimit_redis"]
    a = await eneca_app(plugins, agent=ScriptedAgent(), settings=config)
    b = await eneca_app(plugins, agent=ScriptedAgent(), settings=config)
    assert await statuses([a, b, a, b], "203.0.113.1") == [200] * 4
    refused = await chat(a, "203.0.113.1")
    assert refused.status == 429 and int(refused.headers["Retry-After"]) >= 1
    assert (await chat(b, "203.0.113.1")).status == 429
    assert (await chat(b, "203.0.113.2")).status == 200  # another address, its own budget
    assert await rate_limits(a) == {"ok": True, "backend": "redis", "shared": True}


async def test_without_the_plugin_each_gateway_counts_alone(eneca_app):
    config = {"core": {"trusted_proxies": "127.0.0.1", "rate_limit_per_minute": 4}}
    a = await eneca_app(["http_api"], agent=ScriptedAgent(), settings=config)
    b = await eneca_app(["http_api"], agent=ScriptedAgent(), settings=config)
    assert await statuses([a, b, a, b, a, b], "203.0.113.1") == [200] * 6
    assert await rate_limits(a) == {"ok": True, "backend": "in_process", "shared": False}


async def test_a_visitors_limit_is_shared_by_two_gateways(eneca_app, redis_url, redis_prefix):
    config = settings(
        redis_url,
        redis_prefix,
        public_keys="pk-1",
        public_origins=SITE,
        secret_key="one-secret-for-every-node-0123456789",
        public_visitor_per_minute=2,
    )
    a = await eneca_app(["http_api", "ratelimit_redis"], agent=ScriptedAgent(), settings=config)
    b = await eneca_app(["http_api", "ratelimit_redis"], agent=ScriptedAgent(), settings=config)
    first = await chat(a, "203.0.113.5", **PUBLIC)
    token = {"X-Visitor-Token": (await first.json())["visitor_token"]}
    assert (await chat(b, "203.0.113.5", **PUBLIC, **token)).status == 200
    refused = await chat(a, "203.0.113.5", **PUBLIC, **token)
    assert refused.status == 429
    assert "this visitor" in (await refused.json())["error"]["message"]
    assert (await chat(b, "203.0.113.5", **PUBLIC, **token)).status == 429


async def test_with_redis_away_requests_are_answered_and_counted_per_node(eneca_app, warnings):
    # Needs no Redis: nothing listens on the port.
    url = f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0"
    config = settings(url, "eneca_test:unused:", rate_limit_per_minute=3)
    client = await eneca_app(
        ["http_api", "ratelimit_redis"], agent=ScriptedAgent(), settings=config
    )
    # Never a 500: the node counts its own traffic, so the limit still holds on it.
    assert [(await chat(client, "203.0.113.9")).status for _ in range(5)] == [200] * 3 + [429] * 2
    state = await rate_limits(client)
    assert state["shared"] is False and state["backend"] == "redis"
    assert "ConnectionError" in state["error"]
    away = [line for line in warnings if "Redis does not answer" in line]
    assert len(away) == 1, away  # one warning a minute, however many checks failed
    assert not [line for line in warnings if PASSWORD in line]
    assert PASSWORD not in str(state)


async def test_when_redis_is_back_the_limits_are_shared_again(
    eneca_app, redis_url, redis_prefix, warnings
):
    host, port = "127.0.0.1", int(redis_url.rsplit(":", 1)[1].split("/")[0])
    proxy = CuttableProxy(host, port)
    await proxy.start()
    try:
        plugins = ["http_api", "ratelimit_redis"]
        proxied = f"redis://127.0.0.1:{proxy.port}/0"
        a = await eneca_app(
            plugins,
            agent=ScriptedAgent(),
            settings=settings(proxied, redis_prefix, rate_limit_per_minute=4),
        )
        b = await eneca_app(
            plugins,
            agent=ScriptedAgent(),
            settings=settings(redis_url, redis_prefix, rate_limit_per_minute=4),
        )
        proxy.cut()  # A loses Redis, B keeps it: each counts alone
        assert await statuses([a, b, a, b, a, b, a, b], "198.51.100.1") == [200] * 8
        assert (await rate_limits(a))["shared"] is False
        assert (await rate_limits(b))["shared"] is True

        proxy.restore()

        # A check is what tries Redis again (at most once a second after a failure).
        async with asyncio.timeout(30):
            while (await rate_limits(a))["shared"] is not True:
                await chat(a, "198.51.100.250")
                await asyncio.sleep(0.1)
        assert await statuses([a, b, a, b], "198.51.100.2") == [200] * 4
        assert await statuses([a, b], "198.51.100.2") == [429, 429]
        assert any("limits are shared again" in line for line in warnings)
    finally:
        await proxy.close()


async def test_the_redis_url_is_never_echoed_in_a_configuration_error(eneca_app):
    bad = f"http://user:{PASSWORD}@127.0.0.1:6379/0"
    with pytest.raises(ConfigError) as caught:
        await eneca_app(["ratelimit_redis"], settings={"redis": {"url": bad}})
    assert "REDIS_URL" in str(caught.value) and PASSWORD not in str(caught.value)
    with pytest.raises(ConfigError, match="REDIS_URL"):
        await eneca_app(["ratelimit_redis"])
