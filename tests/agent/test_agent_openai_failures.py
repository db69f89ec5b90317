"""When the model fails, stalls or the asking client leaves: fallbacks and cancellation."""

from __future__ import annotations

import asyncio

import pytest
from loguru import logger

from core.contract.events import Message
from core.testing import ask, gateway_of
from tests.support.openai_server import FakeResponse

FALLBACK = "Sorry, try again later."


async def test_rate_limited_then_success_is_retried(agent_app, fake_openai):
    fake_openai.script(FakeResponse(status=429), FakeResponse(text="after the retry"))
    client = await agent_app(openai_max_retries=2)
    reply = await ask(gateway_of(client), "hi")
    assert reply.success
    assert reply.text == "after the retry"
    assert len(fake_openai.requests) == 2


@pytest.mark.parametrize("stream", [False, True])
async def test_server_error_forever_falls_back_with_an_error_code(agent_app, fake_openai, stream):
    fake_openai.default = FakeResponse(status=500)
    client = await agent_app(openai_max_retries=1, agent_fallback_text=FALLBACK)
    handle = await gateway_of(client).publish(Message("c1", "test", "hello?", stream=stream))
    chunks = [chunk async for chunk in handle.chunks()]
    reply = await handle.reply()
    assert reply.error is not None and reply.error.code == "llm_unavailable"
    assert reply.text == FALLBACK
    assert len(fake_openai.requests) == 2  # the first try and one retry
    if stream:
        assert chunks == [FALLBACK]  # a streaming client sees the apology too


async def test_failure_answers_from_the_knowledge_base_when_it_matches(agent_app, fake_openai):
    fake_openai.default = FakeResponse(status=503)
    client = await agent_app(agent_fallback_text=FALLBACK)
    reply = await ask(gateway_of(client), "Как оплатить заказ?")
    assert reply.error is not None and reply.error.code == "llm_unavailable"
    assert reply.text.startswith("Из базы знаний (Способы, payment.ru.md)")
    assert "картой МИР" in reply.text
    assert reply.metadata["source"] == "knowledge_base"


async def test_rate_limited_forever(agent_app, fake_openai):
    fake_openai.default = FakeResponse(status=429)
    client = await agent_app(openai_max_retries=1, agent_fallback_text=FALLBACK)
    reply = await ask(gateway_of(client), "hi")
    assert reply.error is not None and reply.error.code == "llm_rate_limited"
    assert reply.text == FALLBACK


@pytest.mark.parametrize("stream", [False, True])
async def test_stalled_upstream_times_out_then_falls_back(agent_app, fake_openai, stream):
    fake_openai.default = FakeResponse(stall_s=30)
    client = await agent_app(openai_timeout_s=0.3, agent_fallback_text=FALLBACK)
    message = Message("c1", "test", "hi", stream=stream)
    reply = await asyncio.wait_for((await gateway_of(client).publish(message)).reply(), 10)
    assert reply.error is not None and reply.error.code == "llm_timeout"
    assert reply.text == FALLBACK


async def test_stream_stalling_mid_way_times_out(agent_app, fake_openai):
    fake_openai.default = FakeResponse(text="slow " * 10, chunk_chars=5, token_delay_s=30)
    client = await agent_app(openai_timeout_s=0.3, agent_fallback_text=FALLBACK)
    handle = await gateway_of(client).publish(Message("c1", "test", "hi", stream=True))
    chunks = [chunk async for chunk in handle.chunks()]
    reply = await asyncio.wait_for(handle.reply(), 10)
    assert reply.error is not None and reply.error.code == "llm_timeout"
    assert chunks == ["slow "]  # what was streamed stays; the apology is not appended to it
    assert reply.text == FALLBACK


@pytest.mark.parametrize(
    "plan",
    [
        FakeResponse(malformed=True),
        FakeResponse(text="", usage=None),
    ],
    ids=["malformed-json", "empty-text"],
)
async def test_bad_responses_fall_back(agent_app, fake_openai, plan):
    fake_openai.default = plan
    client = await agent_app(agent_fallback_text=FALLBACK)
    reply = await ask(gateway_of(client), "hi")
    assert reply.error is not None and reply.error.code == "llm_bad_response"
    assert reply.text == FALLBACK


@pytest.mark.parametrize("plan", [FakeResponse(malformed=True), FakeResponse(cut_after=2)])
async def test_bad_streams_fall_back(agent_app, fake_openai, plan):
    fake_openai.default = plan
    client = await agent_app(agent_fallback_text=FALLBACK)
    handle = await gateway_of(client).publish(Message("c1", "test", "hi", stream=True))
    [chunk async for chunk in handle.chunks()]
    reply = await handle.reply()
    assert reply.error is not None and reply.error.code == "llm_bad_response"
    assert reply.text == FALLBACK
    # Not remembered: the next request carries no half reply.
    fake_openai.default = FakeResponse(text="fine")
    await ask(gateway_of(client), "again")
    assert [m["role"] for m in fake_openai.requests[-1]["messages"]] == ["system", "user", "user"]


async def _wait_for_request(fake, count=1):
    for _ in range(200):
        if len(fake.requests) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the fake never got the request")


async def test_cancel_closes_a_waiting_upstream_request(agent_app, fake_openai):
    fake_openai.default = FakeResponse(stall_s=30)
    client = await agent_app(openai_timeout_s=60)
    handle = await gateway_of(client).publish(Message("c1", "test", "hi"))
    await _wait_for_request(fake_openai)
    handle.cancel()
    assert await fake_openai.wait_disconnect(1.0)
    with pytest.raises(asyncio.CancelledError):
        await handle.reply()


async def test_cancel_closes_a_stream_mid_way(agent_app, fake_openai):
    fake_openai.default = FakeResponse(text="token " * 200, chunk_chars=6, token_delay_s=0.05)
    client = await agent_app(openai_timeout_s=60)
    handle = await gateway_of(client).publish(Message("c1", "test", "hi", stream=True))
    chunks = handle.chunks()
    assert await anext(chunks) == "token "
    handle.cancel()
    assert await fake_openai.wait_disconnect(1.0)
    assert fake_openai.completed == 0


async def test_the_api_key_never_reaches_the_logs(agent_app, fake_openai):
    lines = []
    client = await agent_app(openai_api_key="sk-very-secret-value-123")
    sink = logger.add(lines.append, level="DEBUG")
    try:
        fake_openai.default = FakeResponse(status=401)
        reply = await ask(gateway_of(client), "hi")
        logger.info("echo of the key: sk-very-secret-value-123")
    finally:
        logger.remove(sink)
    assert reply.error is not None and reply.error.code == "llm_auth_failed"
    assert fake_openai.headers[0]["Authorization"] == "Bearer sk-very-secret-value-123"
    text = "".join(str(line) for line in lines)
    assert "echo of the key" in text
    assert "sk-very-secret-value-123" not in text
