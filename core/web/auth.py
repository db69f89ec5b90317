"""API keys: ``X-API-Key`` (name configurable) or ``Authorization: Bearer``.

The kinds of key and what each may call live in :mod:`core.web.keys`; this module keeps
the entry point channels (TalkMe's admin routes, ``/metrics``) call.
"""

from __future__ import annotations

import hmac

from aiohttp import web

from core.config.settings import CoreSettings
from core.web.http import GATEWAY
from core.web.keys import Caller, presented_key

__all__ = ["key_matches", "presented_key", "require_api_key"]


def key_matches(presented: str, keys: list[str]) -> bool:
    given = presented.encode()
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(given, key.encode())
    return matched


def require_api_key(
    request: web.Request, settings: CoreSettings | None = None, *, admin: bool = False
) -> Caller:
    """Raise 401 (no key) or 403 (wrong key, wrong kind, a public key off its origins);
    ``admin`` routes take only ``ADMIN_KEYS`` and are closed when none is set. Returns
    who is calling."""
    access = request.app[GATEWAY].access
    return access.require_admin(request) if admin else access.require(request)
