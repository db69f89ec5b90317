"""Retention: settled inbox/outbox rows are purged after ``DURABLE_RETENTION_DAYS``.

A row is *settled* when nothing more will be done with it: its reply was delivered, given
up (failed) or dropped (its conversation was cleared). Pending work is never purged.
"""

from __future__ import annotations

import asyncio
import time

from loguru import logger

from core.durable.sqlite import DurableQueue

#: How often retention runs.
PURGE_EVERY_S = 3600.0


async def purge_settled(queue: DurableQueue, retention_days: float) -> None:
    """Forever, every :data:`PURGE_EVERY_S`: drop rows settled over ``retention_days`` ago."""
    while True:
        cutoff = time.time() - retention_days * 86400
        try:
            removed = await queue.purge(cutoff)
        except Exception as exc:  # storage trouble: try again next time
            logger.warning("inbox/outbox retention could not run: {}", exc)
        else:
            if removed:
                logger.info("inbox/outbox retention removed {} settled row(s)", removed)
        await asyncio.sleep(PURGE_EVERY_S)
