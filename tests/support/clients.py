"""What the fault tests send: /api/chat (plain and streamed), TalkMe webhooks, reads."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tests.support.openai_server import FakeResponse
from tests.support.serve_process import ADMIN_KEY
from tests.support.talkme_helpers import webhook_body

HEADERS = {"X-API-Key": ADMIN_KEY}


def last_user_text(body: dict[str, Any]) -> str:
    users = [m for m in body.get("messages", []) if m.get("role") == "user"]
    return str(users[-1]["content"]) if users else ""


def echo(**options: Any) -> Callable[[dict[str, Any]], FakeResponse]:
    """A fake-OpenAI responder answering ``re: <text>`` (``options`` go to FakeResponse)."""
    return lambda body: FakeResponse(text=f"re: {last_user_text(body)}", **options)


@dataclass
class Outcome:
    """What one client saw: the HTTP status and body (or the exception), and how long."""

    status: int | None = None
    body: Any = None
    error: str | None = None
    seconds: float = 0.0
    events: list[dict[str, Any]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == 200 and isinstance(self.body, dict) and self.body.get("success")


async def chat(
    session: aiohttp.ClientSession, url: str, thread: str, text: str, timeout: float = 30
) -> Outcome:
    """POST /api/chat; connection errors are recorded, not raised."""
    started = time.monotonic()
    outcome = Outcome()
    try:
        async with session.post(
            f"{url}/api/chat",
            json={"message": text, "thread_id": thread},
            headers=HEADERS,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            outcome.status = response.status
            outcome.headers = dict(response.headers)
            outcome.body = await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError) as exc:
        outcome.error = type(exc).__name__
    outcome.seconds = time.monotonic() - started
    return outcome


async def chat_stream(
    session: aiohttp.ClientSession, url: str, thread: str, text: str, timeout: float = 30
) -> Outcome:
    """POST /api/chat/stream; ``events`` are the JSON ``data:`` events, ``body`` the last."""
    started = time.monotonic()
    outcome = Outcome()
    try:
        async with session.post(
            f"{url}/api/chat/stream",
            json={"message": text, "thread_id": thread},
            headers=HEADERS,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            outcome.status = response.status
            if response.status != 200:
                outcome.body = await response.json(content_type=None)
            else:
                async for raw in response.content:
                    line = raw.decode().strip()
                    if line.startswith("data:"):
                        outcome.events.append(json.loads(line[5:]))
                outcome.body = outcome.events[-1] if outcome.events else None
    except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError) as exc:
        outcome.error = type(exc).__name__
    outcome.seconds = time.monotonic() - started
    return outcome


async def webhook(
    session: aiohttp.ClientSession, url: str, visitor: str, message_id: int, text: str
) -> Outcome:
    """POST /webhook/talkme as TalkMe does; a 200 means the gateway kept the message."""
    started = time.monotonic()
    outcome = Outcome()
    body = webhook_body(text, client_id=visitor, message_id=message_id)
    try:
        async with session.post(
            f"{url}/webhook/talkme", json=body, timeout=aiohttp.ClientTimeout(total=10)
        ) as response:
            outcome.status = response.status
            outcome.headers = dict(response.headers)
            outcome.body = await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError) as exc:
        outcome.error = type(exc).__name__
    outcome.seconds = time.monotonic() - started
    return outcome


async def get_json(session: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with session.get(url, headers=HEADERS) as response:
        return response.status, await response.json(content_type=None)


async def thread_messages(
    session: aiohttp.ClientSession, url: str, thread: str
) -> list[dict[str, Any]]:
    status, body = await get_json(session, f"{url}/api/threads/{thread}/messages?limit=1000")
    assert status == 200, body
    return list(body["messages"])


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]], timeout: float, what: str
) -> float:
    """Wait until ``condition()`` holds; returns how many seconds that took."""
    started = time.monotonic()
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.05)
