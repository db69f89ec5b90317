"""``GET /widget.js``: the embeddable chat, one tag on any page (see ``static/widget.js``).

The file is read once and served from memory; the script finds the gateway's address
(prefix included) from its own ``src``, so no configuration is baked into it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from aiohttp import web

from core import endpoint

WIDGET_FILE = Path(__file__).with_name("static") / "widget.js"


class WidgetRoutes:
    def __init__(self, path: Path = WIDGET_FILE) -> None:
        self._body = path.read_bytes()
        self._etag = '"' + hashlib.sha256(self._body).hexdigest()[:20] + '"'

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/widget.js", self.widget)]

    @endpoint(
        "The embeddable chat widget (one script tag; uses a public key)",
        responses={200: None},
        auth="none",
        tags=("widget",),
        content_type="text/javascript",
        description=(
            '`<script src="https://host/widget.js" data-key="PUBLIC_KEY" async></script>`; '
            "optional `data-title`, `data-lang` (ru/en), `data-position` (right/left), "
            "`data-accent`."
        ),
    )
    async def widget(self, request: web.Request) -> web.Response:
        headers = {"ETag": self._etag, "Cache-Control": "public, max-age=300"}
        if request.headers.get("If-None-Match") == self._etag:
            return web.Response(status=304, headers=headers)
        return web.Response(
            body=self._body,
            headers={**headers, "Content-Type": "text/javascript; charset=utf-8"},
        )
