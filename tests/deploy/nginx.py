"""A real nginx (Debian's package) in the foreground, serving ``deploy/nginx/eneca-bot.conf``.

Only two things of the shipped file are changed: ``127.0.0.1:8000`` becomes the test
gateway's address and ``listen 80`` a free loopback port. Everything nginx writes (pid, logs,
temporary files) stays in a prefix folder, so no root paths are touched.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import aiohttp

from tests.deploy.tools import NGINX, require
from tests.support.serve_process import free_port

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "deploy" / "nginx" / "eneca-bot.conf"


def adapted(upstream: str, port: int) -> str:
    """The shipped file with only the upstream address and the listen port replaced."""
    text = SHIPPED.read_text()
    assert text.count("127.0.0.1:8000") == 1, "the upstream address must appear once"
    assert text.count("listen 80;") == 1, "exactly one `listen 80;`"
    assert text.count("listen ") == 1, "no other listen line"
    return text.replace("127.0.0.1:8000", upstream).replace("listen 80;", f"listen {port};")


class Nginx:
    """``await Nginx(prefix, "127.0.0.1:PORT").start()``; ``url`` is its address."""

    def __init__(self, prefix: Path, upstream: str) -> None:
        self.binary = require(NGINX, "Debian's nginx (apt-get install nginx)")
        self.prefix = prefix
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: asyncio.subprocess.Process | None = None
        prefix.mkdir(parents=True, exist_ok=True)
        for folder in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (prefix / folder).mkdir(exist_ok=True)
        (prefix / "eneca-bot.conf").write_text(adapted(upstream, self.port))
        user = "user root;\n" if os.geteuid() == 0 else ""  # workers may write in prefix
        (prefix / "nginx.conf").write_text(
            f"{user}worker_processes 1;\n"
            f"error_log {prefix}/error.log info;\n"
            "events { worker_connections 256; }\n"
            "http {\n"
            f"    access_log {prefix}/access.log;\n"
            f"    client_body_temp_path {prefix}/client_body;\n"
            f"    proxy_temp_path {prefix}/proxy;\n"
            f"    fastcgi_temp_path {prefix}/fastcgi;\n"
            f"    uwsgi_temp_path {prefix}/uwsgi;\n"
            f"    scgi_temp_path {prefix}/scgi;\n"
            # As an nginx.conf that compresses everything it can would: the shipped
            # location must still never gzip a stream.
            "    gzip on; gzip_proxied any; gzip_min_length 1;\n"
            "    gzip_types text/event-stream application/json;\n"
            f"    include {prefix}/eneca-bot.conf;\n"
            "}\n"
        )

    def command(self) -> list[str]:
        p = self.prefix
        return [
            str(self.binary),
            "-e", f"{p}/error.log",
            "-p", f"{p}/",
            "-c", f"{p}/nginx.conf",
            "-g", f"daemon off; pid {p}/nginx.pid;",
        ]  # fmt: skip

    def error_log(self) -> str:
        path = self.prefix / "error.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    async def start(self, timeout: float = 10.0) -> Nginx:
        test = await asyncio.create_subprocess_exec(
            *self.command(), "-t", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        output, _ = await test.communicate()
        assert test.returncode == 0, f"nginx -t rejected the file:\n{output.decode()}"
        self.process = await asyncio.create_subprocess_exec(
            *self.command(), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with aiohttp.ClientSession() as session:
            while True:
                if self.process.returncode is not None:
                    raise RuntimeError(f"nginx exited: {self.error_log()}")
                try:
                    async with session.get(f"{self.url}/nowhere") as response:
                        await response.read()
                        return self
                except aiohttp.ClientConnectionError:
                    pass
                if loop.time() > deadline:
                    raise TimeoutError(f"nginx did not start: {self.error_log()}")
                await asyncio.sleep(0.05)

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
