"""The cost of one rate-limit check: in process vs the ratelimit_redis plugin's Redis.

    .venv/bin/python benchmarks/ratelimit_check.py [--url redis://127.0.0.1:6379/0] [--n 20000]

Prints µs per check for the per-key bucket (``take_token``, as ``check_rate`` does) and
for the public limits (``take_windows`` with four windows, as one public message does):
one at a time (the latency a request pays) and 64 at once (what a busy node pays per
check). Keys go under a fresh prefix, deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core import InProcessRateLimits, WindowCount
from plugins.ratelimit_redis.connect import open_client
from plugins.ratelimit_redis.limiter import RedisRateLimits
from plugins.ratelimit_redis.testing import delete_prefix

CONCURRENCY = 64


def windows(n: int) -> list[WindowCount]:
    visitor, ip = f"v{n % 500}", f"10.0.{n % 7}.{n % 250}"
    return [
        WindowCount(f"visitor_minute:{visitor}", 60, 10**9),
        WindowCount(f"visitor_day:{visitor}", 86400, 10**9),
        WindowCount(f"ip_minute:{ip}", 60, 10**9),
        WindowCount(f"ip_day:{ip}", 86400, 10**9),
    ]


async def timed(check, n: int, concurrency: int) -> tuple[float, float]:
    """Wall-clock and this process's CPU µs per check over ``n`` checks, ``concurrency``
    in flight (the CPU figure is steadier on a shared machine)."""
    queue = iter(range(n))

    async def worker() -> None:
        for i in queue:
            await check(i)

    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return (time.perf_counter() - start) / n * 1e6, (time.process_time() - cpu) / n * 1e6


async def measure(backend, n: int) -> dict[str, tuple[float, float]]:
    async def token(i: int) -> None:
        await backend.take_token(f"key:k{i % 1000}", 10**9)

    async def public(i: int) -> None:
        await backend.take_windows(windows(i))

    figures = {}
    for name, check in (("take_token", token), ("take_windows", public)):
        await timed(check, n // 10, 1)  # warm up (script load, connections)
        for concurrency in (1, CONCURRENCY):
            runs = [await timed(check, n, concurrency) for _ in range(3)]
            figures[f"{name} x{concurrency}"] = (
                statistics.median(wall for wall, _ in runs),
                statistics.median(cpu for _, cpu in runs),
            )
    return figures


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--n", type=int, default=20000)
    args = parser.parse_args()
    prefix = f"eneca_bench:{uuid.uuid4().hex[:12]}:"
    client = open_client(args.url, 2.0)
    try:
        results = {
            "in_process": await measure(InProcessRateLimits(), args.n),
            "redis": await measure(RedisRateLimits(client, prefix, 2.0), args.n),
        }
    finally:
        await client.aclose()
        delete_prefix(args.url, prefix)
    print(f"{'µs per check (wall / CPU)':<26}{'in process':>16}{'redis':>16}")
    for key in results["in_process"]:
        cells = [f"{wall:.1f} / {cpu:.1f}" for wall, cpu in (r[key] for r in results.values())]
        print(f"{key:<26}{cells[0]:>16}{cells[1]:>16}")


if __name__ == "__main__":
    asyncio.run(main())
