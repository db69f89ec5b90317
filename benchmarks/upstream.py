"""A lean OpenAI-compatible upstream for the benchmark, run in its own process.

``POST /v1/chat/completions`` answers like OpenAI (whole or streamed, ``[DONE]`` at the
end, usage when asked) after a time-to-first-token, then one token per ``--token-ms``.
Every response body is encoded once at start-up, so the upstream costs little CPU and is
never the bottleneck of the figures it serves.

It also checks history: a user message ``bench:<run>:<user>:<turn> ...`` is recorded with
the number of messages in its request and whether the same user's previous turn was among
them. ``GET /stats?run=R`` returns those records; ``GET /health`` answers 200.

    python benchmarks/upstream.py --port 9000 --ttft-ms 200 --token-ms 20 --tokens 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections import defaultdict
from typing import Any

from aiohttp import web

_MARKER = re.compile(r"bench:(\w+):(\d+):(\d+)")
_MODEL = "bench-model"


def _chunk(delta: dict[str, Any], finish: str | None = None, usage: Any = None) -> bytes:
    body = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": _MODEL,
        "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage:
        body["usage"] = usage
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


class Upstream:
    """The fake model: fixed reply, fixed timing, history records per run."""

    def __init__(self, ttft_s: float, token_s: float, tokens: int) -> None:
        self.ttft_s = ttft_s
        self.token_s = token_s
        words = [f"w{i} " for i in range(tokens)]
        self.text = "".join(words).strip()
        usage = {"prompt_tokens": 10, "completion_tokens": tokens, "total_tokens": 10 + tokens}
        self.whole = json.dumps(
            {
                "id": "chatcmpl-bench",
                "object": "chat.completion",
                "created": 1,
                "model": _MODEL,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": self.text},
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage,
            },
            separators=(",", ":"),
        ).encode()
        self.first = _chunk({"role": "assistant", "content": ""})
        self.tokens = [_chunk({"content": word}) for word in words]
        self.last = _chunk({}, "stop")
        self.usage = _chunk({}, usage=usage)
        self.records: dict[str, list[tuple[int, int, int, bool]]] = defaultdict(list)
        self.requests = 0

    def record(self, body: dict[str, Any]) -> None:
        messages = body.get("messages") or []
        self.requests += 1
        last_user = next((m for m in reversed(messages) if m.get("role") == "user"), None)
        found = _MARKER.match(str((last_user or {}).get("content") or ""))
        if found is None:
            return
        run, user, turn = found.group(1), int(found.group(2)), int(found.group(3))
        previous = f"bench:{run}:{user}:{turn - 1} "
        has_previous = turn == 1 or any(
            str(m.get("content") or "").startswith(previous) for m in messages
        )
        self.records[run].append((user, turn, len(messages), has_previous))

    async def completions(self, request: web.Request) -> web.StreamResponse:
        body = json.loads(await request.read())
        self.record(body)
        loop = asyncio.get_running_loop()
        started = loop.time()
        if not body.get("stream"):
            wait = self.ttft_s + self.token_s * (len(self.tokens) - 1)
            if wait > 0:
                await asyncio.sleep(wait)
            return web.Response(body=self.whole, content_type="application/json")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(self.first)
        for number, token in enumerate(self.tokens):
            due = started + self.ttft_s + number * self.token_s
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await response.write(token)
        await response.write(self.last)
        if (body.get("stream_options") or {}).get("include_usage"):
            await response.write(self.usage)
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def stats(self, request: web.Request) -> web.Response:
        run = request.query.get("run", "")
        records = self.records.get(run, [])
        return web.json_response({"requests": self.requests, "records": records})

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ttft-ms", type=float, default=0.0)
    parser.add_argument("--token-ms", type=float, default=0.0)
    parser.add_argument("--tokens", type=int, default=30)
    args = parser.parse_args(argv)
    upstream = Upstream(args.ttft_ms / 1000, args.token_ms / 1000, args.tokens)
    app = web.Application()
    app.router.add_post("/v1/chat/completions", upstream.completions)
    app.router.add_get("/stats", upstream.stats)
    app.router.add_get("/health", upstream.health)
    try:
        import uvloop  # the same accelerator for every process of the benchmark
    except ImportError:
        uvloop = None
    web.run_app(
        app,
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=lambda *_: None,
        handle_signals=True,
        loop=uvloop.new_event_loop() if uvloop else None,
    )


if __name__ == "__main__":
    sys.exit(main())
