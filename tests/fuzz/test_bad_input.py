"""Hypothesis throws bad bodies at the chat, stream, n8n and TalkMe webhook handlers.

Random JSON, wrong types in every known field, huge strings, deep nesting, invalid UTF-8
and NUL bytes, over real HTTP to the real gateway (memory_sqlite included, so whatever is
accepted is also stored). Each answer is a 2xx (the body happened to be acceptable) or a
4xx with the JSON error body; never a 5xx, never an unhandled error in the log, and the
server answers ``/health`` afterwards. The TalkMe payload parser is also fuzzed directly:
it returns a message or raises a validation error, nothing else.

The HTTP client is synchronous (``httpx``) and runs in a worker thread while the event
loop serves. ``FUZZ_EXAMPLES`` (default 80 per target) makes a deeper run.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from core.contract.events import Message
from core.testing import ScriptedAgent
from plugins.talkme.payload import TalkMeWebhook

API_KEY = "bad-input-key-42"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "80"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)

# -- strategies -----------------------------------------------------------------------

NASTY_TEXT = st.text(
    alphabet=st.characters(codec="utf-8") | st.sampled_from(["\x00", "\ufeff", "\u202e", " "]),
    max_size=200,
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | NASTY_TEXT,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(NASTY_TEXT, children, max_size=4)
    ),
    max_leaves=25,
)


def nested_lists(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def encode(value: Any) -> bytes:
    return json.dumps(value).encode()


def chat_bodies() -> st.SearchStrategy[bytes]:
    """Chat-shaped objects whose fields hold anything, or free JSON, or raw bytes."""
    shaped = st.fixed_dictionaries(
        {},
        optional={
            "message": NASTY_TEXT | NASTY_TEXT | json_values,
            "user_id": json_values,
            "chat_id": json_values,
            "thread_id": json_values,
            "metadata": json_values,
        },
    ).map(encode)
    return shaped | json_values.map(encode) | st.binary(max_size=500)


def n8n_bodies() -> st.SearchStrategy[bytes]:
    shaped = st.fixed_dictionaries(
        {"action": st.sampled_from(["sendMessage", "loadPreviousSession"]) | json_values},
        optional={"sessionId": json_values, "chatInput": json_values, "metadata": json_values},
    ).map(encode)
    return shaped | json_values.map(encode) | st.binary(max_size=500)


def webhook_bodies() -> st.SearchStrategy[Any]:
    """TalkMe-shaped payloads (any field may hold anything) and free JSON."""
    client = st.fixed_dictionaries(
        {}, optional={"clientId": json_values, "login": json_values, "searchId": json_values}
    )
    original = st.fixed_dictionaries({}, optional={"id": json_values, "dialogId": json_values})
    shaped = st.fixed_dictionaries(
        {
            "token": st.text(min_size=1, max_size=20) | json_values,
            "message": st.fixed_dictionaries({"text": NASTY_TEXT | json_values}) | json_values,
        },
        optional={
            "client": client | client | json_values,
            "originalOnlineChatMessage": original | json_values,
            "site": json_values,
            "extra": json_values,
        },
    )
    return shaped | json_values


# Explicit examples every run includes (they are the cases the issue names).
HUGE = b'{"message": "' + b"x" * 900_000 + b'"}'
DEEP = nested_lists(10_000)
DEEP_IN_FIELD = b'{"message": "hi", "metadata": {"a": ' + nested_lists(10_000) + b"}}"
DEEP_BUT_PARSEABLE = b'{"message": "hi", "metadata": {"a": ' + nested_lists(900) + b"}}"
INVALID_UTF8 = b'{"message": "\xff\xfe\xc3\x28"}'
NUL_BYTES = b'{"message": "a\x00b"}'
NUL_ESCAPED = b'{"message": "a\\u0000b", "user_id": "\\u0000"}'
LONE_SURROGATE = b'{"message": "a\\ud800"}'
SURROGATE_IN_METADATA = b'{"message": "hi", "metadata": {"k": "\\udc00", "ok": "\\ud83d\\ude00"}}'
LONG_NUMBER = b'{"message": "hi", "user_id": ' + b"9" * 5000 + b"}"
TALKME_OK = {"token": "t-1", "message": {"text": "hi"}, "client": {"clientId": "v1"}}


def talkme(body: dict[str, Any], **changes: Any) -> bytes:
    return encode({**body, **changes})


# -- checking one answer ----------------------------------------------------------------


def check_answer(response: httpx.Response) -> None:
    """2xx, or 4xx with the JSON error body; never 5xx."""
    status = response.status_code
    assert status < 500, f"{status}: {response.text[:300]}"
    if status >= 400:
        body = response.json()
        assert body["success"] is False
        assert isinstance(body["error"]["code"], str) and body["error"]["code"]
        assert isinstance(body["error"]["message"], str)


def post_all(
    base_url: str, path: str, bodies: st.SearchStrategy[Any], explicit: list[bytes]
) -> dict[int, int]:
    """Post every example to ``path``; return how many got each status."""
    statuses: dict[int, int] = {}
    with httpx.Client(base_url=base_url, timeout=30, headers={"X-API-Key": API_KEY}) as http:

        def send(body: Any) -> None:
            data = body if isinstance(body, bytes) else encode(body)
            response = http.post(path, content=data, headers={"Content-Type": "application/json"})
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            check_answer(response)

        test: Callable[..., None] = given(body=bodies)(lambda body: send(body))
        for body in explicit:
            test = example(body=body)(test)
        FUZZ(test)()
    return statuses


# -- the tests ------------------------------------------------------------------------


@pytest.fixture
async def gateway_client(eneca_app, tmp_path):
    client = await eneca_app(
        ["http_api", "talkme", "memory_sqlite"],
        agent=ScriptedAgent(),
        settings={
            "core": {"api_keys": API_KEY, "log_json": True},
            "http_api": {"debug_endpoint": True},
            "talkme": {"test_mode": True},
        },
    )
    client.log_file = tmp_path / "logs" / "app.log"
    return client


EVERY_NAMED_CASE = [
    HUGE,
    DEEP,
    DEEP_IN_FIELD,
    DEEP_BUT_PARSEABLE,
    INVALID_UTF8,
    NUL_BYTES,
    NUL_ESCAPED,
    LONE_SURROGATE,
    SURROGATE_IN_METADATA,
    LONG_NUMBER,
    b"",
    b"null",
    b"\x00" * 64,
]

TARGETS = {
    "/api/chat": (chat_bodies(), EVERY_NAMED_CASE),
    "/api/chat/stream": (chat_bodies(), EVERY_NAMED_CASE),
    "/api/n8n/chat": (n8n_bodies(), EVERY_NAMED_CASE),
    "/api/debug": (json_values.map(encode) | st.binary(max_size=300), EVERY_NAMED_CASE),
    "/webhook/talkme": (
        webhook_bodies(),
        [
            *EVERY_NAMED_CASE,
            talkme(TALKME_OK, message={"text": "a\x00b"}),
            talkme(TALKME_OK, message={"text": "x" * 500_000}),
            talkme(TALKME_OK, message={"text": "\ud800"}),
            talkme(TALKME_OK, client={"clientId": "v\x00"}),
            talkme(TALKME_OK, extra=json.loads(nested_lists(900))),
            talkme(TALKME_OK, token="t" * 100_000),
            talkme(TALKME_OK, client={"clientId": 10**4000}),
        ],
    ),
}


@pytest.mark.parametrize("path", list(TARGETS))
async def test_bad_bodies_get_a_json_4xx_never_a_5xx(gateway_client, path):
    client = gateway_client
    base_url = str(client.make_url("")).rstrip("/")
    bodies, explicit = TARGETS[path]

    statuses = await asyncio.to_thread(post_all, base_url, path, bodies, explicit)

    print(f"{path}: {sum(statuses.values())} bodies, statuses {dict(sorted(statuses.items()))}")
    assert any(400 <= status < 500 for status in statuses), "the fuzzer reached no refusal"
    health = await client.get("/health")
    assert health.status == 200, await health.text()
    logged = client.log_file.read_text(encoding="utf-8")
    assert "unhandled error" not in logged
    assert '"level": {"icon": "❌", "name": "ERROR"' not in logged


@settings(FUZZ, max_examples=max(EXAMPLES * 5, 200))
@given(data=webhook_bodies())
@example(data=json.loads(nested_lists(900)))
@example(data={"token": "t", "message": {"text": "hi"}, "client": {"clientId": "   "}})
@example(data={"token": "t", "message": {"text": "hi"}, "originalOnlineChatMessage": True})
def test_talkme_parser_returns_a_message_or_a_validation_error(data):
    try:
        message = TalkMeWebhook.model_validate(data).to_message()
    except (ValidationError, ValueError):
        return
    assert isinstance(message, Message)
    assert message.conversation_id.startswith("talkme:") and len(message.conversation_id) > 7
    assert message.text.strip()
    json.dumps(message.metadata["talkme"])  # what the inbox stores must serialise
