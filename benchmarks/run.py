"""The gateway's benchmark, one command::

    .venv/bin/python benchmarks/run.py                 # every scenario, 4 rounds (~6 min)
    .venv/bin/python benchmarks/run.py --quick         # fewer users and rounds (< 2 min)
    .venv/bin/python benchmarks/run.py --scenario overhead --rounds 6 --out figures.json
    .venv/bin/python benchmarks/run.py --scenario tracing   # CPU with tracing off vs on
    .venv/bin/python benchmarks/run.py --backend both --scenario overhead --scenario talkme \
        --scenario workers                             # SQLite and PostgreSQL side by side

For each load scenario it starts a fake OpenAI-compatible upstream, then, round after
round, floor A (bare aiohttp passthrough), floor B (the same with the ``openai`` client)
and the gateway (``eneca-bot serve`` with http_api, memory_sqlite and agent_openai on a
fresh data dir; ``--backend postgres`` or ``both``: the postgres plugin in place of
memory_sqlite, on a schema of its own), each driven by the same closed-loop load
generator in its own process. It checks that the upstream saw every conversation's
history, and prints JSON: each round's figures, the medians, our figures as medians of
per-round ratios to the floors (and PostgreSQL's to SQLite's), and each target of issues
8 and 15 with whether it was met. A summary table goes to stderr. The ``workers``
scenario (PostgreSQL) compares ``serve --workers 2`` with one worker.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import servers
from benchmarks.backends import CHOICES, Backend, backends
from benchmarks.figures import check_history, median, ratios, summarize_load, target
from benchmarks.procstats import memory_mb, with_children

LOADGEN = servers.BENCH_DIR / "loadgen.py"
#: The gateway's plugins in the load scenarios (TalkMe only in its own scenario).
PLUGINS = "http_api,memory_sqlite,agent_openai"
ALL_PLUGINS = "http_api,talkme,memory_sqlite,agent_openai"
#: The two floors, run first in each round.
FLOORS = ("bare", "openai")
#: Servers of one round with the default backend, in the order they run: floor A,
#: floor B, ours (the gateway on SQLite; on PostgreSQL it is ``postgres``).
KINDS = (*FLOORS, "ours")
SQLITE = Backend("sqlite")
ENDPOINTS = {"chat": "/api/chat", "stream": "/api/chat/stream"}


@dataclass(frozen=True)
class LoadScenario:
    """A closed-loop scenario: upstream timing, users x turns, endpoints."""

    name: str
    ttft_ms: float
    token_ms: float
    tokens: int
    users: int
    turns: int
    endpoints: tuple[str, ...] = ("chat",)
    warmup_turns: int = 3
    per_turn: bool = False

    @property
    def upstream_ms(self) -> float:
        """How long the upstream takes for a whole (non-streamed) reply."""
        return self.ttft_ms + self.token_ms * (self.tokens - 1)


FULL = {
    "overhead": LoadScenario("overhead", 0, 0, 30, users=32, turns=20),
    "realistic": LoadScenario(
        "realistic", 200, 20, 30, users=64, turns=5, endpoints=("chat", "stream"), warmup_turns=1
    ),
    "long": LoadScenario("long", 0, 0, 30, users=1, turns=200, warmup_turns=5, per_turn=True),
}
QUICK = {
    "overhead": replace(FULL["overhead"], users=16, turns=10),
    "realistic": replace(FULL["realistic"], users=16, turns=2),
    "long": FULL["long"],
}
#: ``serve --workers 1`` and ``--workers 2`` on PostgreSQL, the overhead load with more
#: users so that two workers have work to share.
WORKERS = {
    False: replace(FULL["overhead"], name="workers", users=64, turns=20),
    True: replace(FULL["overhead"], name="workers", users=16, turns=10),
}
SCENARIOS = ("overhead", "realistic", "long", "startup", "talkme", "tracing", "workers")
#: Most CPU per request tracing may add in the overhead scenario (issue 19).
TRACING_CPU_LIMIT = 1.25
#: Issue 15: PostgreSQL's CPU per request against SQLite's (overhead scenario), at most.
POSTGRES_CPU_LIMIT = 1.5
#: Issue 15: requests a second of ``--workers 2`` against one worker, at least.
WORKERS_SPEEDUP = 1.5


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- one load run -------------------------------------------------------------------------


def drive(spec: dict[str, Any]) -> dict[str, Any]:
    """Run the load generator in its own process; its JSON figures."""
    done = servers.subprocess.run(
        [sys.executable, str(LOADGEN), json.dumps(spec)],
        capture_output=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{done.stderr.decode()[-3000:]}")
    return json.loads(done.stdout)


def upstream_records(upstream: servers.Process, run: str) -> list[list[Any]]:
    with urllib.request.urlopen(f"{upstream.url}/stats?run={run}", timeout=10) as response:
        return list(json.loads(response.read())["records"])


def long_figures(per_turn: list[list[Any]], turns: int) -> dict[str, Any]:
    """Cost of the last ten turns against the first ten (latency and server CPU)."""
    first = [row for row in per_turn if row[1] <= 10]
    last = [row for row in per_turn if row[1] > turns - 10]
    if not first or not last:
        return {}
    first_cpu = sum(row[3] for row in first)
    last_cpu = sum(row[3] for row in last)
    # Not figures.median: it rounds to 3 places, whole milliseconds for seconds.
    first_latency = statistics.median(row[2] for row in first)
    last_latency = statistics.median(row[2] for row in last)
    return {
        "first10_latency_ms": round(first_latency * 1000, 2),
        "last10_latency_ms": round(last_latency * 1000, 2),
        "last10_vs_first10_latency": round(last_latency / first_latency, 3)
        if first_latency
        else None,
        "first10_cpu_ms": round(first_cpu / 1e6, 2),
        "last10_cpu_ms": round(last_cpu / 1e6, 2),
        "last10_vs_first10_cpu": round(last_cpu / first_cpu, 3) if first_cpu else None,
    }


def wait_for_workers(server: servers.Process, workers: int, timeout_s: float = 60.0) -> None:
    """Until ``workers`` different nodes have answered ``/health`` on the shared port
    (each new connection may go to any worker), so the load meets all of them."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout_s
    while len(seen) < workers:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(seen)} of {workers} workers answered:\n{server.tail()}")
        try:
            with urllib.request.urlopen(f"{server.url}/health", timeout=2) as response:
                node = json.loads(response.read())["plugins"].get("postgres", {}).get("node")
            if node:
                seen.add(str(node))
        except OSError:
            pass
        time.sleep(0.02)


def measure_server(
    kind: str,
    scenario: LoadScenario,
    upstream: servers.Process,
    workdir: Path,
    run: str,
    backend: Backend = SQLITE,
    workers: int = 0,
    **settings: str,
) -> dict[str, Any]:
    """Start one server (a floor, or the gateway on ``backend``; ``workers``: with
    ``serve --workers N``), drive each endpoint of ``scenario`` at it, stop it (and drop
    its PostgreSQL schema)."""
    database: dict[str, str] = {}
    with ExitStack() as stack:
        if kind in FLOORS:
            client = "aiohttp" if kind == "bare" else kind
            server = stack.enter_context(servers.floor(workdir, client, upstream.url).start())
        else:
            database = stack.enter_context(backend.settings())
            args = ("--workers", str(workers)) if workers else ()
            plugins = backend.plugins(PLUGINS)
            gateway = servers.gateway(
                workdir, plugins, upstream.url, args=args, **database, **settings
            )
            server = stack.enter_context(gateway.start())
            if workers > 1:
                wait_for_workers(server, workers)
        time.sleep(0.3)
        pids = with_children(server.pid) if workers > 1 else [server.pid]
        figures: dict[str, Any] = {
            "startup_s": round(server.startup_s, 3),
            "idle_rss_mb": round(sum(memory_mb(pid)["rss"] for pid in pids), 1),
        }
        if kind not in FLOORS:
            figures["plugins"] = backend.plugins(PLUGINS)
        if "POSTGRES_SCHEMA" in database:
            figures["postgres_schema"] = database["POSTGRES_SCHEMA"]
        for endpoint in scenario.endpoints:
            run_id = f"{run}{endpoint}"
            raw = drive(
                {
                    "url": server.url,
                    "endpoint": ENDPOINTS[endpoint],
                    "users": scenario.users,
                    "turns": scenario.turns,
                    "warmup_turns": scenario.warmup_turns,
                    "run": run_id,
                    "server_pid": server.pid,
                    "server_pids": pids,
                    "database_cpu": backend.dsn is not None and kind not in FLOORS,
                    "per_turn": scenario.per_turn,
                }
            )
            load = summarize_load(raw)
            history_ok, problems = check_history(
                upstream_records(upstream, run_id), scenario.users, scenario.turns
            )
            load["history_ok"] = history_ok
            if problems:
                load["history_problems"] = problems
            if scenario.per_turn:
                load.update(long_figures(raw["per_turn"], scenario.turns))
            figures[endpoint] = load
        figures["peak_rss_mb"] = round(sum(memory_mb(pid)["peak"] for pid in pids), 1)
    return figures


# -- a scenario over rounds ---------------------------------------------------------------

_COMPARED = (
    "req_s",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "cpu_ms_per_req",
    "db_cpu_ms_per_req",
    "total_cpu_ms_per_req",
    "first_chunk_p50_ms",
    "first_chunk_p99_ms",
    "last10_vs_first10_latency",
    "last10_vs_first10_cpu",
)


def summarize_rounds(
    rounds: list[dict[str, Any]], endpoints: tuple[str, ...], kinds: Sequence[str] = KINDS
) -> dict[str, Any]:
    """Medians per server, and each gateway as medians of per-round ratios to each floor
    (``ours/bare``, ``postgres/openai``...) and PostgreSQL to SQLite (``postgres/ours``)."""
    gateways = [kind for kind in kinds if kind not in FLOORS]
    summary: dict[str, Any] = {}
    for endpoint in endpoints:
        per_endpoint: dict[str, Any] = {}
        for key in _COMPARED:
            series = {kind: [r[kind][endpoint].get(key) for r in rounds] for kind in kinds}
            if all(value is None for kind in gateways for value in series[kind]):
                continue
            compared: dict[str, Any] = {kind: median(values) for kind, values in series.items()}
            for kind in gateways:
                for floor in FLOORS:
                    if floor in series:
                        compared[f"{kind}/{floor}"] = ratios(series[kind], series[floor])
            if "ours" in series and "postgres" in series:
                compared["postgres/ours"] = ratios(series["postgres"], series["ours"])
            per_endpoint[key] = compared
        per_endpoint["history_ok"] = all(
            r[kind][endpoint]["history_ok"] for r in rounds for kind in kinds
        )
        per_endpoint["errors"] = sum(r[kind][endpoint]["errors"] for r in rounds for kind in kinds)
        summary[endpoint] = per_endpoint
    for key in ("startup_s", "idle_rss_mb", "peak_rss_mb"):
        summary[key] = {kind: median(r[kind][key] for r in rounds) for kind in kinds}
    return summary


def targets_for(
    scenario: LoadScenario, summary: dict[str, Any], kinds: Sequence[str] = KINDS
) -> list[dict[str, Any]]:
    """Issue 8's targets that this scenario measures, for each gateway (PostgreSQL's
    marked so), and issue 15's PostgreSQL against SQLite."""
    found: list[dict[str, Any]] = []
    for kind in kinds:
        if kind not in FLOORS:
            label = " (PostgreSQL)" if kind == "postgres" else ""
            found += _gateway_targets(scenario, summary, kind, label)
    cpu = summary.get("chat", {}).get("cpu_ms_per_req", {})
    if scenario.name == "overhead" and "postgres/ours" in cpu:
        found.append(
            target(
                "overhead CPU/request PostgreSQL vs SQLite",
                cpu["postgres/ours"],
                POSTGRES_CPU_LIMIT,
                "x",
            )
        )
    return found


def _gateway_targets(
    scenario: LoadScenario, summary: dict[str, Any], kind: str, label: str
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if scenario.name == "overhead":
        cpu = summary["chat"]["cpu_ms_per_req"]
        found.append(
            target(
                f"overhead CPU/request vs bare passthrough{label}", cpu[f"{kind}/bare"], 2.5, "x"
            )
        )
        found.append(
            target(
                f"overhead CPU/request vs passthrough+openai{label}",
                cpu[f"{kind}/openai"],
                1.5,
                "x",
            )
        )
    elif scenario.name == "realistic":
        up = scenario.upstream_ms
        chat = summary["chat"]
        found.append(
            target(
                f"realistic /api/chat p50 - upstream{label}",
                _minus(chat["p50_ms"][kind], up),
                10,
                "ms",
            )
        )
        found.append(
            target(
                f"realistic /api/chat p99 - upstream{label}",
                _minus(chat["p99_ms"][kind], up),
                60,
                "ms",
            )
        )
        if "stream" in summary:
            first = summary["stream"]
            found.append(
                target(
                    f"realistic stream first chunk p50 - TTFT{label}",
                    _minus(first["first_chunk_p50_ms"][kind], scenario.ttft_ms),
                    10,
                    "ms",
                )
            )
            found.append(
                target(
                    f"realistic stream first chunk p99 - TTFT{label}",
                    _minus(first["first_chunk_p99_ms"][kind], scenario.ttft_ms),
                    60,
                    "ms",
                )
            )
        found.append(target(f"realistic peak RSS{label}", summary["peak_rss_mb"][kind], 100, "MB"))
    elif scenario.name == "long":
        chat = summary["chat"]
        found.append(
            target(
                f"long conversation turns 191-200 vs 1-10 (latency){label}",
                chat["last10_vs_first10_latency"][kind],
                1.2,
                "x",
            )
        )
        found.append(
            target(
                f"long conversation turns 191-200 vs 1-10 (server CPU){label}",
                chat["last10_vs_first10_cpu"][kind],
                1.2,
                "x",
            )
        )
    found.append(
        target(f"idle RSS ({scenario.name}){label}", summary["idle_rss_mb"][kind], 60, "MB")
    )
    return found


def _minus(value: float | None, base: float) -> float | None:
    return None if value is None else round(value - base, 2)


def run_load_scenario(
    scenario: LoadScenario, rounds: int, workdir: Path, gateways: Sequence[Backend] = (SQLITE,)
) -> dict[str, Any]:
    log(
        f"== {scenario.name}: {scenario.users} users x {scenario.turns} turns, "
        f"upstream TTFT {scenario.ttft_ms} ms + {scenario.token_ms} ms/token x {scenario.tokens}, "
        f"{rounds} round(s), backends {', '.join(b.name for b in gateways)}"
    )
    upstream = servers.upstream(workdir, scenario.ttft_ms, scenario.token_ms, scenario.tokens)
    by_kind = {backend.kind: backend for backend in gateways}
    kinds = (*FLOORS, *by_kind)
    results: list[dict[str, Any]] = []
    with upstream.start():
        for number in range(rounds):
            one_round: dict[str, Any] = {}
            for kind in kinds:
                run = f"{scenario.name[:4]}{number}{kind}"
                one_round[kind] = measure_server(
                    kind, scenario, upstream, workdir / run, run, by_kind.get(kind, SQLITE)
                )
                log(f"   round {number + 1} {kind:<8} {_brief(one_round[kind], scenario)}")
            results.append(one_round)
    summary = summarize_rounds(results, scenario.endpoints, kinds)
    return {
        "config": {
            "users": scenario.users,
            "turns": scenario.turns,
            "ttft_ms": scenario.ttft_ms,
            "token_ms": scenario.token_ms,
            "tokens": scenario.tokens,
            "upstream_ms": scenario.upstream_ms,
            "endpoints": [ENDPOINTS[e] for e in scenario.endpoints],
            "rounds": rounds,
            "backends": [backend.name for backend in gateways],
        },
        "rounds": results,
        "summary": summary,
        "targets": targets_for(scenario, summary, kinds),
    }


def _brief(figures: dict[str, Any], scenario: LoadScenario) -> str:
    parts = [f"start {figures['startup_s']:.2f}s"]
    for endpoint in scenario.endpoints:
        load = figures[endpoint]
        text = (
            f"{endpoint}: {load['req_s']} req/s p50 {load['p50_ms']} p99 {load['p99_ms']} ms "
            f"cpu {load['cpu_ms_per_req']} ms/req"
        )
        if load.get("db_cpu_ms_per_req") is not None:
            text += f" (+ database {load['db_cpu_ms_per_req']})"
        if load.get("machine_busy_cores") is not None:
            text += f"; machine {load['machine_busy_cores']} cores busy"
        if "first_chunk_p50_ms" in load:
            text += f" first {load['first_chunk_p50_ms']}/{load['first_chunk_p99_ms']} ms"
        if "last10_vs_first10_latency" in load:
            text += (
                f" last10/first10 {load['last10_vs_first10_latency']}x latency,"
                f" {load['last10_vs_first10_cpu']}x cpu"
            )
        if not load["history_ok"] or load["errors"]:
            text += f" HISTORY {load['history_ok']} ERRORS {load['errors']}"
        parts.append(text)
    parts.append(f"rss {figures['idle_rss_mb']}/{figures['peak_rss_mb']} MB")
    return "; ".join(parts)


# -- tracing ------------------------------------------------------------------------------


def run_tracing(
    scenario: LoadScenario, rounds: int, workdir: Path, base: Path | None = None
) -> dict[str, Any]:
    """The overhead load against the gateway with tracing off and on (exporting every
    span to ``otlp_sink.py``), alternated round by round; on/off as medians of per-round
    ratios. With ``base`` (a checkout without tracing, put first on the servers'
    ``PYTHONPATH``) a third server per round measures what tracing costs when off."""
    log(
        f"== tracing: {scenario.name} load ({scenario.users} users x {scenario.turns} turns), "
        f"tracing off vs on, {rounds} round(s)"
    )
    upstream = servers.upstream(workdir, scenario.ttft_ms, scenario.token_ms, scenario.tokens)
    sink = servers.otlp_sink(workdir)
    kinds = ("base", "off", "on") if base is not None else ("off", "on")
    results: list[dict[str, Any]] = []
    with upstream.start(), sink.start():
        for number in range(rounds):
            one_round: dict[str, Any] = {}
            for kind in kinds:
                run = f"trac{number}{kind}"
                settings = {"OTEL_EXPORTER_OTLP_ENDPOINT": sink.url} if kind == "on" else {}
                if kind == "base":
                    settings = {"PYTHONPATH": str(base)}
                one_round[kind] = measure_server(
                    "ours", scenario, upstream, workdir / run, run, **settings
                )
                log(f"   round {number + 1} {kind:<4} {_brief(one_round[kind], scenario)}")
            results.append(one_round)
        with urllib.request.urlopen(f"{sink.url}/stats", timeout=10) as response:
            exported = json.loads(response.read())
    summary: dict[str, Any] = {}
    for key in ("cpu_ms_per_req", "req_s", "p50_ms", "p99_ms"):
        off = [r["off"]["chat"][key] for r in results]
        on = [r["on"]["chat"][key] for r in results]
        summary[key] = {"off": median(off), "on": median(on), "on/off": ratios(on, off)}
        if base is not None:
            before = [r["base"]["chat"][key] for r in results]
            summary[key].update(base=median(before), **{"off/base": ratios(off, before)})
    summary["peak_rss_mb"] = {
        kind: median(r[kind]["peak_rss_mb"] for r in results) for kind in kinds
    }
    summary["spans_exported"] = exported["spans"]
    summary["errors"] = sum(r[kind]["chat"]["errors"] for r in results for kind in kinds)
    return {
        "config": {"users": scenario.users, "turns": scenario.turns, "rounds": rounds},
        "rounds": results,
        "summary": summary,
        "targets": [
            target(
                "tracing on: CPU/request vs off (overhead load)",
                summary["cpu_ms_per_req"]["on/off"],
                TRACING_CPU_LIMIT,
                "x",
            )
        ],
    }


# -- workers ------------------------------------------------------------------------------


def run_workers(
    scenario: LoadScenario,
    rounds: int,
    workdir: Path,
    postgres: Backend,
    sqlite: Backend | None = None,
) -> dict[str, Any]:
    """``serve --workers 1`` and ``--workers 2`` on PostgreSQL under the overhead load
    (0 ms model), alternated round by round, the load generator on the same machine;
    2 against 1 as the median of per-round ratios. With ``sqlite``, the default single
    process runs in each round too, for reference."""
    log(
        f"== workers: {scenario.users} users x {scenario.turns} turns, upstream 0 ms, "
        f"--workers 1 vs 2 on PostgreSQL, {rounds} round(s)"
    )
    upstream = servers.upstream(workdir, scenario.ttft_ms, scenario.token_ms, scenario.tokens)
    plan: dict[str, tuple[Backend, int]] = {"workers1": (postgres, 1), "workers2": (postgres, 2)}
    if sqlite is not None:
        plan = {"ours": (sqlite, 0), **plan}
    results: list[dict[str, Any]] = []
    with upstream.start():
        for number in range(rounds):
            one_round: dict[str, Any] = {}
            for kind, (backend, workers) in plan.items():
                run = f"work{number}{kind}"
                one_round[kind] = measure_server(
                    kind, scenario, upstream, workdir / run, run, backend, workers
                )
                log(f"   round {number + 1} {kind:<8} {_brief(one_round[kind], scenario)}")
            results.append(one_round)
    summary: dict[str, Any] = {}
    for key in (
        "req_s",
        "cpu_ms_per_req",
        "total_cpu_ms_per_req",
        "p50_ms",
        "p99_ms",
        "machine_busy_cores",
        "loadgen_cpu_ms_per_req",
    ):
        series = {kind: [r[kind]["chat"].get(key) for r in results] for kind in plan}
        summary[key] = {kind: median(values) for kind, values in series.items()}
        summary[key]["workers2/workers1"] = ratios(series["workers2"], series["workers1"])
    # The most any number of workers could serve against one, were every core used:
    # the machine's cores over the cores one worker's run kept busy (every process).
    busy = [r["workers1"]["chat"].get("machine_busy_cores") for r in results]
    summary["ceiling_vs_workers1"] = ratios([float(os.cpu_count() or 1)] * len(busy), busy)
    summary["peak_rss_mb"] = {
        kind: median(r[kind]["peak_rss_mb"] for r in results) for kind in plan
    }
    summary["history_ok"] = all(r[kind]["chat"]["history_ok"] for r in results for kind in plan)
    summary["errors"] = sum(r[kind]["chat"]["errors"] for r in results for kind in plan)
    return {
        "config": {
            "users": scenario.users,
            "turns": scenario.turns,
            "rounds": rounds,
            "cpus": os.cpu_count(),
            "servers": {kind: f"{b.name}, workers {w or 1}" for kind, (b, w) in plan.items()},
        },
        "rounds": results,
        "summary": summary,
        "targets": [
            target(
                "--workers 2 vs 1 req/s (PostgreSQL, load generator on the machine)",
                summary["req_s"]["workers2/workers1"],
                WORKERS_SPEEDUP,
                "x",
                at_least=True,
            )
        ],
    }


# -- start-up -----------------------------------------------------------------------------


def run_startup(rounds: int, workdir: Path) -> dict[str, Any]:
    """Time to a healthy /health with every built-in plugin (knowledge base indexed from
    the checkout's ``knowledge/``), on a fresh data dir and again on the same one."""
    log(f"== startup: all built-in plugins, {rounds} round(s)")
    dead_upstream = f"http://127.0.0.1:{servers.free_port()}"
    settings = {
        "KNOWLEDGE_MODE": "tool",
        "KNOWLEDGE_DIR": str(servers.REPO / "knowledge"),
        "TALKME_TEST_MODE": "true",
        "TALKME_WEBHOOK_SECRET": "bench-secret",
    }
    fresh: list[float] = []
    again: list[float] = []
    idle: list[float] = []
    floor_start: list[float] = []
    floor_idle: list[float] = []
    for number in range(rounds):
        place = workdir / f"start{number}"
        for into in (fresh, again):
            with servers.gateway(place, ALL_PLUGINS, dead_upstream, **settings) as server:
                server.start()
                into.append(server.startup_s)
                time.sleep(0.3)
                if into is again:
                    idle.append(memory_mb(server.pid)["rss"])
        with servers.floor(place, "aiohttp", dead_upstream) as bare:
            bare.start()
            floor_start.append(bare.startup_s)
            time.sleep(0.3)
            floor_idle.append(memory_mb(bare.pid)["rss"])
        log(
            f"   round {number + 1}: fresh {fresh[-1]:.3f}s, restart {again[-1]:.3f}s, "
            f"idle {idle[-1]:.1f} MB "
            f"(bare aiohttp: {floor_start[-1]:.3f}s, {floor_idle[-1]:.1f} MB)"
        )
    summary = {
        "fresh_data_dir_s": median(fresh),
        "restart_s": median(again),
        "idle_rss_mb": median(idle),
        "bare_startup_s": median(floor_start),
        "bare_idle_rss_mb": median(floor_idle),
    }
    return {
        "config": {"plugins": ALL_PLUGINS, "rounds": rounds},
        "rounds": {"fresh_s": fresh, "restart_s": again, "idle_rss_mb": idle},
        "summary": summary,
        "targets": [
            target(
                "start-up to healthy, all plugins, fresh data dir",
                summary["fresh_data_dir_s"],
                1.0,
                "s",
            ),
            target("start-up to healthy, all plugins, restart", summary["restart_s"], 1.0, "s"),
            target("idle RSS, all plugins", summary["idle_rss_mb"], 60, "MB"),
        ],
    }


# -- the command --------------------------------------------------------------------------


def run(
    scenarios: list[str],
    *,
    quick: bool = False,
    rounds: int | None = None,
    users: int | None = None,
    turns: int | None = None,
    talkme_seconds: float | None = None,
    talkme_rate: float = 200.0,
    workdir: Path | None = None,
    tracing_base: Path | None = None,
    backend: str = "sqlite",
    postgres_dsn: str | None = None,
    synchronous_commit: bool = True,
) -> dict[str, Any]:
    """Run ``scenarios`` on ``backend`` (``sqlite``, ``postgres`` or ``both``); the whole
    report as a dict. The workers scenario always runs on PostgreSQL."""
    table = QUICK if quick else FULL
    rounds = rounds or (2 if quick else 4)
    gateways = backends(backend, postgres_dsn, synchronous_commit)
    report: dict[str, Any] = {
        "machine": _machine(),
        "quick": quick,
        "backend": backend,
        "postgres_synchronous_commit": synchronous_commit,
        "scenarios": {},
    }
    with tempfile.TemporaryDirectory(prefix="eneca-bench-") as temp:
        base = workdir or Path(temp)
        for name in scenarios:
            place = base / name
            place.mkdir(parents=True, exist_ok=True)
            started = time.perf_counter()
            load_before = _load_average()
            log(f"   load average (1, 5, 15 min): {load_before}")
            if name in table:
                scenario = _resized(table[name], users, turns)
                result = run_load_scenario(scenario, rounds, place, gateways)
            elif name == "tracing":
                scenario = _resized(table["overhead"], users, turns)
                result = run_tracing(scenario, rounds, place, tracing_base)
            elif name == "startup":
                result = run_startup(rounds if rounds else 3, place)
            elif name == "talkme":
                from benchmarks.talkme import run_talkme

                seconds = talkme_seconds or (5.0 if quick else 30.0)
                for db in gateways:
                    key = name if db.name == "sqlite" else f"{name}_{db.name}"
                    result = run_talkme(
                        seconds, place / db.name, rate=talkme_rate, agent_s=2.0, backend=db
                    )
                    _finish(result, started, load_before)
                    report["scenarios"][key] = result
                    started, load_before = time.perf_counter(), _load_average()
                continue
            elif name == "workers":
                scenario = _resized(WORKERS[quick], users, turns)
                by_name = {db.name: db for db in gateways}
                postgres = by_name.get("postgres")
                postgres = postgres or backends("postgres", postgres_dsn, synchronous_commit)[0]
                result = run_workers(scenario, rounds, place, postgres, by_name.get("sqlite"))
            else:
                raise SystemExit(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
            _finish(result, started, load_before)
            report["scenarios"][name] = result
    report["targets"] = [t for s in report["scenarios"].values() for t in s.get("targets", [])]
    report["side_by_side"] = side_by_side(report)
    return report


def default_scenarios(backend: str) -> list[str]:
    """Every scenario; the workers scenario only when PostgreSQL is among the backends."""
    if "postgres" in CHOICES[backend]:
        return list(SCENARIOS)
    return [name for name in SCENARIOS if name != "workers"]


def _resized(scenario: LoadScenario, users: int | None, turns: int | None) -> LoadScenario:
    if users:
        scenario = replace(scenario, users=users)
    if turns:
        scenario = replace(scenario, turns=turns)
    return scenario


def _finish(result: dict[str, Any], started: float, load_before: list[float]) -> None:
    """Elapsed time and the machine's load average before and after (it is shared)."""
    result["elapsed_s"] = round(time.perf_counter() - started, 1)
    result["load_average"] = {"before": load_before, "after": _load_average()}
    log(f"   load average after: {result['load_average']['after']}")


def _load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


# -- SQLite and PostgreSQL side by side ------------------------------------------------------


def side_by_side(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The figures of issue 15 in one table: figure, SQLite, PostgreSQL, target, met."""
    scenarios = report["scenarios"]
    rows: list[dict[str, Any]] = []

    def row(figure: str, sqlite: Any, postgres: Any, goal: str = "", met: Any = None) -> None:
        rows.append(
            {"figure": figure, "sqlite": sqlite, "postgres": postgres, "target": goal, "met": met}
        )

    overhead = scenarios.get("overhead", {}).get("summary", {}).get("chat", {})
    if "postgres" in overhead.get("cpu_ms_per_req", {}):
        cpu = overhead["cpu_ms_per_req"]
        ratio = cpu.get("postgres/ours")
        row("overhead CPU/request, gateway process (ms)", cpu.get("ours"), cpu["postgres"])
        row(
            "overhead CPU/request, PostgreSQL / SQLite",
            1.0 if ratio is not None else None,
            ratio,
            f"<= {POSTGRES_CPU_LIMIT}x",
            None if ratio is None else ratio <= POSTGRES_CPU_LIMIT,
        )
        total = overhead.get("total_cpu_ms_per_req", {})
        database = overhead.get("db_cpu_ms_per_req", {})
        row("overhead CPU/request in its PostgreSQL backends (ms)", None, database.get("postgres"))
        row(
            "overhead CPU/request, gateway + database (ms)",
            total.get("ours"),
            total.get("postgres"),
        )
        row("same, PostgreSQL / SQLite", None, total.get("postgres/ours"))
        for key, label in (("req_s", "req/s"), ("p50_ms", "p50 (ms)"), ("p99_ms", "p99 (ms)")):
            figures = overhead.get(key, {})
            row(f"overhead {label}", figures.get("ours"), figures.get("postgres"))
    talkme = {
        "sqlite": scenarios.get("talkme", {}).get("summary"),
        "postgres": scenarios.get("talkme_postgres", {}).get("summary"),
    }
    if talkme["postgres"]:

        def both(key: str) -> tuple[Any, Any]:
            return tuple(s.get(key) if s else None for s in talkme.values())  # type: ignore[return-value]

        p99 = both("ack_p99_ms")
        row("TalkMe ack p50 (ms)", *both("ack_p50_ms"))
        row("TalkMe ack p99 (ms)", *p99, "<= 20 ms", _all_met(p99, lambda v: v <= 20))
        lost = tuple(
            None if s is None else s["acked_200"] - s["delivered"] for s in talkme.values()
        )
        row("TalkMe acked but not delivered", *lost, "0", _all_met(lost, lambda v: v == 0))
        row(
            "TalkMe delivered / sent",
            *(None if s is None else f"{s['delivered']}/{s['webhooks']}" for s in talkme.values()),
        )
        row("TalkMe end-to-end p99 (ms)", *both("end_to_end_p99_ms"))
        row("TalkMe CPU/message (ms)", *both("cpu_ms_per_message"))
    workers = scenarios.get("workers", {}).get("summary")
    if workers:
        req = workers["req_s"]
        ratio = req["workers2/workers1"]
        row(
            "req/s, one process (SQLite: the default; PostgreSQL: --workers 1)",
            req.get("ours"),
            req["workers1"],
        )
        row("req/s, --workers 2", None, req["workers2"])
        row(
            "--workers 2 / --workers 1 req/s",
            None,
            ratio,
            f">= {WORKERS_SPEEDUP}x",
            None if ratio is None else ratio >= WORKERS_SPEEDUP,
        )
        busy = workers["machine_busy_cores"]
        row("machine cores busy, --workers 1 / 2", None, f"{busy['workers1']} / {busy['workers2']}")
        row(
            "most any --workers could serve vs one (cores / busy at one)",
            None,
            workers["ceiling_vs_workers1"],
        )
    return rows


def _all_met(values: Sequence[Any], check: Callable[[Any], bool]) -> bool | None:
    present = [value for value in values if value is not None]
    return all(check(value) for value in present) if present else None


def print_side_by_side(report: dict[str, Any], out: Callable[[str], None] = log) -> None:
    if not report.get("side_by_side"):
        return
    out("== SQLite | PostgreSQL (issue 15)")
    for item in report["side_by_side"]:
        mark = {True: "met", False: "NOT MET", None: ""}[item["met"]]
        out(
            f"   {item['figure']}: {item['sqlite']} | {item['postgres']}"
            + (f"  target {item['target']} {mark}" if item["target"] else "")
        )


def _machine() -> dict[str, Any]:
    import os
    import platform

    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "accelerators": {name: _installed(name) for name in ("uvloop", "orjson")},
    }


def _installed(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def print_targets(report: dict[str, Any], out: Callable[[str], None] = log) -> None:
    out("== targets (issues 8, 15 and 19)")
    for item in report["targets"]:
        mark = {True: "met", False: "NOT MET", None: "n/a"}[item["met"]]
        compare = item.get("compare", "<=")
        out(
            f"   {mark:<8} {item['target']}: {item['value']} {item['unit']} "
            f"({compare} {item['limit']})"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer users and rounds (< 2 min)")
    parser.add_argument(
        "--scenario",
        action="append",
        choices=SCENARIOS,
        help="run only this scenario (repeatable); default: all (workers only with "
        "--backend postgres or both)",
    )
    parser.add_argument("--rounds", type=int, help="alternated rounds (default 4, quick 2)")
    parser.add_argument("--users", type=int, help="override the scenario's users")
    parser.add_argument("--turns", type=int, help="override the scenario's turns")
    parser.add_argument("--talkme-seconds", type=float, help="length of the TalkMe load")
    parser.add_argument(
        "--talkme-rate", type=float, default=200.0, help="webhooks a second (default 200)"
    )
    parser.add_argument(
        "--backend",
        choices=tuple(CHOICES),
        default="sqlite",
        help="the gateway's storage: embedded SQLite (default), the postgres plugin, or both "
        "side by side in each round",
    )
    parser.add_argument(
        "--postgres-dsn",
        help="database of the postgres backend (default ENECA_BENCH_POSTGRES_DSN or "
        "postgresql://postgres@127.0.0.1:5432/test); each gateway gets a schema of its own, "
        "dropped after",
    )
    parser.add_argument(
        "--postgres-synchronous-commit",
        choices=("on", "off"),
        default="on",
        help="diagnostic: 'off' lets PostgreSQL acknowledge commits before their WAL flush "
        "(what durable commits cost on this disk); the figures to report use 'on'",
    )
    parser.add_argument("--out", type=Path, help="also write the JSON report here")
    parser.add_argument("--keep", type=Path, help="keep data dirs and logs in this folder")
    parser.add_argument(
        "--tracing-base",
        type=Path,
        help="tracing scenario: also measure this checkout (without tracing) as the base",
    )
    args = parser.parse_args(argv)
    report = run(
        args.scenario or default_scenarios(args.backend),
        quick=args.quick,
        rounds=args.rounds,
        users=args.users,
        turns=args.turns,
        talkme_seconds=args.talkme_seconds,
        talkme_rate=args.talkme_rate,
        workdir=args.keep,
        tracing_base=args.tracing_base,
        backend=args.backend,
        postgres_dsn=args.postgres_dsn,
        synchronous_commit=args.postgres_synchronous_commit == "on",
    )
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text)
    print_side_by_side(report)
    print_targets(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
