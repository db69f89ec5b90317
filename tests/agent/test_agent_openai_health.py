"""Honest health: a model that keeps failing makes /health say so (without /health ever
calling the model), and the log says what the failure was: refused, or a timeout."""

from __future__ import annotations

import socket

import pytest

from core.testing import ask, gateway_of
from plugins.agent_openai.diagnosis import DNS, DROPPED, REFUSED, TIMEOUT, failure_kind
from tests.support.logs import captured_log
from tests.support.openai_server import FakeResponse
from tests.support.serve_process import free_port


async def _agent_health(client) -> tuple[int, dict]:
    response = await client.get("/health")
    body = await response.json()
    return response.status, body["plugins"]["agent_openai"]


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_a_refused_connection_is_logged_as_refused_and_degrades_health(agent_app, transport):
    port = free_port()
    client = await agent_app(
        openai_base_url=f"http://127.0.0.1:{port}/v1",
        openai_http_client=transport,
        agent_degraded_after=2,
    )
    with captured_log() as lines:
        first = await ask(gateway_of(client), "hi")
    assert first.error is not None and first.error.code == "llm_unavailable"
    failure = next(line for line in lines if "model failed" in line)
    assert f"connection refused by http://127.0.0.1:{port}/v1/" in failure
    assert "timed out" not in failure.lower()
    status, agent = await _agent_health(client)
    assert status == 200 and agent["state"] == "ok"  # one failure is not yet degraded
    await ask(gateway_of(client), "again")
    status, agent = await _agent_health(client)
    assert status == 503
    assert agent["ok"] is False and agent["state"] == "degraded"
    assert agent["consecutive_failures"] == 2
    assert agent["last_error"]["code"] == "llm_unavailable"


async def test_a_slow_server_is_logged_as_a_timeout(agent_app, fake_openai):
    fake_openai.default = FakeResponse(stall_s=30)
    client = await agent_app(openai_timeout_s=0.3)
    with captured_log() as lines:
        reply = await ask(gateway_of(client), "hi")
    assert reply.error is not None and reply.error.code == "llm_timeout"
    failure = next(line for line in lines if "model failed" in line)
    assert f"{fake_openai.base_url.rstrip('/')}/ timed out" in failure
    assert "refused" not in failure


async def test_health_recovers_on_the_next_success_and_never_calls_the_model(
    agent_app, fake_openai
):
    fake_openai.script(FakeResponse(status=500), FakeResponse(status=500))
    client = await agent_app(agent_degraded_after=2)
    for text in ("one", "two"):
        assert (await ask(gateway_of(client), text)).error is not None
    asked = len(fake_openai.requests)
    for _ in range(3):
        status, agent = await _agent_health(client)
        assert status == 503 and agent["last_error"]["code"] == "llm_unavailable"
    assert len(fake_openai.requests) == asked  # /health itself sends nothing to the model
    fake_openai.default = FakeResponse(text="back")
    assert (await ask(gateway_of(client), "three")).text == "back"
    status, agent = await _agent_health(client)
    assert status == 200 and agent["state"] == "ok" and agent["consecutive_failures"] == 0


async def test_zero_never_reports_degraded(agent_app, fake_openai):
    fake_openai.default = FakeResponse(status=500)
    client = await agent_app(agent_degraded_after=0)
    for text in ("one", "two", "three", "four"):
        await ask(gateway_of(client), text)
    status, agent = await _agent_health(client)
    assert status == 200 and agent["consecutive_failures"] == 4


def test_a_dns_failure_and_a_dropped_connection_are_named_as_such():
    try:
        try:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        except OSError as exc:
            raise RuntimeError("Connection error.") from exc
    except RuntimeError as wrapped:
        assert failure_kind(wrapped) == DNS
    assert failure_kind(ConnectionRefusedError(111, "refused")) == REFUSED
    assert failure_kind(TimeoutError()) == TIMEOUT
    assert failure_kind(ConnectionResetError(104, "reset by peer")) == DROPPED
    assert failure_kind(ValueError("other")) is None
