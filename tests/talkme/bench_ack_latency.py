"""Benchmark: how fast the TalkMe webhook answers while the agent takes seconds.

    .venv/bin/python tests/talkme/bench_ack_latency.py [--webhooks 500] [--visitors 100]
        [--concurrency 20] [--agent-delay 2.0] [--memory]

Starts the fake TalkMe API and the real gateway as its own process (``talkme_server.py``),
posts the webhooks over TCP, prints ack latency percentiles and how long the replies took
to be delivered. Figures, not assertions: it is not collected by pytest.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from core import percentile
from tests.support.talkme_fake_api import FakeTalkMe
from tests.support.talkme_helpers import webhook_body
from tests.support.talkme_process import GatewayProcess


async def run(args: argparse.Namespace) -> None:
    fake = FakeTalkMe()
    await fake.start()
    plugins = ["talkme", "memory_sqlite"] if args.memory else ["talkme"]
    with tempfile.TemporaryDirectory() as work:
        gateway = GatewayProcess(
            Path(work),
            fake.url,
            agent_delay=args.agent_delay,
            core={"plugins": plugins, "log_level": "WARNING"},
            talkme={"typing_wait_s": 0.5},
        )
        await gateway.start()
        latencies: list[float] = []
        slots = asyncio.Semaphore(args.concurrency)
        try:
            async with aiohttp.ClientSession() as session:
                for n in range(20):  # warm-up, not measured (separate visitors)
                    body = webhook_body("warm", client_id=f"warm-{n}", message_id=f"w{n}")
                    async with session.post(f"{gateway.url}/webhook/talkme", json=body) as r:
                        await r.read()

                async def one(n: int) -> None:
                    body = webhook_body(
                        f"message {n}", client_id=f"visitor-{n % args.visitors}", message_id=n
                    )
                    async with slots:
                        started = time.perf_counter()
                        async with session.post(f"{gateway.url}/webhook/talkme", json=body) as r:
                            await r.read()
                            assert r.status == 200, r.status
                        latencies.append(time.perf_counter() - started)

                began = time.perf_counter()
                await asyncio.gather(*(one(n) for n in range(args.webhooks)))
                posted = time.perf_counter() - began
                total = args.webhooks + 20
                await fake.wait_until(lambda: len(fake.sent_texts()) >= total, timeout=600)
                delivered = time.perf_counter() - began
        finally:
            await gateway.stop()
            await fake.stop()
    ms = [value * 1000 for value in latencies]
    print(
        f"{args.webhooks} webhooks, {args.visitors} visitors, concurrency {args.concurrency}, "
        f"agent {args.agent_delay}s, plugins {'+'.join(plugins)}"
    )
    print(
        f"ack latency ms: p50 {percentile(ms, 0.5):.2f}  p90 {percentile(ms, 0.9):.2f}  "
        f"p99 {percentile(ms, 0.99):.2f}  max {max(ms):.2f}  mean {statistics.mean(ms):.2f}"
    )
    print(f"all posted in {posted:.2f}s; all {total} replies delivered after {delivered:.2f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--webhooks", type=int, default=500)
    parser.add_argument("--visitors", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--agent-delay", type=float, default=2.0)
    parser.add_argument("--memory", action="store_true", help="enable memory_sqlite too")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
