"""A scriptable OpenAI-compatible server for tests and benchmarks.

A real aiohttp application on ``127.0.0.1`` (random port) answering
``POST /v1/chat/completions`` (and ``/v1/embeddings``, with :func:`fake_embedding`
vectors) the way OpenAI does, so the real ``openai`` client (and
anything else speaking the protocol) can be driven against it::

    async with FakeOpenAI() as fake:              # or the ``fake_openai`` fixture
        fake.script(FakeResponse(text="Hi!"))     # next request gets this
        fake.script(FakeResponse(status=429), FakeResponse(text="ok"))  # a sequence
        fake.default = FakeResponse(status=500)   # after the script runs out
        client = AsyncOpenAI(base_url=fake.base_url, api_key="test")
        ...
        fake.requests[0]["messages"]              # every request body, as JSON
        await fake.wait_disconnect(1.0)           # True once a client hung up early

Each :class:`FakeResponse` can also be a function ``(request_body) -> FakeResponse``
(e.g. to answer based on the messages). A response can stall before the first byte,
stream tokens with a time-to-first-token and a per-token delay, stream tool calls whose
arguments are split across chunks, cut the stream mid-way, return malformed JSON, or an
error status with ``Retry-After`` headers.

To use the fixture in a test folder, import it in that folder's ``conftest.py``::

    from tests.support.openai_server import fake_openai  # noqa: F401
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

__all__ = ["FakeOpenAI", "FakeResponse", "FakeToolCall", "fake_embedding", "fake_openai"]

EMBEDDING_DIMENSIONS = 64


def fake_embedding(text: str, dimensions: int = EMBEDDING_DIMENSIONS) -> list[float]:
    """A deterministic stand-in for a real embedding: hashed 4-letter word prefixes, so
    texts sharing word stems point the same way (cosine similarity works as for a model)."""
    vector = [0.0] * dimensions
    for word in re.findall(r"[^\W\d_]{3,}", text.lower().replace("\u0451", "\u0435")):
        digest = hashlib.blake2b(word[:4].encode(), digest_size=4).digest()
        slot = int.from_bytes(digest[:3], "big") % dimensions
        vector[slot] += 1.0 if digest[3] % 2 else -1.0
    return vector


@dataclass(frozen=True)
class FakeToolCall:
    """A tool call the fake model makes. ``arguments`` is a dict (sent as JSON) or raw text."""

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    id: str = ""

    def arguments_json(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments, ensure_ascii=False)


@dataclass(frozen=True)
class FakeResponse:
    """How the fake answers one request.

    - ``text``: the assistant's content, streamed in pieces of ``chunk_chars`` characters.
    - ``tool_calls``: tool calls instead of (or after) the text; streamed arguments are
      split into ``argument_pieces`` chunks.
    - ``status``: an HTTP error status (429, 500...) answered with an OpenAI error body
      and ``headers`` (``retry_after_ms`` sets ``retry-after-ms`` so clients retry fast).
    - ``stall_s``: seconds to wait before sending anything (headers included).
    - ``ttft_s`` / ``token_delay_s``: when streaming, seconds before the first token and
      between tokens (headers are sent at once).
    - ``cut_after``: when streaming, drop the connection after this many content chunks
      (no ``[DONE]``); when not streaming, send half the JSON body then drop it.
    - ``malformed``: answer 200 with a body that is not JSON (or a non-JSON SSE event).
    - ``usage``: token counts to report (default: computed); ``None`` reports none.
    - ``error_message``: the message of an error status's body.
    """

    text: str = "Hello from the fake model."
    tool_calls: Sequence[FakeToolCall] = ()
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    retry_after_ms: int | None = 10
    stall_s: float = 0.0
    ttft_s: float = 0.0
    token_delay_s: float = 0.0
    chunk_chars: int = 4
    argument_pieces: int = 3
    cut_after: int | None = None
    malformed: bool = False
    usage: Mapping[str, int] | str | None = "auto"
    finish_reason: str | None = None
    #: The ``error.message`` of an error status (default: "fake error <status>").
    error_message: str | None = None
    #: When streaming, send the first content chunk, then wait for this event before the
    #: rest (a model still working: what arrives before it is set was not held back).
    hold: asyncio.Event | None = None


Responder = FakeResponse | Callable[[dict[str, Any]], FakeResponse]


class FakeOpenAI:
    """The fake server. Start with ``await fake.start()`` (or ``async with``)."""

    def __init__(self, default: Responder | None = None) -> None:
        self.default: Responder = default or FakeResponse()
        self._script: deque[Responder] = deque()
        #: Every request body received, in order (parsed JSON).
        self.requests: list[dict[str, Any]] = []
        #: Every request's headers, in order.
        self.headers: list[dict[str, str]] = []
        #: Every ``/v1/embeddings`` request body, in order.
        self.embedding_requests: list[dict[str, Any]] = []
        #: Status answered to ``/v1/embeddings`` (set to 500 or 503 to take it "down").
        self.embeddings_status = 200
        #: How many responses were sent to the end.
        self.completed = 0
        #: How many clients went away before their response was complete.
        self.disconnects = 0
        #: ``time.monotonic()`` of each early disconnect.
        self.disconnect_times: list[float] = []
        self._disconnected = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- control ------------------------------------------------------------------------

    def script(self, *responses: Responder) -> None:
        """Queue responses for the next requests, in order; then ``default`` applies."""
        self._script.extend(responses)

    @property
    def base_url(self) -> str:
        """What to give the client as ``base_url`` (ends in ``/v1``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    async def wait_disconnect(self, timeout: float) -> bool:
        """Wait until a client hangs up before its response ended; False on timeout."""
        try:
            await asyncio.wait_for(self._disconnected.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def start(self) -> FakeOpenAI:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/embeddings", self._embeddings)
        # handler_cancellation: a client that hangs up cancels the handler, so a stalled
        # response notices the disconnect at once.
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeOpenAI:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- protocol -----------------------------------------------------------------------

    def _next(self, body: dict[str, Any]) -> FakeResponse:
        responder = self._script.popleft() if self._script else self.default
        return responder(body) if callable(responder) else responder

    def _note_disconnect(self) -> None:
        self.disconnects += 1
        self.disconnect_times.append(time.monotonic())
        self._disconnected.set()

    async def _embeddings(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.embedding_requests.append(body)
        if self.embeddings_status != 200:
            return web.json_response(
                {"error": {"message": "embeddings down"}}, status=self.embeddings_status
            )
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [
            {"object": "embedding", "index": n, "embedding": fake_embedding(text)}
            for n, text in enumerate(texts)
        ]
        return web.json_response(
            {"object": "list", "data": data, "model": body.get("model", "fake")}
        )

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "fake", "object": "model"}]})

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return web.json_response({"error": {"message": "bad json"}}, status=400)
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        plan = self._next(body)
        try:
            if plan.stall_s:
                await asyncio.sleep(plan.stall_s)
            if plan.status != 200:
                return self._error(plan)
            if body.get("stream"):
                return await self._stream(request, body, plan)
            return await self._whole(request, body, plan)
        except (asyncio.CancelledError, ConnectionResetError):
            self._note_disconnect()
            raise

    def _error(self, plan: FakeResponse) -> web.Response:
        headers = dict(plan.headers)
        if plan.retry_after_ms is not None:
            headers.setdefault("retry-after-ms", str(plan.retry_after_ms))
        kind = "rate_limit_exceeded" if plan.status == 429 else "server_error"
        text = plan.error_message or f"fake error {plan.status}"
        payload = {"error": {"message": text, "type": kind, "code": kind}}
        return web.json_response(payload, status=plan.status, headers=headers)

    @staticmethod
    def _usage(body: dict[str, Any], plan: FakeResponse) -> dict[str, int] | None:
        if plan.usage is None:
            return None
        if isinstance(plan.usage, Mapping):
            return dict(plan.usage)
        prompt = sum(len(str(m.get("content") or "")) for m in body.get("messages", [])) // 4
        completion = max(1, len(plan.text) // 4)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    @staticmethod
    def _tool_call_id(call: FakeToolCall, index: int) -> str:
        return call.id or f"call_{index}"

    async def _whole(
        self, request: web.Request, body: dict[str, Any], plan: FakeResponse
    ) -> web.StreamResponse:
        if plan.ttft_s:
            await asyncio.sleep(plan.ttft_s)
        message: dict[str, Any] = {"role": "assistant", "content": plan.text or None}
        if plan.tool_calls:
            message["tool_calls"] = [
                {
                    "id": self._tool_call_id(call, i),
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments_json()},
                }
                for i, call in enumerate(plan.tool_calls)
            ]
        finish = plan.finish_reason or ("tool_calls" if plan.tool_calls else "stop")
        payload: dict[str, Any] = {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        }
        usage = self._usage(body, plan)
        if usage:
            payload["usage"] = usage
        raw = json.dumps(payload).encode()
        if plan.malformed:
            raw = b'{"id": "chatcmpl-fake", "choices": [ this is not json'
        if plan.cut_after is not None:
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            response.content_length = len(raw)
            await response.prepare(request)
            await response.write(raw[: len(raw) // 2])
            self._drop(request)
            return response
        self.completed += 1
        return web.Response(body=raw, content_type="application/json")

    @staticmethod
    def _drop(request: web.Request) -> None:
        transport = request.transport
        if transport is not None:
            transport.close()

    async def _stream(
        self, request: web.Request, body: dict[str, Any], plan: FakeResponse
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        base = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
        }

        async def send(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> None:
            chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            chunk.update(extra)
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())

        await send({"role": "assistant", "content": ""})
        if plan.ttft_s:
            await asyncio.sleep(plan.ttft_s)
        if plan.malformed:
            await response.write(b"data: {this is not json\n\n")
        pieces = [
            plan.text[i : i + plan.chunk_chars]
            for i in range(0, len(plan.text), max(1, plan.chunk_chars))
        ]
        for sent, piece in enumerate(pieces):
            if plan.cut_after is not None and sent >= plan.cut_after:
                self._drop(request)
                return response
            if sent and plan.token_delay_s:
                await asyncio.sleep(plan.token_delay_s)
            if sent == 1 and plan.hold is not None:
                await plan.hold.wait()
            await send({"content": piece})
        for index, call in enumerate(plan.tool_calls):
            arguments = call.arguments_json()
            count = max(1, plan.argument_pieces)
            size = max(1, -(-len(arguments) // count))
            await send(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": self._tool_call_id(call, index),
                            "type": "function",
                            "function": {"name": call.name, "arguments": ""},
                        }
                    ]
                }
            )
            for start in range(0, len(arguments), size):
                part = arguments[start : start + size]
                await send({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
        if plan.cut_after is not None:
            self._drop(request)
            return response
        await send({}, plan.finish_reason or ("tool_calls" if plan.tool_calls else "stop"))
        usage = self._usage(body, plan)
        if usage and (body.get("stream_options") or {}).get("include_usage"):
            chunk = {**base, "choices": [], "usage": usage}
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        self.completed += 1
        return response


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    """A started :class:`FakeOpenAI`, closed after the test."""
    fake = FakeOpenAI()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()
