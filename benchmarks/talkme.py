"""The TalkMe scenario: webhooks at a steady rate, an agent that takes seconds, replies
delivered through a fake TalkMe API. Measures the webhook ack latency (the message is
durable when acked) and the end-to-end time until ``customBot/send`` reaches TalkMe."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks import servers
from benchmarks.backends import Backend
from benchmarks.figures import check_history, ms, percentile, target
from benchmarks.procstats import cpu_seconds, memory_mb

WEBHOOKS = servers.BENCH_DIR / "webhooks.py"
PLUGINS = "http_api,talkme,memory_sqlite,agent_openai"


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def fake_talkme(workdir: Path) -> servers.Process:
    port = servers.free_port()
    command = [sys.executable, str(servers.BENCH_DIR / "talkme_api.py"), f"--port={port}"]
    return servers.Process(
        "talkme-api", command, servers.base_env(), workdir, port, workdir / "talkme-api.log"
    )


#: Webhooks (from their own visitors) sent and delivered before the measured load.
WARMUP_RATE = 20


def _send(
    url: str, rate: float, seconds: float, visitors: int, run: str, timeout: float
) -> dict[str, Any]:
    """Run the open-loop webhook sender; its JSON report."""
    with tempfile.TemporaryDirectory(prefix="eneca-webhooks-") as folder:
        # The report goes to a file: once, the sender's stdout held a report cut at
        # 128 KiB and then another line (a JSONDecodeError; its cause was not found).
        out = Path(folder) / "report.json"
        spec = {
            "url": url, "rate": rate, "seconds": seconds, "visitors": visitors, "run": run,
            "out": str(out),
        }  # fmt: skip
        done = servers.subprocess.run(
            [sys.executable, str(WEBHOOKS), json.dumps(spec)],
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0 or not out.exists():
            raise RuntimeError(f"webhook load failed:\n{done.stderr.decode()[-3000:]}")
        return json.loads(out.read_text())  # type: ignore[no-any-return]


def _wait_delivered(api_url: str, count: int, timeout: float) -> int:
    """Until the fake TalkMe API received ``count`` sends (or ``timeout``); how many it has."""
    deadline = time.monotonic() + timeout
    while True:
        stats = _get(f"{api_url}/stats")
        delivered = sum(len(times) for times in stats["sends"].values())
        if delivered >= count or time.monotonic() > deadline:
            return delivered
        time.sleep(0.25)


def run_talkme(
    seconds: float,
    workdir: Path,
    *,
    rate: float,
    agent_s: float,
    backend: Backend | None = None,
) -> dict[str, Any]:
    """The load against a gateway on ``backend`` (default SQLite; PostgreSQL on a schema
    of its own, dropped after)."""
    backend = backend or Backend("sqlite")
    plugins = backend.plugins(PLUGINS)
    label = "" if backend.name == "sqlite" else f" ({backend.name})"
    visitors = max(1, int(rate * max(agent_s * 2.5, 1.0)))  # each visitor every ~2.5 agent times
    total = int(rate * seconds)
    _log(
        f"== talkme{label}: {rate:g} webhooks/s for {seconds:g} s ({total} messages, "
        f"{visitors} visitors), agent {agent_s:g} s"
    )
    run = "tm"
    with (
        backend.settings() as database,
        servers.upstream(workdir, agent_s * 1000, 0, 30).start() as upstream,
        fake_talkme(workdir).start() as api,
        servers.gateway(
            workdir / "ours",
            plugins,
            upstream.url,
            TALKME_API_URL=f"{api.url}/json/v1.0",
            TALKME_WEBHOOK_SECRET="bench-secret",
            **database,
        ).start() as gateway,
    ):
        idle = memory_mb(gateway.pid)["rss"]
        url = f"{gateway.url}/webhook/talkme/bench-secret"
        # Warm-up, as in the other scenarios: the first model request imports the openai
        # SDK (about 0.3 s, once per process), which is not the steady state measured here.
        _send(url, WARMUP_RATE, 1.0, WARMUP_RATE, "warm", 60)
        warm = _wait_delivered(api.url, WARMUP_RATE, agent_s + 30)
        cpu_before = cpu_seconds(gateway.pid)
        load = _send(url, rate, seconds, visitors, run, seconds + 300)
        delivered = _wait_delivered(api.url, warm + total, agent_s + 60) - warm
        stats = _get(f"{api.url}/stats")
        cpu = cpu_seconds(gateway.pid) - cpu_before
        peak = memory_mb(gateway.pid)["peak"]
        records = _get(f"{upstream.url}/stats?run={run}")["records"]
    acks = [row[2] for row in load["sent"]]
    if os.environ.get("BENCH_DUMP_ACKS"):  # [visitor, sent at, ack seconds, status] each
        Path(os.environ["BENCH_DUMP_ACKS"]).write_text(json.dumps(load["sent"]))
    failed = [row for row in load["sent"] if row[3] != 200]
    sent_at: dict[int, list[float]] = defaultdict(list)
    for visitor, started, _, status in load["sent"]:
        if status == 200:
            sent_at[visitor].append(started)
    end_to_end = []
    for visitor, times in sent_at.items():
        arrived = sorted(stats["sends"].get(f"tok-{run}-{visitor}", []))
        end_to_end += [a - s for s, a in zip(sorted(times), arrived, strict=False)]
    turns = total // visitors if visitors else 0
    history_ok, problems = check_history(
        [r for r in records if r[1] <= turns], min(visitors, total), turns
    )
    summary = {
        "webhooks": total,
        "send_lag_s": round(load["send_lag_s"], 3),
        "acked_200": total - len(failed),
        "ack_p50_ms": ms(percentile(acks, 50)),
        "ack_p90_ms": ms(percentile(acks, 90)),
        "ack_p99_ms": ms(percentile(acks, 99)),
        "ack_max_ms": ms(max(acks) if acks else None),
        "delivered": delivered,
        "end_to_end_p50_ms": ms(percentile(end_to_end, 50)),
        "end_to_end_p99_ms": ms(percentile(end_to_end, 99)),
        "agent_ms": agent_s * 1000,
        "cpu_ms_per_message": round(cpu * 1000 / total, 3) if total else None,
        "typing_calls": stats["calls"].get("simulateTyping", 0) - warm,
        "history_ok": history_ok,
        "idle_rss_mb": round(idle, 1),
        "peak_rss_mb": round(peak, 1),
    }
    if problems:
        summary["history_problems"] = problems
    if failed:
        summary["failed_samples"] = failed[:5]
    _log(
        f"   ack p50 {summary['ack_p50_ms']} p99 {summary['ack_p99_ms']} ms; delivered "
        f"{delivered}/{total}; end-to-end p50 {summary['end_to_end_p50_ms']} p99 "
        f"{summary['end_to_end_p99_ms']} ms; cpu {summary['cpu_ms_per_message']} ms/message; "
        f"rss {summary['idle_rss_mb']}/{summary['peak_rss_mb']} MB"
    )
    return {
        "config": {
            "rate": rate,
            "seconds": seconds,
            "visitors": visitors,
            "agent_s": agent_s,
            "plugins": plugins,
            "backend": backend.name,
            "postgres_schema": database.get("POSTGRES_SCHEMA"),
        },
        "summary": summary,
        "targets": [
            target(f"TalkMe webhook ack p99{label}", summary["ack_p99_ms"], 20, "ms"),
            target(f"TalkMe webhooks refused (not acked 200){label}", float(len(failed)), 0, ""),
            target(
                f"TalkMe acked messages not delivered{label}",
                float(total - len(failed) - delivered),
                0,
                "",
            ),
        ],
    }
