"""``Idempotency-Key``: a retried request gets the first answer instead of a second one.

Kept in process (bounded, with a TTL): retries come from the same client seconds apart
(n8n's "Retry On Fail" waits 1 s), a restart loses the first request anyway, and a disk
write per request would cost more than the rest of the request path.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from core import ApiError

#: ``(route, thread, key)``: a key only matches on the same route and thread.
Scope = tuple[str, str, str]
#: What a producer returns: the body to answer and whether a retry may reuse it.
Produced = tuple[dict[str, Any], bool]

MAX_KEY_CHARS = 200


@dataclass(slots=True)
class _Entry:
    fingerprint: bytes
    result: asyncio.Future[dict[str, Any]]
    expires_at: float = field(default=float("inf"))


def fingerprint(*parts: str | None) -> bytes:
    """A short digest of what the request asked, to catch a key reused for another one."""
    digest = hashlib.blake2b(digest_size=16)
    for part in parts:
        digest.update((part or "").encode())
        digest.update(b"\x00")
    return digest.digest()


def check_key(key: str) -> str:
    if len(key) > MAX_KEY_CHARS or not key.isprintable():
        raise ApiError(
            400,
            "invalid_idempotency_key",
            f"Idempotency-Key must be at most {MAX_KEY_CHARS} printable characters",
        )
    return key


class IdempotencyCache:
    """Answers for recent idempotency keys; a duplicate of a request still in flight
    waits for the same answer."""

    def __init__(self, ttl_s: float, max_keys: int) -> None:
        self._ttl_s = ttl_s
        self._max_keys = max_keys
        self._entries: OrderedDict[Scope, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def run(
        self, scope: Scope, digest: bytes, produce: Callable[[], Awaitable[Produced]]
    ) -> tuple[dict[str, Any], bool]:
        """The answer for ``scope``: the remembered one (``True``) or ``produce()``'s."""
        while True:
            self._expire(time.monotonic())
            entry = self._entries.get(scope)
            if entry is None:
                return await self._produce(scope, digest, produce), False
            if entry.fingerprint != digest:
                raise ApiError(
                    422,
                    "idempotency_key_reused",
                    "this Idempotency-Key was already used for a different request",
                )
            try:
                return await asyncio.shield(entry.result), True
            except asyncio.CancelledError:
                if (task := asyncio.current_task()) is not None and task.cancelling():
                    raise
            except Exception:
                pass
            # The first attempt failed and was forgotten: this request tries itself.

    async def _produce(
        self, scope: Scope, digest: bytes, produce: Callable[[], Awaitable[Produced]]
    ) -> dict[str, Any]:
        entry = _Entry(digest, asyncio.get_running_loop().create_future())
        self._entries[scope] = entry
        while len(self._entries) > self._max_keys:
            self._entries.popitem(last=False)
        try:
            body, reusable = await produce()
        except BaseException as exc:
            self._forget(scope, entry)
            if isinstance(exc, asyncio.CancelledError):
                entry.result.cancel()
            else:
                entry.result.set_exception(exc)
                entry.result.exception()  # nobody may be waiting: not an "unretrieved" error
            raise
        if reusable:
            entry.expires_at = time.monotonic() + self._ttl_s
            if self._entries.get(scope) is entry:
                self._entries.move_to_end(scope)
        else:
            self._forget(scope, entry)
        entry.result.set_result(body)
        return body

    def _forget(self, scope: Scope, entry: _Entry) -> None:
        if self._entries.get(scope) is entry:
            del self._entries[scope]

    def _expire(self, now: float) -> None:
        entries = self._entries
        while entries:
            first = next(iter(entries.values()))
            if first.expires_at > now:
                return
            entries.popitem(last=False)

    def forget_thread(self, thread: str) -> None:
        """Drop the answers of a thread that was cleared."""
        for scope in [s for s in self._entries if s[1] == thread]:
            del self._entries[scope]

    def clear(self) -> None:
        self._entries.clear()
