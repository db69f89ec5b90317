"""Calling the Telegram Bot API: one method, one outcome; never raises, never leaks the
token (it is part of every URL, so errors are described without the URL)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp

SEND_MESSAGE = "sendMessage"
SEND_CHAT_ACTION = "sendChatAction"
SET_WEBHOOK = "setWebhook"


@dataclass(frozen=True, slots=True)
class ApiOutcome:
    """What one Bot API call came to."""

    ok: bool
    #: HTTP status; 0 when no response arrived (connection error, timeout).
    status: int = 0
    description: str = ""
    #: ``parameters.retry_after`` of a 429 ("Too Many Requests: retry after N").
    retry_after: float | None = None
    result: Any = None

    @property
    def transient(self) -> bool:
        """Worth retrying: no response, 429 or a server error."""
        return self.status == 0 or self.status == 429 or self.status >= 500

    def describe(self, method: str) -> str:
        status = f"HTTP {self.status}" if self.status else "no response"
        return f"{method}: {status}: {self.description or 'no description'}"


class BotApi:
    """The Bot API of one bot, over a session the caller owns."""

    def __init__(self, session: aiohttp.ClientSession, api_url: str, token: str) -> None:
        self._session = session
        self._base = f"{api_url}/bot{token}"

    async def call(self, method: str, payload: dict[str, Any]) -> ApiOutcome:
        try:
            async with self._session.post(f"{self._base}/{method}", json=payload) as response:
                try:
                    body = await response.json(content_type=None)
                except ValueError:
                    body = None
                status = response.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            return ApiOutcome(False, 0, type(exc).__name__)
        if not isinstance(body, dict):
            return ApiOutcome(False, status, "the answer is not a JSON object")
        if status == 200 and body.get("ok") is True:
            return ApiOutcome(True, status, result=body.get("result"))
        parameters = body.get("parameters")
        retry_after = parameters.get("retry_after") if isinstance(parameters, dict) else None
        return ApiOutcome(
            False,
            status,
            str(body.get("description") or "")[:300],
            float(retry_after) if isinstance(retry_after, int | float) else None,
        )
