"""Where the gateway's CPU goes: py-spy attached to ``eneca-bot serve`` under load.

    .venv/bin/python benchmarks/profile.py overhead          # 32 users x 40 turns, /api/chat
    .venv/bin/python benchmarks/profile.py stream            # TTFT 0, 30 tokens, /api/chat/stream
    .venv/bin/python benchmarks/profile.py talkme --seconds 10
    .venv/bin/python benchmarks/profile.py overhead --keep stacks.txt   # collapsed stacks
    .venv/bin/python benchmarks/profile.py overhead --backend postgres   # the postgres plugin

Samples only the thread holding the GIL (``--gil``: Python CPU, no idle waits) and prints
the share of samples per component, then the hottest leaf functions. Needs py-spy (the
``dev`` extra) and permission to ptrace the child (root, or ``ptrace_scope`` 0).
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import servers
from benchmarks.backends import backends
from benchmarks.run import ALL_PLUGINS, PLUGINS, drive
from benchmarks.talkme import WEBHOOKS, fake_talkme

#: Component of a sample: the first rule any of its frames matches (most specific first).
COMPONENTS = (
    ("openai SDK: request building / response parsing", ("openai/",)),
    ("httpx/httpcore/anyio (openai's transport)", ("httpx", "httpcore", "anyio/")),
    ("SQLite (aiosqlite, memory_sqlite)", ("aiosqlite/", "memory_sqlite/", "sqlite3")),
    ("PostgreSQL (psycopg, pool)", ("psycopg/", "psycopg_pool/", "psycopg_binary")),
    ("postgres plugin (lanes, queue, store)", ("plugins/postgres/",)),
    ("durable inbox/outbox", ("core/durable", "core/outbox")),
    ("talkme plugin", ("plugins/talkme/",)),
    ("loguru", ("loguru/",)),
    ("prometheus metrics", ("prometheus_client/", "core/metrics")),
    ("pydantic", ("pydantic",)),
    ("aiohttp client", ("aiohttp/client", "aiohttp/connector")),
    ("http_api plugin", ("plugins/http_api/", "aiohttp_sse/")),
    ("agent_openai plugin", ("plugins/agent_openai/",)),
    ("core bus/gateway/hooks", ("core/bus", "core/gateway", "core/plugins", "pluggy/")),
    ("core http middleware", ("core/http",)),
    ("aiohttp server", ("aiohttp/",)),
    ("asyncio event loop", ("asyncio/", "selectors", "uvloop")),
)


def summarize(collapsed: Path, top: int = 25) -> str:
    components: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        samples = int(count)
        total += samples
        frames = stack.split(";")
        leaves[frames[-1]] += samples
        for name, patterns in COMPONENTS:
            if any(pattern in frame for frame in frames for pattern in patterns):
                components[name] += samples
                break
        else:
            components["other"] += samples
    lines = [f"{total} samples with the GIL held", "-- by component (first match, outermost)"]
    lines += [f"{100 * n / total:5.1f}%  {name}" for name, n in components.most_common()]
    lines.append("-- hottest functions (self time)")
    lines += [f"{100 * n / total:5.1f}%  {name}" for name, n in leaves.most_common(top)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("load", choices=("overhead", "stream", "talkme"))
    parser.add_argument("--seconds", type=float, default=10.0, help="talkme load length")
    parser.add_argument(
        "--keep", type=Path, help="copy the collapsed stacks here (speedscope, flamegraph.pl)"
    )
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--postgres-dsn", help="as for run.py (default ENECA_BENCH_POSTGRES_DSN)")
    args = parser.parse_args(argv)
    (backend,) = backends(args.backend, args.postgres_dsn)
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    with tempfile.TemporaryDirectory(prefix="eneca-profile-") as temp:
        work = Path(temp)
        ttft = 2000.0 if args.load == "talkme" else 0.0
        with servers.upstream(work, ttft, 0, 30).start() as upstream:
            extra: dict[str, str] = {}
            api = None
            if args.load == "talkme":
                api = fake_talkme(work).start()
                extra = {"TALKME_API_URL": f"{api.url}/json/v1.0"}
            plugins = backend.plugins(ALL_PLUGINS if args.load == "talkme" else PLUGINS)
            try:
                with (
                    backend.settings() as database,
                    servers.gateway(
                        work / "ours", plugins, upstream.url, **extra, **database
                    ) as server,
                ):
                    server.start()
                    endpoint = "/api/chat/stream" if args.load == "stream" else "/api/chat"
                    spec = {"url": server.url, "endpoint": endpoint, "server_pid": server.pid}
                    drive({**spec, "users": 8, "turns": 3, "run": "warm"})
                    out = work / "profile.txt"
                    spy = subprocess.Popen(
                        [
                            py_spy,
                            *("record", "--pid", str(server.pid), "--gil", "--rate", "250"),
                            *("--nonblocking", "--format", "raw", "--output", str(out)),
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.PIPE,
                    )
                    time.sleep(1.0)
                    if args.load == "talkme":
                        load = {
                            "url": f"{server.url}/webhook/talkme",
                            "rate": 200,
                            "seconds": args.seconds,
                            "visitors": 1000,
                            "run": "prof",
                        }
                        subprocess.run(
                            [sys.executable, str(WEBHOOKS), json.dumps(load)],
                            capture_output=True,
                            check=True,
                        )
                        time.sleep(3.0)  # the agent's replies and their delivery
                    else:
                        figures = drive({**spec, "users": 32, "turns": 40, "run": "prof"})
                        cpu = figures["server_threads_cpu_s"] or figures["server_cpu_s"]
                        per_request = cpu * 1000 / figures["requests"]
                        print(f"{figures['requests']} requests, {per_request:.2f} ms CPU each")
                    spy.send_signal(2)
                    _, err = spy.communicate(timeout=60)
                    if not out.exists():
                        print(err.decode(), file=sys.stderr)
                        return 1
                    print(summarize(out))
                    if args.keep:
                        shutil.copy(out, args.keep)
            finally:
                if api is not None:
                    api.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
