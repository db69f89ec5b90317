"""Response bodies of the TalkMe endpoints, for validation-free docs in /openapi.json."""

from __future__ import annotations

from pydantic import BaseModel


class WebhookAck(BaseModel):
    """The webhook's answer: the message is kept (or was already)."""

    success: bool = True
    status: str = "ok"
    #: True when this provider message id was already received; it is not processed again.
    duplicate: bool = False


class ApiState(BaseModel):
    reachable: bool | None
    checked_at: float | None
    last_error: str | None


class TalkMeHealth(BaseModel):
    """The channel's state (no secrets, no tokens)."""

    enabled: bool
    test_mode: bool
    secret_required: bool
    api: ApiState
    #: Messages accepted and not answered yet.
    unanswered: int
    #: Replies waiting to be delivered (or retried).
    pending_deliveries: int
    queue_depth: int


class LatencyFigures(BaseModel):
    """Seconds from webhook to delivered reply, over the most recent deliveries."""

    p50_s: float | None
    p95_s: float | None
    samples: int


class SinceStart(BaseModel):
    started_at: float
    received: int
    duplicates_ignored: int
    rejected: int
    forbidden: int
    replies_sent: int
    messages_sent: int
    handovers: int
    send_failures: int
    retries: int
    permanent_failures: int
    typing_sent: int
    typing_failed: int
    test_mode_calls: int


class Totals(BaseModel):
    """From the inbox/outbox database: every message this channel ever kept."""

    received: int
    unanswered: int
    duplicates: int
    delivered: int
    failed: int
    pending_deliveries: int
    retries: int


class TalkMeStatsReport(BaseModel):
    success: bool = True
    test_mode: bool
    since_start: SinceStart
    totals: Totals
    active_sessions: int
    webhook_to_delivered: LatencyFigures
    api: ApiState


class SessionsCleared(BaseModel):
    success: bool = True
    #: The conversation cleared, or null when every TalkMe conversation was.
    conversation_id: str | None
    #: Turns removed (one conversation) or conversations removed (all).
    removed: int
