"""A fake TalkMe bot API for the benchmark, run in its own process.

Answers every ``customBot/*`` call with ``{"success": true}`` and records, per ``X-Token``,
the ``time.monotonic()`` of each ``customBot/send`` (the clock is system-wide, so the load
generator's send times compare with it). ``GET /stats`` returns them.

    python benchmarks/talkme_api.py --port 9100
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict

from aiohttp import web

_OK = b'{"success":true,"result":{}}'


class FakeTalkMe:
    def __init__(self) -> None:
        self.sends: dict[str, list[float]] = defaultdict(list)
        self.calls: dict[str, int] = defaultdict(int)

    async def call(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        await request.read()
        self.calls[method] += 1
        if method == "send":
            self.sends[request.headers.get("X-Token", "")].append(time.monotonic())
        return web.Response(body=_OK, content_type="application/json")

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response({"calls": self.calls, "sends": self.sends})

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    fake = FakeTalkMe()
    app = web.Application()
    app.router.add_post("/json/v1.0/customBot/{method}", fake.call)
    app.router.add_get("/stats", fake.stats)
    app.router.add_get("/health", fake.health)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=lambda *_: None)


if __name__ == "__main__":
    sys.exit(main())
