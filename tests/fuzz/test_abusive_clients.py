"""Clients that abuse the connection, against the real ``eneca-bot serve`` process.

Oversized bodies (declared, lying ``Content-Length``, chunked), a client that sends its
body one byte a second, and 2000 idle connections held open: each gets a JSON error or is
dropped, the server's memory stays bounded, and other clients keep being served.
Figures (RSS, latencies) are printed for docs/reliability.md, not asserted as timings.
"""

from __future__ import annotations

import asyncio
import json
import resource
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.support.serve_process import ADMIN_KEY, ServeProcess, base_env

MAX_BODY = 64 * 1024
BODY_TIMEOUT_S = 2.0
IDLE_CONNECTIONS = 2000
KEY = {"X-API-Key": ADMIN_KEY}


def _raise_fd_limit(needed: int) -> bool:
    """Raise the soft limit of open files to ``needed`` if the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return True
    if hard != resource.RLIM_INFINITY and hard < needed:
        return False
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    return True


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ServeProcess]:
    env = base_env(
        tmp_path,
        PLUGINS="http_api,talkme,memory_sqlite",
        MAX_BODY_BYTES=MAX_BODY,
        BODY_READ_TIMEOUT_S=BODY_TIMEOUT_S,
        TALKME_TEST_MODE="true",
    )
    process = ServeProcess(tmp_path / "work", env)
    _raise_fd_limit(IDLE_CONNECTIONS + 512)  # before the spawn: the server inherits it
    await process.start()
    yield process
    await process.stop()


async def raw_exchange(port: int, request: bytes, read_timeout: float = 10.0) -> bytes:
    """Send ``request`` as is on a fresh connection; what came back before it closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        chunks = []
        async with asyncio.timeout(read_timeout):
            while chunk := await reader.read(65536):
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks) and _complete(b"".join(chunks)):
                    break
        return b"".join(chunks)
    finally:
        writer.close()


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def status_and_body(response: bytes) -> tuple[int, dict]:
    head, _, body = response.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    return status, json.loads(body)


def post_head(path: str, extra: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nX-API-Key: {ADMIN_KEY}\r\n"
        f"Content-Type: application/json\r\n{extra}\r\n"
    ).encode()


async def timed_chat(session: aiohttp.ClientSession, url: str, text: str) -> float:
    started = time.perf_counter()
    async with session.post(f"{url}/api/chat", json={"message": text}, headers=KEY) as response:
        assert response.status == 200, await response.text()
        await response.json()
    return time.perf_counter() - started


async def test_oversized_bodies_get_413_or_400_and_the_server_carries_on(server):
    big = b'{"message": "' + b"x" * (MAX_BODY * 2) + b'"}'
    declared = post_head("/api/chat", f"Content-Length: {len(big)}\r\n") + big
    status, body = status_and_body(await raw_exchange(server.port, declared))
    assert status == 413 and body["error"]["code"] == "payload_too_large"

    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in [big[:40000], big[40000:]])
    chunked = post_head("/webhook/talkme", "Transfer-Encoding: chunked\r\n") + chunks + b"0\r\n\r\n"
    status, body = status_and_body(await raw_exchange(server.port, chunked))
    assert status == 413 and body["success"] is False

    # Content-Length says 10: those 10 bytes are not JSON (a JSON 400), and the rest is
    # no HTTP request (aiohttp's parser answers a plain-text 400 and closes).
    lying = post_head("/api/chat", "Content-Length: 10\r\n") + big
    answer = await raw_exchange(server.port, lying)
    assert answer.split(b"\r\n", 1)[0].split(b" ")[1] == b"400"

    rss_before = server.rss_kb()
    for _ in range(20):
        await raw_exchange(server.port, declared)
    grown = server.rss_kb() - rss_before
    print(f"20 oversized bodies: RSS {rss_before} KB -> +{grown} KB")
    assert grown < 50_000
    async with aiohttp.ClientSession() as session:
        await timed_chat(session, server.url, "still here")


async def test_a_slow_body_gets_408_while_others_are_served(server):
    body = json.dumps({"message": "slow"}).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(post_head("/api/chat", f"Content-Length: {len(body)}\r\n"))
    await writer.drain()

    async def drip() -> None:
        for byte in body:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(1.0)

    dripping = asyncio.create_task(drip())
    try:
        async with aiohttp.ClientSession() as session:
            others = [await timed_chat(session, server.url, f"fast {n}") for n in range(10)]
        started = time.perf_counter()
        async with asyncio.timeout(BODY_TIMEOUT_S + 15):
            response = await reader.read(65536)
        waited = time.perf_counter() - started
    finally:
        dripping.cancel()
        writer.close()
    status, answer = status_and_body(response)
    assert status == 408 and answer["error"]["code"] == "request_timeout"
    print(
        f"slow client: 408 after ~{BODY_TIMEOUT_S}s (+{waited:.1f}s after the others); "
        f"10 other chats meanwhile, slowest {max(others) * 1000:.0f} ms"
    )


async def test_thousands_of_idle_connections_cost_bounded_memory(server):
    if not _raise_fd_limit(IDLE_CONNECTIONS + 512):
        pytest.skip(f"{IDLE_CONNECTIONS} connections need more open files than allowed here")
    rss_before = server.rss_kb()
    sockets: list[socket.socket] = []
    try:
        for n in range(IDLE_CONNECTIONS):
            sock = socket.create_connection(("127.0.0.1", server.port))
            if n % 2:  # half send the start of a request and stop there (slowloris)
                sock.sendall(b"POST /api/chat HTTP/1.1\r\nHost: x\r\n")
            sockets.append(sock)
        await asyncio.sleep(1.0)
        rss_held = server.rss_kb()
        async with aiohttp.ClientSession() as session:
            latencies = [await timed_chat(session, server.url, f"q{n}") for n in range(20)]
        health_ok = False
        async with aiohttp.ClientSession() as session, session.get(f"{server.url}/health") as r:
            health_ok = r.status == 200
    finally:
        for sock in sockets:
            sock.close()
    await asyncio.sleep(1.0)
    rss_after = server.rss_kb()
    per_connection = (rss_held - rss_before) * 1024 / IDLE_CONNECTIONS
    print(
        f"{IDLE_CONNECTIONS} idle connections: RSS {rss_before} -> {rss_held} KB "
        f"(~{per_connection:.0f} B each), {rss_after} KB after closing; 20 chats meanwhile "
        f"median {sorted(latencies)[10] * 1000:.1f} ms, slowest {max(latencies) * 1000:.1f} ms"
    )
    assert health_ok
    assert rss_held - rss_before < 100_000, "more than 50 KB per idle connection"
    assert server.returncode is None
