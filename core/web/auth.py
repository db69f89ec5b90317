"""API keys: ``X-API-Key`` (name configurable) or ``Authorization: Bearer``.

Keys are compared in constant time, and every configured key is compared, so the time
taken says nothing about which key was close.
"""

from __future__ import annotations

import hmac

from aiohttp import web

from core.config.settings import CoreSettings
from core.web.errors import ApiError


def presented_key(request: web.Request, header: str) -> str | None:
    value = request.headers.get(header)
    if value:
        return value.strip()
    authorization = request.headers.get("Authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def key_matches(presented: str, keys: list[str]) -> bool:
    given = presented.encode()
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(given, key.encode())
    return matched


def require_api_key(request: web.Request, settings: CoreSettings, *, admin: bool = False) -> None:
    """Raise 401 (no key) or 403 (wrong key). With no keys configured the API is open,
    but ``admin`` endpoints are refused: they always need a key."""
    keys = settings.api_key_values()
    if not keys:
        if admin:
            raise ApiError(
                403, "admin_disabled", "admin endpoints need a key: set API_KEYS to enable them"
            )
        return
    presented = presented_key(request, settings.api_key_header)
    if presented is None:
        raise ApiError(
            401,
            "missing_api_key",
            f"send an API key in {settings.api_key_header} or Authorization: Bearer",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not key_matches(presented, keys):
        raise ApiError(403, "invalid_api_key", "the API key is not valid")
