"""Start and kill the gateway of ``talkme_server.py`` as a real OS process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

SERVER_SCRIPT = Path(__file__).with_name("talkme_server.py")
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class GatewayProcess:
    """One run of the server on ``work_dir`` (data and logs survive restarts)."""

    def __init__(self, work_dir: Path, api_url: str, **config: Any) -> None:
        work_dir.mkdir(parents=True, exist_ok=True)
        (work_dir / "settings.toml").touch()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = {
            "port": self.port,
            "data_dir": str(work_dir / "data"),
            "log_dir": str(work_dir / "logs"),
            "config_file": str(work_dir / "settings.toml"),
            **config,
            "talkme": {"api_url": api_url, **config.get("talkme", {})},
        }
        self._stderr = (work_dir / f"stderr-{self.port}.log").open("wb")
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, timeout: float = 20.0) -> None:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("TALKME_", "API_KEYS", "ADMIN_KEYS", "PUBLIC_"))
        }
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(SERVER_SCRIPT),
            json.dumps(self.config),
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=self._stderr,
        )
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while True:
                if self.process.returncode is not None:
                    raise RuntimeError(f"the gateway exited with {self.process.returncode}")
                try:
                    async with session.get(f"{self.url}/health") as response:
                        if response.status in (200, 503):
                            return
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError("the gateway did not start")
                await asyncio.sleep(0.05)

    async def kill(self) -> None:
        """SIGKILL: no shut-down code runs."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> None:
        """SIGTERM and wait (SIGKILL if it hangs)."""
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 15)
            except TimeoutError:
                await self.kill()
        self._stderr.close()
