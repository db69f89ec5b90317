"""Rate limiting, client addresses behind proxies, and /metrics."""

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from core.contract.errors import RateLimited
from core.engine.ratelimit import RateLimiter
from core.testing import ScriptedAgent, ask, gateway_of
from core.web.client import client_ip, parse_networks
from core.web.errors import api_error


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_a_key_over_its_limit_gets_429_with_retry_after_and_recovers():
    clock = Clock()
    limiter = RateLimiter(3, clock=clock)
    for _ in range(3):
        limiter.check("key:a")
    with pytest.raises(RateLimited) as caught:
        limiter.check("key:a")
    error = api_error(caught.value)
    assert error is not None and error.status == 429
    assert error.headers["Retry-After"] == "20"
    limiter.check("key:b")  # another key has its own budget
    clock.now += 20
    limiter.check("key:a")


def test_idle_keys_are_forgotten_so_memory_stays_bounded():
    clock = Clock()
    limiter = RateLimiter(60, max_keys=100, clock=clock)
    for i in range(1000):
        limiter.check(f"ip:{i}")
        clock.now += 1.0
    assert len(limiter._buckets) <= 101


def _request(peer, forwarded=None):
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    request = make_mocked_request("GET", "/", headers=headers)
    request._transport_peername = (peer, 1234)
    return request


def test_x_forwarded_for_is_believed_only_from_trusted_proxies():
    trusted = parse_networks(["10.0.0.0/8"])
    spoofed = _request("203.0.113.9", "1.2.3.4")
    assert client_ip(spoofed, trusted) == "203.0.113.9"
    via_proxy = _request("10.1.2.3", "1.2.3.4, 10.9.9.9")
    assert client_ip(via_proxy, trusted) == "1.2.3.4"
    assert client_ip(via_proxy, []) == "10.1.2.3"


def test_a_bad_trusted_proxy_entry_is_named():
    with pytest.raises(ValueError, match="not-an-ip"):
        parse_networks(["10.0.0.0/8", "not-an-ip"])


async def test_metrics_need_a_key_and_count_requests_replies_and_tokens(eneca_app):
    agent = ScriptedAgent()
    client = await eneca_app(agent=agent, settings={"core": {"admin_keys": "admin-key"}})
    await client.get("/health")
    await ask(gateway_of(client), "hi", channel="test")
    assert (await client.get("/metrics")).status == 401
    assert (await client.get("/metrics", headers={"X-API-Key": "wrong"})).status == 403
    response = await client.get("/metrics", headers={"Authorization": "Bearer admin-key"})
    assert response.status == 200
    text = await response.text()
    assert 'eneca_http_requests_total{method="GET",route="/health",status="200"} 1.0' in text
    assert 'eneca_replies_total{channel="test",outcome="ok"} 1.0' in text
    assert "eneca_bus_in_flight 0.0" in text
    assert "admin-key" not in text


async def test_metrics_are_refused_when_no_keys_are_configured(eneca_app):
    client = await eneca_app(agent=ScriptedAgent())
    response = await client.get("/metrics")
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "admin_disabled"


async def test_unknown_paths_do_not_create_new_metric_labels(eneca_app):
    client = await eneca_app(agent=ScriptedAgent(), settings={"core": {"admin_keys": "k"}})
    for i in range(5):
        await client.get(f"/secret-{i}")
    text = await (await client.get("/metrics", headers={"X-API-Key": "k"})).text()
    assert "secret-" not in text
    assert 'route="unmatched",status="404"} 5.0' in text


def test_web_is_imported_for_mocked_requests():
    assert web.Request


def test_many_busy_callers_at_once_stay_bounded_and_cheap():
    clock = Clock()
    limiter = RateLimiter(60, max_keys=1000, clock=clock)
    prunes = 0
    real_prune = limiter._prune

    def counting_prune(now):
        nonlocal prunes
        prunes += 1
        real_prune(now)

    limiter._prune = counting_prune
    for i in range(10_000):  # nobody idle: no bucket ever refills while this runs
        limiter.check(f"ip:{i}")
    assert len(limiter._buckets) <= 1001
    assert prunes <= 100  # amortised: not a full scan for every new caller
