"""Storage failures at run time (disk full, read-only, I/O errors) made visible.

A write the gateway cannot make becomes :class:`~core.contract.errors.StorageUnavailable`
(HTTP 503 ``storage_unavailable``, see :mod:`core.web.errors`: a webhook provider retries
it; nothing is answered 200 that was not kept), and ``GET /health`` says ``degraded`` with
the reason until a write succeeds again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from loguru import logger

from core.contract.errors import StorageUnavailable
from core.contract.health import Check

#: What a failing SQLite file or disk raises.
STORAGE_ERRORS = (sqlite3.Error, OSError)
#: Bytes the health probe writes: more than SQLite's free pages and WAL space could hide.
PROBE_BYTES = 256 * 1024
#: Seconds the store gets to answer a probe's ping.
PING_S = 5.0


def public_reason(exc: BaseException) -> str:
    """The reason without file paths (``/health`` is public)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


class StorageWatch:
    """Remembers the first failed write until a write, or a probe, succeeds again.

    The probe (while failing: from ``GET /health`` and while a message is held) asks the
    conversation store's ``ping`` whether it takes writes again and, while the built-in
    SQLite inbox/outbox is in use, whether the data directory takes a new file. Without a
    probe that can succeed, a failure seen after the last write of a quiet gateway would
    hold its message and keep /health degraded until the next request.
    """

    def __init__(self, directory: Path) -> None:
        self.failure: dict[str, Any] | None = None
        self._directory: Path | None = directory
        self._ping: Callable[[], Awaitable[bool]] | None = None

    def watch(self, ping: Callable[[], Awaitable[bool]], *, disk: bool) -> None:
        """What the probe checks: ``ping`` (the store's) and, with ``disk``, the directory."""
        self._ping = ping
        if not disk:
            self._directory = None

    @contextlib.contextmanager
    def writing(self, what: str) -> Iterator[None]:
        """Around one write: a storage error becomes :class:`StorageUnavailable`."""
        try:
            yield
        except STORAGE_ERRORS as exc:
            self.failed(what, exc)
            raise StorageUnavailable(what) from exc
        self.succeeded()

    def failed(self, what: str, exc: BaseException) -> None:
        if self.failure is None:
            logger.error("storage failing: cannot {}: {}; answering 503 until writes work", what,
                         public_reason(exc))  # fmt: skip
            self.failure = {"error": f"cannot {what}: {public_reason(exc)}", "since": time.time()}
        self.failure["failures"] = self.failure.get("failures", 0) + 1

    def succeeded(self) -> None:
        if self.failure is not None:
            logger.info(
                "storage writes work again after {:.1f}s", time.time() - self.failure["since"]
            )
            self.failure = None

    async def probe(self) -> None:
        """While failing: do the store and the directory take writes again?"""
        if self.failure is None:
            return
        if self._ping is not None:
            try:
                async with asyncio.timeout(PING_S):
                    if not await self._ping():
                        return
            except Exception:  # whatever it is: not yet
                return
        directory = self._directory
        with contextlib.suppress(StorageUnavailable), self.writing("write"):
            if directory is not None:
                await asyncio.to_thread(_write_probe, directory / ".write-probe")

    def check(self) -> Check:
        return Check("storage", self.failure is None, self.failure or {})


def _write_probe(path: Path) -> None:
    try:
        with path.open("wb") as handle:
            handle.write(b"\0" * PROBE_BYTES)
            handle.flush()
            os.fsync(handle.fileno())
    finally:
        path.unlink(missing_ok=True)
