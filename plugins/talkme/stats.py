"""Counters the TalkMe channel keeps since start, and what it last saw of the API."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from core import percentile
from plugins.talkme.api import ApiOutcome
from plugins.talkme.payload import CHANNEL
from plugins.talkme.schemas import (
    ApiState,
    LatencyFigures,
    SinceStart,
    TalkMeHealth,
    TalkMeStatsReport,
    Totals,
)
from plugins.talkme.settings import TalkMeSettings

if TYPE_CHECKING:
    from core import Gateway


@dataclass
class TalkMeCounters:
    """Counts since this process started (totals over restarts come from the database)."""

    #: Webhooks accepted and queued.
    received: int = 0
    #: Webhooks whose provider message id was already queued or answered.
    duplicates_ignored: int = 0
    #: Webhooks refused for a bad body (400) or a wrong secret (403).
    rejected: int = 0
    forbidden: int = 0
    #: Replies fully delivered (every part sent, ``finish`` called when asked).
    replies_sent: int = 0
    #: ``customBot/send`` calls the API confirmed (one reply may take several).
    messages_sent: int = 0
    handovers: int = 0
    #: API calls of a delivery that failed (each failed attempt counts).
    send_failures: int = 0
    #: Failed deliveries handed back to the outbox for another attempt.
    retries: int = 0
    #: Deliveries given up at once because retrying cannot help.
    permanent_failures: int = 0
    typing_sent: int = 0
    typing_failed: int = 0
    #: Calls test mode logged instead of making.
    test_mode_calls: int = 0


@dataclass
class ApiReachability:
    """Whether the TalkMe API answered the last call we made."""

    reachable: bool | None = None
    checked_at: float | None = None
    last_error: str | None = None

    def observe(self, outcome: ApiOutcome, method: str) -> None:
        self.reachable = outcome.reachable
        self.checked_at = time.time()
        if not outcome.ok:
            self.last_error = outcome.describe(method)


@dataclass
class TalkMeStats:
    """Everything the channel counts, owned by the plugin instance."""

    counters: TalkMeCounters = field(default_factory=TalkMeCounters)
    api: ApiReachability = field(default_factory=ApiReachability)
    started_at: float = field(default_factory=time.time)

    def snapshot(self) -> dict[str, Any]:
        return {**asdict(self.counters), "started_at": self.started_at}


async def health_report(
    gateway: Gateway, settings: TalkMeSettings, stats: TalkMeStats
) -> TalkMeHealth:
    """The channel's state for ``/webhook/talkme/health`` and the gateway's ``/health``."""
    totals = await gateway.delivery_stats(CHANNEL)
    return TalkMeHealth(
        enabled=True,
        test_mode=settings.test_mode,
        secret_required=settings.webhook_secret is not None,
        api=ApiState(**asdict(stats.api)),
        unanswered=totals["unanswered"],
        pending_deliveries=totals["pending_deliveries"],
        queue_depth=totals["unanswered"] + totals["pending_deliveries"],
    )


async def stats_report(
    gateway: Gateway, settings: TalkMeSettings, stats: TalkMeStats
) -> TalkMeStatsReport:
    """Counters since start plus totals and latencies from the database."""
    totals = await gateway.delivery_stats(CHANNEL)
    latencies = await gateway.delivery_latencies(CHANNEL)
    p50, p95 = percentile(latencies, 0.50), percentile(latencies, 0.95)
    return TalkMeStatsReport(
        test_mode=settings.test_mode,
        since_start=SinceStart(**stats.snapshot()),
        totals=Totals(**totals),
        active_sessions=await gateway.store.count_conversations(CHANNEL),
        webhook_to_delivered=LatencyFigures(
            p50_s=None if p50 is None else round(p50, 4),
            p95_s=None if p95 is None else round(p95, 4),
            samples=len(latencies),
        ),
        api=ApiState(**asdict(stats.api)),
    )
