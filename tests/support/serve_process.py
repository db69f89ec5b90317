"""Run the real ``eneca-bot serve`` as an OS process, configured only through the environment.

The fault tests start, kill, stop and restart it on one work folder (data and logs survive
restarts); the fake OpenAI and fake TalkMe servers run in the test's own event loop.
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import aiohttp

ROOT = Path(__file__).resolve().parents[2]
#: The console script pip installed; ``python -m core.cli`` where there is none.
SCRIPT = Path(sys.executable).with_name("eneca-bot")
#: Environment variables of the machine the server keeps (everything else is the test's).
KEPT_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV", "SYSTEMROOT")
ADMIN_KEY = "faults-admin-key-0001"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def base_env(work_dir: Path, **extra: Any) -> dict[str, str]:
    """The settings every fault test starts from: all four plugins, data and logs in
    ``work_dir``, an admin key, fast delivery retries, no knowledge base."""
    env = {
        "PLUGINS": "http_api,talkme,memory_sqlite,agent_openai",
        "DATA_DIR": str(work_dir / "data"),
        "LOG_DIR": str(work_dir / "logs"),
        "ADMIN_KEYS": ADMIN_KEY,
        "LOG_LEVEL": "INFO",
        "DELIVERY_BASE_DELAY_S": "0.05",
        "DELIVERY_MAX_DELAY_S": "0.3",
        "DELIVERY_MAX_ATTEMPTS": "100",
        "SHUTDOWN_GRACE_S": "3",
        "REPLY_TIMEOUT_S": "10",
        "OPENAI_API_KEY": "sk-faults-test",
        "OPENAI_MODEL": "fake",
        "OPENAI_TIMEOUT_S": "5",
        "OPENAI_MAX_RETRIES": "0",
        "KNOWLEDGE_MODE": "off",
        "SYSTEM_PROMPT": "You are a test bot.",
        "TALKME_TYPING_TTL_S": "0",
        "TALKME_REQUEST_TIMEOUT_S": "2",
    }
    env.update({key: str(value) for key, value in extra.items()})
    return env


def _no_file_size_signal(limit: int | None) -> Callable[[], None] | None:
    """For a child whose files may not grow past ``limit`` bytes (a "nearly full disk"):
    writes past it fail with EFBIG instead of the process being killed by SIGXFSZ."""
    if limit is None:
        return None

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    return apply


class ServeProcess:
    """One ``eneca-bot serve`` process on ``work_dir`` (its cwd, so no repository config
    file or ``.env`` is read)."""

    def __init__(self, work_dir: Path, env: Mapping[str, str]) -> None:
        work_dir.mkdir(parents=True, exist_ok=True)
        self.work_dir = work_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        kept = {k: v for k, v in os.environ.items() if k in KEPT_ENV}
        self.env = {**kept, **env, "PORT": str(self.port), "HOST": "127.0.0.1"}
        self.stderr_path = work_dir / f"stderr-{self.port}.log"
        self.process: asyncio.subprocess.Process | None = None
        self.file_size_limit: int | None = None

    #: Every process spawned, so a failed test's fixture can kill what it left running.
    spawned: ClassVar[list[ServeProcess]] = []

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.returncode

    def command(self) -> list[str]:
        if SCRIPT.exists():
            return [str(SCRIPT), "serve"]
        return [sys.executable, "-m", "core.cli", "serve"]

    async def spawn(self) -> None:
        with self.stderr_path.open("ab") as stderr:
            self.process = await asyncio.create_subprocess_exec(
                *self.command(),
                cwd=self.work_dir,
                env=self.env,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=stderr,
                preexec_fn=_no_file_size_signal(self.file_size_limit),
            )
        ServeProcess.spawned.append(self)

    async def start(self, timeout: float = 20.0) -> None:
        """Spawn and wait until ``/health`` answers (200 or 503)."""
        await self.spawn()
        assert self.process is not None
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while True:
                if self.process.returncode is not None:
                    raise RuntimeError(
                        f"the gateway exited with {self.process.returncode}: {self.stderr()}"
                    )
                try:
                    async with session.get(f"{self.url}/health") as response:
                        if response.status in (200, 503):
                            return
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the gateway did not start: {self.stderr()}")
                await asyncio.sleep(0.05)

    async def wait(self, timeout: float = 20.0) -> int:
        assert self.process is not None
        return await asyncio.wait_for(self.process.wait(), timeout)

    async def kill(self) -> None:
        """SIGKILL: no shut-down code runs."""
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
            await self.process.wait()

    def terminate(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    async def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM and wait; SIGKILL if it hangs. The exit code (None when killed)."""
        if self.process is None:
            return None
        if self.process.returncode is None:
            self.terminate()
            try:
                return await self.wait(timeout)
            except TimeoutError:
                await self.kill()
                return None
        return self.process.returncode

    def rss_kb(self) -> int:
        """Resident memory of the server process (``VmRSS`` in ``/proc/<pid>/status``)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS line")

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def app_log(self) -> str:
        path = Path(self.env["LOG_DIR"]) / "app.log"
        return path.read_text(errors="replace") if path.exists() else ""
