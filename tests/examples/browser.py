"""Shared by the browser tests: Debian's Chromium through Playwright (never a browser
download), the ``@n8n/chat`` tarball from ``npm pack``, and a page server on another
origin. A missing Chromium or tarball skips locally and fails in CI (``CI=true``)."""

from __future__ import annotations

import os
import tarfile
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestServer

from core.testing import service_missing

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
#: Where ``.ci/run`` leaves ``npm pack @n8n/chat`` (never committed, never a CDN).
N8N_CHAT_DIR = Path(os.environ.get("N8N_CHAT_TARBALL_DIR", ROOT / ".cache" / "n8n-chat"))


def missing(reason: str) -> None:
    """Skip, or fail when CI promised the dependency."""
    service_missing(reason, "CI must provide it")


def require_chromium() -> None:
    if not CHROMIUM.exists():
        missing("needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)")


def n8n_chat_dist(into: Path) -> Path:
    """The widget's ``dist/`` unpacked from the newest ``n8n-chat-*.tgz`` in the cache."""
    tarballs = sorted(N8N_CHAT_DIR.glob("n8n-chat-*.tgz"))
    if not tarballs:
        missing(f"needs `npm pack @n8n/chat` in {N8N_CHAT_DIR} (.ci/run fetches it)")
    with tarfile.open(tarballs[-1]) as archive:
        members = [m for m in archive.getmembers() if m.name.startswith("package/dist/")]
        archive.extractall(into, members=members, filter="data")
    return into / "package" / "dist"


class PageServer:
    """Static pages on their own loopback port: another origin than the gateway's."""

    def __init__(self, pages: Mapping[str, str], static: Mapping[str, Path] | None = None):
        self.pages = dict(pages)
        app = web.Application()
        for path in self.pages:
            app.router.add_get(path, self._page)
        for prefix, directory in (static or {}).items():
            app.router.add_static(prefix, directory)
        self._server = TestServer(app, host="127.0.0.1")

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(text=self.pages[request.path], content_type="text/html")

    async def start(self) -> None:
        await self._server.start_server()

    async def close(self) -> None:
        await self._server.close()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._server.port}"

    def url(self, path: str) -> str:
        return self.origin + path


async def page_server(
    pages: Mapping[str, str], static: Mapping[str, Path] | None = None
) -> AsyncIterator[PageServer]:
    server = PageServer(pages, static)
    await server.start()
    try:
        yield server
    finally:
        await server.close()
