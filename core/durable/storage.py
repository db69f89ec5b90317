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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from loguru import logger

from core.contract.errors import StorageUnavailable
from core.contract.health import Check

#: What a failing SQLite file or disk raises.
STORAGE_ERRORS = (sqlite3.Error, OSError)
#: Bytes the health probe writes: more than SQLite's free pages and WAL space could hide.
PROBE_BYTES = 256 * 1024


def public_reason(exc: BaseException) -> str:
    """The reason without file paths (``/health`` is public)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


class StorageWatch:
    """Remembers the first failed write until a write succeeds again."""

    def __init__(self) -> None:
        self.failure: dict[str, Any] | None = None

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

    async def probe(self, directory: Path) -> None:
        """While failing: does ``directory`` take a new file again? Then writes work."""
        if self.failure is not None:
            with contextlib.suppress(StorageUnavailable), self.writing("write"):
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
