"""The three kinds of key and what each may call.

- ``ADMIN_KEYS``: admin routes (which accept no other key) and any thread of any channel;
- ``API_KEYS`` (server to server): chat, stream, n8n and the HTTP channel's threads;
- ``PUBLIC_KEYS`` (publishable, in a web page): chat, stream and n8n from an origin listed
  in ``PUBLIC_ORIGINS``, and only the visitor's own threads.

With no key of any kind configured the API is open (local use) and admin routes are closed.
A presented key is compared with every configured key in constant time, so the time taken
says nothing about which key, or which kind, was close.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

from aiohttp import web

from core.web.errors import ApiError


class Kind(StrEnum):
    ADMIN = "admin"
    API = "api"
    PUBLIC = "public"
    #: No key is configured at all: local use, the HTTP channel's scope.
    OPEN = "open"


#: The name plugins import from ``core``.
KeyKind = Kind


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: the kind of key, a short id of the key (for rate limits, never the
    key) and, for a public key, the page's origin."""

    kind: Kind
    key_id: str = ""
    origin: str | None = None

    @property
    def public(self) -> bool:
        return self.kind is Kind.PUBLIC

    @property
    def admin(self) -> bool:
        return self.kind is Kind.ADMIN


def presented_key(request: web.Request, header: str) -> str | None:
    """The key in ``header`` (``X-API-Key``) or ``Authorization: Bearer``."""
    value = request.headers.get(header)
    if value:
        return value.strip()
    authorization = request.headers.get("Authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def page_origin(request: web.Request) -> str:
    """The origin of the page making the request: ``Origin``, or for a same-origin GET
    (browsers send no ``Origin`` then) the origin of ``Referer``; "" when neither."""
    origin = request.headers.get("Origin")
    if not origin or origin == "null":
        referer = request.headers.get("Referer", "")
        parts = urlsplit(referer)
        origin = f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""
    return origin.rstrip("/").lower()


def key_id(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


class KeyRing:
    """Every configured key with its kind; answers "who is this?" for a request."""

    def __init__(
        self,
        *,
        admin: list[str],
        api: list[str],
        public: list[str],
        public_origins: list[str],
        header: str = "X-API-Key",
    ) -> None:
        self.header = header
        self.public_origins = frozenset(public_origins)
        self._keys = [(key.encode(), Kind.ADMIN) for key in admin]
        self._keys += [(key.encode(), Kind.API) for key in api]
        self._keys += [(key.encode(), Kind.PUBLIC) for key in public]
        self.has_admin = bool(admin)
        self.has_api = bool(api)
        self.has_public = bool(public)

    @property
    def configured(self) -> bool:
        return bool(self._keys)

    def kind_of(self, presented: str) -> Kind | None:
        """The kind of ``presented``; every key is compared, whatever matches first."""
        given = presented.encode()
        found: Kind | None = None
        for key, kind in self._keys:
            if hmac.compare_digest(given, key) and found is None:
                found = kind
        return found

    def _missing(self) -> ApiError:
        return ApiError(
            401,
            "missing_api_key",
            f"send a key in {self.header} or Authorization: Bearer",
            headers={"WWW-Authenticate": "Bearer"},
        )

    def require_admin(self, request: web.Request) -> Caller:
        """An admin key, or 401/403 (403 ``admin_disabled`` when no admin key is set)."""
        if not self.has_admin:
            raise ApiError(
                403, "admin_disabled", "admin endpoints need a key: set ADMIN_KEYS to enable them"
            )
        presented = presented_key(request, self.header)
        if presented is None:
            raise self._missing()
        kind = self.kind_of(presented)
        if kind is None:
            raise ApiError(403, "invalid_api_key", "the key is not valid")
        if kind is not Kind.ADMIN:
            raise ApiError(403, "admin_key_required", "this route needs an admin key")
        return Caller(kind, key_id(presented))

    def require(self, request: web.Request) -> Caller:
        """Any kind of key (a public one only from ``PUBLIC_ORIGINS``), or 401/403; with
        no key configured at all, the open caller."""
        if not self._keys:
            return Caller(Kind.OPEN)
        presented = presented_key(request, self.header)
        if presented is None:
            raise self._missing()
        kind = self.kind_of(presented)
        if kind is None:
            raise ApiError(403, "invalid_api_key", "the key is not valid")
        origin = None
        if kind is Kind.PUBLIC:
            origin = page_origin(request)
            if origin not in self.public_origins:
                raise ApiError(
                    403,
                    "origin_not_allowed",
                    "this public key works only from the web pages listed in PUBLIC_ORIGINS",
                )
        return Caller(kind, key_id(presented), origin)

    def startup_warnings(self) -> list[str]:
        if not self._keys:
            return [
                "no keys are set (API_KEYS, PUBLIC_KEYS, ADMIN_KEYS): /api/* is open to anyone "
                "who can reach this server, and admin routes are closed"
            ]
        if not self.has_admin:
            return [
                "ADMIN_KEYS is not set: admin routes (/metrics, /api/debug, TalkMe stats and "
                "deletes) are closed; API_KEYS no longer open them, set ADMIN_KEYS"
            ]
        return []
