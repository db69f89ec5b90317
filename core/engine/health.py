"""The gateway's health report: the core's own checks, then each plugin's ``health_check``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from loguru import logger

from core.contract.health import Check
from core.contract.store import ConversationStore
from core.durable.outbox import Outbox
from core.durable.storage import StorageWatch

#: Seconds the store gets to answer its ping before it counts as failing.
STORE_PING_S = 2.0


async def health_report(
    bus_stats: tuple[bool, Mapping[str, Any]],
    rate_limits: Mapping[str, Any],
    store: ConversationStore,
    storage: StorageWatch,
    outbox: Outbox,
    plugin_checks: Callable[[], Awaitable[list[tuple[str, Any]]]],
) -> tuple[bool, dict[str, Any]]:
    """Whether every check is ok, and the report ``GET /health`` shows."""
    running, figures = bus_stats
    # Limits answer even with a shared backend away (they count locally): always ok.
    checks = [Check("bus", running, figures), Check("rate_limits", True, rate_limits)]
    try:
        async with asyncio.timeout(STORE_PING_S):
            store_ok = await store.ping()
    except Exception as exc:
        store_ok = False
        logger.warning("store health check failed: {}", str(exc) or type(exc).__name__)
    checks.append(Check("store", store_ok, {"backend": type(store).__name__}))
    await storage.probe()  # writes work again after a failure?
    checks.append(storage.check())
    if held := await outbox.held():  # replies waiting for their channel's plugin
        checks.append(Check("outbox", True, {"held": held}))
    for plugin, result in await plugin_checks():
        for check in result if isinstance(result, list | tuple) else [result]:
            name = plugin if check.name == plugin else f"{plugin}.{check.name}"
            checks.append(Check(name, check.ok, check.detail))
    report = {check.name: {"ok": check.ok, **check.detail} for check in checks}
    return all(check.ok for check in checks), report
