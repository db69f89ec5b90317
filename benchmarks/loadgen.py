"""The closed-loop load generator, run in its own process so it never shares the server's
CPU accounting or event loop.

``users`` conversations run at once; each sends ``turns`` messages in order, the next one
as soon as the previous reply is complete. A few warm-up requests on other threads come
first. The server's CPU time is read from ``/proc`` around the measured phase only.

    python benchmarks/loadgen.py '{"url": "http://127.0.0.1:8000", "endpoint": "/api/chat",
                                   "users": 32, "turns": 20, "run": "r1", "server_pid": 123}'

prints one JSON object: per-request latencies, stream first-chunk times, errors, wall
time, the server's CPU seconds (summed over ``server_pids`` when given: a ``--workers``
supervisor and its workers), with ``database_cpu`` the CPU seconds of the PostgreSQL
processes serving the server's connections, and (``per_turn``) each request's server CPU
in ns.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.procstats import cpu_ns, cpu_seconds, database_backends, machine_busy_seconds

MESSAGE = "hello, what are your opening hours and do you deliver on Sundays?"


@dataclass
class Results:
    latencies: list[float] = field(default_factory=list)
    first_chunks: list[float] = field(default_factory=list)
    per_turn: list[tuple[int, int, float, int]] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)

    def fail(self, what: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(what[:300])


async def one_turn(
    session: aiohttp.ClientSession, url: str, body: bytes, stream: bool, results: Results
) -> tuple[float, float | None] | None:
    """Send one message; (latency, first chunk) in seconds, or None on failure."""
    started = time.perf_counter()
    first: float | None = None
    headers = {"Content-Type": "application/json"}
    try:
        async with session.post(url, data=body, headers=headers) as response:
            if response.status != 200:
                results.fail(f"HTTP {response.status}: {await response.text()}")
                return None
            if not stream:
                answer = await response.json(loads=json.loads)
                if not answer.get("success") or not answer.get("response"):
                    results.fail(f"unsuccessful reply: {answer}")
                    return None
                return time.perf_counter() - started, None
            done = False
            async for line in response.content:
                if first is None and b'"type":"chunk"' in line:
                    first = time.perf_counter() - started
                elif b'"type":"done"' in line:
                    done = True
                elif b'"type":"error"' in line:
                    results.fail(f"error event: {line!r}")
                    return None
            if not done or first is None:
                results.fail("stream ended without a chunk and a done event")
                return None
            return time.perf_counter() - started, first
    except (aiohttp.ClientError, TimeoutError) as exc:
        results.fail(f"{type(exc).__name__}: {exc}")
        return None


async def converse(
    session: aiohttp.ClientSession,
    spec: dict[str, Any],
    run: str,
    user: int,
    turns: int,
    results: Results,
) -> None:
    url = spec["url"] + spec["endpoint"]
    stream = spec["endpoint"].endswith("/stream")
    pid = spec.get("server_pid") if spec.get("per_turn") else None
    thread = f"bench-{run}-{user}"
    for turn in range(1, turns + 1):
        body = json.dumps({"message": f"bench:{run}:{user}:{turn} {MESSAGE}", "thread_id": thread})
        before = cpu_ns(pid) if pid else 0
        outcome = await one_turn(session, url, body.encode(), stream, results)
        if outcome is None:
            continue
        latency, first = outcome
        results.latencies.append(latency)
        if first is not None:
            results.first_chunks.append(first)
        if pid:
            results.per_turn.append((user, turn, latency, cpu_ns(pid) - before))


def server_pids(spec: dict[str, Any]) -> list[int]:
    """The processes whose CPU is the server's: ``server_pids`` (a supervisor and its
    workers), else the one ``server_pid``."""
    if spec.get("server_pids"):
        return [int(pid) for pid in spec["server_pids"]]
    return [int(spec["server_pid"])] if spec.get("server_pid") else []


async def drive(spec: dict[str, Any]) -> dict[str, Any]:
    """Warm up, then run the measured closed loop; the figures as a dict."""
    timeout = aiohttp.ClientTimeout(total=spec.get("timeout_s", 120))
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        warmup = Results()
        warm_users = min(spec["users"], 8)
        await asyncio.gather(
            *(
                converse(
                    session, spec, f"w{spec['run']}", user, spec.get("warmup_turns", 3), warmup
                )
                for user in range(warm_users)
            )
        )
        results = Results()
        pids = server_pids(spec)
        cpu_before = sum(cpu_seconds(pid) for pid in pids)
        ns_before = sum(cpu_ns(pid) for pid in pids)
        database = spec.get("database_cpu") and pids
        db_before = {pid: cpu_ns(pid) for pid in database_backends(pids)} if database else {}
        machine_before, own_before = machine_busy_seconds(), time.process_time()
        started = time.perf_counter()
        await asyncio.gather(
            *(
                converse(session, spec, spec["run"], user, spec["turns"], results)
                for user in range(spec["users"])
            )
        )
        wall = time.perf_counter() - started
        machine = machine_busy_seconds() - machine_before
        own = time.process_time() - own_before
        cpu = (sum(cpu_seconds(pid) for pid in pids) - cpu_before) if pids else None
        threads_cpu = (sum(cpu_ns(pid) for pid in pids) - ns_before) / 1e9 if pids else None
        db_cpu = None
        if database:  # connections opened during the load count from zero
            db_after = {pid: cpu_ns(pid) for pid in database_backends(pids)}
            db_cpu = sum(ns - db_before.get(pid, 0) for pid, ns in db_after.items()) / 1e9
    return {
        "requests": len(results.latencies),
        "errors": results.errors + warmup.errors,
        "error_samples": results.error_samples + warmup.error_samples,
        "wall_s": wall,
        "server_cpu_s": cpu,
        "server_threads_cpu_s": threads_cpu,
        "database_cpu_s": db_cpu,
        "machine_busy_s": machine,
        "loadgen_cpu_s": own,
        "latencies": results.latencies,
        "first_chunks": results.first_chunks,
        "per_turn": results.per_turn,
    }


def main() -> None:
    spec = json.loads(sys.argv[1])
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    print(json.dumps(runner(drive(spec))))


if __name__ == "__main__":
    main()
