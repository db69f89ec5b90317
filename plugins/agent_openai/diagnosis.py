"""What a failed model request really ran into, in words an operator can act on.

The SDK's aiohttp transport reports a refused connection as ``APITimeoutError: Request
timed out``; the cause chain (``__cause__``, ``__context__``, exception groups) holds the
real error: a refused connection, a name that does not resolve, or a real timeout.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator

import aiohttp

REFUSED = "connection refused"
DNS = "DNS lookup failed"
TIMEOUT = "timed out"
DROPPED = "connection dropped"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception behind it, depth first, each once."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo.extend(getattr(current, "exceptions", ()) or ())
        for behind in (current.__cause__, current.__context__):
            if behind is not None:
                todo.append(behind)


def _is_dns(exc: BaseException) -> bool:
    dns_error = getattr(aiohttp, "ClientConnectorDNSError", None)
    if dns_error is not None and isinstance(exc, dns_error):
        return True
    return isinstance(exc, socket.gaierror)


def _is_timeout(exc: BaseException) -> bool:
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return True
    name = type(exc).__name__
    return name.endswith("Timeout") or name.endswith("TimeoutError")


def _is_dropped(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionResetError | BrokenPipeError | aiohttp.ServerDisconnectedError):
        return True
    return type(exc).__name__ == "RemoteProtocolError"  # httpx/httpcore: server hung up


def failure_kind(exc: BaseException) -> str | None:
    """``connection refused``, ``DNS lookup failed``, ``timed out``, ``connection
    dropped`` or ``None`` (something else)."""
    chain = list(_chain(exc))
    for each in chain:
        if isinstance(each, ConnectionRefusedError) or (
            isinstance(each, OSError) and each.errno == errno.ECONNREFUSED
        ):
            return REFUSED
    if any(_is_dns(each) for each in chain):
        return DNS
    if any(_is_timeout(each) for each in chain):
        return TIMEOUT
    if any(_is_dropped(each) for each in chain):
        return DROPPED
    return None


def describe_failure(exc: BaseException, where: str) -> str:
    """One phrase for the log: ``connection refused by http://127.0.0.1:9/v1/``..."""
    kind = failure_kind(exc)
    if kind == REFUSED:
        return f"connection refused by {where}"
    if kind == DNS:
        return f"DNS lookup failed for {where}"
    if kind == TIMEOUT:
        return f"{where} timed out"
    if kind == DROPPED:
        return f"{where} dropped the connection before answering"
    return f"{type(exc).__name__}: {exc}"
