"""What a durable channel's ``deliver_reply`` tells the outbox after one attempt."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Outcome = Literal["delivered", "retry", "failed"]


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """The outcome of sending one reply to a provider."""

    outcome: Outcome
    detail: str = ""
    #: Seconds the provider asked us to wait (HTTP 429 ``Retry-After``).
    retry_after: float | None = None

    @classmethod
    def delivered(cls, detail: str = "") -> DeliveryResult:
        return cls("delivered", detail)

    @classmethod
    def retry(cls, detail: str, retry_after: float | None = None) -> DeliveryResult:
        """A transient failure: connection error, timeout, 5xx, 429."""
        return cls("retry", detail, retry_after)

    @classmethod
    def failed(cls, detail: str) -> DeliveryResult:
        """A permanent failure: retrying would not help (4xx, a rejected request)."""
        return cls("failed", detail)
