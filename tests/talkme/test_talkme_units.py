"""The TalkMe plugin's pieces on their own: splitting, the API client, the payload model."""

from __future__ import annotations

import email.utils
import time

import aiohttp
import pytest
from aioresponses import aioresponses
from hypothesis import given, settings
from hypothesis import strategies as st

from core.testing import ScriptedAgent, gateway_of, sent_json
from plugins.talkme.api import TalkMeApi, classify, parse_retry_after
from plugins.talkme.payload import TalkMeWebhook
from plugins.talkme.settings import DEFAULT_API_URL
from plugins.talkme.split import split_text
from tests.support.talkme_helpers import TOKEN, delivered_count, eventually, webhook_body

# -- splitting ----------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(alphabet=st.sampled_from(list("ab .!?\n\r\t…яё")), max_size=600),
    limit=st.integers(min_value=1, max_value=80),
)
def test_split_parts_fit_and_join_back_to_the_text(text, limit):
    parts = split_text(text, limit)
    assert "".join(parts) == text
    assert all(0 < len(part) <= limit for part in parts)


def test_split_prefers_paragraphs_then_sentences_then_words():
    text = "One two three. Four five six.\n\nSeven eight nine ten eleven."
    assert split_text(text, 40) == [
        "One two three. Four five six.\n\n",
        "Seven eight nine ten eleven.",
    ]
    text = "Alpha beta gamma. Delta epsilon zeta eta theta."
    assert split_text(text, 30) == ["Alpha beta gamma. ", "Delta epsilon zeta eta theta."]
    assert split_text("aaaa bbbb cccc", 10) == ["aaaa bbbb ", "cccc"]
    assert split_text("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]
    assert split_text("short", 4000) == ["short"]
    assert split_text("", 10) == []


# -- classifying API answers ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "headers", "body", "ok", "transient"),
    [
        (200, {}, {"success": True, "result": 1}, True, False),
        (200, {}, {"success": False, "error": {"code": "INVALID_TOKEN"}}, False, False),
        (200, {}, {"success": False, "error": {"code": "BAD_REQUEST"}}, False, False),
        (200, {}, {"success": False, "error": {"code": "INTERNAL_ERROR"}}, False, True),
        (200, {}, {"success": False, "error": {"code": "SERVICE_UNAVAILABLE"}}, False, True),
        (200, {}, {"success": False, "error": {"code": 503}}, False, True),
        (200, {}, {"success": False, "error": {"code": 400}}, False, False),
        (200, {}, None, False, True),
        (200, {}, "<html>maintenance</html>", False, True),
        (400, {}, {"success": False}, False, False),
        (401, {}, None, False, False),
        (404, {}, None, False, False),
        (408, {}, None, False, True),
        (429, {"Retry-After": "3"}, None, False, True),
        (500, {}, None, False, True),
        (502, {}, None, False, True),
    ],
)
def test_classify(status, headers, body, ok, transient):
    outcome = classify(status, headers, body)
    assert (outcome.ok, outcome.transient) == (ok, transient)


def test_retry_after_in_seconds_or_as_a_date():
    assert classify(429, {"Retry-After": "3"}, None).retry_after == 3.0
    now = time.time()
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert 25 <= parse_retry_after(date, now) <= 31
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


async def test_api_client_errors_never_raise():
    url = "https://talkme.invalid/json/v1.0"
    async with aiohttp.ClientSession() as session:
        api = TalkMeApi(url, session, timeout_s=1.0)
        with aioresponses() as mock:
            mock.post(f"{url}/customBot/send", exception=TimeoutError())
            mock.post(f"{url}/customBot/send", exception=aiohttp.ClientConnectionError("refused"))
            mock.post(f"{url}/customBot/send", status=429, headers={"Retry-After": "2"})
            mock.post(
                f"{url}/customBot/finish",
                payload={"success": False, "error": {"code": "DIALOG_CLOSED", "descr": "closed"}},
            )
            mock.post(f"{url}/customBot/simulateTyping", payload={"success": True, "result": {}})
            timeout = await api.send("tok", "hi")
            refused = await api.send("tok", "hi")
            limited = await api.send("tok", "hi")
            closed = await api.finish("tok", "OPERATOR_REQUEST")
            typing = await api.simulate_typing("tok", 5)
    assert timeout.transient and not timeout.reachable
    assert refused.transient and not refused.reachable
    assert limited.transient and limited.retry_after == 2.0 and limited.reachable
    assert not closed.ok and not closed.transient and closed.code == "DIALOG_CLOSED"
    assert "DIALOG_CLOSED" in closed.describe("customBot/finish")
    assert typing.ok
    assert "tok" not in closed.describe("customBot/finish")


# -- the real app with aioresponses ------------------------------------------------------------


async def test_round_trip_with_the_default_api_url_mocked(eneca_app, mock_http):
    mock_http.post(f"{DEFAULT_API_URL}/customBot/simulateTyping", payload={"success": True})
    mock_http.post(f"{DEFAULT_API_URL}/customBot/send", payload={"success": True, "result": 1})
    mock_http.post(f"{DEFAULT_API_URL}/customBot/finish", payload={"success": True})
    client = await eneca_app(
        ["talkme"], agent=ScriptedAgent("Transferring you.", actions=("handover",))
    )
    assert (await client.post("/webhook/talkme", json=webhook_body("human"))).status == 200
    await eventually(lambda: delivered_count(client))
    assert sent_json(mock_http, f"{DEFAULT_API_URL}/customBot/simulateTyping") == [{"ttl": 15}]
    assert sent_json(mock_http, f"{DEFAULT_API_URL}/customBot/send") == [
        {"content": {"text": "Transferring you."}}
    ]
    assert sent_json(mock_http, f"{DEFAULT_API_URL}/customBot/finish") == [
        {"code": "OPERATOR_REQUEST"}
    ]
    for calls in mock_http.requests.values():
        assert all(call.kwargs["headers"]["X-Token"] == TOKEN for call in calls)


async def test_a_permanent_error_with_aioresponses_is_tried_once(eneca_app, mock_http):
    mock_http.post(f"{DEFAULT_API_URL}/customBot/simulateTyping", payload={"success": True})
    mock_http.post(
        f"{DEFAULT_API_URL}/customBot/send",
        payload={"success": False, "error": {"code": "WRONG_TOKEN", "descr": "no such bot"}},
        repeat=True,
    )
    client = await eneca_app(
        ["talkme"],
        agent=ScriptedAgent("hello"),
        settings={"core": {"delivery_base_delay_s": 0.01, "delivery_max_attempts": 4}},
    )
    await client.post("/webhook/talkme", json=webhook_body("hi"))
    gateway = gateway_of(client)
    await eventually(lambda: gateway._outbox.failures == 1)
    assert len(sent_json(mock_http, f"{DEFAULT_API_URL}/customBot/send")) == 1


# -- the payload model ---------------------------------------------------------------------------


def test_the_payload_model_keeps_unknown_fields_and_names_the_visitor():
    payload = TalkMeWebhook.model_validate(
        {
            "token": " tok ",
            "client": {"searchId": 77, "extra": 1},
            "message": {"text": "hi"},
            "originalOnlineChatMessage": {"id": 5, "dialogId": 6},
            "new_field": [1, 2],
        }
    )
    message = payload.to_message()
    assert message.conversation_id == "talkme:77"
    assert message.message_id == "5" and message.chat_id == "6"
    assert message.metadata["_talkme_token"] == "tok"
    assert "token" not in message.metadata["talkme"]
    assert message.metadata["talkme"]["new_field"] == [1, 2]
    assert message.metadata["talkme"]["client"]["extra"] == 1
