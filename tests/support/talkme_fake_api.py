"""A fake TalkMe bot API on 127.0.0.1 for the TalkMe tests and the ack-latency benchmark.

It answers ``POST /json/v1.0/customBot/<method>`` with the TalkMe envelope, records every
call (method, headers, JSON body, time) and can be scripted to fail::

    fake = FakeTalkMe(); await fake.start()
    fake.script("send", Scripted(500), Scripted(429, headers={"Retry-After": "1"}))
    ...  # the next two send calls fail, then the default success
    fake.sent_texts()            # texts of the send calls it confirmed, in order
    await fake.stop(); await fake.start()   # "down" then back on the same port
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

PREFIX = "/json/v1.0/customBot/"


@dataclass(frozen=True)
class Scripted:
    """One scripted answer: a status, a body (default: the success envelope), headers,
    and an optional stall before answering."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0

    def envelope(self) -> Any:
        if self.body is not None:
            return self.body
        return {"success": self.status < 400, "result": {"ok": True}}


def talkme_error(code: str, descr: str = "error") -> Scripted:
    """HTTP 200 with ``success: false``, as TalkMe answers a refused call."""
    return Scripted(
        200, {"success": False, "result": None, "error": {"code": code, "descr": descr}}
    )


@dataclass
class Call:
    method: str
    headers: dict[str, str]
    body: Any
    at: float
    status: int = 0

    @property
    def confirmed(self) -> bool:
        return self.status == 200 and isinstance(self.body, dict)


class FakeTalkMe:
    """The fake API; ``url`` is what TALKME_API_URL should be."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.port = 0
        self._scripts: dict[str, deque[Scripted]] = defaultdict(deque)
        self._confirmed: list[Call] = []
        self._runner: web.AppRunner | None = None
        self._changed = asyncio.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/json/v1.0"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post(PREFIX + "{method}", self._handle)
        # A stalled answer ends when the client hangs up, and stop() does not wait for it.
        self._runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=0.1,
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        if not self.port:
            server = site._server
            assert server is not None
            self.port = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def script(self, method: str, *answers: Scripted) -> None:
        """The next calls of ``method`` (``send``, ``simulateTyping``, ``finish``) get these."""
        self._scripts[method].extend(answers)

    def calls_to(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    def confirmed(self, method: str) -> list[Call]:
        """Calls of ``method`` the fake answered with success."""
        return [call for call in self._confirmed if call.method == method]

    def sent_texts(self) -> list[str]:
        return [call.body["content"]["text"] for call in self.confirmed("send")]

    async def wait_until(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"fake TalkMe: condition not met in {timeout}s: {self.calls}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.2))
            except TimeoutError:
                pass

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        call = Call(method, dict(request.headers), body, time.monotonic())
        self.calls.append(call)
        self._changed.set()
        script = self._scripts[method]
        answer = script.popleft() if script else Scripted()
        if answer.delay:
            await asyncio.sleep(answer.delay)
        call.status = answer.status
        envelope = answer.envelope()
        if answer.status == 200 and isinstance(envelope, dict) and envelope.get("success"):
            self._confirmed.append(call)
        self._changed.set()
        text = envelope if isinstance(envelope, str) else json.dumps(envelope)
        return web.Response(
            text=text, status=answer.status, headers=answer.headers, content_type="application/json"
        )
