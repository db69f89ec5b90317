"""Who may call the HTTP API, as one object on the gateway (``gateway.access``): the key
ring, visitor tokens, thread ownership and the public-traffic limits."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry

from core.config.settings import CoreSettings
from core.contract.errors import ConfigError
from core.contract.store import ConversationStore
from core.web.errors import ApiError
from core.web.keys import Caller, KeyRing
from core.web.limits import PublicLimits
from core.web.owners import Ownership
from core.web.settings import WebAccessSettings
from core.web.visitors import Visitor, VisitorTokens, load_secret

#: The request header carrying a visitor token, and the response header returning it.
VISITOR_HEADER = "X-Visitor-Token"


class WebAccess:
    def __init__(
        self,
        settings: WebAccessSettings,
        core: CoreSettings,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.settings = settings
        refuse_shared_keys(settings, core)
        self.keys = KeyRing(
            admin=settings.admin_key_values(),
            api=core.api_key_values(),
            public=settings.public_key_values(),
            public_origins=settings.public_origins,
            header=core.api_key_header,
        )
        self.limits = PublicLimits(
            visitor_per_minute=settings.public_visitor_per_minute,
            visitor_per_day=settings.public_visitor_per_day,
            ip_per_minute=settings.public_ip_per_minute,
            ip_per_day=settings.public_ip_per_day,
            max_message_chars=settings.public_max_message_chars,
            registry=registry,
        )
        self._data_dir = Path(core.data_dir)
        self._tokens: VisitorTokens | None = None
        self._ownership: Ownership | None = None

    @property
    def tokens(self) -> VisitorTokens:
        """Visitor tokens; the secret is read (or made) on first use."""
        if self._tokens is None:
            secret_key = self.settings.secret_key
            secret = (
                secret_key.get_secret_value().encode()
                if secret_key is not None and secret_key.get_secret_value()
                else load_secret(self._data_dir)
            )
            self._tokens = VisitorTokens(
                secret, self.settings.deployment_id, self.settings.visitor_token_ttl_days * 86400
            )
        return self._tokens

    def ownership(self, store: ConversationStore) -> Ownership:
        if self._ownership is None or self._ownership.store is not store:
            self._ownership = Ownership(store)
        return self._ownership

    def require(self, request: web.Request) -> Caller:
        try:
            return self.keys.require(request)
        except ApiError as exc:
            if exc.code == "origin_not_allowed":
                self.limits.refused.labels("origin").inc()
            raise

    def require_admin(self, request: web.Request) -> Caller:
        return self.keys.require_admin(request)

    def visitor(self, request: web.Request, *, issue: bool) -> Visitor | None:
        """The visitor named by ``X-Visitor-Token`` (401 when it is not valid); without
        one, a new visitor when ``issue``, else None."""
        token = request.headers.get(VISITOR_HEADER)
        if token:
            try:
                return self.tokens.verify(token)
            except ApiError:
                self.limits.refused.labels("invalid_visitor_token").inc()
                raise
        if not issue:
            return None
        self.limits.visitors.inc()
        return self.tokens.issue()


def refuse_shared_keys(settings: WebAccessSettings, core: CoreSettings) -> None:
    """One key in two lists would carry the wider kind's rights (a public key that opens
    admin routes): a :class:`ConfigError`, so start-up (and ``eneca-bot check``) stops."""
    kinds = (
        ("ADMIN_KEYS", set(settings.admin_key_values())),
        ("API_KEYS", set(core.api_key_values())),
        ("PUBLIC_KEYS", set(settings.public_key_values())),
    )
    for n, (name, keys) in enumerate(kinds):
        for other, others in kinds[n + 1 :]:
            if keys & others:
                raise ConfigError(f"a key is listed in both {name} and {other}: use one kind each")
