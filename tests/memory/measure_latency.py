"""Measure append + history latency early and late in a conversation (not a test).

    .venv/bin/python tests/memory/measure_latency.py [--preload 100000]

Fills conversations to 500 turns each through SqliteConversationStore and prints the
median / p95 time of ``append`` and of ``history`` (the default 40-turn window) around
turn 5, turn 50 (the window is full from turn 40 on) and turn 500. ``--preload`` first
writes that many unrelated turns, so the figures are for a file that is not tiny.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from core.contract.store import Turn
from plugins.memory_sqlite.store import SqliteConversationStore

TURNS = 500
CONVERSATIONS = 20
#: Turn numbers sampled, by the label printed: history holds n turns up to 40, then 40.
BANDS = {
    **{n: "turn 5" for n in range(1, 11)},
    **{n: "turn 50" for n in range(46, 56)},
    **{n: "turn 500" for n in range(TURNS - 9, TURNS + 1)},
}
TEXT = "A typical message of about a hundred characters, with Unicode: привет 👋, to be stored."


def preload(path: Path, turns: int) -> None:
    """Unrelated history written straight through sqlite3 (fast)."""
    now = time.time()
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO turns(conversation_id, role, text, channel, created_at, stored_at)"
            " VALUES (?, ?, ?, 'bulk', ?, ?)",
            ((f"bulk{i // 50}", "user", TEXT, now, now) for i in range(turns)),
        )


def summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    return f"median {statistics.median(ordered) * 1e6:7.0f} us   p95 {p95 * 1e6:7.0f} us"


async def main(preloaded: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "checkpoints.db"
        async with SqliteConversationStore(path):
            pass  # create the schema
        if preloaded:
            preload(path, preloaded)
        timings: dict[tuple[str, str], list[float]] = {}
        async with SqliteConversationStore(path, max_messages=40) as store:
            for c in range(CONVERSATIONS):
                cid = f"conv{c}"
                for n in range(1, TURNS + 1):
                    band = BANDS.get(n, "")
                    started = time.perf_counter()
                    await store.append(cid, Turn("user", f"{n}: {TEXT}", channel="bench"))
                    appended = time.perf_counter()
                    window = await store.history(cid)
                    done = time.perf_counter()
                    assert len(window) == min(n, 40)
                    if band:
                        timings.setdefault(("append", band), []).append(appended - started)
                        timings.setdefault(("history", band), []).append(done - appended)
            stats = await store.stats()
        print(
            f"sqlite {sqlite3.sqlite_version}; file {stats['size_bytes'] / 1e6:.1f} MB, "
            f"{stats['turns']} turns in {stats['conversations']} conversations "
            f"({preloaded} preloaded); {CONVERSATIONS} conversations x {TURNS} turns, "
            "samples from turns 1-10, 46-55 and 491-500"
        )
        for (operation, band), samples in sorted(timings.items()):
            print(f"{operation:8} at {band:9} {summary(samples)}   (n={len(samples)})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preload", type=int, default=0, help="unrelated turns to write first")
    asyncio.run(main(parser.parse_args().preload))
