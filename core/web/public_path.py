"""The public path prefix the gateway is reached under behind a reverse proxy.

nginx serving the gateway under ``/ai-webhook/`` strips the prefix, so ``/api/chat`` here is
``/ai-webhook/api/chat`` to a client. Links the gateway hands out (``GET /``, the
``servers`` of ``/openapi.json``, the example page) must carry the prefix: it comes from
``X-Forwarded-Prefix`` when a trusted proxy sends it, else from the ``ROOT_PATH`` setting.
"""

from __future__ import annotations

import re

from aiohttp import web

from core.web.client import peer_is_trusted
from core.web.http import GATEWAY

#: Path segments of letters, digits and ``-._~``: nothing that could break out of an
#: HTML attribute, a JSON string or a URL.
_PREFIX = re.compile(r"^(/[A-Za-z0-9._~-]+)*$")


def normalise_prefix(value: str) -> str | None:
    """``"ai-webhook/"`` -> ``"/ai-webhook"``; ``""`` or ``"/"`` -> ``""``; None when it is
    not a plain path."""
    text = value.strip()
    if not text or text == "/":
        return ""
    text = "/" + text.strip("/")
    return text if _PREFIX.match(text) else None


def public_prefix(request: web.Request) -> str:
    """The path prefix clients reach the gateway under, for links in answers to
    ``request`` (``/ai-webhook`` behind nginx, ``""`` at the root): ``X-Forwarded-Prefix``
    from a trusted proxy, else the gateway's ``ROOT_PATH``."""
    forwarded = request.headers.get("X-Forwarded-Prefix")
    if forwarded is not None and peer_is_trusted(request):
        prefix = normalise_prefix(forwarded.split(",")[0])
        if prefix is not None:
            return prefix
    gateway = request.app.get(GATEWAY)
    return gateway.settings.root_path if gateway is not None else ""
