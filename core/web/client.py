"""The client's address, believing ``X-Forwarded-For`` only from ``TRUSTED_PROXIES``."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

from aiohttp import web

from core.web.http import GATEWAY

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Iterable[str]) -> list[Network]:
    """``["10.0.0.0/8", "127.0.0.1"]`` -> networks; raises ``ValueError`` naming a bad one."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"not an IP address or network: {value!r}") from None
    return networks


def _in(address: str, networks: list[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in networks)


def peer_is_trusted(request: web.Request) -> bool:
    """Whether the direct peer is one of the gateway's ``TRUSTED_PROXIES``."""
    gateway = request.app.get(GATEWAY)
    configured = tuple(gateway.settings.trusted_proxies) if gateway is not None else ()
    networks = _networks(configured)
    return bool(networks and request.remote and _in(request.remote, networks))


def client_ip(request: web.Request, trusted_proxies: list[Network] | None = None) -> str:
    """The caller's address. ``X-Forwarded-For`` counts only when the direct peer is a
    trusted proxy (``TRUSTED_PROXIES`` of the request's gateway, unless given); then the
    right-most address that is not a trusted proxy wins."""
    if trusted_proxies is None:
        gateway = request.app.get(GATEWAY)
        configured = tuple(gateway.settings.trusted_proxies) if gateway is not None else ()
        trusted_proxies = _networks(configured)
    peer = request.remote or "unknown"
    if not trusted_proxies or not _in(peer, trusted_proxies):
        return peer
    forwarded = request.headers.get("X-Forwarded-For", "")
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _in(hop, trusted_proxies):
            return hop
    return hops[0] if hops else peer


@functools.lru_cache(maxsize=16)
def _networks(values: tuple[str, ...]) -> list[Network]:
    """Parsed once per setting value, not per request."""
    return parse_networks(values)
