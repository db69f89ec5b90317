"""``widget.js`` behind Debian's nginx under a path prefix (``/ai-webhook/``), as deployed:
the script finds the gateway from its own address, so chat, streaming and the reload's
history all go through the prefix."""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, expect

from core.testing import ScriptedAgent
from tests.examples.browser import PageServer, missing, page_server

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
KEY = "pk-prefix-1"
REPLY = "Through nginx, under /ai-webhook/, streamed."

CONFIG = """
worker_processes 1;
error_log {prefix}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location /ai-webhook/ {{
            proxy_pass http://127.0.0.1:{upstream}/;
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_buffering off;
        }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def run_nginx(prefix: Path, upstream: int) -> tuple[asyncio.subprocess.Process, int]:
    if shutil.which(NGINX) is None:
        missing("needs Debian's nginx (apt-get install -y nginx)")
    port = free_port()
    (prefix / "nginx.conf").write_text(CONFIG.format(prefix=prefix, port=port, upstream=upstream))
    process = await asyncio.create_subprocess_exec(
        NGINX,
        "-c",
        str(prefix / "nginx.conf"),
        "-p",
        str(prefix),
        "-g",
        f"daemon off; pid {prefix}/nginx.pid;",
    )
    for _ in range(100):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return process, port
    process.kill()
    raise RuntimeError((prefix / "error.log").read_text())


@pytest.fixture
async def site() -> AsyncIterator[PageServer]:
    async for server in page_server({"/": ""}):
        yield server


async def test_the_widget_works_under_a_path_prefix(
    eneca_app: Any, chromium: Browser, site: PageServer, tmp_path: Path
) -> None:
    agent = ScriptedAgent([REPLY], chunk_size=5, chunk_delay=0.03)
    client = await eneca_app(
        ["http_api"],
        agent=agent,
        settings={"core": {"public_keys": KEY, "public_origins": site.origin}},
    )
    process, port = await run_nginx(tmp_path, client.port)
    try:
        base = f"http://127.0.0.1:{port}/ai-webhook"
        site.pages["/"] = (
            f'<!doctype html><body><script src="{base}/widget.js" data-key="{KEY}" async>'
            "</script></body>"
        )
        page = await chromium.new_page()
        for attempt in range(2):  # the second time after a reload: history via the prefix
            await page.goto(site.url("/"))
            await page.get_by_test_id("launcher").click()
            await expect(page.get_by_test_id("panel")).to_have_attribute("data-ready", "true")
            if attempt == 0:
                await page.get_by_test_id("input").fill("via the prefix")
                await page.get_by_test_id("send").click()
            reply = page.locator('[data-testid="message"][data-role="assistant"]').last
            await expect(reply).to_have_text(REPLY)
        log = (tmp_path / "access.log").read_text()
        for path in (
            "/ai-webhook/widget.js",
            "/ai-webhook/api/chat/stream",
            "/ai-webhook/api/threads/",
        ):
            assert path in log, path
    finally:
        process.terminate()
        await process.wait()
