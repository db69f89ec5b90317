"""A full session with known secrets; none of them may appear in the log or any response.

The real gateway runs every built-in plugin: the OpenAI agent talks to the fake OpenAI
server with a known key (one call fails with an error message quoting that key, as a
misconfigured proxy might), TalkMe delivers to the fake TalkMe API with per-visitor tokens,
the webhook secret is in the URL path and in a query string, the API key is sent as
``X-API-Key`` and as a Bearer token, and the debug endpoint echoes headers and a body full
of secrets. Then ``logs/app.log`` and every response's status line, headers and body are
scanned for each secret.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.testing import gateway_of, wait_settled
from tests.support.openai_server import FakeOpenAI, FakeResponse
from tests.support.talkme_fake_api import FakeTalkMe

API_KEY = "api-key-SECRET-1f2e3d"
OPENAI_KEY = "sk-openai-SECRET-9a8b7c"
WEBHOOK_SECRET = "hook-SECRET-5d6e7f"
TOKENS = ["talkme-token-SECRET-aaa111", "talkme-token-SECRET-bbb222"]
SECRETS = [API_KEY, OPENAI_KEY, WEBHOOK_SECRET, *TOKENS]


@pytest.fixture
async def fakes(monkeypatch) -> AsyncIterator[tuple[FakeOpenAI, FakeTalkMe]]:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "API_KEYS", "TALKME_WEBHOOK_SECRET"):
        monkeypatch.delenv(name, raising=False)
    talkme = FakeTalkMe()
    await talkme.start()
    async with FakeOpenAI() as openai:
        yield openai, talkme
    await talkme.stop()


def webhook(token: str, visitor: str, message_id: int, text: str) -> dict:
    return {
        "token": token,
        "message": {"text": text},
        "client": {"clientId": visitor},
        "originalOnlineChatMessage": {"id": message_id, "dialogId": 7},
    }


async def test_no_secret_reaches_the_log_or_any_response(eneca_app, fakes, tmp_path: Path):
    openai, talkme = fakes
    client = await eneca_app(
        ["http_api", "talkme", "memory_sqlite", "agent_openai"],
        settings={
            "core": {
                "api_keys": API_KEY,
                "delivery_base_delay_s": 0.01,
                "delivery_max_attempts": 3,
            },
            "http_api": {"debug_endpoint": True},
            "talkme": {"api_url": talkme.url, "webhook_secret": WEBHOOK_SECRET, "typing_ttl_s": 0},
            "agent_openai": {
                "openai_api_key": OPENAI_KEY,
                "openai_base_url": openai.base_url,
                "openai_max_retries": 0,
                "knowledge_mode": "off",
                "system_prompt": "test",
            },
        },
    )
    key = {"X-API-Key": API_KEY}
    seen: list[str] = []

    async def record(response) -> None:
        text = await response.text()
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        seen.append(f"{response.status} {response.reason}\n{headers}\n\n{text}")

    await record(
        await client.post("/api/chat", json={"message": "hi", "thread_id": "t"}, headers=key)
    )
    await record(
        await client.post(
            "/api/chat/stream",
            json={"message": "stream please", "thread_id": "t"},
            headers={"Authorization": f"Bearer {API_KEY}"},
        )
    )
    await record(
        await client.post(
            f"/webhook/talkme/{WEBHOOK_SECRET}", json=webhook(TOKENS[0], "v1", 1, "a")
        )
    )
    await record(
        await client.post(
            "/webhook/talkme",
            params={"secret": WEBHOOK_SECRET},
            json=webhook(TOKENS[1], "v2", 2, "b"),
        )
    )
    await record(await client.post("/webhook/talkme/wrong", json=webhook(TOKENS[0], "v1", 3, "c")))
    await talkme.wait_until(lambda: len(talkme.confirmed("send")) >= 2)
    assert {call.headers.get("X-Token") for call in talkme.confirmed("send")} == set(TOKENS)

    # The model server fails, quoting the key: the agent logs an error and falls back.
    openai.script(FakeResponse(status=401, error_message=f"Incorrect API key: {OPENAI_KEY}"))
    failed = await client.post("/api/chat", json={"message": "fail now"}, headers=key)
    await record(failed)
    assert (await failed.json())["success"] is False

    await record(
        await client.post(
            "/api/debug",
            json={"token": TOKENS[0], "api_key": API_KEY, "nested": {"secret": WEBHOOK_SECRET}},
            headers={**key, "X-Token": TOKENS[1], "Cookie": f"s={API_KEY}"},
            params={"secret": WEBHOOK_SECRET},
        )
    )
    for path in (
        "/",
        "/health",
        "/openapi.json",
        "/metrics",
        "/webhook/talkme/health",
        "/webhook/talkme/stats",
        "/api/threads/t/messages",
        "/api/threads/talkme:v1/messages",
    ):
        await record(await client.get(path, headers=key))
    await record(await client.post("/api/chat", json={"message": "no key"}))
    await record(
        await client.post("/api/chat", json={"message": "bad"}, headers={"X-API-Key": "x"})
    )
    await wait_settled(gateway_of(client))

    log = (tmp_path / "logs" / "app.log").read_text(encoding="utf-8")
    # The failure was logged with the model's message, the key in it masked.
    assert "llm_auth_failed" in log and "Incorrect API key: ***" in log
    assert openai.headers and all(
        h.get("Authorization") == f"Bearer {OPENAI_KEY}" for h in openai.headers
    ), "the key was not really used"
    print(f"scanned {len(seen)} responses and {len(log.splitlines())} log lines")
    for secret in SECRETS:
        assert secret not in log, f"{secret} is in logs/app.log"
        for response in seen:
            assert secret not in response, f"{secret} in a response:\n{response[:2000]}"
