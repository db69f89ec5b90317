"""A turn acknowledged as stored survives kill -9 of the process that stored it."""

import asyncio
import os
import signal
import sqlite3
import sys
from pathlib import Path

from plugins.memory_sqlite.store import SqliteConversationStore

SCRIPT = Path(__file__).with_name("append_until_killed.py")
ACKS_BEFORE_KILL = 60
CONVERSATIONS = 3


async def test_acknowledged_turns_survive_kill_9(tmp_path):
    data_dir = tmp_path / "data"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SCRIPT),
        str(data_dir),
        str(CONVERSATIONS),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        cwd=Path(__file__).parents[2],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    acked: dict[str, list[int]] = {}
    try:
        assert process.stdout is not None
        count = 0
        while count < ACKS_BEFORE_KILL:
            line = await asyncio.wait_for(process.stdout.readline(), timeout=30)
            assert line, "the helper exited before acknowledging enough turns"
            _, cid, n = line.decode().split()
            acked.setdefault(cid, []).append(int(n))
            count += 1
        process.send_signal(signal.SIGKILL)  # mid-stream: it keeps writing until killed
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
    assert process.returncode == -signal.SIGKILL

    path = data_dir / "checkpoints.db"
    async with SqliteConversationStore(path, max_messages=None) as store:
        for cid, numbers in acked.items():
            stored = [t.text for t in await store.history(cid)]
            expected = []
            for n in numbers:
                expected += [f"turn {n} ✓", f"echo: turn {n} ✓"]
            # Every acknowledged turn, in order; a turn stored but not yet acknowledged
            # when the kill landed may follow.
            assert stored[: len(expected)] == expected
            assert len(stored) <= len(expected) + 2
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
