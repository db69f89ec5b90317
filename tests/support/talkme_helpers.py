"""Helpers of the TalkMe tests: webhook bodies, waiting, reading the log."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from core.testing import gateway_of

ADMIN_KEY = "admin-key-for-tests"
TOKEN = "tok-talkme-SECRET-0001"


def webhook_body(
    text: str = "hello",
    *,
    client_id: str | None = "visitor-1",
    message_id: int | None = 1,
    token: str = TOKEN,
    **extra: Any,
) -> dict[str, Any]:
    """A webhook payload as TalkMe posts it."""
    body: dict[str, Any] = {
        "token": token,
        "site": {"id": 123, "domain": "example.com"},
        "client": {"searchId": 456, "login": "guest", "name": "Ann", "phone": "+100"},
        "message": {"text": text},
        "originalOnlineChatMessage": {"text": text, "dialogId": 1011},
        **extra,
    }
    if client_id is not None:
        body["client"]["clientId"] = client_id
    if message_id is not None:
        body["originalOnlineChatMessage"]["id"] = message_id
    return body


async def eventually(
    condition: Callable[[], Awaitable[bool]] | Callable[[], bool], timeout: float = 10.0
) -> None:
    """Wait until ``condition()`` is true (it may be async)."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.02)


async def delivered_count(client: TestClient) -> int:
    return (await gateway_of(client).delivery_stats("talkme"))["delivered"]


def read_log(tmp_path: Path) -> str:
    path = tmp_path / "logs" / "app.log"
    return path.read_text(encoding="utf-8") if path.exists() else ""


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
