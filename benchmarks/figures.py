"""Turning raw measurements into figures: percentiles, medians of ratios, history checks."""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Iterable, Sequence
from typing import Any


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) by nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


def server_cpu_s(raw: dict[str, Any]) -> float | None:
    """The server's CPU seconds during the load: the live threads' nanosecond counters
    when the kernel keeps them (precise for short runs), else clock ticks (10 ms)."""
    precise = raw.get("server_threads_cpu_s")
    return precise if precise else raw.get("server_cpu_s")


def _per_request(seconds: float | None, requests: int) -> float | None:
    return round(seconds * 1000 / requests, 3) if seconds is not None and requests else None


def summarize_load(raw: dict[str, Any]) -> dict[str, Any]:
    """req/s, latency and first-chunk percentiles (ms), server CPU per request (ms)."""
    latencies = raw["latencies"]
    firsts = raw["first_chunks"]
    requests = raw["requests"]
    figures: dict[str, Any] = {
        "requests": requests,
        "errors": raw["errors"],
        "req_s": round(requests / raw["wall_s"], 1) if raw["wall_s"] else None,
        "p50_ms": ms(percentile(latencies, 50)),
        "p90_ms": ms(percentile(latencies, 90)),
        "p99_ms": ms(percentile(latencies, 99)),
        "cpu_ms_per_req": _per_request(server_cpu_s(raw), requests),
        "cpu_ticks_ms_per_req": _per_request(raw.get("server_cpu_s"), requests),
    }
    # With PostgreSQL, the database's processes serving the server's connections do work
    # that SQLite does inside the server: the total is the comparable figure.
    database = raw.get("database_cpu_s")
    server = server_cpu_s(raw)
    if database is not None:
        figures["db_cpu_ms_per_req"] = _per_request(database, requests)
    total = None if server is None else server + (database or 0.0)
    figures["total_cpu_ms_per_req"] = _per_request(total, requests)
    if raw.get("machine_busy_s") is not None and raw["wall_s"]:
        # How many of the machine's cores were busy (every process), and the load
        # generator's own share: what a second worker could still use.
        figures["machine_busy_cores"] = round(raw["machine_busy_s"] / raw["wall_s"], 2)
        figures["loadgen_cpu_ms_per_req"] = _per_request(raw["loadgen_cpu_s"], requests)
    if firsts:
        figures.update(
            first_chunk_p50_ms=ms(percentile(firsts, 50)),
            first_chunk_p90_ms=ms(percentile(firsts, 90)),
            first_chunk_p99_ms=ms(percentile(firsts, 99)),
        )
    if raw["error_samples"]:
        figures["error_samples"] = raw["error_samples"]
    return figures


def check_history(
    records: Iterable[Sequence[Any]], users: int, turns: int
) -> tuple[bool, list[str]]:
    """Did the upstream see each conversation's history? Every turn arrived, each one
    with the user's previous turn in it, and the message count never shrank and grew
    from turn 1 to turn 2."""
    seen: dict[int, dict[int, tuple[int, bool]]] = {}
    for user, turn, count, has_previous in records:
        seen.setdefault(int(user), {})[int(turn)] = (int(count), bool(has_previous))
    problems: list[str] = []
    for user in range(users):
        got = seen.get(user, {})
        missing = [turn for turn in range(1, turns + 1) if turn not in got]
        if missing:
            problems.append(f"user {user}: turns {missing[:5]} never reached the upstream")
            continue
        counts = [got[turn][0] for turn in range(1, turns + 1)]
        without = [turn for turn in range(1, turns + 1) if not got[turn][1]]
        if without:
            problems.append(f"user {user}: turns {without[:5]} lacked the previous turn")
        if any(later < earlier for earlier, later in itertools.pairwise(counts)):
            problems.append(f"user {user}: the message count shrank: {counts[:12]}")
        if turns >= 2 and counts[1] <= counts[0]:
            problems.append(f"user {user}: no history on turn 2 ({counts[:2]} messages)")
    return not problems, problems[:10]


def median(values: Iterable[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return round(statistics.median(present), 3) if present else None


def ratios(ours: Sequence[float | None], floor: Sequence[float | None]) -> float | None:
    """Median over rounds of ours / floor (rounds paired by index)."""
    return median(
        a / b for a, b in zip(ours, floor, strict=False) if a is not None and b not in (None, 0)
    )


def target(
    name: str, value: float | None, limit: float, unit: str = "", *, at_least: bool = False
) -> dict[str, Any]:
    """A target: ``value`` at most ``limit`` (``at_least``: at least); ``met`` is None
    when there is no value."""
    met = None if value is None else (value >= limit if at_least else value <= limit)
    return {
        "target": name,
        "value": value,
        "limit": limit,
        "unit": unit,
        "compare": ">=" if at_least else "<=",
        "met": met,
    }
