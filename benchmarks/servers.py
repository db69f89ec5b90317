"""Starting and stopping the processes of a benchmark run: the fake upstream, the two
floors and the gateway itself, each on a free port of 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
#: Environment variables passed through to every child; nothing else leaks in (no
#: ``PLUGINS`` or ``API_KEYS`` from the caller's shell).
_PASSED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ", "PYTHONPATH")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def base_env(**extra: str) -> dict[str, str]:
    env = {key: os.environ[key] for key in _PASSED if key in os.environ}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def gateway_command() -> list[str]:
    """``eneca-bot serve`` from the same environment as this interpreter."""
    script = Path(sys.executable).parent / "eneca-bot"
    if script.exists():
        return [str(script), "serve"]
    return [sys.executable, "-m", "core.cli", "serve"]


@dataclass
class Process:
    """A child process listening on ``port``; its output goes to ``log``."""

    name: str
    command: list[str]
    env: dict[str, str]
    cwd: Path
    port: int
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None
    startup_s: float = 0.0
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def start(self, health_path: str = "/health", timeout_s: float = 30.0) -> Process:
        """Start and wait for ``health_path`` to answer 200; ``startup_s`` is that wait."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        started = time.perf_counter()
        self.popen = subprocess.Popen(
            self.command, env=self.env, cwd=self.cwd, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = started + timeout_s
        while True:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start-up:\n{self.tail()}")
            try:
                with urllib.request.urlopen(self.url + health_path, timeout=1.0) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.perf_counter() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} not healthy after {timeout_s}s:\n{self.tail()}")
            time.sleep(0.005)
        self.startup_s = time.perf_counter() - started
        return self

    def stop(self, timeout_s: float = 15.0) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> Process:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def upstream(workdir: Path, ttft_ms: float, token_ms: float, tokens: int) -> Process:
    port = free_port()
    command = [
        sys.executable,
        str(BENCH_DIR / "upstream.py"),
        f"--port={port}",
        f"--ttft-ms={ttft_ms}",
        f"--token-ms={token_ms}",
        f"--tokens={tokens}",
    ]
    return Process("upstream", command, base_env(), workdir, port, workdir / "upstream.log")


def floor(workdir: Path, client: str, upstream_url: str) -> Process:
    port = free_port()
    command = [
        sys.executable,
        str(BENCH_DIR / "floors" / "passthrough.py"),
        f"--client={client}",
        f"--port={port}",
        f"--upstream={upstream_url}/v1",
    ]
    name = f"floor-{client}"
    return Process(name, command, base_env(), workdir, port, workdir / f"{name}.log")


def otlp_sink(workdir: Path) -> Process:
    """The OTLP/HTTP receiver of the tracing scenario (``benchmarks/otlp_sink.py``)."""
    port = free_port()
    command = [sys.executable, str(BENCH_DIR / "otlp_sink.py"), f"--port={port}"]
    return Process("otlp-sink", command, base_env(), workdir, port, workdir / "otlp-sink.log")


def gateway(
    workdir: Path,
    plugins: str,
    upstream_url: str,
    *,
    args: Sequence[str] = (),
    **settings: str,
) -> Process:
    """``eneca-bot serve`` (with ``args``, e.g. ``--workers 2``) on a fresh data dir under
    ``workdir`` (also its cwd, so no ``config/settings.toml`` or ``.env`` of the checkout
    is read)."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    env = base_env(
        **{
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "PLUGINS": plugins,
            "DATA_DIR": str(workdir / "data"),
            "LOG_DIR": str(workdir / "logs"),
            "LOG_LEVEL": "WARNING",
            "OPENAI_BASE_URL": f"{upstream_url}/v1",
            "OPENAI_API_KEY": "bench",
            "KNOWLEDGE_MODE": "off",
            **settings,
        }
    )
    command = [*gateway_command(), *args]
    return Process("gateway", command, env, workdir, port, workdir / "gateway.log")
