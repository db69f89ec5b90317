"""The gateway's benchmark, one command::

    .venv/bin/python benchmarks/run.py                 # every scenario, 4 rounds (~6 min)
    .venv/bin/python benchmarks/run.py --quick         # fewer users and rounds (< 2 min)
    .venv/bin/python benchmarks/run.py --scenario overhead --rounds 6 --out figures.json
    .venv/bin/python benchmarks/run.py --scenario tracing   # CPU with tracing off vs on

For each load scenario it starts a fake OpenAI-compatible upstream, then, round after
round, floor A (bare aiohttp passthrough), floor B (the same with the ``openai`` client)
and the gateway (``eneca-bot serve`` with http_api, memory_sqlite and agent_openai on a
fresh data dir), each driven by the same closed-loop load generator in its own process.
It checks that the upstream saw every conversation's history, and prints JSON: each
round's figures, the medians, our figures as medians of per-round ratios to the floors,
and each target of issue 8 with whether it was met. A summary table goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import servers
from benchmarks.figures import check_history, median, ratios, summarize_load, target
from benchmarks.procstats import memory_mb

LOADGEN = servers.BENCH_DIR / "loadgen.py"
#: The gateway's plugins in the load scenarios (TalkMe only in its own scenario).
PLUGINS = "http_api,memory_sqlite,agent_openai"
ALL_PLUGINS = "http_api,talkme,memory_sqlite,agent_openai"
#: Servers of one round, in the order they run: floor A, floor B, ours.
KINDS = ("bare", "openai", "ours")
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
SCENARIOS = ("overhead", "realistic", "long", "startup", "talkme", "tracing")
#: Most CPU per request tracing may add in the overhead scenario (issue 19).
TRACING_CPU_LIMIT = 1.25


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


def start_server(
    kind: str,
    workdir: Path,
    upstream: servers.Process,
    plugins: str = PLUGINS,
    **settings: str,
) -> servers.Process:
    if kind == "ours":
        return servers.gateway(workdir, plugins, upstream.url, **settings).start()
    return servers.floor(workdir, "aiohttp" if kind == "bare" else kind, upstream.url).start()


def measure_server(
    kind: str,
    scenario: LoadScenario,
    upstream: servers.Process,
    workdir: Path,
    run: str,
    **settings: str,
) -> dict[str, Any]:
    """Start one server, drive each endpoint of ``scenario`` at it, stop it."""
    with start_server(kind, workdir, upstream, **settings) as server:
        time.sleep(0.3)
        figures: dict[str, Any] = {
            "startup_s": round(server.startup_s, 3),
            "idle_rss_mb": round(memory_mb(server.pid)["rss"], 1),
        }
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
        figures["peak_rss_mb"] = round(memory_mb(server.pid)["peak"], 1)
    return figures


# -- a scenario over rounds ---------------------------------------------------------------

_COMPARED = (
    "req_s",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "cpu_ms_per_req",
    "first_chunk_p50_ms",
    "first_chunk_p99_ms",
    "last10_vs_first10_latency",
    "last10_vs_first10_cpu",
)


def summarize_rounds(rounds: list[dict[str, Any]], endpoints: tuple[str, ...]) -> dict[str, Any]:
    """Medians per server, and ours as medians of per-round ratios to each floor."""
    summary: dict[str, Any] = {}
    for endpoint in endpoints:
        per_endpoint: dict[str, Any] = {}
        for key in _COMPARED:
            series = {kind: [r[kind][endpoint].get(key) for r in rounds] for kind in KINDS}
            if all(value is None for value in series["ours"]):
                continue
            per_endpoint[key] = {
                **{kind: median(values) for kind, values in series.items()},
                "ours/bare": ratios(series["ours"], series["bare"]),
                "ours/openai": ratios(series["ours"], series["openai"]),
            }
        per_endpoint["history_ok"] = all(
            r[kind][endpoint]["history_ok"] for r in rounds for kind in KINDS
        )
        per_endpoint["errors"] = sum(r[kind][endpoint]["errors"] for r in rounds for kind in KINDS)
        summary[endpoint] = per_endpoint
    for key in ("startup_s", "idle_rss_mb", "peak_rss_mb"):
        summary[key] = {kind: median(r[kind][key] for r in rounds) for kind in KINDS}
    return summary


def targets_for(scenario: LoadScenario, summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 8's targets that this scenario measures."""
    found: list[dict[str, Any]] = []
    if scenario.name == "overhead":
        cpu = summary["chat"]["cpu_ms_per_req"]
        found.append(target("overhead CPU/request vs bare passthrough", cpu["ours/bare"], 2.5, "x"))
        found.append(
            target("overhead CPU/request vs passthrough+openai", cpu["ours/openai"], 1.5, "x")
        )
    elif scenario.name == "realistic":
        up = scenario.upstream_ms
        chat = summary["chat"]
        found.append(
            target(
                "realistic /api/chat p50 - upstream", _minus(chat["p50_ms"]["ours"], up), 10, "ms"
            )
        )
        found.append(
            target(
                "realistic /api/chat p99 - upstream", _minus(chat["p99_ms"]["ours"], up), 60, "ms"
            )
        )
        if "stream" in summary:
            first = summary["stream"]
            found.append(
                target(
                    "realistic stream first chunk p50 - TTFT",
                    _minus(first["first_chunk_p50_ms"]["ours"], scenario.ttft_ms),
                    10,
                    "ms",
                )
            )
            found.append(
                target(
                    "realistic stream first chunk p99 - TTFT",
                    _minus(first["first_chunk_p99_ms"]["ours"], scenario.ttft_ms),
                    60,
                    "ms",
                )
            )
        found.append(target("realistic peak RSS", summary["peak_rss_mb"]["ours"], 100, "MB"))
    elif scenario.name == "long":
        chat = summary["chat"]
        found.append(
            target(
                "long conversation turns 191-200 vs 1-10 (latency)",
                chat["last10_vs_first10_latency"]["ours"],
                1.2,
                "x",
            )
        )
        found.append(
            target(
                "long conversation turns 191-200 vs 1-10 (server CPU)",
                chat["last10_vs_first10_cpu"]["ours"],
                1.2,
                "x",
            )
        )
    found.append(target(f"idle RSS ({scenario.name})", summary["idle_rss_mb"]["ours"], 60, "MB"))
    return found


def _minus(value: float | None, base: float) -> float | None:
    return None if value is None else round(value - base, 2)


def run_load_scenario(scenario: LoadScenario, rounds: int, workdir: Path) -> dict[str, Any]:
    log(
        f"== {scenario.name}: {scenario.users} users x {scenario.turns} turns, "
        f"upstream TTFT {scenario.ttft_ms} ms + {scenario.token_ms} ms/token x {scenario.tokens}, "
        f"{rounds} round(s)"
    )
    upstream = servers.upstream(workdir, scenario.ttft_ms, scenario.token_ms, scenario.tokens)
    results: list[dict[str, Any]] = []
    with upstream.start():
        for number in range(rounds):
            one_round: dict[str, Any] = {}
            for kind in KINDS:
                run = f"{scenario.name[:4]}{number}{kind}"
                one_round[kind] = measure_server(kind, scenario, upstream, workdir / f"{run}", run)
                log(f"   round {number + 1} {kind:<6} {_brief(one_round[kind], scenario)}")
            results.append(one_round)
    summary = summarize_rounds(results, scenario.endpoints)
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
        },
        "rounds": results,
        "summary": summary,
        "targets": targets_for(scenario, summary),
    }


def _brief(figures: dict[str, Any], scenario: LoadScenario) -> str:
    parts = [f"start {figures['startup_s']:.2f}s"]
    for endpoint in scenario.endpoints:
        load = figures[endpoint]
        text = (
            f"{endpoint}: {load['req_s']} req/s p50 {load['p50_ms']} p99 {load['p99_ms']} ms "
            f"cpu {load['cpu_ms_per_req']} ms/req"
        )
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
) -> dict[str, Any]:
    """Run ``scenarios``; the whole report as a dict."""
    table = QUICK if quick else FULL
    rounds = rounds or (2 if quick else 4)
    report: dict[str, Any] = {
        "machine": _machine(),
        "quick": quick,
        "scenarios": {},
    }
    with tempfile.TemporaryDirectory(prefix="eneca-bench-") as temp:
        base = workdir or Path(temp)
        for name in scenarios:
            place = base / name
            place.mkdir(parents=True, exist_ok=True)
            started = time.perf_counter()
            if name in table:
                scenario = table[name]
                if users:
                    scenario = replace(scenario, users=users)
                if turns:
                    scenario = replace(scenario, turns=turns)
                result = run_load_scenario(scenario, rounds, place)
            elif name == "tracing":
                scenario = table["overhead"]
                if users:
                    scenario = replace(scenario, users=users)
                if turns:
                    scenario = replace(scenario, turns=turns)
                result = run_tracing(scenario, rounds, place, tracing_base)
            elif name == "startup":
                result = run_startup(rounds if rounds else 3, place)
            elif name == "talkme":
                from benchmarks.talkme import run_talkme

                seconds = talkme_seconds or (5.0 if quick else 30.0)
                result = run_talkme(seconds, place, rate=talkme_rate, agent_s=2.0)
            else:
                raise SystemExit(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
            result["elapsed_s"] = round(time.perf_counter() - started, 1)
            report["scenarios"][name] = result
    report["targets"] = [t for s in report["scenarios"].values() for t in s.get("targets", [])]
    return report


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
    out("== targets (issues 8 and 19)")
    for item in report["targets"]:
        mark = {True: "met", False: "NOT MET", None: "n/a"}[item["met"]]
        out(f"   {mark:<8} {item['target']}: {item['value']} {item['unit']} (<= {item['limit']})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer users and rounds (< 2 min)")
    parser.add_argument(
        "--scenario",
        action="append",
        choices=SCENARIOS,
        help="run only this scenario (repeatable); default: all",
    )
    parser.add_argument("--rounds", type=int, help="alternated rounds (default 4, quick 2)")
    parser.add_argument("--users", type=int, help="override the scenario's users")
    parser.add_argument("--turns", type=int, help="override the scenario's turns")
    parser.add_argument("--talkme-seconds", type=float, help="length of the TalkMe load")
    parser.add_argument(
        "--talkme-rate", type=float, default=200.0, help="webhooks a second (default 200)"
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
        args.scenario or list(SCENARIOS),
        quick=args.quick,
        rounds=args.rounds,
        users=args.users,
        turns=args.turns,
        talkme_seconds=args.talkme_seconds,
        talkme_rate=args.talkme_rate,
        workdir=args.keep,
        tracing_base=args.tracing_base,
    )
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text)
    print_targets(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
