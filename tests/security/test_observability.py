"""Observability: request and conversation ids on every log line, and ``/metrics``.

(Kept with the security tests: both read what the gateway tells its operator.)

``LOG_JSON=true`` makes ``logs/app.log`` JSON lines; each chat, stream, n8n, thread and
TalkMe webhook request is sent with a known ``X-Request-ID`` and every line logged while
handling it must carry that id and, once the conversation is known, its conversation id,
including the access line. TalkMe deliveries (background work after the request) carry
the conversation id. ``/metrics`` must expose requests by route and status, latency
histograms, bus lanes and queue depth, agent (LLM) latency and tokens, deliveries by
outcome (retries included) and the pending count.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from loguru import logger

from core.contract.agent import AgentRequest, ChunkSink
from core.contract.events import Reply
from core.testing import gateway_of, wait_settled
from tests.support.talkme_fake_api import FakeTalkMe, Scripted

KEY = {"X-API-Key": "obs-key-1"}
ADMIN = {"X-API-Key": "obs-admin-1"}


class LoggingAgent:
    """Logs a line while it works (as a real agent does) and reports token usage."""

    async def respond(self, request: AgentRequest, on_chunk: ChunkSink) -> Reply:
        message = request.message
        logger.info("agent working on {!r}", message.text)
        if message.stream:
            await on_chunk("re: ")
            await on_chunk(message.text)
        usage = {"prompt_tokens": 7, "completion_tokens": 3}
        return Reply(
            message.conversation_id, message.channel, f"re: {message.text}", message, usage=usage
        )

    def status(self) -> dict[str, Any]:
        return {"configured": True}


def records(log_file: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log_file.read_text().splitlines() if line]


async def start(eneca_app, talkme: FakeTalkMe):
    return await eneca_app(
        ["http_api", "talkme", "memory_sqlite"],
        agent=LoggingAgent(),
        settings={
            "core": {
                "api_keys": KEY["X-API-Key"],
                "admin_keys": ADMIN["X-API-Key"],
                "log_json": True,
                "delivery_base_delay_s": 0.01,
                "delivery_max_attempts": 4,
            },
            "talkme": {"api_url": talkme.url, "typing_ttl_s": 0},
        },
    )


async def test_every_line_of_a_request_carries_its_request_and_conversation_ids(
    eneca_app, fake_talkme, tmp_path
):
    client = await start(eneca_app, fake_talkme)
    sent = {
        "rid-chat": ("/api/chat", {"message": "one", "thread_id": "th-chat"}, "th-chat"),
        "rid-stream": ("/api/chat/stream", {"message": "two", "thread_id": "th-sse"}, "th-sse"),
        "rid-n8n": (
            "/api/n8n/chat",
            {"action": "sendMessage", "sessionId": "th-n8n", "chatInput": "three"},
            "th-n8n",
        ),
        "rid-hook": (
            "/webhook/talkme",
            {
                "token": "tok-obs-1",
                "message": {"text": "four"},
                "client": {"clientId": "v-obs"},
                "originalOnlineChatMessage": {"id": 41},
            },
            "talkme:v-obs",
        ),
    }
    for request_id, (path, body, _) in sent.items():
        response = await client.post(path, json=body, headers={**KEY, "X-Request-ID": request_id})
        assert response.status == 200, await response.text()
        await response.read()
    history = await client.get(
        "/api/threads/th-chat/messages", headers={**KEY, "X-Request-ID": "rid-thread"}
    )
    assert history.status == 200
    bad = await client.post(
        "/api/chat", json={"message": 5}, headers={**KEY, "X-Request-ID": "rid-bad"}
    )
    assert bad.status == 422
    await wait_settled(gateway_of(client))

    lines = records(tmp_path / "logs" / "app.log")
    expected = {rid: conversation for rid, (_, _, conversation) in sent.items()}
    expected["rid-thread"] = "th-chat"
    for request_id, conversation in expected.items():
        mine = [r for r in lines if r.get("request_id") == request_id]
        assert any(r["message"].startswith(("POST ", "GET ")) for r in mine), request_id
        for record in mine:
            assert record.get("conversation_id") == conversation, (request_id, record)
    agent_lines = [r for r in lines if r["message"].startswith("agent working")]
    assert len(agent_lines) == 4
    assert all(r.get("request_id") in expected for r in agent_lines)
    # A refused body never reached a conversation: its access line has the request id only.
    (refused,) = [r for r in lines if r.get("request_id") == "rid-bad"]
    assert refused["conversation_id"] is None
    # Any line naming a conversation carries its id: deliveries after the request included.
    for record in lines:
        for conversation in expected.values():
            if f"conversation {conversation}" in record["message"]:
                assert record.get("conversation_id") == conversation, record
    print(f"{len(lines)} log lines checked")


async def test_metrics_expose_requests_latency_bus_llm_and_deliveries(
    eneca_app, fake_talkme, tmp_path
):
    fake_talkme.script("send", Scripted(500))  # the first delivery is retried
    client = await start(eneca_app, fake_talkme)
    await client.post("/api/chat", json={"message": "hi"}, headers=KEY)
    await client.post("/api/chat", json={}, headers=KEY)
    hook = {
        "token": "tok-m",
        "message": {"text": "hello"},
        "client": {"clientId": "v-m"},
        "originalOnlineChatMessage": {"id": 1},
    }
    assert (await client.post("/webhook/talkme", json=hook)).status == 200
    await wait_settled(gateway_of(client))

    metrics = await client.get("/metrics", headers=ADMIN)
    assert metrics.status == 200
    text = await metrics.text()
    for needle in (
        'eneca_http_requests_total{method="POST",route="/api/chat",status="200"} 1.0',
        'eneca_http_requests_total{method="POST",route="/api/chat",status="422"} 1.0',
        'eneca_http_request_duration_seconds_bucket{le="0.1",route="/api/chat"}',
        "eneca_bus_lanes 0.0",
        "eneca_bus_in_flight 0.0",
        'eneca_agent_reply_duration_seconds_count{channel="http_api"} 1.0',
        'eneca_agent_reply_duration_seconds_count{channel="talkme"} 1.0',
        'eneca_llm_tokens_total{kind="prompt"} 14.0',
        'eneca_llm_tokens_total{kind="completion"} 6.0',
        'eneca_deliveries_total{channel="talkme",outcome="retry"} 1.0',
        'eneca_deliveries_total{channel="talkme",outcome="delivered"} 1.0',
        "eneca_pending_deliveries 0.0",
        "eneca_unanswered_messages 0.0",
    ):
        assert needle in text, f"{needle!r} not in /metrics:\n{text}"
