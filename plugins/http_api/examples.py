"""``GET /examples/chat``: the vanilla-JS example page (only with ``SERVE_EXAMPLES=true``).

The page calls the API under the public prefix the gateway is reached under (``ROOT_PATH`` or
a trusted proxy's ``X-Forwarded-Prefix``), written into its ``eneca-base-path`` meta tag.
"""

from __future__ import annotations

import asyncio
import html
from pathlib import Path

from aiohttp import web

import plugins
from core import ApiError, endpoint, public_prefix

#: The tag the served page carries its public prefix in.
BASE_PATH_TAG = '<meta name="eneca-base-path" content="{}">'

#: ``examples/vanilla-js`` of the repository this package is installed from (editable).
DEFAULT_EXAMPLES_DIR = Path(plugins.__file__).resolve().parents[1] / "examples" / "vanilla-js"


class ExampleRoutes:
    def __init__(self, directory: Path) -> None:
        self._page = directory / "index.html"

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/examples/chat", self.chat_page)]

    @endpoint(
        "The vanilla-JS chat example (streams from /api/chat/stream)",
        responses={200: None, 404: None},
        auth="none",
        tags=("examples",),
        content_type="text/html",
    )
    async def chat_page(self, request: web.Request) -> web.StreamResponse:
        if not self._page.is_file():
            raise ApiError(
                404,
                "examples_missing",
                f"the example page is not installed (looked for {self._page.parent.name}/"
                f"{self._page.name} in the repository's examples folder)",
            )
        prefix = public_prefix(request)
        page = await asyncio.to_thread(self._page.read_text, encoding="utf-8")
        if prefix:
            tag = BASE_PATH_TAG.format(html.escape(prefix, quote=True))
            page = page.replace(BASE_PATH_TAG.format(""), tag, 1)
        return web.Response(
            text=page, content_type="text/html", headers={"Cache-Control": "no-cache"}
        )
