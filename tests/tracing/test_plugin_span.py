"""A plugin's own spans: the Telegram example wraps each Bot API call of a delivery in
``gateway.span``; with tracing on it is a child of the core's span of that attempt."""

from __future__ import annotations

import asyncio

import pytest

from core import tracing
from core.testing import FAST_DELIVERY, ScriptedAgent, gateway_of, wait_delivered
from tests.support.otlp_receiver import OtlpReceiver

TOKEN = "123456:test-token-abcdefghijklmnop"
API = "http://telegram.test"
SEND = f"{API}/bot{TOKEN}/sendMessage"


async def test_each_send_message_call_is_a_span_under_its_delivery_attempt(
    eneca_app, mock_http, otlp_receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_receiver.endpoint)
    mock_http.post(f"{API}/bot{TOKEN}/sendChatAction", payload={"ok": True}, repeat=True)
    mock_http.post(SEND, payload={"ok": True, "result": {"message_id": 1}})
    tracing.configure(version="test")
    try:
        client = await eneca_app(
            plugins=["telegram"],
            agent=ScriptedAgent("hi there!"),
            settings={"core": FAST_DELIVERY, "telegram": {"bot_token": TOKEN, "api_url": API}},
        )
        update = {
            "update_id": 1,
            "message": {
                "message_id": 10,
                "date": 1_700_000_000,
                "chat": {"id": 42, "type": "private"},
                "from": {"id": 7, "is_bot": False, "first_name": "Ann"},
                "text": "my secret plans",
            },
        }
        assert (await client.post("/webhook/telegram", json=update)).status == 200
        await wait_delivered(gateway_of(client), channel="telegram")
        assert await asyncio.to_thread(tracing.active().force_flush, 10)
        spans = await otlp_receiver.wait_for(
            lambda spans: any(s.name == "telegram.send_message" for s in spans)
        )
    finally:
        tracing.shutdown()
    send = next(span for span in spans if span.name == "telegram.send_message")
    attempt = otlp_receiver.parent_of(send)
    assert attempt is not None and attempt.name == "delivery telegram"
    assert attempt.attributes["eneca.delivery.outcome"] == "delivered"
    assert send.kind == "client"
    assert send.attributes == {
        "telegram.part": 1,
        "telegram.parts": 1,
        "http.response.status_code": 200,
    }
    assert all("secret plans" not in span.text() for span in spans)
