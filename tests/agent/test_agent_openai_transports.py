"""Both HTTP transports of the openai client (``OPENAI_HTTP_CLIENT``) fail the same way:
the same reply error codes, and a cancelled request closes the upstream at once."""

from __future__ import annotations

import asyncio
import socket

import pytest

from core.contract.events import Message
from core.testing import gateway_of, wait_until
from tests.support.openai_server import FakeResponse, FakeToolCall

FALLBACK = "Sorry, try again later."

TRANSPORTS = pytest.mark.parametrize("transport", ["aiohttp", "httpx"])


async def _answer(client, stream: bool) -> tuple[list[str], object]:
    handle = await gateway_of(client).publish(Message("c1", "test", "hi", stream=stream))
    chunks = [chunk async for chunk in handle.chunks()]
    return chunks, await asyncio.wait_for(handle.reply(), 10)


@TRANSPORTS
@pytest.mark.parametrize("stream", [False, True])
async def test_a_reply_with_split_tool_arguments(agent_app, fake_openai, transport, stream):
    fake_openai.script(
        FakeResponse(
            text="",
            tool_calls=[FakeToolCall("search_knowledge_base", {"query": "доставка"})],
            argument_pieces=4,
        ),
        FakeResponse(text="Courier: 1-2 days.", chunk_chars=4),
    )
    client = await agent_app(openai_http_client=transport)
    chunks, reply = await _answer(client, stream)
    assert reply.success and reply.text == "Courier: 1-2 days."
    if stream:
        assert "".join(chunks) == reply.text
    tool_message = fake_openai.requests[1]["messages"][-1]
    assert tool_message["role"] == "tool" and "Доставка" in tool_message["content"]


@TRANSPORTS
@pytest.mark.parametrize(
    ("plan", "stream", "code"),
    [
        (FakeResponse(stall_s=30), False, "llm_timeout"),
        (FakeResponse(stall_s=30), True, "llm_timeout"),
        (FakeResponse(text="slow " * 10, chunk_chars=5, token_delay_s=30), True, "llm_timeout"),
        (FakeResponse(cut_after=2), True, "llm_bad_response"),
        (FakeResponse(malformed=True), False, "llm_bad_response"),
        (FakeResponse(malformed=True), True, "llm_bad_response"),
        (FakeResponse(status=500), True, "llm_unavailable"),
        (FakeResponse(status=401), False, "llm_auth_failed"),
    ],
    ids=[
        "stalled",
        "stalled-stream",
        "stream-stalls-mid-way",
        "stream-cut",
        "malformed",
        "malformed-stream",
        "server-error",
        "bad-key",
    ],
)
async def test_failures_have_the_same_code(agent_app, fake_openai, transport, plan, stream, code):
    fake_openai.default = plan
    client = await agent_app(
        openai_http_client=transport, openai_timeout_s=0.3, agent_fallback_text=FALLBACK
    )
    _, reply = await _answer(client, stream)
    assert reply.error is not None and reply.error.code == code
    assert reply.text == FALLBACK


@TRANSPORTS
async def test_a_server_that_refuses_connections_is_unavailable(agent_app, transport):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = await agent_app(
        openai_http_client=transport,
        openai_base_url=f"http://127.0.0.1:{port}/v1",
        agent_fallback_text=FALLBACK,
    )
    _, reply = await _answer(client, False)
    assert reply.error is not None and reply.error.code == "llm_unavailable"


@TRANSPORTS
async def test_cancel_closes_a_stream_mid_way(agent_app, fake_openai, transport):
    fake_openai.default = FakeResponse(text="token " * 200, chunk_chars=6, token_delay_s=0.05)
    client = await agent_app(openai_http_client=transport, openai_timeout_s=60)
    handle = await gateway_of(client).publish(Message("c1", "test", "hi", stream=True))
    assert await anext(handle.chunks()) == "token "
    handle.cancel()
    assert await fake_openai.wait_disconnect(1.0)
    assert fake_openai.completed == 0


@TRANSPORTS
async def test_the_connection_limit_queues_requests_beyond_it(agent_app, fake_openai, transport):
    fake_openai.default = FakeResponse(text="ok", ttft_s=0.2)
    client = await agent_app(openai_http_client=transport, openai_max_connections=1)
    gateway = gateway_of(client)
    handles = [await gateway.publish(Message(f"c{i}", "test", "hi")) for i in range(3)]
    # The first request can be slow to leave (the SDK is imported on first use, and a
    # loaded machine adds more): wait for it, then give the others time to overtake it
    # if the limit did not hold them back.
    await wait_until(lambda: len(fake_openai.requests) >= 1, timeout=10.0)
    await asyncio.sleep(0.1)
    assert len(fake_openai.requests) == 1  # the others wait for the one connection
    replies = await asyncio.gather(*(h.reply() for h in handles))
    assert [r.text for r in replies] == ["ok", "ok", "ok"]
