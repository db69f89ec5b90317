"""``eneca-bot serve`` as a service runs it: systemd's readiness protocol, the start-up line,
systemd's state and logs folders, console-only JSON logs, and ``dev.py serve`` handing its
PID over to the server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.support.serve_process import ServeProcess, base_env, free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def notify_socket(tmp_path: Path) -> socket.socket:
    """A Unix datagram socket standing in for systemd's ``NOTIFY_SOCKET``."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.setblocking(False)
    yield sock
    sock.close()


async def next_datagram(sock: socket.socket, timeout: float = 30.0) -> str:
    loop = asyncio.get_running_loop()
    return (await asyncio.wait_for(loop.sock_recv(sock, 4096), timeout)).decode()


def service_env(work: Path, **extra: str) -> dict[str, str]:
    """The environment of a service: no DATA_DIR / LOG_DIR, unless given."""
    env = base_env(work, PLUGINS="http_api,memory_sqlite", **extra)
    for key in ("DATA_DIR", "LOG_DIR"):
        if key not in extra:
            env.pop(key)
    return env


async def test_ready_is_sent_once_it_serves_and_stopping_when_it_stops(
    tmp_path: Path, notify_socket: socket.socket
) -> None:
    env = service_env(tmp_path / "work", NOTIFY_SOCKET=notify_socket.getsockname())
    env["DATA_DIR"], env["LOG_DIR"] = str(tmp_path / "data"), str(tmp_path / "logs")
    server = ServeProcess(tmp_path / "work", env)
    await server.spawn()

    assert await next_datagram(notify_socket) == "READY=1"
    # The first request after READY=1, not retried: the gateway serves by then.
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{server.url}/livez") as response:
            assert response.status == 200
        async with session.get(f"{server.url}/readyz") as response:
            assert response.status == 200

    server.terminate()
    assert await next_datagram(notify_socket) == "STOPPING=1"
    assert await server.wait() == 0


async def test_systemd_folders_hold_data_and_logs_and_the_start_up_line_names_them(
    tmp_path: Path,
) -> None:
    state, logs, work = tmp_path / "state", tmp_path / "journal-logs", tmp_path / "work"
    state.mkdir()
    logs.mkdir()
    env = service_env(work, STATE_DIRECTORY=str(state), LOGS_DIRECTORY=str(logs))
    server = ServeProcess(work, env)
    await server.start()
    async with aiohttp.ClientSession() as session:
        body = {"message": "keep me", "thread_id": "t-sys"}
        headers = {"X-API-Key": env["ADMIN_KEYS"]}
        async with session.post(f"{server.url}/api/chat", json=body, headers=headers) as reply:
            assert reply.status == 200
    assert await server.stop() == 0

    assert {"gateway.db", "checkpoints.db"} <= {p.name for p in state.iterdir()}
    assert "POST /api/chat 200" in (logs / "app.log").read_text()
    assert not (work / "data").exists() and not (work / "logs").exists()
    line = next(x for x in server.stderr().splitlines() if "listening on" in x)
    assert (
        f"listening on http://127.0.0.1:{server.port}; config file: none; data dir: {state}; "
        f"log dir: {logs} (file {logs / 'app.log'})"
    ) in line


async def test_an_empty_log_file_logs_json_lines_to_the_console_only(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    env = service_env(
        tmp_path / "work",
        LOG_DIR=str(logs),
        DATA_DIR=str(tmp_path / "data"),
        LOG_FILE="",
        LOG_JSON="true",
    )
    server = ServeProcess(tmp_path / "work", env)
    await server.start()
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{server.url}/livez", headers={"X-Request-ID": "rid-42"}) as live:
            assert live.status == 200
    assert await server.stop() == 0
    assert not logs.exists()
    lines = [json.loads(line) for line in server.stderr().splitlines() if line.startswith("{")]
    assert lines, server.stderr()
    access = [line for line in lines if line["request_id"] == "rid-42"]
    assert access and access[0]["message"].startswith("GET /livez 200")
    assert {"time", "level", "message", "request_id", "conversation_id"} <= set(access[0])
    assert any("console only" in line["message"] for line in lines)


async def test_signalling_the_pid_of_dev_py_serve_stops_the_server(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")},
        "PORT": str(port),
        "PLUGINS": "http_api",
        "DATA_DIR": str(tmp_path / "data"),
        "LOG_DIR": str(tmp_path / "logs"),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "dev.py"), "serve", env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/livez"
        async with aiohttp.ClientSession() as session:
            for _ in range(600):
                try:
                    async with session.get(url) as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
            else:
                pytest.fail("dev.py serve did not start")
        # The PID we started is the server itself, not a parent waiting on it.
        cmdline = await asyncio.to_thread(Path(f"/proc/{process.pid}/cmdline").read_bytes)
        script, command = cmdline.split(b"\0")[1:3]  # python .venv/bin/eneca-bot serve
        assert (script.endswith(b"/bin/eneca-bot"), command) == (True, b"serve"), cmdline
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0
        with pytest.raises(aiohttp.ClientConnectionError):
            async with aiohttp.ClientSession() as session:
                async with session.get(url):
                    pass
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.fixture(autouse=True)
async def no_server_left_running() -> AsyncIterator[None]:
    yield
    while ServeProcess.spawned:
        await ServeProcess.spawned.pop().kill()
