"""The Redis backend on the machine's real Redis: one script per check, shared by every
client, on the server's clock, keys with TTLs."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio

from core import WindowCount
from plugins.ratelimit_redis.connect import open_client
from plugins.ratelimit_redis.limiter import RedisRateLimits
from tests.support.logs import captured_log
from tests.support.serve_process import free_port


@pytest.fixture
async def nodes(redis_url, redis_prefix):
    """Two backends on two clients (two nodes) with the test's key prefix."""
    clients = [open_client(redis_url, 2.0) for _ in range(2)]
    try:
        yield [RedisRateLimits(client, redis_prefix, 2.0) for client in clients]
    finally:
        for client in clients:
            await client.aclose()


@pytest.fixture
async def raw(redis_url):
    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


async def server_time(raw) -> float:
    seconds, micros = await raw.time()
    return seconds + micros / 1e6


async def test_a_bucket_is_shared_by_two_nodes_and_refills(nodes, raw, redis_prefix):
    a, b = nodes
    for n in range(60):
        assert await (a if n % 2 else b).take_token("key:k1", 60) is None
    wait = await a.take_token("key:k1", 60)
    assert wait is not None and 0 < wait <= 1.0
    assert await b.take_token("key:k1", 60) is not None  # the other node sees it too
    assert await a.take_token("key:k2", 60) is None  # another key has its own bucket
    ttl = await raw.pttl(f"{redis_prefix}bucket:key:k1")
    assert 0 < ttl <= 61_000  # an idle bucket is full again after 60 s, then gone
    await asyncio.sleep(wait + 0.05)
    assert await b.take_token("key:k1", 60) is None
    assert a.state() == {"backend": "redis", "shared": True}


async def test_windows_count_in_all_or_none_and_start_again(nodes, raw, redis_prefix):
    a, b = nodes
    # Start well inside a 5-second window, so three checks fall into the same one.
    now = await server_time(raw)
    if now % 5 > 2.5:
        await asyncio.sleep(5 - now % 5 + 0.05)
    counts = [WindowCount("visitor_x:v1", 5, 2), WindowCount("ip_day:1.2.3.4", 86400, 100)]
    assert await a.take_windows(counts) is None
    assert await b.take_windows(counts) is None
    full = await a.take_windows(counts)
    assert full is not None
    position, wait = full
    assert position == 0 and 0 < wait <= 5
    day = await raw.hgetall(f"{redis_prefix}window:ip_day:1.2.3.4")
    assert day["c"] == "2"  # the refused message was counted nowhere
    for count in counts:
        ttl = await raw.pttl(f"{redis_prefix}window:{count.key}")
        assert 0 < ttl <= (count.seconds + 1) * 1000
    await asyncio.sleep(wait + 0.05)
    assert await b.take_windows(counts) is None
    assert (await raw.hgetall(f"{redis_prefix}window:ip_day:1.2.3.4"))["c"] == "3"


async def test_the_second_of_two_windows_reports_its_own_position(nodes):
    a, _ = nodes
    counts = [WindowCount("visitor_day:v2", 86400, 100), WindowCount("ip_day:5.6.7.8", 86400, 1)]
    assert await a.take_windows(counts) is None
    full = await a.take_windows(counts)
    assert full is not None and full[0] == 1 and full[1] > 0


async def test_a_redis_that_never_answers_costs_one_timeout_then_counts_locally(redis_prefix):
    # A server that accepts connections and says nothing (a hung Redis, a black hole).
    held: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = open_client(f"redis://127.0.0.1:{port}/0", 0.2)
    limits = RedisRateLimits(client, redis_prefix, 0.2)
    try:
        answers = [await limits.take_token("key:k", 3) for _ in range(5)]
        # Never an exception: counted in this node's memory, so the limit still holds.
        assert answers[:3] == [None] * 3 and all(wait is not None for wait in answers[3:])
        state = limits.state()
        assert state["shared"] is False and "Timeout" in state["error"]
        # Only the first check waited for Redis; the next ones went straight to memory.
        assert state["local_checks"] == 5 and len(held) == 1
    finally:
        await client.aclose()
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_redis_away_warns_once_a_minute_however_often_it_is_tried(redis_prefix):
    port = free_port()  # nothing listens there: connections are refused
    clock = Clock()
    client = open_client(f"redis://127.0.0.1:{port}/0", 0.5)
    limits = RedisRateLimits(client, redis_prefix, 0.5, clock=clock)
    try:
        with captured_log("WARNING") as lines:
            for _ in range(20):  # a failed try every 2 s for 40 s: Redis asked 20 times
                assert await limits.take_token("key:k", 1000) is None
                clock.now += 2
            assert len([line for line in lines if "Redis does not answer" in line]) == 1
            clock.now += 30  # a minute after the first warning
            await limits.take_token("key:k", 1000)
            assert len([line for line in lines if "Redis does not answer" in line]) == 2
            assert limits.state()["down_for_s"] == 70.0
    finally:
        await client.aclose()
