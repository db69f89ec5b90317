"""Tracing of a real ``eneca-bot serve`` exporting to the test OTLP receiver.

What an operator sees: the trace of one message with its parents, the caller's trace
continued, the trace id in the response, nothing of the visitor's text in any span, no
OpenTelemetry at all when tracing is off, and a gateway that answers normally (with one
warning) when the receiver is down.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.clients import HEADERS, eventually
from tests.support.openai_server import FakeOpenAI
from tests.support.otlp_receiver import OtlpReceiver
from tests.support.serve_process import ServeProcess, base_env, free_port

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
CLIENT_PARENT = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"


def traced_env(tmp_path: Path, llm: FakeOpenAI, receiver: OtlpReceiver, **extra: Any) -> dict:
    """Every built-in plugin, exporting to ``receiver`` in small, quick batches."""
    return base_env(
        tmp_path,
        OPENAI_BASE_URL=llm.base_url,
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_BSP_SCHEDULE_DELAY="20",
        **extra,
    )


async def post_chat(
    session: aiohttp.ClientSession,
    url: str,
    text: str,
    *,
    thread: str = "t-1",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any], dict[str, str]]:
    async with session.post(
        f"{url}/api/chat",
        json={"message": text, "thread_id": thread},
        headers={**HEADERS, **(headers or {})},
        timeout=aiohttp.ClientTimeout(total=30),
    ) as response:
        return response.status, await response.json(), dict(response.headers)


async def test_a_client_traceparent_is_the_parent_and_the_trace_id_comes_back(
    tmp_path: Path, llm: FakeOpenAI, otlp_receiver: OtlpReceiver
) -> None:
    server = ServeProcess(tmp_path, traced_env(tmp_path, llm, otlp_receiver))
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            status, body, headers = await post_chat(
                session, server.url, "hello there", headers={"traceparent": CLIENT_PARENT}
            )
            assert (status, body["response"]) == (200, "re: hello there")
            assert headers["X-Trace-ID"] == CLIENT_TRACE
            # Without one, a new trace, whose id comes back all the same.
            status, _, fresh = await post_chat(session, server.url, "again")
            assert status == 200 and fresh["X-Trace-ID"] not in ("", CLIENT_TRACE)
        spans = await otlp_receiver.wait_for(
            lambda spans: len({s.trace_id for s in spans if s.name == "POST /api/chat"}) >= 2
        )
    finally:
        await server.stop()
    request = next(s for s in spans if s.name == "POST /api/chat" and s.trace_id == CLIENT_TRACE)
    assert request.parent_span_id == CLIENT_SPAN
    assert request.kind == "server"
    assert request.attributes["http.route"] == "/api/chat"
    assert request.attributes["http.response.status_code"] == 200
    assert request.resource["service.name"] == "eneca-bot"
    other = next(s for s in spans if s.name == "POST /api/chat" and s.trace_id != CLIENT_TRACE)
    assert other.trace_id == fresh["X-Trace-ID"] and other.parent_span_id == ""


async def test_a_404_is_named_by_no_path(
    tmp_path: Path, llm: FakeOpenAI, otlp_receiver: OtlpReceiver
) -> None:
    """A path can hold a webhook secret or a visitor id: spans carry the route template."""
    server = ServeProcess(tmp_path, traced_env(tmp_path, llm, otlp_receiver))
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{server.url}/no/such/secret-path-123") as response:
                assert response.status == 404
                trace_id = response.headers["X-Trace-ID"]
        spans = await otlp_receiver.wait_for(lambda s: any(x.trace_id == trace_id for x in s))
    finally:
        await server.stop()
    (span,) = [s for s in spans if s.trace_id == trace_id]
    assert span.name == "GET unmatched"
    assert span.attributes["http.response.status_code"] == 404
    assert "secret-path-123" not in span.text()


async def test_no_message_text_in_any_span_by_default(
    tmp_path: Path, llm: FakeOpenAI, otlp_receiver: OtlpReceiver
) -> None:
    server = ServeProcess(tmp_path, traced_env(tmp_path, llm, otlp_receiver))
    await server.start()
    secret_text = "my card is 4111-1111-1111-1111"
    try:
        async with aiohttp.ClientSession() as session:
            status, body, headers = await post_chat(
                session, server.url, secret_text, thread="private-thread-77"
            )
            assert status == 200 and body["response"] == f"re: {secret_text}"
        await server.stop()  # everything buffered is exported at shut-down
    finally:
        await server.stop()
    spans = otlp_receiver.trace(headers["X-Trace-ID"])
    assert spans, "the request was traced"
    for span in otlp_receiver.spans:
        assert "4111-1111" not in span.text()
        assert "private-thread-77" not in span.text()


# The probe runs inside the real ``serve`` process (same interpreter), then stops it.
PROBE = """
import json, os, signal, sys, threading, time, urllib.request

def probe():
    url = "http://127.0.0.1:" + os.environ["PORT"]
    for _ in range(600):
        try:
            urllib.request.urlopen(url + "/health", timeout=2)
            break
        except Exception:
            time.sleep(0.05)
    request = urllib.request.Request(
        url + "/api/chat",
        data=json.dumps({"message": "hello"}).encode(),
        headers={"content-type": "application/json", "X-API-Key": os.environ["ADMIN_KEYS"]},
    )
    reply = json.load(urllib.request.urlopen(request, timeout=20))
    modules = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
    with open(os.environ["PROBE_OUT"], "w") as out:
        json.dump({"reply": reply.get("response"), "modules": modules}, out)
    os.kill(os.getpid(), signal.SIGTERM)

threading.Thread(target=probe, daemon=True).start()
from core.cli import main
sys.exit(main(["serve"]))
"""


class ProbedServe(ServeProcess):
    def command(self) -> list[str]:
        return [sys.executable, "-c", PROBE]


async def test_tracing_off_imports_no_opentelemetry_module(tmp_path: Path, llm: FakeOpenAI) -> None:
    out = tmp_path / "probe.json"
    env = base_env(tmp_path, OPENAI_BASE_URL=llm.base_url, PROBE_OUT=str(out))
    server = ProbedServe(tmp_path, env)
    await server.spawn()
    assert await server.wait(60) == 0, server.stderr()
    report = json.loads(out.read_text())
    assert report == {"reply": "re: hello", "modules": []}


async def test_the_probe_sees_opentelemetry_when_tracing_is_on(
    tmp_path: Path, llm: FakeOpenAI, otlp_receiver: OtlpReceiver
) -> None:
    """The off test's probe can see the modules: on, they are there."""
    out = tmp_path / "probe.json"
    env = traced_env(tmp_path, llm, otlp_receiver, PROBE_OUT=str(out))
    server = ProbedServe(tmp_path, env)
    await server.spawn()
    assert await server.wait(60) == 0, server.stderr()
    report = json.loads(out.read_text())
    assert report["reply"] == "re: hello"
    assert "opentelemetry.sdk.trace" in report["modules"]


async def test_receiver_down_answers_normally_with_one_warning_a_minute(
    tmp_path: Path, llm: FakeOpenAI
) -> None:
    env = base_env(
        tmp_path,
        OPENAI_BASE_URL=llm.base_url,
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{free_port()}",  # nothing listens
        OTEL_BSP_SCHEDULE_DELAY="10",
        OTEL_EXPORTER_OTLP_TIMEOUT="1",
    )
    server = ServeProcess(tmp_path, env)
    started = time.monotonic()
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            for number in range(3):
                status, body, _ = await post_chat(session, server.url, f"first {number}")
                assert (status, body["response"]) == (200, f"re: first {number}")
            await eventually(
                lambda: "tracing: could not export" in server.app_log(),
                30,
                "the failed export is reported",
            )
            for number in range(3):  # more batches fail, quietly
                status, body, _ = await post_chat(session, server.url, f"then {number}")
                assert (status, body["response"]) == (200, f"re: then {number}")
    finally:
        assert await server.stop() == 0
    minutes = (time.monotonic() - started) / 60
    lines = server.app_log().splitlines()
    warnings = [line for line in lines if "tracing:" in line and "WARNING" in line]
    assert 1 <= len(warnings) <= 1 + int(minutes), warnings
    # The SDK's own error lines are folded into that warning, not printed.
    assert "Failed to export" not in server.stderr().replace("tracing:", "")
