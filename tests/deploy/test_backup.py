"""``eneca-bot db backup PATH`` under a running, busy server: the copy is a working data dir."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import aiohttp

from tests.support.serve_process import ADMIN_KEY, ServeProcess, base_env

SCRIPT = Path(sys.executable).with_name("eneca-bot")
KEY = {"X-API-Key": ADMIN_KEY}


async def backup(path: Path, env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        str(SCRIPT), "db", "backup", str(path), env=env, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def say(session: aiohttp.ClientSession, url: str, thread: str, text: str) -> None:
    body = {"message": text, "thread_id": thread}
    async with session.post(f"{url}/api/chat", json=body, headers=KEY) as response:
        assert response.status == 200, await response.text()


async def test_a_backup_taken_while_serving_restores_to_a_working_gateway(
    tmp_path: Path, gateway
) -> None:
    server: ServeProcess = await gateway()
    copy = tmp_path / "backup"
    async with aiohttp.ClientSession() as session:
        for number in range(5):
            await say(session, server.url, "kept", f"message {number}")
        # More conversations go on while the copy is taken.
        traffic = asyncio.gather(
            *(say(session, server.url, f"busy-{n}", "during the backup") for n in range(20))
        )
        code, out, err = await backup(copy, server.env, server.work_dir)
        await traffic
    assert code == 0, out + err
    assert "backup done: 2 file(s)" in out
    assert {p.name for p in copy.iterdir()} == {"gateway.db", "checkpoints.db"}
    await server.stop()

    # A new gateway whose data dir is the backup has the conversation and is ready.
    restored = ServeProcess(tmp_path / "restored", {**server.env, "DATA_DIR": str(copy)})
    await restored.start()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{restored.url}/readyz") as ready:
                assert ready.status == 200, await ready.text()
            async with session.get(
                f"{restored.url}/api/threads/kept/messages", headers=KEY
            ) as response:
                turns = (await response.json())["messages"]
            assert [t["content"] for t in turns if t["role"] == "user"] == [
                f"message {n}" for n in range(5)
            ]
            await say(session, restored.url, "kept", "after the restore")
    finally:
        await restored.stop()


async def test_a_backup_never_overwrites_an_earlier_one(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    env = {
        **base_env(work, PLUGINS="http_api,memory_sqlite"),
        **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME")},
    }
    server = ServeProcess(work, env)
    await server.start()
    await server.stop()
    first = await backup(tmp_path / "b", env, work)
    assert first[0] == 0, first
    again = await backup(tmp_path / "b", env, work)
    assert again[0] == 1
    assert again[2].strip() == (
        f"eneca-bot: error: {tmp_path / 'b'} already holds gateway.db, checkpoints.db: "
        "choose a new folder"
    )
