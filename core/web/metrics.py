"""Prometheus metrics, one registry per gateway (``GET /metrics``, an admin endpoint)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: Where the app keeps its metrics: ``request.app[METRICS]``.
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    """Every metric the gateway exports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "eneca_http_requests",
            "HTTP requests by route and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "eneca_http_request_duration_seconds",
            "HTTP request duration by route",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.agent_seconds = Histogram(
            "eneca_agent_reply_duration_seconds",
            "Time the agent (LLM included) took per reply",
            ["channel"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.replies = Counter(
            "eneca_replies",
            "Replies by channel and outcome (ok or the error code of a fallback)",
            ["channel", "outcome"],
            registry=r,
        )
        self.tokens = Counter(
            "eneca_llm_tokens", "LLM tokens reported by the model server", ["kind"], registry=r
        )
        self.deliveries = Counter(
            "eneca_deliveries",
            "Delivery attempts of durable channels by outcome (delivered, retry, failed)",
            ["channel", "outcome"],
            registry=r,
        )
        self.pending_deliveries = Gauge(
            "eneca_pending_deliveries", "Replies waiting to be delivered", registry=r
        )
        self.unanswered = Gauge(
            "eneca_unanswered_messages",
            "Durable messages accepted and not yet answered",
            registry=r,
        )
        self.bus_lanes = Gauge(
            "eneca_bus_lanes", "Conversations with queued or running work", registry=r
        )
        self.bus_queued = Gauge(
            "eneca_bus_queued",
            "Messages waiting behind another message of their conversation",
            registry=r,
        )
        self.bus_in_flight = Gauge(
            "eneca_bus_in_flight", "Messages queued or being answered", registry=r
        )

    def observe_reply(
        self, channel: str, outcome: str, seconds: float, usage: dict[str, int] | None
    ) -> None:
        self.replies.labels(channel, outcome).inc()
        self.agent_seconds.labels(channel).observe(seconds)
        for kind in ("prompt_tokens", "completion_tokens"):
            if usage and usage.get(kind):
                self.tokens.labels(kind.removesuffix("_tokens")).inc(usage[kind])

    def observe_delivery(self, channel: str, outcome: str) -> None:
        self.deliveries.labels(channel, outcome).inc()

    def middleware(self) -> Callable[..., Awaitable[web.StreamResponse]]:
        """Counts and times every request by its route template (never the raw path,
        which could hold a secret or explode the label set)."""

        @web.middleware
        async def observe_requests(
            request: web.Request,
            handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
        ) -> web.StreamResponse:
            started = time.perf_counter()
            status = 500
            try:
                response = await handler(request)
                status = response.status
                return response
            finally:
                info = request.match_info
                route = info.route.resource.canonical if info.route.resource else "unmatched"
                self.requests.labels(route, request.method, str(status)).inc()
                self.request_seconds.labels(route).observe(time.perf_counter() - started)

        return observe_requests
