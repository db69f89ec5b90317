"""The floors the gateway is measured against: a bare aiohttp passthrough.

Same endpoints and bodies as the gateway's ``/api/chat`` and ``/api/chat/stream`` (and a
``/health``), history kept in a dict (the last ``--window`` turns go to the model, like
``AGENT_HISTORY_TURNS``), nothing persisted, no ordering, no validation beyond a key
lookup. ``--client aiohttp`` talks to the upstream with one shared ``aiohttp`` session
(floor A); ``--client openai`` with one ``openai.AsyncOpenAI`` client (floor B). It uses
the same optional accelerators (uvloop, orjson) as the gateway when they are installed, so
the ratios measure the gateway, not the accelerators.

    python benchmarks/floors/passthrough.py --client aiohttp --port 9001 \\
        --upstream http://127.0.0.1:9000/v1
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web

try:
    import orjson

    def dumps(value: Any) -> bytes:
        return orjson.dumps(value)

    loads = orjson.loads
except ImportError:

    def dumps(value: Any) -> bytes:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()

    loads = json.loads

SYSTEM_PROMPT = (
    "You are a helpful customer-support assistant. Answer briefly, in the customer's "
    "language. Use the search_knowledge_base tool for questions about the company's "
    "policies and never invent facts."
)
MODEL = "gpt-4o-mini"


class AiohttpUpstream:
    """Floor A: the upstream through one shared aiohttp session."""

    def __init__(self, base_url: str) -> None:
        self.url = f"{base_url}/chat/completions"
        self.session: aiohttp.ClientSession | None = None
        self.headers = {"Authorization": "Bearer bench", "Content-Type": "application/json"}

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def complete(self, messages: list[dict[str, str]]) -> str:
        assert self.session is not None
        body = dumps({"model": MODEL, "messages": messages})
        async with self.session.post(self.url, data=body, headers=self.headers) as response:
            response.raise_for_status()
            answer = loads(await response.read())
        return answer["choices"][0]["message"]["content"] or ""

    async def stream(self, messages: list[dict[str, str]]) -> AsyncIterator[str]:
        assert self.session is not None
        body = dumps(
            {
                "model": MODEL,
                "messages": messages,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
        )
        async with self.session.post(self.url, data=body, headers=self.headers) as response:
            response.raise_for_status()
            async for line in response.content:
                if not line.startswith(b"data: "):
                    continue
                data = line[6:].strip()
                if data == b"[DONE]":
                    break
                for choice in loads(data).get("choices") or ():
                    content = (choice.get("delta") or {}).get("content")
                    if content:
                        yield content


class OpenAIUpstream:
    """Floor B: the upstream through one shared ``openai.AsyncOpenAI`` client."""

    def __init__(self, base_url: str) -> None:
        import openai

        self.client = openai.AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=2)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        await self.client.close()

    async def complete(self, messages: list[dict[str, str]]) -> str:
        completion = await self.client.chat.completions.create(model=MODEL, messages=messages)  # type: ignore[arg-type]
        return completion.choices[0].message.content or ""

    async def stream(self, messages: list[dict[str, str]]) -> AsyncIterator[str]:
        stream = await self.client.chat.completions.create(
            model=MODEL,
            messages=messages,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
        try:
            async for chunk in stream:
                for choice in chunk.choices[:1]:
                    if choice.delta is not None and choice.delta.content:
                        yield choice.delta.content
        finally:
            await stream.close()


class Passthrough:
    """The two chat endpoints over a dict of histories."""

    def __init__(self, upstream: AiohttpUpstream | OpenAIUpstream, window: int) -> None:
        self.upstream = upstream
        self.window = window
        self.histories: dict[str, list[dict[str, str]]] = defaultdict(list)

    def _messages(self, thread: str, text: str) -> list[dict[str, str]]:
        history = self.histories[thread]
        history.append({"role": "user", "content": text})
        return [{"role": "system", "content": SYSTEM_PROMPT}, *history[-self.window :]]

    @staticmethod
    async def _body(request: web.Request) -> tuple[str, str]:
        body = loads(await request.read())
        return body.get("thread_id") or uuid.uuid4().hex, body["message"]

    async def chat(self, request: web.Request) -> web.Response:
        thread, text = await self._body(request)
        reply = await self.upstream.complete(self._messages(thread, text))
        self.histories[thread].append({"role": "assistant", "content": reply})
        answer = {
            "response": reply,
            "thread_id": thread,
            "user_id": None,
            "chat_id": None,
            "success": True,
            "error": None,
        }
        return web.Response(body=dumps(answer), content_type="application/json")

    async def stream(self, request: web.Request) -> web.StreamResponse:
        thread, text = await self._body(request)
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        meta = {"type": "metadata", "thread_id": thread, "user_id": None, "chat_id": None}
        await response.write(b"data: " + dumps(meta) + b"\n\n")
        pieces = []
        async for delta in self.upstream.stream(self._messages(thread, text)):
            pieces.append(delta)
            await response.write(b"data: " + dumps({"type": "chunk", "content": delta}) + b"\n\n")
        reply = "".join(pieces)
        self.histories[thread].append({"role": "assistant", "content": reply})
        done = {"type": "done", "response": reply, "thread_id": thread}
        await response.write(b"data: " + dumps(done) + b"\n\n")
        await response.write_eof()
        return response

    async def health(self, request: web.Request) -> web.Response:
        return web.Response(body=b'{"status":"ok"}', content_type="application/json")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--client", choices=("aiohttp", "openai"), required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="base URL ending in /v1")
    parser.add_argument("--window", type=int, default=20)
    args = parser.parse_args(argv)
    upstream_cls = AiohttpUpstream if args.client == "aiohttp" else OpenAIUpstream
    upstream = upstream_cls(args.upstream)
    passthrough = Passthrough(upstream, args.window)

    async def client_ctx(app: web.Application) -> AsyncIterator[None]:
        await upstream.start()
        yield
        await upstream.close()

    app = web.Application()
    app.router.add_post("/api/chat", passthrough.chat)
    app.router.add_post("/api/chat/stream", passthrough.stream)
    app.router.add_get("/health", passthrough.health)
    app.cleanup_ctx.append(client_ctx)
    try:
        import uvloop
    except ImportError:
        uvloop = None
    web.run_app(
        app,
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=lambda *_: None,
        loop=uvloop.new_event_loop() if uvloop else None,
    )


if __name__ == "__main__":
    sys.exit(main())
