"""A small client for the TalkMe bot API: ``customBot/send``, ``simulateTyping``, ``finish``.

Every call is a POST with the ``X-Token`` header and a JSON body; every answer is an
envelope ``{"success", "result", "error": {"code", "descr"}}``. :func:`classify` turns an
HTTP status plus envelope into an :class:`ApiOutcome` that says whether a retry can help.
The token is never logged or put in an outcome.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from loguru import logger

SEND = "customBot/send"
TYPING = "customBot/simulateTyping"
FINISH = "customBot/finish"

#: Words in a ``success: false`` error code that mean "our side is fine, try again later".
_TRANSIENT_WORDS = (
    "internal",
    "server",
    "timeout",
    "unavailable",
    "temporar",
    "too_many",
    "toomany",
    "rate",
    "overload",
    "busy",
    "try_again",
)


@dataclass(frozen=True, slots=True)
class ApiOutcome:
    """What one API call came to."""

    ok: bool
    #: A failure that may pass: connection error, timeout, 5xx, 429, server-side error.
    transient: bool = False
    status: int | None = None
    code: str | None = None
    detail: str = ""
    #: Seconds the server asked us to wait (``Retry-After``).
    retry_after: float | None = None
    result: Any = None
    #: An HTTP answer arrived from a healthy server (False: no answer or a 5xx).
    reachable: bool = True

    def describe(self, method: str) -> str:
        status = f"HTTP {self.status}" if self.status is not None else "no answer"
        code = f" {self.code}" if self.code else ""
        detail = f": {self.detail}" if self.detail else ""
        return f"{method}: {status}{code}{detail}"[:400]


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _error_is_transient(code: str | None) -> bool:
    if code is None:
        return False
    if code.isdigit():
        number = int(code)
        return number == 429 or number >= 500
    lowered = code.lower()
    return any(word in lowered for word in _TRANSIENT_WORDS)


def classify(status: int, headers: Mapping[str, str], body: Any) -> ApiOutcome:
    """Turn one HTTP answer into an outcome.

    - 2xx with ``success: true``: ok.
    - 429, 408 and 5xx: transient (``Retry-After`` honoured when present).
    - other 4xx: permanent.
    - ``success: false``: transient when the error code names a server-side problem
      (a 5xx-like number, or words such as ``internal``, ``timeout``, ``unavailable``),
      permanent otherwise (a client error: bad token, bad request, dialog closed...).
    - 2xx that is not an envelope: transient (a proxy page; the call may not have run).
    """
    envelope = body if isinstance(body, Mapping) else {}
    error = envelope.get("error") if isinstance(envelope.get("error"), Mapping) else {}
    code = error.get("code")
    code = None if code is None else str(code)
    descr = str(error.get("descr") or error.get("message") or "")[:200]
    retry_after = parse_retry_after(headers.get("Retry-After"))
    if status == 429 or status == 408 or status >= 500:
        return ApiOutcome(
            False,
            transient=True,
            status=status,
            code=code,
            detail=descr,
            retry_after=retry_after,
            reachable=status < 500,
        )
    if status >= 400:
        return ApiOutcome(False, status=status, code=code, detail=descr or "rejected")
    success = envelope.get("success")
    if success is True:
        return ApiOutcome(True, status=status, result=envelope.get("result"))
    if success is False:
        return ApiOutcome(
            False,
            transient=_error_is_transient(code),
            status=status,
            code=code or "unknown",
            detail=descr,
            retry_after=retry_after,
        )
    return ApiOutcome(False, transient=True, status=status, detail="the answer is not an envelope")


class TalkMeApi:
    """The bot API on one shared ``aiohttp.ClientSession`` (opened by the plugin)."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession, timeout_s: float) -> None:
        self._base_url = base_url.rstrip("/")
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def call(
        self, method: str, token: str, body: Mapping[str, Any], timeout_s: float | None = None
    ) -> ApiOutcome:
        """POST ``body`` to ``method``; never raises for network or server trouble."""
        url = f"{self._base_url}/{method}"
        timeout = self._timeout if timeout_s is None else aiohttp.ClientTimeout(total=timeout_s)
        try:
            async with self._session.post(
                url, json=dict(body), headers={"X-Token": token}, timeout=timeout
            ) as response:
                raw = await response.read()
                try:
                    payload = await response.json(content_type=None) if raw.strip() else None
                except ValueError:
                    payload = None
                outcome = classify(response.status, response.headers, payload)
        except TimeoutError:
            outcome = ApiOutcome(False, transient=True, detail="timed out", reachable=False)
        except aiohttp.ClientError as exc:
            outcome = ApiOutcome(
                False, transient=True, detail=f"{type(exc).__name__}", reachable=False
            )
        logger.debug("talkme {}: {}", method, "ok" if outcome.ok else outcome.describe(method))
        return outcome

    async def send(self, token: str, text: str) -> ApiOutcome:
        return await self.call(SEND, token, {"content": {"text": text}})

    async def simulate_typing(
        self, token: str, ttl_s: int, timeout_s: float | None = None
    ) -> ApiOutcome:
        return await self.call(TYPING, token, {"ttl": ttl_s}, timeout_s)

    async def finish(self, token: str, code: str) -> ApiOutcome:
        return await self.call(FINISH, token, {"code": code})
