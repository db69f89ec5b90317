"""The optional purge of idle conversations (``MEMORY_TTL_DAYS``)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from loguru import logger

from plugins.memory_sqlite.store import SqliteConversationStore


@dataclass(slots=True)
class PurgeFigures:
    """What the purge task has done, for the health check."""

    runs: int = 0
    removed: int = 0
    last_run_at: float | None = None
    last_error: str | None = None


async def purge_periodically(
    store: SqliteConversationStore, ttl_s: float, interval_s: float, figures: PurgeFigures
) -> None:
    """Purge conversations idle longer than ``ttl_s`` now and every ``interval_s``; runs
    until cancelled. A failed run is logged and retried at the next interval."""
    while True:
        try:
            removed = await store.purge_idle(ttl_s)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            figures.last_error = str(exc)
            logger.opt(exception=exc).error("memory purge failed on {}: {}", store.path, exc)
        else:
            figures.removed += removed
            figures.last_error = None
            if removed:
                logger.info("memory purge removed {} idle conversation(s)", removed)
        figures.runs += 1
        figures.last_run_at = time.time()
        await asyncio.sleep(interval_s)
