"""Open-loop TalkMe webhook load, run in its own process: ``rate`` webhooks a second for
``seconds``, spread over ``visitors`` visitors (each one's messages in order, a few seconds
apart), whatever the server's pace. Writes JSON to the spec's ``out`` file (else prints
it): each webhook's visitor, send time
(``time.monotonic()``), ack latency and status, and the server's CPU seconds.

    python benchmarks/webhooks.py '{"url": "http://127.0.0.1:8000/webhook/talkme",
                                    "rate": 200, "seconds": 30, "visitors": 1000, "run": "t1"}'
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.procstats import cpu_seconds


def webhook(run: str, visitor: int, turn: int, number: int) -> bytes:
    text = f"bench:{run}:{visitor}:{turn} hello, where is my order?"
    body = {
        "token": f"tok-{run}-{visitor}",
        "site": {"id": 1, "domain": "bench.example"},
        "client": {"clientId": f"{run}-{visitor:08d}", "name": "Bench Visitor"},
        "message": {"text": text},
        "originalOnlineChatMessage": {"id": f"{run}-{number}", "text": text, "dialogId": visitor},
    }
    return json.dumps(body).encode()


async def send(
    session: aiohttp.ClientSession, url: str, body: bytes, visitor: int, sent: list[Any]
) -> None:
    started = time.monotonic()
    try:
        async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as r:
            await r.read()
            status = r.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        status = f"{type(exc).__name__}"
    sent.append((visitor, started, time.monotonic() - started, status))


async def drive(spec: dict[str, Any]) -> dict[str, Any]:
    rate, seconds, visitors = spec["rate"], spec["seconds"], spec["visitors"]
    total = int(rate * seconds)
    sent: list[Any] = []
    pid = spec.get("server_pid")
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(
        timeout=timeout, connector=aiohttp.TCPConnector(limit=0)
    ) as session:
        loop = asyncio.get_running_loop()
        cpu_before = cpu_seconds(pid) if pid else 0.0
        start = loop.time()
        tasks = []
        for number in range(total):
            due = start + number / rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            visitor = number % visitors
            body = webhook(spec["run"], visitor, number // visitors + 1, number)
            tasks.append(asyncio.create_task(send(session, spec["url"], body, visitor, sent)))
        await asyncio.gather(*tasks)
        lag = loop.time() - start - seconds
        cpu = (cpu_seconds(pid) - cpu_before) if pid else None
    return {"sent": sent, "server_cpu_s": cpu, "send_lag_s": lag}


def main() -> None:
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    spec = json.loads(sys.argv[1])
    report = json.dumps(runner(drive(spec)))
    if spec.get("out"):
        Path(spec["out"]).write_text(report)
    else:
        print(report)


if __name__ == "__main__":
    main()
